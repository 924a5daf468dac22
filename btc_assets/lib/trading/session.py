"""The trading session of the live path, without Dagster: where the rules' state starts, the signals it has seen,
the plan of a journaled bar, whether an exchange may still get a new order, and the orders one decided bar sends.

The plan itself comes from the backtest engine (lib/research/backtest/simulation.decide), so the live path and the
backtest share the same rules and state.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd

from btc_assets.lib.storage.warehouse import frame_of
from btc_assets.lib.trading import trader
from btc_assets.lib.trading.journal import Journal, OrderEvent, client_order_id

log = logging.getLogger(__name__)

SESSION_WARMUP = pd.Timedelta(minutes=60)  # bars before the first decision: ATR(14) and the 60-bar volatility exist


def session_start(conn, configured: str | None, first_new: pd.Timestamp,
                  first_decided: pd.Timestamp | None = None) -> pd.Timestamp:
    """The first decided bar of the session: `configured` (BTC_SESSION_START), else the first bar the journal ever
    decided (or `first_new`, the first bar of this run, if that is earlier or the journal is empty).
    `first_decided`: that first bar when the caller has read it already (no query)."""
    if configured:
        return pd.Timestamp(configured, tz="UTC")
    if first_decided is not None:
        return min(first_decided, first_new)
    first = conn.execute("SELECT min(bar_time) FROM trading.decisions").fetchone()[0]
    return min(pd.Timestamp(first, tz="UTC"), first_new) if first is not None else first_new


def session_signals(conn, session: pd.Timestamp, new: pd.DataFrame) -> pd.Series:
    """Every signal of the session: the journaled ones from `session` on, then this run's `new` ones."""
    past = frame_of(conn.execute("SELECT bar_time, signal FROM trading.decisions WHERE bar_time >= ? "
                                 "ORDER BY bar_time", [session.tz_localize(None)]))
    past_s = pd.Series(past["signal"].to_numpy(), index=pd.DatetimeIndex(past["bar_time"]).tz_localize("UTC"))
    new_s = pd.Series(new["signal"].to_numpy(), index=pd.DatetimeIndex(new["bar_time"]))
    return pd.concat([past_s, new_s]) if len(past_s) else new_s


def plan_of(row) -> trader.BarPlan:
    """The plan of a journaled trading.decisions row, as the orders step needs it."""
    opened = trader.Opened(**json.loads(row.opened)) if isinstance(row.opened, str) else None
    closed = tuple(trader.Closed(**c) for c in json.loads(row.closed)) if isinstance(row.closed, str) else ()
    exits = json.loads(row.exits) if isinstance(row.exits, str) else []
    return trader.BarPlan(row.bar_time, row.action, 0, 0.0, 0.0, None, tuple(e["entry_time"] for e in exits),
                          tuple(e["reason"] for e in exits), bool(row.breaker_paused), float(row.sim_equity or 0.0),
                          float(row.sim_position or 0.0), opened, closed)


def not_live_reason(broker_name: str, requested_at: str | None) -> str | None:
    """Why an exchange must get no *new* order from this run at all (None: it may, bar by bar, entry_late_reason).
    Paper orders are never withheld: the fill model prices them at the bar after their decision whenever the run
    happens. `requested_at`: the sensor's tag (None for a run no sensor asked for: a backfill or a manual run)."""
    if broker_name == "paper" or requested_at is not None:
        return None
    return "not a live run (no sensor request): plans of a backfill or a manual run are journaled, not traded"


def entry_late_reason(broker_name: str, last_closed_at: float, speed: float, bar_time: pd.Timestamp,
                      last_bar: pd.Timestamp, max_order_delay_s: float, now: float | None = None) -> str | None:
    """Why the entry of `bar_time` must not be sent (None: it may): more than max_order_delay_s after that bar's
    own close. `last_closed_at`: when the run's last bar (`last_bar`) closed, this machine's clock; earlier bars of
    the run (a backlog) closed (last_bar - bar_time) / speed seconds before it. Paper entries are never late."""
    if broker_name == "paper":
        return None
    closed = last_closed_at - (pd.Timestamp(last_bar) - pd.Timestamp(bar_time)).total_seconds() / speed
    age = (time.time() if now is None else now) - closed
    if age > max_order_delay_s:
        return (f"entry of bar {pd.Timestamp(bar_time):%Y-%m-%d %H:%M} skipped: {age:.0f} s after the bar's close "
                f"(> max_order_delay_s {max_order_delay_s:.0f}): a late entry is another trade; exits and "
                "protection are still sent")
    return None


