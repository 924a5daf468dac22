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


import json
import time
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.lib.research.features.window import WARMUP, features_until
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import NotifierResource, TradingResource
from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.trading import LiveFeedResource
from btc_assets.defs.trading.market import (BARS_FROM, BARS_TO, LIVE_BARS, feature_inputs, one_minute, rules_entries,
                                            rules_inputs, tagged_bars, take_live_bars)
from btc_assets.lib.trading import trader, metrics as trading_metrics
from btc_assets.lib.research.backtest.simulation import decide
from btc_assets.lib.research.models import predict, registry
from btc_assets.lib.research.models.registry import TRADING_FAMILY
from btc_assets.lib.trading.journal import Journal, client_order_id, mirror_journal
from btc_assets.lib.trading.kill_switch import KillSwitch, stop_trading
from btc_assets.lib.trading.live_market import RecordedMarket
from btc_assets.lib.research.labels import CLASS_NAMES

__all__ = ["BARS_FROM", "BARS_TO", "DECISIONS", "ORDERS", "REQUESTED_AT", "live_trading", "session_bounds"]
REQUESTED_AT = "btc/requested_at"  # epoch seconds when the sensor asked for the run: the bars' close on its clock
MINUTE = pd.Timedelta(minutes=1)
SESSION_WARMUP = pd.Timedelta(minutes=60)  # bars before the first decision: ATR(14) and the 60-bar volatility exist
MODEL_KEY = ["models", "ensemble" if TRADING_FAMILY == "ensemble" else f"{TRADING_FAMILY}_model"]

DECISIONS = dg.AssetSpec(
    ["trading", "decisions"],
    deps=[dg.AssetDep(["silver", "klines_1m"], partition_mapping=partitions.warmup_mapping), LIVE_BARS.key,
          dg.AssetDep(MODEL_KEY, partition_mapping=dg.TimeWindowPartitionMapping())],
    group_name="trading",
    kinds={"duckdb"},
    description="One decision per closed 1m bar: point-in-time features -> promoted model of the week -> signal -> "
    "the risk rules' plan (entry with Kelly size and ATR stop, exits, breaker, skip reason). Journal table "
    "trading.decisions. A week without a promoted model fails the run (no fallback).",
)
ORDERS = dg.AssetSpec(
    ["trading", "orders"],
    deps=[DECISIONS.key],
    group_name="trading",
    kinds={"duckdb"},
    description="Orders for the run's decisions through the configured broker (paper by default: the backtest's "
    "fill model on the live bars; Binance testnet or live on explicit opt-in), from the append-only journal "
    "trading.order_events. Reconciled with the broker at the start of the run and after it.",
)


class Decided(NamedTuple):
    result: dg.MaterializeResult
    observations: list  # one AssetObservation per decided bar
    alerts: list  # (title, text) of breaker trips, sent once the orders are out


def bar_range(context: dg.AssetExecutionContext, journal: Journal) -> list[pd.Timestamp]:
    """The bars this run decides: the tagged range (or every bar of the day in silver), less those already decided."""
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    done = journal.decided_bars(start, end)  # a retried run decides nothing twice
    tagged = tagged_bars(context)
    if tagged is not None:
        lo, hi = tagged
        if not (start <= lo <= hi < end):
            raise dg.Failure(f"bars {lo}..{hi} are not inside partition {context.partition_key}")
        wanted = list(pd.date_range(lo, hi, freq="1min"))
    else:
        wanted = list(one_minute(journal.conn, start, end, ["open_time"])["open_time"])
    return [t for t in wanted if t not in done]


def session_bounds(conn, trading: TradingResource, first_new: pd.Timestamp) -> pd.Timestamp:
    """The first decided bar of the session: configured, else the first bar the journal ever decided."""
    if trading.session_start:
        return pd.Timestamp(trading.session_start, tz="UTC")
    first = conn.execute("SELECT min(bar_time) FROM trading.decisions").fetchone()[0]
    return min(pd.Timestamp(first, tz="UTC"), first_new) if first is not None else first_new


