"""Bronze: archive files fetched, checksum-verified and kept byte for byte as received, with a manifest row each.

The manifest (bronze.files) says which source each file came from: `archive`, `archive:synthetic` for the
bundled sample's generated datasets (their zip comment says SYNTHETIC; see btc_assets/lib/data/synthetic), or `rest`
for a period the archive had not published, rebuilt from the REST API in the archive's layout when the `archive`
resource offers a REST client (defs/resources/sources.py: ArchiveWithRestResource). The sensor in bronze/rest_sensor.py
re-materializes `rest` partitions from the archive once it publishes them.
"""


import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.lib.data.archive.errors import ArchiveError, ArchiveNotPublished
from btc_assets.lib.data.archive.files import (ARCHIVE_SOURCE, REST_SOURCE, SYNTHETIC_SOURCE, ArchiveFile, daily_file,
                                               monthly_file)
from btc_assets.lib.data.rest.errors import BinanceError
from btc_assets.lib.data.rest.download import download_file
from btc_assets.lib.data.rest.layouts import REST_DATASETS
from btc_assets.lib.data.synthetic import is_synthetic_zip
from btc_assets.lib.storage import lakehouse
from btc_assets.lib.storage.warehouse import ensure_table

MANIFEST_TABLE = "bronze.files"
MANIFEST_COLUMNS = {
    "dataset": "VARCHAR",
    "period_start": "TIMESTAMP",
    "relpath": "VARCHAR",
    "sha256": "VARCHAR",
    "bytes": "BIGINT",
    "source": "VARCHAR",
    "source_url": "VARCHAR",
    "fetched_at": "TIMESTAMP",
}


def fetch_to_lake(context: dg.AssetExecutionContext, files: list[tuple[dt.date, ArchiveFile]], archive: ArchiveResource,
               lake: LakeResource, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """Fetch every file of the run's window; keep each verified file; fail naming every file that could not be had.

    Files that did verify are kept even when others fail, so a re-run only has to fetch what is missing. The
    manifest rows are written in one transaction (a connection per file costs more than the fetch), and a file the
    bundled sample's generator wrote is recorded as `archive:synthetic`, never passed off as Binance data.
    """
    client = archive.client()
    rest = archive.rest_client() if hasattr(archive, "rest_client") else None
    rows, errors, synthetic, from_rest = [], [], [], []
    for day, f in files:
        try:
            got, source = client.fetch(f), ARCHIVE_SOURCE
        except ArchiveNotPublished as exc:
            if rest is None:
                errors.append(f"{day}: {exc}")
                continue
            if f.dataset not in REST_DATASETS:
                errors.append(f"{day}: {exc}; the REST fallback cannot rebuild {f.dataset} (Binance has no history "
                              "endpoint for it): wait for the archive to publish the day")
                continue
            try:
                got, source = download_file(rest, f), REST_SOURCE
            except BinanceError as rest_exc:
                errors.append(f"{day}: {exc}; the REST fallback failed too: {rest_exc}")
                continue
            from_rest.append(f.filename)
        except ArchiveError as exc:
            errors.append(f"{day}: {exc}")
            continue
        lake.write_bytes(f"bronze/{f.relpath}", got.content)
        lake.write_bytes(f"bronze/{f.relpath}.CHECKSUM", got.checksum_text.encode())
        is_synthetic = is_synthetic_zip(got.content)
        synthetic += [f.filename] if is_synthetic else []
        rows.append({"dataset": f.dataset, "period_start": pd.Timestamp(day), "relpath": f.relpath,
                     "sha256": got.sha256, "bytes": got.size, "source": SYNTHETIC_SOURCE if is_synthetic else source,
                     "source_url": got.source_url, "fetched_at": pd.Timestamp.now(tz="UTC").tz_localize(None)})
    if rows:
        frame = pd.DataFrame(rows)
        with warehouse.get_connection() as conn:
            lake_table = lakehouse.ACTIVE.get()  # BTC_LAKEHOUSE_URI set: the fetches are appended there (below)
            ensure_table(conn, MANIFEST_TABLE, MANIFEST_COLUMNS)
            conn.register("_manifest_rows", frame)
            conn.execute("BEGIN TRANSACTION")
            conn.execute(f"DELETE FROM {MANIFEST_TABLE} WHERE relpath IN (SELECT relpath FROM _manifest_rows)")
            conn.execute(f"INSERT INTO {MANIFEST_TABLE} SELECT {', '.join(MANIFEST_COLUMNS)} FROM _manifest_rows")
            conn.execute("COMMIT")
            conn.unregister("_manifest_rows")
        if lake_table is not None:
            # In Delta the manifest is the history of every fetch (key: relpath, fetched_at): a file the REST
            # fallback built and the archive's later copy are both there, DuckDB's table holds the current one.
            lake_table.append_new(MANIFEST_TABLE, MANIFEST_COLUMNS, frame, "period_start", ("relpath", "fetched_at"),
                                  note={"run_id": context.run.run_id})
    if synthetic:
        context.log.warning(f"{len(synthetic)} of {len(files)} files are SYNTHETIC (generated sample data, not "
                            "Binance data): see SYNTHETIC.md in the archive root")
    if from_rest:
        context.log.warning(f"{len(from_rest)} of {len(files)} files came from the REST API (the archive has not "
                            f"published them yet): {', '.join(from_rest)}; they are re-fetched from the archive "
                            "once it publishes them")
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} of {len(files)} archive files could not be fetched and verified "
            f"(the {len(rows)} others are kept):\n" + "\n".join(f"- {e}" for e in errors),
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors)), "fetched": len(rows)})
    source = (ARCHIVE_SOURCE if not synthetic else SYNTHETIC_SOURCE if len(synthetic) == len(rows)
              else "archive (some synthetic)")
    if from_rest:
        source = REST_SOURCE if len(from_rest) == len(rows) else f"{source} + {REST_SOURCE}"
    single = {"sha256": rows[0]["sha256"], "byte_size": rows[0]["bytes"], "path": rows[0]["source_url"]} \
        if len(rows) == 1 else {}
    return dg.MaterializeResult(metadata={
        **single,
        "files": len(rows), "bytes": sum(r["bytes"] for r in rows), "source": source, "synthetic": bool(synthetic),
        "synthetic_files": len(synthetic), "archive": archive.base_url, "rest_files": len(from_rest),
        "manifest": dg.MetadataValue.md("| file | bytes | sha256 | source |\n|---|---|---|---|\n" + "\n".join(
            f"| {r['relpath'].rsplit('/', 1)[1]} | {r['bytes']:,} | `{r['sha256']}` | {r['source']} |" for r in rows)),
    })


