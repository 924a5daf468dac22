"""The day's paper P&L from the journal, stored per day and sent as the daily summary alert; the live dashboard."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.storage import LakeResource, MlflowResource
from btc_assets.defs.resources.trading import NotifierResource, TradingResource
from btc_assets.defs.table_metadata import frame_table
from btc_assets.lib.research.models import tracking
from btc_assets.lib.trading import metrics as trading_metrics
from btc_assets.lib.storage.warehouse import replace_window, table_exists

PNL_TYPES = {"day": "TIMESTAMP", "equity_start": "DOUBLE", "equity_end": "DOUBLE", "pnl": "DOUBLE",
             "fees": "DOUBLE", "fills": "BIGINT", "position_end": "DOUBLE", "decisions": "BIGINT"}


@dg.asset(
    key=["trading", "pnl"],
    deps=[dg.AssetKey(["trading", "orders"])],
    group_name="trading",
    partitions_def=partitions.daily,
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


DASHBOARD_PATH = "reports/live_dashboard.html"
DASHBOARD_EXPERIMENT = "btc_assets.live_dashboard"


@dg.asset(
    key=["trading", "dashboard"],
    deps=[dg.AssetKey(["trading", "orders"]), dg.AssetKey(["trading", "pnl"])],
    group_name="trading",
    kinds={"plotly", "mlflow"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The live account's dashboard (plotly, the backtest report's look): equity curve, daily P&L, "
    "drawdown, rolling Sharpe from daily returns, win rate by hour and weekday, open position and orders, breaker "
    "and kill-switch state, recent orders with realised P&L. Refreshed after the trading runs; the `dashboard` "
    "link opens it in the MLflow UI (one run per strategy, its page replaced on each refresh).",
)
def dashboard(context: dg.AssetExecutionContext, warehouse: DuckDBResource, trading: TradingResource,
              lake: LakeResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    from btc_assets.lib.trading import dashboard as live_dashboard

    with warehouse.get_connection() as conn:
        if not table_exists(conn, "trading.decisions"):
            raise dg.Failure("trading.decisions does not exist: run the live trading sensor (or `make demo`) first")
        st = live_dashboard.state(conn, trading.notional_usdt)
    try:
        page = live_dashboard.render(st, trading.notional_usdt, f"Live account: {trading.strategy} ({trading.mode})")
    except ValueError as e:
        raise dg.Failure(str(e)) from None
    uri = lake.write_bytes(DASHBOARD_PATH, page.html.encode("utf-8"))
    url = publish_page(mlflow, trading.strategy, trading.mode, page.html)
    return dg.MaterializeResult(metadata={
        "dashboard": dg.MetadataValue.url(url), "dashboard_path": dg.MetadataValue.path(uri),
        **{k: (round(float(v), 6) if v == v else float("nan")) for k, v in page.figures.items()},
        "recent_orders": frame_table(st["orders"]) if len(st["orders"]) else "no order yet",
    })


def publish_page(store: MlflowResource, strategy: str, mode: str, html: str) -> str:
    """Put the page on the strategy's one dashboard run in MLflow (created once) and return its UI link."""
    import mlflow

    experiment_id = store.activate(DASHBOARD_EXPERIMENT)
    client = mlflow.MlflowClient()
    found = client.search_runs([experiment_id], f"tags.strategy = '{strategy}' and tags.mode = '{mode}'",
                               max_results=1)
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, run_name=f"live dashboard {strategy} ({mode})", tags={"strategy": strategy, "mode": mode}
    ).info.run_id
    client.log_text(run_id, html, "live_dashboard.html")
    return tracking.ui_url(experiment_id, run_id, "live_dashboard.html")


BOOK_TYPES = {"strategy": "VARCHAR", "venue": "VARCHAR", "fills": "BIGINT", "notional": "DOUBLE", "fees": "DOUBLE",
              "gross_pnl": "DOUBLE", "net_pnl": "DOUBLE", "position": "DOUBLE", "avg_cost": "DOUBLE",
              "mark_price": "DOUBLE", "unrealised_pnl": "DOUBLE", "total_pnl": "DOUBLE", "first_fill": "TIMESTAMP",
              "last_fill": "TIMESTAMP"}


# In the lakehouse the books are a history, not one replaced table: every refresh appends its snapshot stamped
# `as_of` (the DuckDB table trading.books holds the latest), so the P&L of every book can be read as it stood.
BOOKS_HISTORY = "trading.books"


def books_to_lakehouse(lake, table: pd.DataFrame, as_of: pd.Timestamp) -> int:
    """Append one books snapshot to its Delta table (key: as_of, strategy, venue); rows appended, 0 without a
    lakehouse or rows."""
    if lake is None or not len(table):
        return 0
    types = {**BOOK_TYPES, "as_of": "TIMESTAMP"}
    return lake.append_new(BOOKS_HISTORY, types, table.assign(as_of=as_of), "as_of", ("as_of", "strategy", "venue"))


@dg.asset(
    key=["trading", "books"],
    deps=[dg.AssetKey(["trading", "orders"]), dg.AssetKey(["strategy_daily", "signal_log"])],
    group_name="trading",
    kinds={"duckdb"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Every strategy's and venue's book in the one journal, apart and together: fills, traded notional, "
    "fees, realised P&L at average cost before and after fees, open position, its average cost and unrealised P&L "
    "at the latest BTCUSDT close, total P&L; one `all` row per venue and the total. Table trading.books (replaced); "
    "refreshed after trading runs.",
)
def books(warehouse: DuckDBResource) -> dg.MaterializeResult:
    from btc_assets.lib.storage import lakehouse
    from btc_assets.lib.storage.warehouse import ensure_table

    with warehouse.get_connection() as conn:
        lake = lakehouse.ACTIVE.get()  # BTC_LAKEHOUSE_URI set: each snapshot is also appended there (below)
        mark = trading_metrics.last_mark(conn)
        table = trading_metrics.books(conn, mark) if table_exists(conn, "trading.order_events") else pd.DataFrame(
            columns=list(BOOK_TYPES))
        ensure_table(conn, "trading.books", BOOK_TYPES)
        conn.execute("DELETE FROM trading.books")
        if len(table):
            conn.register("_books", table)
            conn.execute(f"INSERT INTO trading.books SELECT {', '.join(BOOK_TYPES)} FROM _books")
            conn.unregister("_books")
    snapshots = books_to_lakehouse(lake, table, pd.Timestamp.now(tz="UTC"))
    total = table[(table["strategy"] == "all") & (table["venue"] == "all")] if len(table) else table
    return dg.MaterializeResult(metadata={
        "lakehouse": (f"snapshot appended to {BOOKS_HISTORY} ({snapshots} rows, as_of now)" if lake is not None
                      else "no lakehouse (BTC_LAKEHOUSE_URI unset)"),
        "books": frame_table(table) if len(table) else "no fills yet",
        "strategies": sorted(set(table["strategy"]) - {"all"}) if len(table) else [],
        "venues": sorted(set(table["venue"]) - {"all"}) if len(table) else [],
        "total_net_pnl": float(total["net_pnl"].iloc[0]) if len(total) else 0.0,
        "total_unrealised_pnl": float(total["unrealised_pnl"].iloc[0]) if len(total) else 0.0,
        "total_pnl": float(total["total_pnl"].iloc[0]) if len(total) else 0.0,
        "marked_at": mark[2] if mark is not None else "no bar in the warehouse: open positions are not marked"})