def account_sized(plan_qty: float, plan_equity: float, equity: float, available: float, leverage: float,
                  price: float, step: float) -> tuple[float, str]:
    """The plan's entry quantity for the account that trades it: scaled by account equity / the plan's equity (the
    rules sized for theirs), capped by the margin the account has free at `leverage` (5 % kept for fees), rounded
    down to the step. Returns the quantity and what was done (for the journal)."""
    scale = equity / plan_equity if plan_equity > 0 else 1.0
    qty = plan_qty * scale
    cap = max(available, 0.0) * leverage * 0.95 / price if price > 0 else qty
    note = f"sized to account equity {equity:,.2f} USDT (plan's {plan_equity:,.2f}): x{scale:.3f}"
    if qty > cap:
        qty, note = cap, note + f"; capped by available margin {available:,.2f} USDT at {leverage:g}x"
    return float(np.floor(qty / step + 1e-9) * step), note


def send_bar_orders(broker, journal: Journal, strategy: str, step_size: float, take_profit_r: float, row,
                    resume_only: bool = False, skip_entry: str | None = None,
                    entry_qty: float | None = None) -> int:
    """The orders of one decided bar: market exits of the positions the rules close, then the entry. With
    ``resume_only`` only orders the journal already has open (a crash interrupted them) are worked again. With
    ``skip_entry`` (why) a not yet started entry is journaled SKIPPED with the reason instead of being sent;
    exits are sent whatever the bar's age. ``entry_qty``: the quantity for the trading account (account_sized),
    the plan's otherwise."""
    started = journal.orders_by_id([trader.exit_id(strategy, row.bar_time),
                                    trader.entry_id(strategy, row.bar_time)])

    def allowed(cid: str) -> bool:
        return not resume_only or (cid in started and started[cid]["event"] == "NEW")

    sent = 0
    exits = json.loads(row.exits) if isinstance(row.exits, str) else []
    exit_cid = trader.exit_id(strategy, row.bar_time)
    if exits and allowed(exit_cid):
        entries = [trader.entry_of(strategy, e["entry_time"]) for e in exits]
        held = journal.orders_by_id(entries)
        position = journal.position(broker.name)
        qty = min(sum(r["qty"] for r in held.values() if r["event"] == "FILLED"), abs(position))
        if exit_cid in started:
            qty = started[exit_cid]["qty"]  # resuming: the quantity journaled when it was first sent
        if qty >= step_size / 2:
            side = "SELL" if position > 0 else "BUY"
            if exit_cid in started:
                side = started[exit_cid]["side"]
            try:
                sent += bool(broker.submit(exit_cid, row.bar_time, side, qty, reduce_only=True))
            except Exception as e:  # noqa: BLE001 - journaled by the broker; the position keeps its protection
                log.error("exit %s failed (%s): the position keeps its stop and target; the next run repairs it "
                          "against the plan", exit_cid, str(e)[:200])
                return sent
        # the protection goes only once the exit is out: a failed exit leaves the position protected
        for cid in entries:
            broker.cancel_protection(cid, row.bar_time)
    entry_cid = trader.entry_id(strategy, row.bar_time)
    if isinstance(row.action, str) and "enter_" in row.action and row.entry_qty > 0 and allowed(entry_cid):
        side = "BUY" if row.action.endswith("long") else "SELL"
        qty = float(row.entry_qty) if entry_qty is None else entry_qty
        if qty < step_size / 2 and entry_cid not in started:
            skip_entry = skip_entry or (f"entry of bar {pd.Timestamp(row.bar_time):%Y-%m-%d %H:%M} skipped: the "
                                        "account's equity and free margin size it below one lot")
        if entry_cid in started and started[entry_cid]["event"] == "SKIPPED":
            return sent  # skipped once (too late, below one lot): a rerun of the bar never sends it
        if skip_entry and entry_cid not in started:
            journal.append(OrderEvent(entry_cid, "SKIPPED", row.bar_time, side, float(row.entry_qty), None, 0.0,
                                      broker.name, getattr(broker, "run_id", ""), skip_entry))
            return sent
        if entry_cid in started:
            qty = float(started[entry_cid]["qty"])  # resuming: the quantity journaled when it was first sent
        try:
            sent += bool(broker.submit(entry_cid, row.bar_time, side, qty,
                                       stop_distance=float(row.stop_distance),
                                       take_profit_r=take_profit_r))
        except Exception as e:  # noqa: BLE001 - a refused entry is journaled REJECTED by the broker; the run goes on
            if getattr(e, "code", None) is None:  # not the exchange's refusal (network, ban): the run must say so
                raise
            log.warning("entry %s refused by the exchange (%s)", entry_cid, str(e)[:200])
    return sent