@dg.asset(
    key=["bronze", "klines_1m"],
    group_name="bronze",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"binance", "file"},
    description="Daily USD-M 1m kline archive files (zip + .CHECKSUM), verified and kept exactly as received.",
)
def klines_1m(
    context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    files = [(d, daily_file("klines", archive.symbol, d, interval="1m")) for d in partitions.days_of(context)]
    return fetch_to_lake(context, files, archive, lake, warehouse)


@dg.asset(
    key=["bronze", "funding_rates"],
    group_name="bronze",
    partitions_def=partitions.monthly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"binance", "file"},
    description="Monthly USD-M fundingRate archive files (calc_time, funding_interval_hours, last_funding_rate).",
)
def funding_rates(
    context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    window = context.partition_time_window
    months = pd.date_range(window.start, window.end, freq="MS", inclusive="left")
    files = [(m.date(), monthly_file("fundingRate", archive.symbol, m.date())) for m in months]
    return fetch_to_lake(context, files, archive, lake, warehouse)


@dg.asset(
    key=["bronze", "klines_history"],
    group_name="bronze",
    partitions_def=partitions.history_monthly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"binance", "file"},
    description="Monthly USD-M 1h and 1d kline archive files (zip + .CHECKSUM), verified and kept exactly as "
    "received: the long history (years of bars without years of minute files).",
)
def klines_history(
    context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    window = context.partition_time_window
    months = pd.date_range(window.start, window.end, freq="MS", inclusive="left")
    files = [(m.date(), monthly_file("klines", archive.symbol, m.date(), interval=i))
             for m in months for i in ("1h", "1d")]
    return fetch_to_lake(context, files, archive, lake, warehouse)
