"""Silver klines: typed, UTC, de-duplicated and validated 1m bars in DuckDB, and 5m/15m/1h/4h/1d bars built from
them (the archive's monthly 1h/1d files are the long history: silver/history.py)."""


import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.publish import publish, window_writer
from btc_assets.defs.table_metadata import per_partition, table_metadata
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.lib.data import bars, schemas
from btc_assets.lib.data.archive.files import daily_file
from btc_assets.lib.data.archive.layouts import KLINES
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.storage.warehouse import read_window, replace_window

KLINE_TYPES = {
    "open_time": "TIMESTAMP",
    "open": "DOUBLE",
    "high": "DOUBLE",
    "low": "DOUBLE",
    "close": "DOUBLE",
    "volume": "DOUBLE",
    "quote_volume": "DOUBLE",
    "trades": "BIGINT",
    "taker_buy_volume": "DOUBLE",
    "taker_buy_quote_volume": "DOUBLE",
    "is_halt": "BOOLEAN",
}
RESAMPLED_TYPES = {**{k: v for k, v in KLINE_TYPES.items() if k != "is_halt"}, "minutes": "BIGINT",
                   "halt_minutes": "BIGINT", "is_halt": "BOOLEAN"}

CHECKS_1M = [
    dg.AssetCheckSpec("klines_1m_has_every_minute", asset=["silver", "klines_1m"], blocking=True,
                      description="Every minute of each day is present exactly once; a missing minute is never invented."),
    dg.AssetCheckSpec("klines_1m_ohlc_consistent", asset=["silver", "klines_1m"], blocking=True,
                      description="high >= open, close, low; low <= open, close; prices > 0; taker-buy <= volume."),
    dg.AssetCheckSpec("klines_1m_matches_schema", asset=["silver", "klines_1m"], blocking=True,
                      description="The pandera schema of silver.klines_1m."),
    dg.AssetCheckSpec("klines_1m_halts_listed", asset=["silver", "klines_1m"],
                      description="Exchange halts (flat candles with zero trades) counted and listed; a warning."),
]


@dg.asset(
    key=["silver", "klines_1m"],
    deps=[dg.AssetKey(["bronze", "klines_1m"])],
    group_name="silver",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    check_specs=CHECKS_1M,
    description="1m bars: typed, UTC, de-duplicated; `is_halt` flags exchange halts. Table silver.klines_1m.",
)
def klines_1m(
    context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource, warehouse: DuckDBResource
):
    days = partitions.days_of(context)
    parsed: list[bars.SilverDay] = []
    for day in days:
        f = daily_file("klines", archive.symbol, day, interval="1m")
        raw = read_archive_csv(lake.read_bytes(f"bronze/{f.relpath}"), f.filename, KLINES)
        parsed.append(bars.silver_klines_1m(raw, day, source=f"{f.filename} (partition {day})"))
    df = pd.concat([p.bars for p in parsed], ignore_index=True)
    start, end = bars.day_bounds(days[0])[0], bars.day_bounds(days[-1])[1]
    missing = [t for p in parsed for t in p.missing_minutes]
    halts = [w for p in parsed for w in p.halt_windows]
    violations = bars.ohlc_violations(df)
    checks = [
        dg.AssetCheckResult(
            check_name="klines_1m_has_every_minute",
            passed=not missing,
            metadata={"missing_minutes": len(missing), "first_missing": [str(t) for t in missing[:20]],
                      "expected": len(days) * 1440, "found": len(df)},
            description=None if not missing else "minutes are missing: the archive file is incomplete; re-fetch "
            "it, and if it is still incomplete, take the day from the REST API",
        ),
        dg.AssetCheckResult(
            check_name="klines_1m_ohlc_consistent",
            passed=violations.empty,
            metadata={"violations": len(violations), "sample": dg.MetadataValue.md(
                violations.head(10).to_markdown(index=False)) if len(violations) else ""},
        ),
        _schema_result(df),
        dg.AssetCheckResult(
            check_name="klines_1m_halts_listed",
            passed=not halts,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"halt_windows": len(halts), "halt_minutes": int(df["is_halt"].sum()),
                      "windows": [f"{a:%Y-%m-%d %H:%M}–{b:%H:%M} UTC" for a, b in halts]},
        ),
    ]
    with warehouse.get_connection() as conn:
        written, visible = publish(CHECKS_1M, checks, lambda: replace_window(
            conn, "silver.klines_1m", KLINE_TYPES, df, "open_time", start, end), len(df))
    per_partition(context, df, "open_time", visible["written"], extra=lambda day: {
        "halt_minutes": int(day["is_halt"].sum())})
    yield dg.MaterializeResult(
        metadata={
            **table_metadata(df),
            "rows": written,
            **visible,
            "days": len(days),
            "first_bar": str(df["open_time"].min()),
            "last_bar": str(df["open_time"].max()),
            "duplicates_dropped": sum(p.duplicates_dropped for p in parsed),
            "rows_out_of_order_in_file": sum(p.unsorted_rows for p in parsed),
            "missing_minutes": len(missing),
            "halt_minutes": int(df["is_halt"].sum()),
        }
    )
    yield from checks


def _schema_result(df: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        schemas.SILVER_KLINES.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        return dg.AssetCheckResult(
            check_name="klines_1m_matches_schema", passed=False,
            metadata={"failures": len(err.failure_cases), "sample": schemas.failure_sample(err)},
        )
    return dg.AssetCheckResult(check_name="klines_1m_matches_schema", passed=True, metadata={"rows": len(df)})


def _resampled_asset(interval: str) -> dg.AssetsDefinition:
    table = f"silver.klines_{interval}"
    check = f"klines_{interval}_bars_complete"
    specs = [dg.AssetCheckSpec(check, asset=["silver", f"klines_{interval}"], blocking=True,
                               description=f"Every {interval} bar is built from all of its 1m bars.")]

    @dg.asset(
        name=f"klines_{interval}",
        key_prefix=["silver"],
        deps=[dg.AssetKey(["silver", "klines_1m"])],
        group_name="silver",
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb"},
        check_specs=specs,
        description=f"{interval} bars aggregated from silver.klines_1m (`minutes` = 1m bars used). Table {table}.",
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
        start, end = (pd.Timestamp(t) for t in context.partition_time_window)
        with warehouse.get_connection() as conn:  # held to read and to write, not while aggregating
            one_minute = read_window(conn, "silver.klines_1m", "open_time", start, end)
        out = bars.resample_bars(one_minute, interval)
        incomplete = out[out["minutes"] != bars.expected_minutes(interval)]
        checks = [dg.AssetCheckResult(
            check_name=check, passed=incomplete.empty,
            metadata={"incomplete_bars": len(incomplete),
                      "first_incomplete": [str(t) for t in incomplete["open_time"].head(10)]},
        )]
        written, visible = publish(specs, checks, window_writer(
            warehouse, table, RESAMPLED_TYPES, out, "open_time", start, end), len(out))
        per_partition(context, out, "open_time", visible["written"])
        yield dg.MaterializeResult(metadata={**table_metadata(out), "rows": written, **visible,
                                             "first_bar": str(out["open_time"].min()),
                                             "last_bar": str(out["open_time"].max())})
        yield from checks

    return _asset


klines_5m, klines_15m, klines_1h, klines_4h, klines_1d = (_resampled_asset(i) for i in ("5m", "15m", "1h", "4h", "1d"))
