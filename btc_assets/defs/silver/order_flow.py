"""Silver aggTrades (typed, de-duplicated, id contiguity checked) and the 1m order flow built from them.

Tables silver.agg_trades and silver.order_flow_1m. The order flow is aggregated inside DuckDB (no 2M-row round
trip through pandas) and checked against silver.klines_1m: klines rebuilt from aggTrades must agree with the
archive's klines on OHLC, volume, taker-buy volume and trade count wherever both exist.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.publish import publish
from btc_assets.lib.data.archive.files import SYNTHETIC_SOURCE
from btc_assets.lib.data.market.datasets import archive_file
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.defs.table_metadata import per_partition, table_metadata
from btc_assets.lib.data.archive.layouts import AGG_TRADES
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.market import agg_trades as lib_agg
from btc_assets.lib.data.market import day_window
from btc_assets.lib.data.market import order_flow as lib_flow
from btc_assets.lib.storage.warehouse import replace_window, table_exists


def synthetic_files(warehouse: DuckDBResource, relpaths: list[str]) -> int:
    """How many of these bronze files the manifest marks as generated (synthetic) sample data."""
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "bronze.files"):
            return 0
        q = f"SELECT count(*) FROM bronze.files WHERE source = ? AND relpath IN ({', '.join('?' * len(relpaths))})"
        return conn.execute(q, [SYNTHETIC_SOURCE, *relpaths]).fetchone()[0]


def _previous_ids(warehouse: DuckDBResource, start: pd.Timestamp) -> tuple[int, int] | None:
    """Last (agg_trade_id, last_trade_id) of the day before `start`, if that day is in silver."""
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "silver.agg_trades"):
            return None
        s = start.tz_convert("UTC").tz_localize(None)
        row = conn.execute("SELECT agg_trade_id, last_trade_id FROM silver.agg_trades WHERE transact_time >= ? "
                           "AND transact_time < ? ORDER BY agg_trade_id DESC LIMIT 1",
                           [s - pd.Timedelta(days=1), s]).fetchone()
    return (int(row[0]), int(row[1])) if row else None


AGG_CHECKS = [dg.AssetCheckSpec(
    "agg_trades_ids_contiguous", asset=["silver", "agg_trades"], blocking=True,
    description="agg_trade_id rises by 1 and first_trade_id = previous last_trade_id + 1, across days too; "
                "every gap is listed.")]
FLOW_CHECKS = [dg.AssetCheckSpec(
    "order_flow_1m_matches_klines", asset=["silver", "order_flow_1m"], blocking=True,
    description="1m klines rebuilt from aggTrades equal silver.klines_1m (OHLC, volume, taker-buy volume, "
                "trade count) on every minute both exist.")]


@dg.asset(
    key=["silver", "agg_trades"],
    deps=[dg.AssetKey(["bronze", "agg_trades"])],
    group_name="silver",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    check_specs=AGG_CHECKS,
    description="aggTrades typed (UTC), sorted by id, exact duplicates dropped and counted. Table silver.agg_trades.",
)
def agg_trades(context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource,
               warehouse: DuckDBResource):
    days = partitions.days_of(context)
    start, end = day_window(days[0])[0], day_window(days[-1])[1]
    previous = _previous_ids(warehouse, start)
    parsed: list[lib_agg.AggTradesDay] = []
    files = []
    for day in days:
        f = archive_file("agg_trades", archive.symbol, day)
        files.append(f.relpath)
        raw = read_archive_csv(lake.read_bytes(f"bronze/{f.relpath}"), f.filename, AGG_TRADES)
        got = lib_agg.silver_agg_trades(raw, day, f"{f.filename} (partition {day})", previous)
        previous = got.last_ids
        parsed.append(got)
    df = parsed[0].trades if len(parsed) == 1 else pd.concat([p.trades for p in parsed], ignore_index=True)
    gaps = [(d, g) for d, p in zip(days, parsed) for g in p.gaps]
    checks = [dg.AssetCheckResult(
        check_name="agg_trades_ids_contiguous", passed=not gaps,
        metadata={"gaps": len(gaps),
                  "missing_trade_ids": sum(max(g.size, 0) for _, g in gaps if g.kind == "trade_id"),
                  "first_gaps": [f"{d}: {g}" for d, g in gaps[:20]]},
        description=None if not gaps else "trades are missing from the archive files: re-fetch the days listed; "
        "if the gap persists, take those trades from the REST API (fromId) or report it upstream",
    )]
    with warehouse.get_connection() as conn:
        written, visible = publish(AGG_CHECKS, checks, lambda: replace_window(
            conn, "silver.agg_trades", lib_agg.TYPES, df, "transact_time", start, end), len(df))
    per_partition(context, df, "transact_time", visible["written"])
    yield dg.MaterializeResult(metadata={**table_metadata(df),
        "rows": written, **visible, "days": len(days), "synthetic": synthetic_files(warehouse, files) > 0,
        "first_trade": str(df["transact_time"].iat[0]), "last_trade": str(df["transact_time"].iat[-1]),
        "duplicates_dropped": sum(p.duplicates_dropped for p in parsed),
        "rows_out_of_order_in_file": sum(p.unsorted_rows for p in parsed),
        "time_reversals_by_id": sum(p.time_reversals for p in parsed),
        "id_gaps": len(gaps),
    })
    yield from checks


@dg.asset(
    key=["silver", "order_flow_1m"],
    deps=[dg.AssetKey(["silver", "agg_trades"]), dg.AssetKey(["silver", "klines_1m"])],
    group_name="silver",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    check_specs=FLOW_CHECKS,
    description="1m order flow from aggTrades: OHLC, buy/sell volume and quote, VWAP, aggTrade and trade counts, "
                "mean/max trade size, delta and cvd (cumulative since 00:00 UTC). Table silver.order_flow_1m.",
)
def order_flow_1m(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    with warehouse.get_connection() as conn:
        staged = lib_flow.stage_order_flow(conn, start, end)
        compared, bad = lib_flow.compare_with_klines(conn, start, end, flow=lib_flow.STAGE)
        preview = conn.execute(f"SELECT * FROM {lib_flow.STAGE} ORDER BY open_time DESC LIMIT 5").df()
        checks = [dg.AssetCheckResult(
            check_name="order_flow_1m_matches_klines", passed=bad.empty,
            severity=dg.AssetCheckSeverity.ERROR if compared else dg.AssetCheckSeverity.WARN,
            metadata={"minutes_compared": compared, "mismatches": len(bad),
                      "sample": dg.MetadataValue.md(bad.head(10).to_markdown(index=False)) if len(bad) else ""},
            description=None if bad.empty else "aggTrades and klines disagree: one of the two files is incomplete "
            "or was replaced upstream; re-fetch both days",
        )]
        written, visible = publish(FLOW_CHECKS, checks, lambda: lib_flow.publish_staged(conn, start, end), staged)
    yield dg.MaterializeResult(metadata={
        "rows": written, **visible, "minutes_compared_with_klines": compared,
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    })
    yield from checks
