"""``simulate``: prepare the inputs, run the compiled engine, and hand back a typed result.

Accounting identity (checked by tests): ``final_equity == initial_equity + realised_pnl - fees_paid -
funding_paid``, where ``realised_pnl`` sums the trades' gross PnL (positions open at the end are marked at the
last close with no exit fee), fees include the liquidation fees, and funding is positive when paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from btc_assets.lib.research.backtest import engine
from btc_assets.lib.research.backtest.exchange import ExchangeRules, rules_for
from btc_assets.lib.research.backtest.fills import Costs
from btc_assets.lib.research.backtest.inputs import Inputs, prepare
from btc_assets.lib.research.labels import BUY, SELL
from btc_assets.lib.research.risk import RiskConfig

TRADE_COLUMNS = ["entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "gross_pnl", "fees",
                 "funding", "net_pnl", "r_multiple", "exit_reason", "liquidation_price", "stop", "target",
                 "liquidation_probability", "is_open"]


@dataclass
class BacktestResult:
    """Per-bar series are indexed by bar open_time (UTC) and hold the state at that bar's close."""

    equity: pd.Series
    close: pd.Series  # traded price at each close (buy-and-hold, trade markers)
    open: pd.Series
    fee_events: np.ndarray  # (bar index, amount) per fee charged: trading and liquidation fees
    funding_events: np.ndarray  # (bar index, amount) per funding payment (negative: received)
    paused: pd.Series  # a drawdown breaker blocked new entries at this close
    trades: pd.DataFrame  # TRADE_COLUMNS, one row per round trip
    skipped: dict[str, int]  # decisions that did not become positions, by reason
    funding_rate: np.ndarray  # per bar, as charged (for baselines that must pay the same funding)
    initial_equity: float
    costs: Costs
    risk: RiskConfig
    rules: ExchangeRules
    mark_source: str
    spread_source: str
    signals: np.ndarray = field(repr=False)  # the entry directions the engine saw, per bar

    @property
    def final_equity(self) -> float:
        return float(self.equity.iloc[-1])

    def _per_bar(self, events: np.ndarray, name: str) -> pd.Series:
        out = np.zeros(len(self.equity))
        np.add.at(out, events[:, 0].astype(np.int64), events[:, 1])
        return pd.Series(out, self.equity.index, name=name)

    @cached_property
    def fees(self) -> pd.Series:
        """Fees paid in each bar (trading and liquidation)."""
        return self._per_bar(self.fee_events, "fees")

    @cached_property
    def funding(self) -> pd.Series:
        """Funding paid in each bar (negative: received)."""
        return self._per_bar(self.funding_events, "funding")

    @cached_property
    def exposure(self) -> float:
        """Share of bars with at least one position open (held from the entry bar up to the exit bar)."""
        idx = pd.DatetimeIndex(self.equity.index).asi8
        held = np.zeros(len(idx) + 1)
        np.add.at(held, np.searchsorted(idx, pd.DatetimeIndex(self.trades["entry_time"]).asi8), 1.0)
        np.add.at(held, np.searchsorted(idx, pd.DatetimeIndex(self.trades["exit_time"]).asi8), -1.0)
        return float((np.cumsum(held)[:-1] > 0).mean())


def signals_from_classes(classes: pd.Series) -> pd.Series:
    """Model classes (SELL=0, HOLD=1, BUY=2) to entry directions (-1, 0, +1); NaN (no model) is 0."""
    values = classes.to_numpy(np.float64)
    return pd.Series(np.where(values == BUY, 1, np.where(values == SELL, -1, 0)).astype(np.int8), index=classes.index)


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    """ns since epoch -> UTC times; a view, where pd.to_datetime(ints) goes through Python objects (10x slower)."""
    return pd.DatetimeIndex(ns.astype(np.int64).view("datetime64[ns]")).tz_localize("UTC")


def _trades(x: Inputs, rec: np.ndarray) -> pd.DataFrame:
    entry, exit_ = rec[:, engine.T_ENTRY_BAR].astype(np.int64), rec[:, engine.T_EXIT_BAR].astype(np.int64)
    reason = rec[:, engine.T_REASON].astype(np.int64)
    net = rec[:, engine.T_GROSS] - rec[:, engine.T_FEES] - rec[:, engine.T_FUNDING]
    with np.errstate(divide="ignore", invalid="ignore"):
        # no stop (the position table's rules): no risk unit, no R multiple
        r_mult = np.where(np.isfinite(rec[:, engine.T_RISK]) & (rec[:, engine.T_RISK] > 0),
                          net / rec[:, engine.T_RISK], np.nan)
    is_open = reason == engine.R_OPEN
    # A trade exits at the open of its exit bar, except intrabar exits (during the bar) and the final mark (its close).
    length = int(np.median(np.diff(x.time_ns))) if len(x.time_ns) > 1 else 60_000_000_000
    exit_time = _utc(x.time_ns[exit_] + np.where(is_open, length, 0))
    side = (rec[:, engine.T_SIDE] > 0).astype(np.int8)
    return pd.DataFrame({
        "entry_time": _utc(x.time_ns[entry]), "exit_time": exit_time,
        "side": pd.Categorical.from_codes(side, ["short", "long"]), "qty": rec[:, engine.T_QTY],
        "entry_price": rec[:, engine.T_ENTRY_PRICE], "exit_price": rec[:, engine.T_EXIT_PRICE],
        "gross_pnl": rec[:, engine.T_GROSS], "fees": rec[:, engine.T_FEES], "funding": rec[:, engine.T_FUNDING],
        "net_pnl": net, "r_multiple": r_mult, "exit_reason": pd.Categorical.from_codes(reason, engine.EXIT_REASONS),
        "liquidation_price": rec[:, engine.T_LIQ], "stop": rec[:, engine.T_STOP], "target": rec[:, engine.T_TARGET],
        "liquidation_probability": rec[:, engine.T_P_LIQ], "is_open": is_open,
    }, columns=TRADE_COLUMNS)