def session_signals(conn, session: pd.Timestamp, new: pd.DataFrame) -> pd.Series:
    past = conn.execute("SELECT bar_time, signal FROM trading.decisions WHERE bar_time >= ? ORDER BY bar_time",
                        [session.tz_localize(None)]).df()
    past_s = pd.Series(past["signal"].to_numpy(), index=pd.DatetimeIndex(past["bar_time"]).tz_localize("UTC"))
    new_s = pd.Series(new["signal"].to_numpy(), index=pd.DatetimeIndex(new["bar_time"]))
    return pd.concat([past_s, new_s]) if len(past_s) else new_s


def decide_bars(context: dg.AssetExecutionContext, journal: Journal, mlflow: MlflowResource,
                trading: TradingResource) -> Decided:
    """trading/decisions (computed in the trading_live step): the plan of each bar of the run, journaled."""
    t_start = time.perf_counter()
    conn = journal.conn
    bars_to_decide = bar_range(context, journal)
    if not bars_to_decide:
        return Decided(dg.MaterializeResult(asset_key=DECISIONS.key, metadata={
            "bars": 0, "note": "nothing new to decide"}), [], [])
    first, last = bars_to_decide[0], bars_to_decide[-1]
    one, higher = feature_inputs(conn, first - WARMUP, last + MINUTE)
    feats = features_until(one, higher, last + MINUTE)  # time-sorted: rows are found by position, not copied
    times = pd.DatetimeIndex(feats["open_time"])
    missing = [t for t in bars_to_decide if t not in times]
    if missing:
        raise dg.Failure(f"bars not in silver or live.klines_1m yet: {', '.join(map(str, missing[:5]))}; "
                         "materialize silver/klines_1m (or trading/live_bars) for them first")
    rows = feats.iloc[times.get_indexer(bars_to_decide)].reset_index(drop=True)
    frames, infer_ms = [], []
    for week, week_rows in rows.groupby(rows["open_time"].dt.tz_localize(None).dt.to_period("W-SUN")):
        try:
            model = registry.model_for_week(conn, week.start_time.tz_localize("UTC"))  # promoted only
        except registry.NoModel as e:
            raise dg.Failure(str(e)) from e
        context_rows = feats.iloc[:times.searchsorted(week_rows["open_time"].min())]
        t0 = time.perf_counter()
        proba = predict.predict(mlflow, model, week_rows, context_rows)
        infer_ms += [(time.perf_counter() - t0) * 1000 / len(week_rows)] * len(week_rows)
        frames.append(pd.DataFrame({
            "bar_time": week_rows["open_time"].array, "model_version": predict.version_label(model),
            "p_sell": proba[:, 0], "p_hold": proba[:, 1], "p_buy": proba[:, 2],
            "signal": proba.argmax(axis=1).astype("int8"),
        }))
    new = pd.concat(frames, ignore_index=True)
    session = session_bounds(conn, trading, first)
    signals = session_signals(conn, session, new)
    k, funding, mark = rules_inputs(conn, session - SESSION_WARMUP, last + MINUTE)
    plans = []
    was_paused = conn.execute("SELECT breaker_paused FROM trading.decisions WHERE bar_time < ? "
                              "ORDER BY bar_time DESC LIMIT 1", [first.tz_localize(None)]).fetchall()
    entries, rules = rules_entries(signals, k), trading.rules()
    for i, t in enumerate(bars_to_decide):
        t0 = time.perf_counter()
        upto = k["open_time"] <= t
        res, last_decision = decide(k[upto], entries[upto.to_numpy()], funding,
                                    mark=mark[mark["open_time"] <= t] if mark is not None else None, **rules)
        plans.append(trader.plan(res, last_decision))
        infer_ms[i] += (time.perf_counter() - t0) * 1000
    new = pd.concat([new, pd.DataFrame([p.row() for p in plans])], axis=1)
    new["target_position"] = [p.sim_position for p in plans]  # the rules' net position at this close
    new["price"] = one.set_index("open_time").loc[new["bar_time"], "close"].to_numpy()
    new["decision_id"] = [client_order_id(trading.strategy, t, "decision") for t in new["bar_time"]]
    new["decided_at"] = pd.Timestamp.now(tz="UTC")
    new["decide_ms"] = infer_ms
    requested = context.run.tags.get(REQUESTED_AT)
    new["requested_at"] = pd.Timestamp(float(requested), unit="s", tz="UTC") if requested else pd.NaT
    new["run_id"] = context.run.run_id
    journal.record_decisions(new)
    previously = bool(was_paused[0][0]) if was_paused and was_paused[0][0] is not None else False
    alerts = []
    for p in plans:
        if p.paused and not previously:
            alerts.append(("drawdown breaker tripped", f"{trading.strategy}: no new entries from {p.bar_time} "
                           f"(rules' equity {p.sim_equity:,.2f} USDT); it resets at the next UTC day or week"))
        previously = p.paused
    observations = [dg.AssetObservation(
        asset_key=DECISIONS.key, partition=context.partition_key,
        metadata={"decision_id": row.decision_id, "bar_time": str(row.bar_time), "signal": CLASS_NAMES[row.signal],
                  "p_buy": float(row.p_buy), "p_sell": float(row.p_sell), "action": row.action,
                  "entry_qty": float(row.entry_qty), "model_version": row.model_version},
    ) for row in new.itertuples()]
    return Decided(dg.MaterializeResult(asset_key=DECISIONS.key, metadata={
        "bars": len(new), "first_bar": str(first), "last_bar": str(last), "session_start": str(session),
        "models": sorted(new["model_version"].unique().tolist()),
        "signals": {CLASS_NAMES[k]: int(v) for k, v in new["signal"].value_counts().items()},
        "actions": {str(k): int(v) for k, v in new["action"].value_counts().items()},
        "breaker_paused_bars": int(sum(p.paused for p in plans)),
        "decide_ms_p50": float(pd.Series(infer_ms).median()),
        "seconds": round(time.perf_counter() - t_start, 3),
    }), observations, alerts)


