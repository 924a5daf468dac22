"""The live trader's bar step, shared by every broker: the rules' plan for a closed bar, and its orders.

A closed bar is decided by ``backtest.simulation.decide`` over the trading session's bars (the compiled loop of the
backtest, with the same risk rules and state), so the live plan of a bar is by construction the backtest's. The
plan says what the fill model did during the bar (the entry decided at the previous close filled at this open,
positions closed by a stop, a target, a liquidation or a market exit) and what to do at its close (exits of open
positions, an entry with its stop distance). ``execute`` turns a plan into orders through any broker.

Order ids are derived from the strategy, the bar and the leg (journal.client_order_id), never random:
``<strategy>-<bar>-entry`` for an entry decided at ``bar``, ``<strategy>-<bar>-exit`` for a market exit, and the
protective legs ``<entry id>-sl`` / ``-tp`` (STOP_MARKET / TAKE_PROFIT_MARKET, reduce-only) placed after the
entry filled. A retried run finds every id in the journal and sends nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.research.backtest.simulation import BacktestResult, LastDecision
from btc_assets.lib.trading.journal import client_order_id, leg_id

MINUTE = pd.Timedelta(minutes=1)
PROTECTIVE = {"stop": "sl", "take_profit": "tp", "liquidation": "lq"}


@dataclass(frozen=True)
class Opened:
    """A position the fill model opened at this bar's open (the entry decided at the previous close)."""

    entry_time: str
    side: int
    qty: float
    price: float
    stop: float
    target: float


@dataclass(frozen=True)
class Closed:
    """A position the fill model closed during this bar: at the open (time/signal exit) or intrabar."""

    entry_time: str
    reason: str
    qty: float
    price: float


@dataclass(frozen=True)
class BarPlan:
    bar_time: pd.Timestamp
    action: str  # enter_long, enter_short, exit, exit_and_enter_*, skip:<reason>, hold
    entry_side: int
    entry_qty: float
    stop_distance: float
    skip: str | None
    exits: tuple[str, ...]  # entry times (ISO) of the positions to close at the next open
    exit_reasons: tuple[str, ...]
    paused: bool
    sim_equity: float
    sim_position: float  # net base units the rules hold after this bar's fills (before its decisions fill)
    opened: Opened | None
    closed: tuple[Closed, ...] = field(default=())
    liquidation_probability: float = float("nan")  # of the bar's entry (decided or refused for it): risk.py

    def row(self) -> dict:
        """The plan's columns of trading.decisions."""
        return {
            "action": self.action, "entry_qty": self.entry_qty, "stop_distance": self.stop_distance,
            "skip_reason": self.skip, "breaker_paused": self.paused, "sim_equity": self.sim_equity,
            "sim_position": self.sim_position,
            "exits": json.dumps([{"entry_time": t, "reason": r} for t, r in zip(self.exits, self.exit_reasons)]),
            "opened": json.dumps(asdict(self.opened)) if self.opened else None,
            "closed": json.dumps([asdict(c) for c in self.closed]),
            "liquidation_probability": self.liquidation_probability,
        }


def plan(res: BacktestResult, d: LastDecision) -> BarPlan:
    """The plan of the last bar of ``res`` from the engine's result and its last decision."""
    t = d.bar_time
    tr = res.trades
    # by position on the trade table's arrays (the live path calls this every bar: no frame filtering)
    t_ns = pd.Timestamp(t).value
    entry_ns = pd.DatetimeIndex(tr["entry_time"]).asi8
    exit_ns = pd.DatetimeIndex(tr["exit_time"]).asi8
    is_open = tr["is_open"].to_numpy(bool)
    sign = np.where(tr["side"].to_numpy(object) == "long", 1.0, -1.0)
    qty = tr["qty"].to_numpy(np.float64)
    opened = None
    (at_entry,) = np.nonzero(entry_ns == t_ns)
    if len(at_entry):
        i = int(at_entry[0])
        opened = Opened(pd.Timestamp(entry_ns[i], tz="UTC").isoformat(), int(sign[i]), float(qty[i]),
                        float(tr["entry_price"].iat[i]), float(tr["stop"].iat[i]), float(tr["target"].iat[i]))
    closed = tuple(Closed(pd.Timestamp(entry_ns[i], tz="UTC").isoformat(), str(tr["exit_reason"].iat[i]),
                          float(qty[i]), float(tr["exit_price"].iat[i]))
                   for i in np.flatnonzero((exit_ns == t_ns) & ~is_open))
    position = float((sign * qty)[is_open].sum())
    exits = tuple(e.isoformat() for e, _ in d.exits)
    if d.entry_side:
        action = ("exit_and_" if exits else "") + ("enter_long" if d.entry_side > 0 else "enter_short")
    elif exits:
        action = "exit"
    else:
        action = f"skip:{d.skip}" if d.skip else "hold"
    return BarPlan(t, action, d.entry_side, d.entry_qty, d.stop_distance, d.skip, exits,
                   tuple(r for _, r in d.exits), d.paused, d.equity, position, opened, closed,
                   d.liquidation_probability)


def entry_id(strategy: str, decision_bar: pd.Timestamp) -> str:
    return client_order_id(strategy, decision_bar, "entry")


def exit_id(strategy: str, decision_bar: pd.Timestamp) -> str:
    return client_order_id(strategy, decision_bar, "exit")


def protective_id(entry_order_id: str, reason: str) -> str:
    """The protective leg of an entry that a stop / target / liquidation closes."""
    return leg_id(entry_order_id, PROTECTIVE[reason])  # the id the Binance broker gives the leg too


def entry_of(strategy: str, entry_time: str | pd.Timestamp) -> str:
    """The entry order of a position that filled at ``entry_time`` (decided one bar before)."""
    return entry_id(strategy, pd.Timestamp(entry_time) - MINUTE)