def simulate(bars: pd.DataFrame, signals: pd.Series, funding: pd.DataFrame | None, *,
             mark: pd.DataFrame | None = None, initial_equity: float = 10_000.0, costs: Costs = Costs(),
             risk: RiskConfig = RiskConfig(), rules: ExchangeRules | None = None,
             exit_on_opposite: bool = True, size_scale: pd.Series | None = None) -> BacktestResult:
    """Trade ``signals`` (entry direction decided at each bar's close) on ``bars``; see the package docstring.
    ``size_scale``: a factor in (0, 1] on the rules' entry size by bar time (the regime sizing; 1 where absent)."""
    return _simulate(bars, signals, funding, mark, initial_equity, costs, risk, rules, exit_on_opposite, False,
                     size_scale)[0]


@dataclass(frozen=True)
class LastDecision:
    """What the rules decide at the last bar's close: the live trader's decision for that bar.

    ``entry_side`` is +1/-1 with ``entry_qty`` (base units) and ``stop_distance`` (price units; the stop and target
    are placed at that distance from the actual fill), 0 when no entry; ``skip`` names why a signal did not become
    an entry (a breaker, the position limit, a filter, too small); ``exits`` lists (entry time, reason) of the open
    positions to close at the next open (time exit or opposite signal)."""

    bar_time: pd.Timestamp
    entry_side: int
    entry_qty: float
    stop_distance: float
    skip: str | None
    exits: tuple[tuple[pd.Timestamp, str], ...]
    paused: bool
    equity: float
    liquidation_probability: float = float("nan")  # of the entry decided (or refused for it), risk.py's model


def decide(bars: pd.DataFrame, signals: pd.Series, funding: pd.DataFrame | None, *,
           mark: pd.DataFrame | None = None, initial_equity: float = 10_000.0, costs: Costs = Costs(),
           risk: RiskConfig = RiskConfig(), rules: ExchangeRules | None = None,
           exit_on_opposite: bool = True, size_scale: pd.Series | None = None) -> tuple[BacktestResult, LastDecision]:
    """Run the backtest over ``bars`` and also take the decisions at the last close (see ``engine.run``).

    The live trader calls this once per closed bar over its whole session: the same compiled loop, the same state
    (equity, Kelly statistics, breakers, open positions), so the live decision of a bar is by construction the one
    the backtest takes there."""
    res, last = _simulate(bars, signals, funding, mark, initial_equity, costs, risk, rules, exit_on_opposite, True,
                          size_scale)
    times = res.equity.index
    exits = tuple((times[int(last[6 + 2 * j])], engine.EXIT_REASONS[int(last[7 + 2 * j])])
                  for j in range(int(last[5])))
    return res, LastDecision(
        bar_time=times[-1], entry_side=int(last[0]), entry_qty=float(last[1]), stop_distance=float(last[2]),
        skip=engine.SKIP_NAMES[int(last[4])] if last[4] >= 0 else None, exits=exits,
        paused=bool(res.paused.iloc[-1]), equity=float(res.equity.iloc[-1]),
        liquidation_probability=float(last[22]) if last[0] != 0 or last[4] == 6 else float("nan"))


def _simulate(bars, signals, funding, mark, initial_equity, costs, risk, rules, exit_on_opposite, decide_last,
              size_scale=None):
    if not initial_equity > 0:
        raise ValueError(f"initial_equity must be > 0, got {initial_equity}")
    x = prepare(bars, signals, funding, mark, size_scale)
    rules = rules or rules_for(x.times[0].date())
    eq, paused, fee_ev, fund_ev, rec, skips, last = engine.run(
        x.time_ns, x.o, x.h, x.lo, x.c, x.m_o, x.m_h, x.m_l, x.atr, x.vol, x.spread_bps, x.quote_vol, x.signal,
        x.scale, x.funding_rate, rules.tiers_array(), risk.to_array(), costs.to_array(), rules.tick_size, rules.step_size,
        rules.min_notional, rules.liquidation_fee, float(initial_equity), exit_on_opposite, decide_last)
    idx = x.times.rename("open_time")
    return BacktestResult(
        equity=pd.Series(eq, idx, name="equity"), close=pd.Series(x.c, idx, name="close"),
        open=pd.Series(x.o, idx, name="open"), fee_events=fee_ev, funding_events=fund_ev,
        paused=pd.Series(paused, idx, name="paused"), trades=_trades(x, rec),
        skipped={k: int(v) for k, v in zip(engine.SKIP_NAMES, skips)}, funding_rate=x.funding_rate,
        initial_equity=float(initial_equity), costs=costs, risk=risk, rules=rules, mark_source=x.mark_source,
        spread_source=x.spread_source, signals=x.signal,
    ), last