def planned_side_after(row, fills_at_once: bool) -> int:
    """The side (+1 long, -1 short, 0 flat) the plan holds once this bar's orders are out: the rules' position at
    the bar's close (target_position), less the positions it exits, plus its entry when the broker fills market
    orders at once (an exchange; the paper broker fills them at the next bar, as the plan does)."""
    pos = float(row.target_position or 0.0)
    side = 0 if abs(pos) < 1e-12 else (1 if pos > 0 else -1)
    if not fills_at_once:
        return side
    if isinstance(row.exits, str) and json.loads(row.exits):
        side = 0
    if isinstance(row.action, str) and "enter_" in row.action and row.entry_qty > 0:
        side = 1 if row.action.endswith("long") else -1
    return side


def repair_against_plan(broker, strategy: str, bar_time: pd.Timestamp, planned_side: int, step: float) -> str:
    """Make the exchange hold no position the plan does not: a position on the exchange while the plan is flat or
    on the other side is closed with a reduce-only market order (`<strategy>-<bar>-repair`, journaled). A plan
    position the exchange does not hold (its stop fired first, or a stale entry was skipped) is stated, not opened:
    a late entry would be another trade. Returns what was found and done ("" when they agree)."""
    position = broker.position()
    held = 0 if abs(position) < step / 2 else (1 if position > 0 else -1)
    if held == planned_side:
        return ""
    if held != 0:
        cid = client_order_id(strategy, bar_time, "repair")
        try:  # close first, then cancel what is left: a failed close keeps the position's protection
            broker.submit(cid, bar_time, "SELL" if held > 0 else "BUY", abs(position), reduce_only=True)
        except Exception as e:  # noqa: BLE001 - journaled by the broker; retried with the next bar's id
            return (f"repair failed: the exchange holds {position:+.3f} BTC while the plan is "
                    f"{'flat' if planned_side == 0 else 'on the other side'}; {cid}: {str(e)[:150]}; retried next bar")
        broker.cancel_all()
        return (f"repaired: the exchange held {position:+.3f} BTC while the plan is "
                f"{'flat' if planned_side == 0 else 'on the other side'}; closed by {cid} (reduce-only market)")
    return (f"the plan holds a {'long' if planned_side > 0 else 'short'} the exchange does not (its stop or "
            "target fired first, or a late entry was skipped): not opened now; the plan's exit will be a no-op")


EQUITY = "trading.account_equity"
EQUITY_TYPES = {"event_time": "TIMESTAMP", "broker": "VARCHAR", "equity": "DOUBLE", "run_id": "VARCHAR"}


def account_breaker(conn, broker: str, equity: float, now: pd.Timestamp, daily_dd: float, weekly_dd: float,
                    run_id: str = "") -> str | None:
    """Record the account's equity for this run and say why entries must pause (None: they may): the account
    (not the plan's simulation) is daily_dd below its equity at the start of the UTC day, or weekly_dd below the
    start of the week (Monday). The first equity seen in a period is its start."""
    from btc_assets.lib.storage.warehouse import ensure_table

    ensure_table(conn, EQUITY, EQUITY_TYPES)
    t = pd.Timestamp(now).tz_convert("UTC").tz_localize(None)
    conn.execute(f"INSERT INTO {EQUITY} VALUES (?, ?, ?, ?)", [t, broker, float(equity), run_id])
    out = []
    for label, start, limit in (("day", t.floor("D"), daily_dd), ("week", (t - pd.Timedelta(days=t.dayofweek))
                                                                   .floor("D"), weekly_dd)):
        first = conn.execute("SELECT equity FROM trading.account_equity WHERE broker = ? AND event_time >= ? "
                             "ORDER BY event_time LIMIT 1", [broker, start]).fetchone()
        if first and first[0] > 0 and equity / first[0] - 1 <= -limit:
            out.append(f"account breaker: equity {equity:,.2f} USDT is {equity / first[0] - 1:+.2%} since the "
                       f"{label}'s start ({first[0]:,.2f}; limit -{limit:.0%}): entries pause until the next {label}")
    return "; ".join(out) or None
