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

from dataclasses import dataclass, field

import dagster as dg
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import LiveFeedResource, NotifierResource, TradingResource
from btc_assets.defs.trading import ahead
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
)
def live_trading(context: dg.AssetExecutionContext, warehouse: DuckDBResource, live_feed: LiveFeedResource,
                 streams: StreamRecordingsResource, mlflow: MlflowResource, trading: TradingResource,
                 notifier: NotifierResource):
    """live bars -> decisions -> orders as one step: a live bar's order leaves as soon as it is decided, on one
    warehouse connection, and the three assets' events are written after it (each Dagster step and event costs
    tens of milliseconds on the order path, see bench_live). Each asset can still be materialized alone (a backfill
    of trading/decisions decides silver's bars without the live feed or a broker).

    The trading worker (`make trade`) does this step's work for a run before Dagster creates the run (ahead.py:
    the same functions, under the run's id): the step then records what was done for it, with its log lines."""
    prepared = ahead.take(context.run.run_id)
    if prepared is not None:
        for level, line in prepared.log_lines:
            getattr(context.log, level)(f"{line} (before the run, in the trading worker)")
        yield from _finish(context, prepared.results, prepared.decided, notifier)
        if prepared.error is not None:
            raise dg.Failure(f"the trading worker's order path failed before this run: "
                             f"{type(prepared.error).__name__}: {prepared.error}") from prepared.error
        return
    work = Work()
    try:
        with warehouse.get_connection() as conn:
            trade_bars(context, conn, warehouse, live_feed, streams, mlflow, trading, notifier, work)
    except Exception:
        yield from _finish(context, work.results, work.decided, notifier)  # what was done before stays recorded
        raise
    yield from _finish(context, work.results, work.decided, notifier)


@dataclass
class Work:
    """The step's results as they are made (a failure keeps what came before) and its decisions."""

    results: list = field(default_factory=list)
    decided: Decided | None = None


def trade_bars(context, conn, warehouse: DuckDBResource, live_feed: LiveFeedResource, streams: StreamRecordingsResource, mlflow: MlflowResource,
               trading: TradingResource, notifier: NotifierResource, work: "Work") -> None:
    """The step's work on one connection, into `work` as it is made: the selected assets' results, the
    decisions."""
    selected = context.selected_asset_keys
    if LIVE_BARS.key in selected:
        work.results.append(take_live_bars(context, conn, live_feed, streams))
    journal = Journal(conn) if selected & {DECISIONS.key, ORDERS.key} else None
    if DECISIONS.key in selected:
        work.decided = decide_bars(context, journal, mlflow, trading)  # its results: after the orders (_finish)
    if ORDERS.key in selected:
        market = RecordedMarket(streams.files) if live_feed.source == "collector" else None
        work.results += send_orders(context, journal, warehouse, trading, notifier, market)
    if work.decided is not None:  # the feature rows the decisions were made on: off the order path
        journal.record_features(*work.decided.features)


def _finish(context: dg.AssetExecutionContext, results: list, decided: Decided | None, notifier: NotifierResource):
    """The step's results (checks only when selected), then the decisions' per-bar observations and alerts."""
    checks = context.selected_asset_check_keys
    kept = [r for r in results if not isinstance(r, dg.AssetCheckResult)
            or dg.AssetCheckKey(r.asset_key, r.check_name) in checks]
    yield from (r for r in kept if r.asset_key == LIVE_BARS.key)  # in the assets' order: bars, decisions, orders
    if decided is not None:
        yield decided.describe()
    yield from (r for r in kept if r.asset_key != LIVE_BARS.key)
    if decided is not None:
        for obs in decided.observe():
            context.log_event(obs)
        for title, text in decided.alerts:
            notifier.notifier().send(title, text, level="critical")
