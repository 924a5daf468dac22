"""Bronze: archive files fetched, checksum-verified and kept byte for byte as received, with a manifest row each."""


import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources import ArchiveResource, LakeResource
from btc_assets.lib.archive import ArchiveError, ArchiveFile, FetchedFile, daily_file, monthly_file
from btc_assets.lib.warehouse import ensure_table

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


def fetch_to_lake(
    context: dg.AssetExecutionContext,
    files: list[tuple[dt.date, ArchiveFile]],
    archive: ArchiveResource,
    lake: LakeResource,
    warehouse: DuckDBResource,
) -> dg.MaterializeResult:
    """Fetch every file of the run's window; keep each verified file; fail naming every file that could not be had.

    Files that did verify are kept even when others fail, so a re-run only has to fetch what is missing.
    """
    client = archive.client()
    fetched: list[FetchedFile] = []
    errors: list[str] = []
    for day, f in files:
        try:
            got = client.fetch(f)
        except ArchiveError as exc:
            errors.append(f"{day}: {exc}")
            continue
        lake.write_bytes(f"bronze/{f.relpath}", got.content)
        lake.write_bytes(f"bronze/{f.relpath}.CHECKSUM", got.checksum_text.encode())
        _record(warehouse, day, got)
        fetched.append(got)
        context.log.info(f"fetched {f.relpath} ({got.size:,} bytes, sha256 {got.sha256[:12]}…)")
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} of {len(files)} archive files could not be fetched and verified "
            f"(the {len(fetched)} others are kept):\n" + "\n".join(f"- {e}" for e in errors),
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors)), "fetched": len(fetched)},
        )
    meta: dict[str, object] = {
        "files": len(fetched),
        "bytes": sum(g.size for g in fetched),
        "source": "archive",
        "archive": archive.base_url,
        "manifest": dg.MetadataValue.md(
            "| file | bytes | sha256 |\n|---|---|---|\n"
            + "\n".join(f"| {g.file.filename} | {g.size:,} | `{g.sha256}` |" for g in fetched)
        ),
    }
    if len(fetched) == 1:
        meta.update({"sha256": fetched[0].sha256, "byte_size": fetched[0].size, "path": fetched[0].source_url})
    return dg.MaterializeResult(metadata=meta)


def _record(warehouse: DuckDBResource, day: dt.date, got: FetchedFile) -> None:
    row = pd.DataFrame(
        [
            {
                "dataset": got.file.dataset,
                "period_start": pd.Timestamp(day),
                "relpath": got.file.relpath,
                "sha256": got.sha256,
                "bytes": got.size,
                "source": "archive",
                "source_url": got.source_url,
                "fetched_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            }
        ]
    )
    with warehouse.get_connection() as conn:
        ensure_table(conn, MANIFEST_TABLE, MANIFEST_COLUMNS)
        conn.execute(f"DELETE FROM {MANIFEST_TABLE} WHERE relpath = ?", [got.file.relpath])
        conn.register("_row", row)
        conn.execute(f"INSERT INTO {MANIFEST_TABLE} SELECT {', '.join(MANIFEST_COLUMNS)} FROM _row")
        conn.unregister("_row")


def days_of(context: dg.AssetExecutionContext) -> list[dt.date]:
    window = context.partition_time_window
    days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
    return [d.date() for d in days]


@dg.asset(
    key=["bronze", "klines_1m"],
    group_name="bronze",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="duckdb",
    kinds={"binance", "file"},
    description="Daily USD-M 1m kline archive files (zip + .CHECKSUM), verified and kept exactly as received.",
)
def klines_1m(
    context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    files = [(d, daily_file("klines", archive.symbol, d, interval="1m")) for d in days_of(context)]
    return fetch_to_lake(context, files, archive, lake, warehouse)


@dg.asset(
    key=["bronze", "funding_rates"],
    group_name="bronze",
    partitions_def=partitions.monthly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="duckdb",
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
