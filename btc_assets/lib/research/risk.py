"""The risk engine shared by the backtest and the live trader: sizing, stops, exits, breakers, filters, guards.

Every rule is a small numba function (``cache=True``) so the compiled backtest loop calls exactly the code the live
trader calls from Python, one bar at a time: parity by construction. Parameters travel as one float array built by
``RiskConfig.to_array()`` (numba cannot take a dataclass); ``P_*`` name its slots.

Rules (defaults in ``RiskConfig``):
* sizing: fixed fraction, fractional Kelly from the win rate and payoff of the trades closed so far (walk-forward:
  only the past; a floor keeps probing when it sees no edge, else it would stop learning), or volatility
  targeting; whatever the method, at most ``max_risk`` (1 %) of equity is lost if the
  stop is hit, and the notional never needs more margin than the equity free at ``leverage``;
* stop at ``stop_atr`` x ATR(14) from the entry, take-profit at ``take_profit_r`` x that distance, a time exit after
  ``max_hold_bars`` minutes, at most ``max_positions`` open at once;
* circuit breakers: equity ``daily_dd`` below the day's opening equity pauses entries until the next UTC day,
  ``weekly_dd`` below the week's (Monday 00:00 UTC) until the next week;
* filters: spread (bps), volatility (ATR / price) and liquidity (quote volume of the bar) must be within limits;
* liquidation guard: the liquidation price must be at least ``liq_guard`` x the stop distance away from the entry;
* liquidation probability: the chance that the price reaches the liquidation price within the holding horizon
  (``max_hold_bars`` minutes), from the volatility known at the decision. Model: the log mark price is a driftless
  Brownian motion with the per-minute volatility of the last 60 1m returns (``atr_and_vol``), the mark taken equal
  to the last price at entry; the probability that it touches a barrier at log-distance d within T minutes is the
  reflection-principle formula 2 * Phi(-d / (sigma * sqrt(T))) = erfc(d / (sigma * sqrt(2 T))). An entry above
  ``max_liq_prob`` is refused (skip ``liquidation_probability``); with no volatility known yet it is NaN and not
  refused for it (the other guards still apply). The horizon is ``liq_horizon_bars`` when set (a strategy that
  holds with no time exit, e.g. the daily swing), else ``max_hold_bars``.
* position-table strategies (the daily swing strategy): ``sizing="exposure"`` opens ``exposure`` x equity of
  notional (the margin freed by the positions exiting at the same open counts as free, so a reverse is sized on
  the whole account), ``stop_atr=inf`` places no stop and no target (the liquidation guard, a multiple of the stop
  distance, then has nothing to measure and passes; the liquidation-probability guard still applies), and
  ``exit_on_neutral`` closes a position on a 0 signal (no view = flat) while a signal in the position's own
  direction holds it (neither an entry nor a skip).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np
from numba import njit

SIZING = {"fixed": 0, "kelly": 1, "vol_target": 2, "exposure": 3}
(P_SIZING, P_FIXED_FRACTION, P_KELLY_FRACTION, P_KELLY_MIN_TRADES, P_KELLY_PRIOR, P_TARGET_VOL, P_MAX_RISK,
 P_STOP_ATR, P_TAKE_PROFIT_R, P_MAX_HOLD, P_MAX_POSITIONS, P_LEVERAGE, P_DAILY_DD, P_WEEKLY_DD, P_MAX_SPREAD,
 P_MIN_VOL, P_MAX_VOL, P_MIN_QUOTE_VOLUME, P_LIQ_GUARD, P_KELLY_FLOOR, P_MAX_LIQ_PROB, P_EXPOSURE, P_EXIT_ON_NEUTRAL,
 P_LIQ_HORIZON) = range(24)
NANOS_PER_DAY = 86_400_000_000_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday: (days + 3) // 7 changes on Mondays


@dataclass(frozen=True)
class RiskConfig:
    """Risk limits; field order is the slot order of ``to_array`` (keep them in step with P_*)."""

    sizing: str = "kelly"
    fixed_fraction: float = 0.005  # share of equity at risk per trade with sizing="fixed"
    kelly_fraction: float = 0.25  # quarter Kelly: full Kelly on an estimated edge is far too aggressive
    kelly_min_trades: int = 20  # below this many closed trades Kelly uses kelly_prior instead
    kelly_prior: float = 0.0025
    target_vol: float = 0.5  # annualised volatility of the position with sizing="vol_target"
    max_risk: float = 0.01  # hard cap: equity lost at the stop, whatever the sizing says
    stop_atr: float = 1.5
    take_profit_r: float = 2.0
    max_hold_bars: int = 15
    max_positions: int = 5
    leverage: float = 10.0
    daily_dd: float = 0.05
    weekly_dd: float = 0.15
    max_spread_bps: float = 50.0
    min_vol: float = 0.0  # ATR / price
    max_vol: float = 0.02
    min_quote_volume: float = 0.0  # USDT traded in the signal bar
    liq_guard: float = 2.0
    kelly_floor: float = 0.001  # risked when Kelly sees no edge: keeps trading small so the estimate can recover
    max_liq_prob: float = 0.01  # refuse an entry more likely than this to be liquidated within max_hold_bars
    exposure: float = 1.0  # notional / equity of a new position with sizing="exposure"
    exit_on_neutral: bool = False  # a 0 signal closes the open position (the position table's HOLD = flat)
    liq_horizon_bars: int = 0  # the liquidation probability's horizon in bars (0: max_hold_bars)

    def to_array(self) -> np.ndarray:
        if self.sizing not in SIZING:
            raise ValueError(f"RiskConfig.sizing={self.sizing!r} is unknown; use one of {sorted(SIZING)}")
        if not 0 < self.max_risk <= 1 or self.leverage <= 0 or self.max_positions < 1 or self.stop_atr <= 0:
            raise ValueError(f"RiskConfig out of range: max_risk in (0, 1], leverage > 0, max_positions >= 1, "
                             f"stop_atr > 0; got {self}")
        if not 0 <= self.max_liq_prob <= 1:
            raise ValueError(f"RiskConfig.max_liq_prob={self.max_liq_prob}: a probability in [0, 1] (1 turns the "
                             "liquidation-probability guard off)")
        if self.sizing == "exposure" and not self.exposure > 0:
            raise ValueError(f"RiskConfig.exposure={self.exposure}: the notional share of equity must be > 0")
        if self.liq_horizon_bars < 0:
            raise ValueError(f"RiskConfig.liq_horizon_bars={self.liq_horizon_bars}: bars >= 0 (0: max_hold_bars)")
        values = list(astuple(self))
        values[0] = SIZING[self.sizing]
        return np.asarray(values, dtype=np.float64)


@njit(cache=True)
def kelly(win_rate: float, payoff: float) -> float:
    """Full Kelly fraction W - (1 - W) / R for win rate W and payoff R (mean win / mean loss); 0 without an edge."""
    if payoff <= 0.0:
        return 0.0
    return max(win_rate - (1.0 - win_rate) / payoff, 0.0)


@njit(cache=True)
def risk_fraction(p: np.ndarray, n_wins: float, n_losses: float, sum_win_r: float, sum_loss_r: float,
                  vol_per_bar: float, stop_fraction: float) -> float:
    """Share of equity to lose at the stop for the next trade, before the ``max_risk`` cap.

    ``sum_win_r``/``sum_loss_r`` add up the R multiples (>0) of the closed winners/losers so far; ``vol_per_bar``
    is the realised 1m return volatility and ``stop_fraction`` the stop distance / price (for vol targeting)."""
    method = int(p[P_SIZING])
    if method == 0:
        f = p[P_FIXED_FRACTION]
    elif method == 1:
        n = n_wins + n_losses
        if n < p[P_KELLY_MIN_TRADES] or n_wins == 0.0 or n_losses == 0.0:
            f = p[P_KELLY_PRIOR]
        else:
            f = p[P_KELLY_FRACTION] * kelly(n_wins / n, (sum_win_r / n_wins) / (sum_loss_r / n_losses))
            f = max(f, p[P_KELLY_FLOOR])
    else:
        annual_vol = vol_per_bar * np.sqrt(525_600.0)
        notional_share = p[P_TARGET_VOL] / annual_vol if annual_vol > 0.0 else 0.0
        f = notional_share * stop_fraction  # equity lost at the stop with that notional
    return min(max(f, 0.0), p[P_MAX_RISK])


@njit(cache=True)
def position_qty(p: np.ndarray, equity: float, free_margin: float, price: float, stop_distance: float,
                 frac: float, max_leverage: float) -> float:
    """Quantity losing ``frac`` of equity at the stop, capped by the free margin at the allowed leverage."""
    if equity <= 0.0 or stop_distance <= 0.0 or price <= 0.0:
        return 0.0
    qty = frac * equity / stop_distance
    lev = min(p[P_LEVERAGE], max_leverage)
    return max(min(qty, free_margin * lev / price), 0.0)


@njit(cache=True)
def exposure_qty(p: np.ndarray, equity: float, free_margin: float, price: float, max_leverage: float) -> float:
    """Quantity of ``exposure`` x equity of notional at ``price``, capped by the free margin at the allowed
    leverage (sizing="exposure")."""
    if equity <= 0.0 or price <= 0.0:
        return 0.0
    lev = min(p[P_LEVERAGE], max_leverage)
    return max(min(p[P_EXPOSURE] * equity, free_margin * lev) / price, 0.0)


@njit(cache=True)
def liquidation_horizon(p: np.ndarray) -> float:
    """Bars over which the liquidation probability is judged."""
    return p[P_LIQ_HORIZON] if p[P_LIQ_HORIZON] > 0 else p[P_MAX_HOLD]


@njit(cache=True)
def stop_and_target(p: np.ndarray, side: float, entry: float, atr: float) -> tuple[float, float]:
    """Stop at stop_atr x ATR against the position, take-profit at take_profit_r times that distance."""
    d = p[P_STOP_ATR] * atr
    return entry - side * d, entry + side * d * p[P_TAKE_PROFIT_R]


@njit(cache=True)
def passes_filters(p: np.ndarray, spread_bps: float, atr: float, price: float, quote_volume: float) -> bool:
    """Spread, volatility and liquidity filters on the bar a decision is taken at. The ATR must be known (it sets
    the stop), except with no stop and no volatility limit (the position table's rules), which do not use it."""
    if spread_bps > p[P_MAX_SPREAD] or not quote_volume >= p[P_MIN_QUOTE_VOLUME]:
        return False
    if not np.isfinite(p[P_STOP_ATR]) and p[P_MIN_VOL] <= 0.0 and p[P_MAX_VOL] == np.inf:
        return True
    vol = atr / price
    return vol >= p[P_MIN_VOL] and vol <= p[P_MAX_VOL] and np.isfinite(atr) and atr > 0.0


@njit(cache=True)
def liquidation_guard_ok(p: np.ndarray, entry: float, stop: float, liq: float) -> bool:
    """True when the liquidation price is at least liq_guard stop-distances away from the entry (no stop: True,
    there is no distance to compare)."""
    if not np.isfinite(stop):
        return True
    return abs(entry - liq) >= p[P_LIQ_GUARD] * abs(entry - stop)


@njit(cache=True)
def liquidation_probability(entry: float, liq: float, vol: float, bars: float) -> float:
    """Probability that a driftless Brownian log price with per-bar volatility `vol` touches `liq` from `entry`
    within `bars` bars (the barrier formula above); NaN when the volatility is unknown, 0 with no liquidation
    price (no leverage) or no time."""
    if not (liq > 0.0) or not (entry > 0.0) or bars <= 0.0:
        return 0.0
    if not (vol >= 0.0):  # NaN: no volatility known yet
        return np.nan
    d = abs(math.log(liq / entry))
    s = vol * math.sqrt(2.0 * bars)
    if s <= 0.0:
        return 0.0 if d > 0.0 else 1.0
    return min(1.0, math.erfc(d / s))


@njit(cache=True)
def period_ids(time_ns: int) -> tuple[int, int]:
    """UTC day number and Monday-based week number of a timestamp (ns since epoch)."""
    day = time_ns // NANOS_PER_DAY
    return day, (day + EPOCH_WEEKDAY) // 7


@njit(cache=True)
def breaker_update(p: np.ndarray, state: np.ndarray, time_ns: int, equity: float, open_equity: float) -> bool:
    """Update the breaker ``state`` at a bar's close; True while new entries are paused.

    ``time_ns`` is the bar's open time and ``open_equity`` the equity at that open (the previous close), which is
    the reference when the bar starts a new period. state = [day, day_ref, day_tripped, week, week_ref,
    week_tripped, day_end_ns, week_end_ns]; a new period resets its reference and clears its trip: resume at the
    next period. The period ends are cached so a bar inside the current day costs two comparisons, not divisions."""
    if time_ns >= state[6]:
        day, week = period_ids(time_ns)
        if day != state[0]:
            state[0], state[1], state[2], state[6] = day, open_equity, 0.0, (day + 1) * NANOS_PER_DAY
        if week != state[3]:
            state[3], state[4], state[5] = week, open_equity, 0.0
            state[7] = ((week + 1) * 7 - EPOCH_WEEKDAY) * NANOS_PER_DAY
    if equity < state[1] * (1.0 - p[P_DAILY_DD]):
        state[2] = 1.0
    if equity < state[4] * (1.0 - p[P_WEEKLY_DD]):
        state[5] = 1.0
    return state[2] > 0.0 or state[5] > 0.0


def new_breaker_state() -> np.ndarray:
    """The breaker state before the first bar (no period seen yet)."""
    return np.array([-1.0, 0.0, 0.0, -1.0, 0.0, 0.0, -1.0, -1.0])


@njit(cache=True)
def atr_and_vol(high: np.ndarray, low: np.ndarray, close: np.ndarray, n_atr: int = 14,
                n_vol: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """ATR(n_atr) with Wilder's smoothing, and the std of the last n_vol 1m simple returns, at each close (one pass).

    ATR sets the stop; the volatility scales slippage and volatility targeting. NaN until enough bars exist."""
    m = len(close)
    atr, vol = np.full(m, np.nan), np.full(m, np.nan)
    inv_atr, acc, a = 1.0 / n_atr, 0.0, 0.0
    inv_vol, bessel = 1.0 / n_vol, n_vol / (n_vol - 1.0)
    s = s2 = 0.0
    for t in range(m):
        tr = high[t] - low[t]
        if t > 0:
            tr = max(tr, abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
            r = close[t] / close[t - 1] - 1.0
            s += r
            s2 += r * r
            if t > n_vol:
                old = close[t - n_vol] / close[t - n_vol - 1] - 1.0
                s -= old
                s2 -= old * old
            if t >= n_vol:
                mean = s * inv_vol
                vol[t] = np.sqrt(max(s2 * inv_vol - mean * mean, 0.0) * bessel)
        if t < n_atr:
            acc += tr
            if t == n_atr - 1:
                a = acc * inv_atr
                atr[t] = a
        else:
            a += (tr - a) * inv_atr
            atr[t] = a
    return atr, vol
