"""Silver long history: 1h and 1d bars read from the archive's monthly kline files, one partition per month.

Years of bars without years of minute files (multi-day models, the daily strategy, multi-year backtests). Where the
1m history is loaded too, silver.klines_1h / silver.klines_1d are built from it; the archive's bars must agree with
those wherever both exist (a blocking check that names the bar and the column), so the two sources can be read as
one series (`read_history`: the bars built from 1m where they are complete, the archive's elsewhere).
"""

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.publish import publish
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.defs.silver.klines import KLINE_TYPES
from btc_assets.defs.table_metadata import per_partition, table_metadata
from btc_assets.lib.data import bars, schemas
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.archive.files import monthly_file
from btc_assets.lib.data.archive.layouts import KLINES
from btc_assets.lib.storage.warehouse import read_window, replace_window, table_exists

HISTORY_TYPES = dict(KLINE_TYPES)
# The USD-M BTCUSDT perpetual started trading on 2019-09-08 (its first funding 2019-09-10); bars before the first
# hour of its first file cannot be missing.
LISTED = pd.Timestamp(partitions.LISTING_DATE, tz="UTC") - pd.Timedelta(days=2)


def history_table(interval: str) -> str:
    return f"silver.klines_{interval}_history"


def read_history(conn, interval: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """`interval` bars ("1h" or "1d") in [start, end) as one series: where silver holds a complete bar built from
    1m it is that bar (`source` "1m"), elsewhere the archive's monthly file's (`source` "archive"); the check
    klines_<interval>_history_agrees_with_1m makes the two equal wherever both exist."""
    cols = list(HISTORY_TYPES)
    parts = []
    if table_exists(conn, history_table(interval)):
        parts.append(read_window(conn, history_table(interval), "open_time", start, end, cols).assign(source="archive"))
    built_table = f"silver.klines_{interval}"
    if table_exists(conn, built_table):
        built = read_window(conn, built_table, "open_time", start, end)
        built = built[built["minutes"] == bars.expected_minutes(interval)]
        parts.append(built[cols].assign(source="1m"))
    if not parts:
        return pd.DataFrame(columns=[*cols, "source"])
    both = pd.concat(parts[::-1], ignore_index=True)  # 1m-built first: it wins on a duplicate open_time
    return both.drop_duplicates("open_time", keep="first").sort_values("open_time").reset_index(drop=True)


def _history_asset(interval: str) -> dg.AssetsDefinition:
    name = f"klines_{interval}_history"
    key = ["silver", name]
    table = history_table(interval)
    specs = [
        dg.AssetCheckSpec(f"{name}_has_every_bar", asset=key, blocking=True,
                          description=f"Every {interval} bar of the month (since the listing) is present exactly "
                                      "once; a missing bar is never invented."),
        dg.AssetCheckSpec(f"{name}_matches_schema", asset=key, blocking=True,
                          description="The pandera schema of silver klines (OHLC consistent, volumes >= 0, UTC)."),
        dg.AssetCheckSpec(f"{name}_agrees_with_1m", asset=key, blocking=True,
                          description=f"Wherever silver.klines_{interval} holds a complete bar built from 1m, the "
                                      "archive's bar has the same open, high, low, close, volumes and trades."),
    ]

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["bronze", "klines_history"])],
        group_name="silver",
        partitions_def=partitions.history_monthly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb"},
        check_specs=specs,
        description=f"{interval} bars of the archive's monthly {interval} kline files, typed and validated like 1m "
        f"bars: years of history without minute files. Table {table}; read it with silver/history.read_history "
        f"(the bars built from 1m where they exist).",
    )
    def _asset(context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource,
               warehouse: DuckDBResource):
        start, end = (pd.Timestamp(t) for t in context.partition_time_window)
        parsed = []
        for month in pd.date_range(start, end, freq="MS", inclusive="left"):
            f = monthly_file("klines", archive.symbol, month.date(), interval=interval)
            raw = read_archive_csv(lake.read_bytes(f"bronze/{f.relpath}"), f.filename, KLINES)
            parsed.append(bars.silver_klines_history(raw, month.date(), interval,
                                                     source=f"{f.filename} (partition {month:%Y-%m})",
                                                     available_from=LISTED))
        df = pd.concat([p.bars for p in parsed], ignore_index=True)
        missing = [t for p in parsed for t in p.missing_bars]
        with warehouse.get_connection() as conn:
            built_table = f"silver.klines_{interval}"
            built = read_window(conn, built_table, "open_time", start, end) if table_exists(conn, built_table) \
                else pd.DataFrame(columns=["open_time", "minutes"])
            diff = bars.disagreements(df, built, interval)
            compared = diff.attrs["bars_compared"]
            checks = [
                dg.AssetCheckResult(
                    check_name=f"{name}_has_every_bar", passed=not missing,
                    metadata={"missing_bars": len(missing), "first_missing": [str(t) for t in missing[:20]]},
                    description=None if not missing else f"{len(missing)} {interval} bars are missing from the "
                    "archive's monthly file: re-fetch it (bronze/klines_history); if it is still incomplete, "
                    f"build the month from 1m (silver/klines_{interval})"),
                _schema_result(f"{name}_matches_schema", df),
                dg.AssetCheckResult(
                    check_name=f"{name}_agrees_with_1m", passed=diff.empty,
                    metadata={"bars_compared": compared, "disagreements": len(diff),
                              "rtol": bars.AGREEMENT_RTOL,
                              "sample": dg.MetadataValue.md(diff.head(10).to_markdown(index=False)) if len(diff)
                              else ""},
                    description=(f"no complete {interval} bar built from 1m in this window to compare with "
                                 f"(silver/klines_{interval} not materialized here): nothing compared"
                                 if not compared else
                                 f"{compared} bars compared, all equal" if diff.empty else
                                 f"{diff['open_time'].nunique()} of {compared} bars differ, first "
                                 f"{diff['open_time'].iloc[0]} ({diff['column'].iloc[0]}: archive "
                                 f"{diff['archive'].iloc[0]} vs {diff['from_1m'].iloc[0]} from 1m): one source is "
                                 "wrong; re-fetch both files and compare them with the REST API")),
            ]
            written, visible = publish(specs, checks, lambda: replace_window(
                conn, table, HISTORY_TYPES, df, "open_time", start, end), len(df))
        per_partition(context, df, "open_time", visible["written"], monthly=True,
                      extra=lambda part: {"halt_bars": int(part["is_halt"].sum())})
        yield dg.MaterializeResult(metadata={
            **table_metadata(df), "rows": written, **visible, "months": len(parsed),
            "first_bar": str(df["open_time"].min()), "last_bar": str(df["open_time"].max()),
            "duplicates_dropped": sum(p.duplicates_dropped for p in parsed), "missing_bars": len(missing),
            "bars_compared_with_1m": compared})
        yield from checks

    return _asset


def _schema_result(check: str, df: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        schemas.SILVER_KLINES.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        return dg.AssetCheckResult(check_name=check, passed=False,
                                   metadata={"failures": len(err.failure_cases), "sample": schemas.failure_sample(err)})
    return dg.AssetCheckResult(check_name=check, passed=True, metadata={"rows": len(df)})


klines_1h_history, klines_1d_history = (_history_asset(i) for i in ("1h", "1d"))
