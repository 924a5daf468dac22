"""Trading: one decision per closed bar (features -> signal -> the risk rules' plan) and the orders sent for it.

Partitioning: daily, with one event per bar. A live run is keyed by its bar (tags btc/bars_from .. btc/bars_to);
each bar's decision is its own journal row and its own AssetObservation, so it stays identifiable, while the
Dagster run history stays at a size a daily partition can carry (1,440 bars a day would be 1,440 dynamic
partitions a day otherwise, and a backfill over dynamic partitions cannot be expressed as a date range).

The plan of a bar comes from the backtest engine itself (lib/backtest/simulation.decide) run over the trading
session's bars with the journaled signals: the same sizing (fractional Kelly), ATR stops and targets, time exits,
breakers, filters and liquidation guard as backtest/report, and the same state, so the live path and the
backtest cannot drift apart; the parity check verifies it.

One step, three assets: trading/live_bars, trading/decisions and trading/orders are the specs of one multi-asset
(`live_trading`), so a live bar goes from the feed to the exchange on one warehouse connection with no Dagster step
boundary in between, and the assets' events are written once the orders are out. Each can still be materialized
alone (can_subset): a backfill of trading/decisions needs neither the live feed nor a broker.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import LiveFeedResource, NotifierResource, TradingResource
from btc_assets.defs.trading.decisions import Decided, decide_bars
from btc_assets.defs.trading.market import take_live_bars
from btc_assets.defs.trading.orders import send_orders
from btc_assets.defs.trading.specs import DECISIONS, LIVE_BARS, ORDERS
from btc_assets.lib.trading.journal import Journal
from btc_assets.lib.trading.live_market import RecordedMarket

__all__ = ["live_trading"]


@dg.multi_asset(
    name="trading_live",
    specs=[LIVE_BARS, DECISIONS, ORDERS],
    check_specs=[
        dg.AssetCheckSpec("orders_after_their_decision", asset=ORDERS.key,
                          description="No order event of a bar is journaled before that bar's decision, and no "
                          "order id is filled twice."),
        dg.AssetCheckSpec("orders_reconciled_with_broker", asset=ORDERS.key,
                          description="After the run, the broker's position equals the journal's filled position "
                          "(within the tolerance). A failure engages the kill switch on the next run."),
    ],
    can_subset=True,
    partitions_def=partitions.daily,
    pool="duckdb",
)
def live_trading(context: dg.AssetExecutionContext, warehouse: DuckDBResource, live_feed: LiveFeedResource,
                 streams: StreamRecordingsResource, mlflow: MlflowResource, trading: TradingResource,
                 notifier: NotifierResource):
    """live bars -> decisions -> orders as one step: a live bar's order leaves as soon as it is decided, on one
    warehouse connection, and the three assets' events are written after it (each Dagster step and event costs
    tens of milliseconds on the order path, see bench_live). Each asset can still be materialized alone (a backfill
    of trading/decisions decides silver's bars without the live feed or a broker)."""
    selected = context.selected_asset_keys
    done: list = []
    decided = None
    try:
        with warehouse.get_connection() as conn:
            if LIVE_BARS.key in selected:
                done.append(take_live_bars(context, conn, live_feed, streams))
            journal = Journal(conn) if selected & {DECISIONS.key, ORDERS.key} else None
            if DECISIONS.key in selected:
                decided = decide_bars(context, journal, mlflow, trading)
                done.append(decided.result)
            if ORDERS.key in selected:
                market = RecordedMarket(streams.files) if live_feed.source == "collector" else None
                done += send_orders(context, journal, warehouse, trading, notifier, market)
            if decided is not None:  # the feature rows the decisions were made on: off the order path
                journal.record_features(*decided.features)
    except Exception:
        yield from _finish(context, done, decided, notifier)  # what was done before the failure stays recorded
        raise
    yield from _finish(context, done, decided, notifier)


def _finish(context: dg.AssetExecutionContext, results: list, decided: Decided | None, notifier: NotifierResource):
    """The step's results (checks only when selected), then the decisions' per-bar observations and alerts."""
    checks = context.selected_asset_check_keys
    yield from (r for r in results if not isinstance(r, dg.AssetCheckResult)
                or dg.AssetCheckKey(r.asset_key, r.check_name) in checks)
    if decided is not None:
        for obs in decided.observations:
            context.log_event(obs)
        for title, text in decided.alerts:
            notifier.notifier().send(title, text, level="critical")
