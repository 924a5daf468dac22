"""The day's paper P&L from the journal, stored per day and sent as the daily summary alert."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.trading import NotifierResource, TradingResource
from btc_assets.lib.trading import metrics as trading_metrics
from btc_assets.lib.storage.warehouse import replace_window

PNL_TYPES = {"day": "TIMESTAMP", "equity_start": "DOUBLE", "equity_end": "DOUBLE", "pnl": "DOUBLE",
             "fees": "DOUBLE", "fills": "BIGINT", "position_end": "DOUBLE", "decisions": "BIGINT"}


@dg.asset(
    key=["trading", "pnl"],
    deps=[dg.AssetKey(["trading", "orders"])],
    group_name="trading",
    partitions_def=partitions.daily,
    pool="duckdb",
    kinds={"duckdb"},
    description="The day's paper account from the journal: equity at the start and end of the day (marked at the "
    "last decided price), P&L after fees, fills, end position. Table trading.pnl; sent as the daily summary alert.",
)
def pnl(context: dg.AssetExecutionContext, warehouse: DuckDBResource, trading: TradingResource,
        notifier: NotifierResource) -> dg.MaterializeResult:
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    with warehouse.get_connection() as conn:
        before = trading_metrics.snapshot(conn, trading.notional_usdt, until=start)
        after = trading_metrics.snapshot(conn, trading.notional_usdt, until=end)
        row = pd.DataFrame([{
            "day": start, "equity_start": before.equity_usdt, "equity_end": after.equity_usdt,
            "pnl": after.equity_usdt - before.equity_usdt, "fees": after.fees_usdt - before.fees_usdt,
            "fills": after.fills - before.fills, "position_end": after.position_btc,
            "decisions": after.decisions - before.decisions,
        }])
        replace_window(conn, "trading.pnl", PNL_TYPES, row, "day", start, end)
    r = row.iloc[0]
    sent = notifier.notifier().send(
        f"daily P&L {context.partition_key} ({trading.strategy}, paper)",
        f"P&L {r['pnl']:+,.2f} USDT after {r['fees']:,.2f} fees; {int(r['fills'])} fills over {int(r['decisions'])} "
        f"decisions; equity {r['equity_end']:,.2f}; position {r['position_end']:+.3f} BTC")
    return dg.MaterializeResult(metadata={**{k: float(v) for k, v in r.items() if k != "day"}, "alert_sent": sent})
