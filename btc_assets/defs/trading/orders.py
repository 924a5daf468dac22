"""trading/orders and its checks, computed inside the trading_live step: settle what filled during each decided
bar, send the plan's exits and entry through the broker (none while the kill switch is engaged, no new one when
the run is late), then reconcile with the broker and report."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.resources.trading import NotifierResource, TradingResource
from btc_assets.defs.trading.market import one_minute, tagged_bars
from btc_assets.defs.table_metadata import fmt
from btc_assets.defs.trading.specs import CLOCK_SPEED, ORDERS, REQUESTED_AT
from btc_assets.lib.storage import lakehouse
from btc_assets.lib.storage.warehouse import frame_of
from btc_assets.lib.research.features.window import WARMUP
from btc_assets.lib.trading import metrics as trading_metrics
from btc_assets.lib.trading.journal import (Journal, events_to_lakehouse, journal_to_lakehouse, mirror_journal,
                                           own_book)
from btc_assets.lib.trading import kill_switch, trader
from btc_assets.lib.trading.kill_switch import KillSwitch, stop_trading
from btc_assets.lib.trading.live_market import RecordedMarket
from btc_assets.lib.trading.session import (account_breaker, account_sized, entry_late_reason, not_live_reason,
                                            plan_of, planned_side_after, repair_against_plan, send_bar_orders)

MINUTE = pd.Timedelta(minutes=1)


def send_orders(context: dg.AssetExecutionContext, journal: Journal, warehouse: DuckDBResource,
                trading: TradingResource, notifier: NotifierResource, market: RecordedMarket | None = None) -> list:
    """trading/orders and its checks (computed in the trading_live step): settle and send the run's decided bars
    through the broker, then reconcile with it. `market`: the recorded trades and book the paper broker fills
    against (the collector's feed)."""
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    conn = journal.conn
    kill = KillSwitch(Path(trading.kill_file) if trading.kill_file else None).reasons(
        failed_data_checks(context.instance))
    held = kill_switch.latched(conn)  # engaged earlier and not cleared by a person: still engaged
    if held:
        kill.append(held)
    alerts = notifier.notifier()
    broker = trading.broker(journal, context.run.run_id, market=market)
    opens: dict = {}

    def open_at(t: pd.Timestamp) -> float | None:
        """The open of bar t (read once, only if an unplanned paper order needs it: not on the order path)."""
        if not opens:
            bars = one_minute(conn, start - WARMUP, end + MINUTE, ["open_time", "open"])
            opens.update(zip(bars["open_time"], bars["open"].astype(float)))
        return opens.get(t)

    plans = frame_of(conn.execute(
        "SELECT * FROM trading.decisions WHERE bar_time >= ? AND bar_time < ? ORDER BY bar_time",
        [start.tz_localize(None), end.tz_localize(None)]))
    plans["bar_time"] = pd.to_datetime(plans["bar_time"]).dt.tz_localize("UTC")
    tagged = tagged_bars(context)
    if tagged is not None:  # a live run settles and sends its own bars; the bars before were settled then
        plans = plans[(plans["bar_time"] >= tagged[0]) & (plans["bar_time"] <= tagged[1])]
    fills, sent = [], 0
    t_first = time.perf_counter()
    take_profit_r = trading.risk_config().take_profit_r
    # Not a live run (no sensor request): nothing new is sent. A live run sends every exit, and each entry only
    # within max_order_delay_s of its own bar's close (a backlog after an outage catches up without old entries).
    requested = context.run.tags.get(REQUESTED_AT)
    late = not_live_reason(broker.name, requested)
    speed = float(context.run.tags.get(CLOCK_SPEED, "1") or 1)
    last_bar = plans["bar_time"].max() if len(plans) else None
    skipped: list[str] = []
    # account-true sizing: the exchange's equity and free margin (paper: the paper account's own ledger)
    if broker.name != "paper" and not kill:
        equity, available = broker.account()
    elif broker.name == "paper":
        last_price = float(plans["price"].iloc[-1]) if len(plans) else None
        equity, available = broker.account(last_price)
    else:
        equity = available = trading.notional_usdt
    sizing: list[str] = []
    # breakers on the account's equity (the plan's simulated equity has its own in the rules)
    breaker = (account_breaker(conn, broker.name, equity, pd.Timestamp.now(tz="UTC"), trading.daily_drawdown,
                               trading.weekly_drawdown, context.run.run_id) if not kill else None)
    if breaker:
        context.log.warning(f"{trading.strategy} ({trading.mode}): {breaker}")
    for row in plans.itertuples():
        fills += broker.settle(plan_of(row))  # what filled during this bar
        if kill:
            continue
        stale = (entry_late_reason(broker.name, float(requested), speed, row.bar_time, last_bar,
                                   trading.max_order_delay_s) if requested is not None else None) or breaker
        if stale and isinstance(row.action, str) and "enter_" in row.action:
            skipped.append(stale)
        qty = None
        if isinstance(row.action, str) and "enter_" in row.action and row.entry_qty > 0:
            qty, note = account_sized(float(row.entry_qty), float(row.sim_equity or 0.0), equity, available,
                                      float(trading.leverage), float(row.price or 0.0), trading.step_size)
            sizing.append(note)
        sent += send_bar_orders(broker, journal, trading.strategy, trading.step_size, take_profit_r, row,
                                resume_only=late is not None, skip_entry=stale, entry_qty=qty)
    if kill:
        kill_switch.latch(conn, kill, context.run.run_id)
        last_bar = plans["bar_time"].max() if len(plans) else start
        stop_trading(broker, kill, strategy=trading.strategy, notifier=alerts, bar_time=last_bar,
                     step=trading.step_size)
    # reconcile against the plan: after the last bar's orders the exchange holds what the plan holds (a live run on
    # an exchange; the paper broker is the plan's fill model itself)
    plan_repair = ""
    if broker.name != "paper" and not kill and late is None and len(plans):
        last_row = next(plans.tail(1).itertuples())
        plan_repair = repair_against_plan(broker, trading.strategy, last_row.bar_time,
                                          planned_side_after(last_row, fills_at_once=True), trading.step_size)
        if plan_repair:
            alerts.send("position repaired against the plan" if plan_repair.startswith("repaired")
                        else "plan and exchange differ", f"{trading.strategy} ({trading.mode}): {plan_repair}")
    # the exchange's stop and target at the plan's prices (placed around the real fill, the plan's are around its
    # fill model's): checked every live run for the position the plan holds, moved when a tick or more apart
    aligned = ""
    if broker.name != "paper" and not kill and late is None and len(plans) and hasattr(broker, "align_protection"):
        last_row = next(plans.tail(1).itertuples())
        held = planned_side_after(last_row, fills_at_once=True)
        opened = conn.execute("SELECT opened FROM trading.decisions WHERE opened IS NOT NULL AND bar_time <= ? "
                              "ORDER BY bar_time DESC LIMIT 1", [last_row.bar_time.tz_localize(None)]).fetchall()
        o = json.loads(opened[0][0]) if opened else None
        if o and held == o["side"]:
            try:
                aligned = broker.align_protection(trader.entry_of(trading.strategy, o["entry_time"]),
                                                  last_row.bar_time, float(o["stop"]), float(o["target"]))
            except Exception as e:  # noqa: BLE001 - the old legs stay until the new ones are on: still protected
                aligned = f"could not move the protection to the plan's prices: {str(e)[:200]} (retried next run)"
            if aligned:
                context.log.warning(f"{trading.strategy} ({trading.mode}): {aligned}")
    # protection always: a leg the exchange does not have while a position is open is placed again, every run
    replaced = broker.ensure_protection() if hasattr(broker, "ensure_protection") and not kill else []
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
    # BTC_LAKEHOUSE_URI: the journal's new rows appended to its Delta tables (append-only: the audit trail)
    in_lakehouse = journal_to_lakehouse(conn, lakehouse.ACTIVE.get(), start, end, note={"run_id": context.run.run_id})
    limiter = getattr(getattr(broker, "rest", None), "limiter", None)  # paper: no exchange, no headroom
    headroom = limiter.headroom() if limiter is not None else None
    if trading.metrics_file:
        trading_metrics.write_textfile(Path(trading.metrics_file), trading_metrics.render(
            metrics, trading.strategy, rate_limit_headroom=headroom))
    if fills:
        alerts.send(f"{len(fills)} fill(s) ({trading.strategy}, {trading.mode})", "\n".join(
            f"{f.side} {f.qty:.3f} @ {f.price:,.1f} ({f.client_order_id}, fee {f.fee:.2f})" for f in fills))
    mismatch = abs(actual - expected) > trading.reconcile_tolerance or bool(orphans)
    if mismatch:  # engaged now and held until a person clears it (btc-assets kill --clear)
        kill_switch.latch(conn, [f"reconciliation failed: broker {actual:+.3f} BTC vs journal {expected:+.3f}, "
                                 f"orders open on one side only {orphans[:5]}"], context.run.run_id)
        events_to_lakehouse(conn, lakehouse.ACTIVE.get(), note={"run_id": context.run.run_id})  # audited now
        alerts.send("position mismatch", f"{trading.strategy} ({trading.mode}): broker holds {actual:+.3f} BTC, the "
                    f"journal expects {expected:+.3f}; orders open on one side only: {orphans[:5]}; trading stops "
                    "on the next run until it is resolved (RUNBOOK: recover after a crash)", level="critical")
    return [dg.MaterializeResult(asset_key=ORDERS.key, metadata={
        "broker": broker.name, "mode": trading.mode, "orders_sent_this_run": sent, "fills_this_run": len(fills),
        "paper_fill_prices": ("" if broker.name != "paper" else "recorded book and trades (collector)" if market
                              else "fill model on bars"),
        "kill_switch": kill, "orders_today": len(day), "new_orders_withheld": late or "",
        "entries_skipped_late": len(skipped), "entries_skipped_reasons": skipped[:5],
        "protection_replaced": replaced, "account_breaker": breaker or "", "plan_reconciliation": plan_repair or "the exchange holds the plan's side",
        "protection_aligned": aligned or "the exchange's stop and target are the plan's (or no position)", "account_equity_usdt": equity, "account_available_usdt": available,
        "entry_sizing": sizing[:5],
        "open_orders": int((day["event"] == "NEW").sum()) if len(day) else 0,
        "position_btc": actual, "journal_position_btc": expected,
        "paper_equity_usdt": metrics.equity_usdt, "pnl_usdt": metrics.pnl_usdt,
        "fees_today_usdt": float(day.loc[day["event"] == "FILLED", "fee"].sum()) if len(day) else 0.0,
        "send_seconds": round(send_seconds, 3),
        "rate_limit_headroom": headroom or "paper: no exchange limits",
        "journal_rows_mirrored": mirrored or "local profile: no mirror",
        "journal_rows_appended_to_lakehouse": in_lakehouse or "no lakehouse (BTC_LAKEHOUSE_URI unset)",
        "orders": orders_table(conn, day, end) if len(day) else "no order today",
    }), dg.AssetCheckResult(asset_key=ORDERS.key, check_name="orders_after_their_decision",
                            passed=doubled.empty and early.empty,
                            metadata={"filled_twice": doubled["client_order_id"].tolist(),
                                      "before_decision": early["client_order_id"].tolist()}),
        dg.AssetCheckResult(asset_key=ORDERS.key, check_name="orders_reconciled_with_broker", passed=not mismatch,
                            severity=dg.AssetCheckSeverity.ERROR,
                            metadata={"broker_position": actual, "journal_position": expected,
                                      "tolerance": trading.reconcile_tolerance,
                                      "orders_open_on_one_side_only": orphans})]


ORDERS_SHOWN = 50


def orders_table(conn, day: pd.DataFrame, end: pd.Timestamp) -> dg.MetadataValue:
    """The day's orders (latest state each, the last ORDERS_SHOWN) as a table: bar time, the decision and model
    version behind it, side, quantity, price ("market" for an unfilled market order), fee and the realised P&L of
    its fills (average cost over the whole journal up to the day's end)."""
    fills = conn.execute("SELECT client_order_id, side, qty, price, fee FROM trading.order_events WHERE event = "
                         f"'FILLED' AND bar_time < ? AND {own_book()} ORDER BY event_time, seq",
                         [end.tz_localize(None)]).df()
    realised = (trading_metrics.realised_pnl(fills).assign(client_order_id=fills["client_order_id"])
                .groupby("client_order_id")[["gross_pnl", "net_pnl"]].sum() if len(fills) else None)
    shown = day.tail(ORDERS_SHOWN)
    bars = pd.DatetimeIndex(shown["bar_time"]).tz_localize(None)  # journal.orders: UTC; the tables: naive UTC
    dec = conn.execute("SELECT bar_time, decision_id, model_version FROM trading.decisions WHERE list_contains(?, "
                       "bar_time)", [list(bars)]).df()
    by_bar = {pd.Timestamp(r.bar_time): r for r in dec.itertuples()}
    rows = []
    for bar, o in zip(bars, shown.itertuples()):
        d = by_bar.get(bar)
        pnl = realised.loc[o.client_order_id] if realised is not None and o.client_order_id in realised.index else None
        rows.append(dg.TableRecord({
            "bar_time": f"{bar:%Y-%m-%d %H:%M}", "client_order_id": o.client_order_id, "state": o.event,
            "decision_id": d.decision_id if d is not None else "n/a",
            "model_version": (d.model_version or "none") if d is not None else "n/a",
            "side": o.side, "qty_btc": float(o.qty),
            "price": fmt(o.price) if pd.notna(o.price) else ("market" if o.event == "NEW" else "n/a"),
            "fee_usdt": fmt(o.fee) if pd.notna(o.fee) else "0",
            "realised_pnl_usdt": fmt(pnl["net_pnl"]) if pnl is not None and pnl["gross_pnl"] != 0 else "",
        }))
    return dg.MetadataValue.table(rows, schema=dg.TableSchema([
        dg.TableColumn("bar_time", "string", description="the decided bar (UTC)"),
        dg.TableColumn("client_order_id", "string"), dg.TableColumn("state", "string"),
        dg.TableColumn("decision_id", "string"), dg.TableColumn("model_version", "string"),
        dg.TableColumn("side", "string"), dg.TableColumn("qty_btc", "float"), dg.TableColumn("price", "string"),
        dg.TableColumn("fee_usdt", "string"),
        dg.TableColumn("realised_pnl_usdt", "string", description="net of fees; empty for a fill that only opens")]))


# A failed data-quality check upstream, or a position the broker does not confirm, stops trading (the model
# promotion checks do not: an unpromoted model already trades nothing).
KILL_ON_CHECKS = [dg.AssetCheckKey(dg.AssetKey(["silver", "klines_1m"]), name) for name in
                  ("klines_1m_has_every_minute", "klines_1m_ohlc_consistent", "klines_1m_matches_schema")] + [
    dg.AssetCheckKey(dg.AssetKey(["gold", "features"]), name) for name in
    ("features_point_in_time", "features_availability_observed", "features_finite_after_warmup",
     "features_match_schema")] + [
    dg.AssetCheckKey(dg.AssetKey(["trading", "orders"]), "orders_reconciled_with_broker")]


def failed_data_checks(instance: dg.DagsterInstance) -> list[str]:
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(KILL_ON_CHECKS)
    return [f"{key.asset_key.to_user_string()}: {key.name}" for key, rec in latest.items()
            if rec is not None and rec.status.value == "FAILED"]