def send_orders(context: dg.AssetExecutionContext, journal: Journal, warehouse: DuckDBResource,
                trading: TradingResource, notifier: NotifierResource, market: RecordedMarket | None = None) -> list:
    """trading/orders and its checks (computed in the trading_live step): settle and send the run's decided bars
    through the broker, then reconcile with it. `market`: the recorded trades and book the paper broker fills
    against (the collector's feed)."""
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    kill = KillSwitch(Path(trading.kill_file) if trading.kill_file else None).reasons(
        failed_data_checks(context.instance))
    alerts = notifier.notifier()
    conn = journal.conn
    broker = trading.broker(journal, context.run.run_id, market=market)
    opens: dict = {}

    def open_at(t: pd.Timestamp) -> float | None:
        """The open of bar t (read once, only if an unplanned paper order needs it: not on the order path)."""
        if not opens:
            bars = one_minute(conn, start - WARMUP, end + MINUTE, ["open_time", "open"])
            opens.update(zip(bars["open_time"], bars["open"].astype(float)))
        return opens.get(t)

    plans = conn.execute(
        "SELECT * FROM trading.decisions WHERE bar_time >= ? AND bar_time < ? ORDER BY bar_time",
        [start.tz_localize(None), end.tz_localize(None)]).df()
    plans["bar_time"] = pd.to_datetime(plans["bar_time"]).dt.tz_localize("UTC")
    tagged = tagged_bars(context)
    if tagged is not None:  # a live run settles and sends its own bars; the bars before were settled then
        plans = plans[(plans["bar_time"] >= tagged[0]) & (plans["bar_time"] <= tagged[1])]
    fills, sent = [], 0
    t_first = time.perf_counter()
    late = _too_late(context, trading, broker)
    for row in plans.itertuples():
        fills += broker.settle(_plan_of(row))  # what filled during this bar
        if kill:
            continue
        sent += _send(broker, journal, trading, row, resume_only=late is not None)
    if kill:
        last_bar = plans["bar_time"].max() if len(plans) else start
        stop_trading(broker, kill, strategy=trading.strategy, notifier=alerts, bar_time=last_bar,
                     step=trading.step_size)
    if hasattr(broker, "fill_unplanned"):
        fills += broker.fill_unplanned(open_at)
    send_seconds = time.perf_counter() - t_first
    expected = journal.position(broker.name)
    orphans: list[str] = []
    if hasattr(broker, "reconcile"):  # the exchange: its position and its open orders against the journal
        rec = broker.reconcile(expected)
        actual = rec.position
        legs = set(journal.open_protective_legs(broker.name)["client_order_id"])
        on_exchange = {a["clientAlgoId"] for a in rec.open_algo_orders}
        orphans = sorted((on_exchange ^ legs) | {x["clientOrderId"] for x in rec.open_orders})
    else:
        actual = broker.position()
    day = journal.orders(start, end)
    doubled = conn.execute(
        "SELECT client_order_id FROM trading.order_events WHERE event = 'FILLED' AND bar_time >= ? AND "
        "bar_time < ? GROUP BY 1 HAVING count(*) > 1", [start.tz_localize(None), end.tz_localize(None)]).df()
    early = conn.execute(
        "SELECT e.client_order_id FROM trading.order_events e JOIN trading.decisions d ON d.bar_time = e.bar_time "
        "WHERE e.event_time < d.decided_at AND e.bar_time >= ? AND e.bar_time < ?",
        [start.tz_localize(None), end.tz_localize(None)]).df()
    metrics = trading_metrics.snapshot(conn, initial_equity=trading.notional_usdt)
    mirror = warehouse.mirror() if hasattr(warehouse, "mirror") else None
    mirrored = mirror_journal(conn, mirror, start, end)  # production: the journal's day on S3 too
    limiter = getattr(getattr(broker, "rest", None), "limiter", None)  # paper: no exchange, no headroom
    headroom = limiter.headroom() if limiter is not None else None
    if trading.metrics_file:
        trading_metrics.write_textfile(Path(trading.metrics_file), trading_metrics.render(
            metrics, trading.strategy, rate_limit_headroom=headroom))
    if fills:
        alerts.send(f"{len(fills)} fill(s) ({trading.strategy}, {trading.mode})", "\n".join(
            f"{f.side} {f.qty:.3f} @ {f.price:,.1f} ({f.client_order_id}, fee {f.fee:.2f})" for f in fills))
    mismatch = abs(actual - expected) > trading.reconcile_tolerance or bool(orphans)
    if mismatch:
        alerts.send("position mismatch", f"{trading.strategy} ({trading.mode}): broker holds {actual:+.3f} BTC, the "
                    f"journal expects {expected:+.3f}; orders open on one side only: {orphans[:5]}; trading stops "
                    "on the next run until it is resolved (RUNBOOK: recover after a crash)", level="critical")
    return [dg.MaterializeResult(asset_key=ORDERS.key, metadata={
        "broker": broker.name, "mode": trading.mode, "orders_sent_this_run": sent, "fills_this_run": len(fills),
        "paper_fill_prices": ("" if broker.name != "paper" else "recorded book and trades (collector)" if market
                              else "fill model on bars"),
        "kill_switch": kill, "orders_today": len(day), "new_orders_withheld": late or "",
        "open_orders": int((day["event"] == "NEW").sum()) if len(day) else 0,
        "position_btc": actual, "journal_position_btc": expected,
        "paper_equity_usdt": metrics.equity_usdt, "pnl_usdt": metrics.pnl_usdt,
        "fees_today_usdt": float(day.loc[day["event"] == "FILLED", "fee"].sum()) if len(day) else 0.0,
        "send_seconds": round(send_seconds, 3),
        "rate_limit_headroom": headroom or "paper: no exchange limits",
        "journal_rows_mirrored": mirrored or "local profile: no mirror",
        "orders": dg.MetadataValue.md(day.tail(20).drop(columns=["run_id", "seq"], errors="ignore")
                                      .to_markdown(index=False)) if len(day) else "",
    }), dg.AssetCheckResult(asset_key=ORDERS.key, check_name="orders_after_their_decision",
                            passed=doubled.empty and early.empty,
                            metadata={"filled_twice": doubled["client_order_id"].tolist(),
                                      "before_decision": early["client_order_id"].tolist()}),
        dg.AssetCheckResult(asset_key=ORDERS.key, check_name="orders_reconciled_with_broker", passed=not mismatch,
                            severity=dg.AssetCheckSeverity.ERROR,
                            metadata={"broker_position": actual, "journal_position": expected,
                                      "tolerance": trading.reconcile_tolerance,
                                      "orders_open_on_one_side_only": orphans})]


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


def _plan_of(row) -> trader.BarPlan:
    opened = trader.Opened(**json.loads(row.opened)) if isinstance(row.opened, str) else None
    closed = tuple(trader.Closed(**c) for c in json.loads(row.closed)) if isinstance(row.closed, str) else ()
    exits = json.loads(row.exits) if isinstance(row.exits, str) else []
    return trader.BarPlan(row.bar_time, row.action, 0, 0.0, 0.0, None, tuple(e["entry_time"] for e in exits),
                          tuple(e["reason"] for e in exits), bool(row.breaker_paused), float(row.sim_equity or 0.0),
                          float(row.sim_position or 0.0), opened, closed)


def _too_late(context: dg.AssetExecutionContext, trading: TradingResource, broker) -> str | None:
    """Why an exchange must get no *new* order from this run (None: it may). Paper orders are never late: the fill
    model prices them at the bar after their decision whenever the run happens."""
    if broker.name == "paper":
        return None
    requested = context.run.tags.get(REQUESTED_AT)
    if requested is None:
        return "not a live run (no sensor request): plans of a backfill or a manual run are journaled, not traded"
    age = time.time() - float(requested)
    if age > trading.max_order_delay_s:
        return (f"the sensor asked {age:.0f} s ago (> max_order_delay_s {trading.max_order_delay_s:.0f}): a late "
                "order is another trade; orders already started are resumed, none is started")
    return None


def _send(broker, journal: Journal, trading: TradingResource, row, resume_only: bool = False) -> int:
    """The orders of one decided bar: market exits of the positions the rules close, then the entry. With
    ``resume_only`` only orders the journal already has open (a crash interrupted them) are worked again."""
    started = journal.orders_by_id([trader.exit_id(trading.strategy, row.bar_time),
                                    trader.entry_id(trading.strategy, row.bar_time)])

    def allowed(cid: str) -> bool:
        return not resume_only or (cid in started and started[cid]["event"] == "NEW")

    sent = 0
    exits = json.loads(row.exits) if isinstance(row.exits, str) else []
    exit_cid = trader.exit_id(trading.strategy, row.bar_time)
    if exits and allowed(exit_cid):
        entries = [trader.entry_of(trading.strategy, e["entry_time"]) for e in exits]
        held = journal.orders_by_id(entries)
        for cid in entries:
            broker.cancel_protection(cid, row.bar_time)
        position = journal.position(broker.name)
        qty = min(sum(r["qty"] for r in held.values() if r["event"] == "FILLED"), abs(position))
        if exit_cid in started:
            qty = started[exit_cid]["qty"]  # resuming: the quantity journaled when it was first sent
        if qty >= trading.step_size / 2:
            side = "SELL" if position > 0 else "BUY"
            if exit_cid in started:
                side = started[exit_cid]["side"]
            sent += bool(broker.submit(exit_cid, row.bar_time, side, qty, reduce_only=True))
    entry_cid = trader.entry_id(trading.strategy, row.bar_time)
    if isinstance(row.action, str) and "enter_" in row.action and row.entry_qty > 0 and allowed(entry_cid):
        side = "BUY" if row.action.endswith("long") else "SELL"
        sent += bool(broker.submit(entry_cid, row.bar_time, side, float(row.entry_qty),
                                   stop_distance=float(row.stop_distance),
                                   take_profit_r=trading.risk_config().take_profit_r))
    return sent


# A failed data-quality check upstream, or a position the broker does not confirm, stops trading (the model
# promotion checks do not: an unpromoted model already trades nothing).
KILL_ON_CHECKS = [dg.AssetCheckKey(dg.AssetKey(["silver", "klines_1m"]), name) for name in
                  ("klines_1m_has_every_minute", "klines_1m_ohlc_consistent", "klines_1m_matches_schema")] + [
    dg.AssetCheckKey(dg.AssetKey(["gold", "features"]), name) for name in
    ("features_point_in_time", "features_finite_after_warmup", "features_match_schema")] + [
    dg.AssetCheckKey(dg.AssetKey(["trading", "orders"]), "orders_reconciled_with_broker")]


def failed_data_checks(instance: dg.DagsterInstance) -> list[str]:
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(KILL_ON_CHECKS)
    return [f"{key.asset_key.to_user_string()}: {key.name}" for key, rec in latest.items()
            if rec is not None and rec.status.value == "FAILED"]

