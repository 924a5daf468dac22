"""Performance metrics of a backtest, beside buy-and-hold and a random-entry strategy, and by market regime.

Sharpe, Sortino and the probabilistic Sharpe come from *daily* returns (equity at each UTC day's last close), never
from 1m bars (whose autocorrelation and intraday seasonality inflate an annualised figure), annualised with a
365-day year (crypto trades 24/7). A period shorter than a year is not annualised: `annualised_return` and
`calmar` are n/a and `period_days` says how long it was. The probabilistic Sharpe ratio (Bailey & López de Prado)
is the probability that the true Sharpe exceeds 0 given the number of days, their skew and kurtosis; the deflated Sharpe raises that bar to the best Sharpe expected from ``n_trials`` unskilled trials
(the number of model versions / configurations tried), so it shrinks as more things were tried.
Regimes are labelled point-in-time from the trailing 24 h return: bull above +``regime_threshold``, bear below
minus it, sideways between (the first day, without 24 h of history, is sideways).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from btc_assets.lib.research.backtest.simulation import BacktestResult, simulate

MINUTES_PER_YEAR = 525_600
DAYS_PER_YEAR = 365
EULER_GAMMA = 0.5772156649
_N = NormalDist()


@dataclass
class Evaluation:
    strategy: dict[str, float]
    buy_and_hold: dict[str, float]
    random_entry: dict[str, float]
    by_regime: pd.DataFrame  # one row per regime: share of time, returns of each, trades and their win rate
    buy_and_hold_equity: pd.Series
    random_equity: pd.Series
    regime: pd.Series  # per bar: "bull", "bear", "sideways"


def _streaks(wins: np.ndarray) -> tuple[int, int]:
    best = {True: 0, False: 0}
    run, prev = 0, None
    for w in wins:
        run = run + 1 if w == prev else 1
        prev = w
        best[bool(w)] = max(best[bool(w)], run)
    return best[True], best[False]


def daily_returns(equity: np.ndarray, initial: float, times: pd.DatetimeIndex) -> np.ndarray:
    """Returns of each UTC day from the equity at its last close (the first day against the initial equity)."""
    if len(equity) == 0:
        return np.zeros(0)
    last = pd.Series(np.asarray(equity, float), index=pd.DatetimeIndex(times).floor("D")).groupby(level=0).last()
    path = np.concatenate([[initial], last.to_numpy()])
    return path[1:] / path[:-1] - 1.0


def sharpe_stats(r: np.ndarray, n_trials: int = 1, periods_per_year: float = DAYS_PER_YEAR
                 ) -> tuple[float, float, float]:
    """(annualised Sharpe, probabilistic Sharpe vs 0, deflated Sharpe for n_trials) of per-period returns r (daily
    by default)."""
    t = len(r)
    sd = float(r.std(ddof=1)) if t > 1 else 0.0
    if not sd > 0:
        return 0.0, float("nan"), float("nan")
    sr = float(r.mean()) / sd
    z = (r - r.mean()) / sd
    skew, kurt = float((z**3).mean()), float((z**4).mean())
    denom = math.sqrt(max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 1e-12))
    psr = _N.cdf(sr * math.sqrt(t - 1) / denom)
    if n_trials <= 1:
        return sr * math.sqrt(periods_per_year), psr, psr
    sd_sr = math.sqrt((1.0 + 0.5 * sr * sr) / (t - 1))  # standard error of a per-bar Sharpe estimate
    sr0 = sd_sr * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials)
                   + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e)))
    return sr * math.sqrt(periods_per_year), psr, _N.cdf((sr - sr0) * math.sqrt(t - 1) / denom)


def summarise(equity: np.ndarray, initial: float, times: pd.DatetimeIndex, trades: pd.DataFrame, fees: float,
              funding: float, exposure: float, n_trials: int = 1, bar_minutes: float = 1.0) -> dict[str, float]:
    """The headline metrics of one equity path (equity at each close of bars `bar_minutes` long) and its trades."""
    path = np.concatenate([[initial], equity])
    span_min = (times[-1] - times[0]).total_seconds() / 60 + bar_minutes
    period_days = span_min / 1440
    growth = path[-1] / initial
    with np.errstate(over="ignore"):
        annual = -1.0 if growth <= 0 else float(np.expm1(np.log(growth) * MINUTES_PER_YEAR / span_min))
    if period_days < DAYS_PER_YEAR:  # shorter than a year: not annualised (a month's return x 12 is no forecast)
        annual = float("nan")
    r = daily_returns(equity, initial, times)
    sharpe, psr, dsr = sharpe_stats(r, n_trials)
    down = r[r < 0]
    dd_sd = math.sqrt(float((down**2).sum()) / len(r)) if len(r) else 0.0
    dd = path / np.maximum.accumulate(path) - 1.0
    under = dd < 0
    # Longest stretch under water, in bars -> days.
    edges = np.diff(np.concatenate([[0], under.astype(np.int8), [0]]))
    longest = int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max()) if under.any() else 0
    net = trades["net_pnl"].to_numpy(float) if len(trades) else np.zeros(0)
    gains, losses = net[net > 0].sum(), -net[net < 0].sum()
    win_streak, loss_streak = _streaks(net > 0)
    turnover = float((trades["qty"] * (trades["entry_price"] + trades["exit_price"])).sum()) if len(trades) else 0.0
    max_dd = float(dd.min())
    return {
        "total_return": float(growth - 1.0), "annualised_return": annual, "sharpe": sharpe,
        "sortino": float(r.mean() / dd_sd * math.sqrt(DAYS_PER_YEAR)) if dd_sd > 0 else 0.0,
        "calmar": annual / -max_dd if max_dd < 0 and np.isfinite(annual) else float("nan"), "max_drawdown": max_dd,
        "period_days": period_days, "days_of_returns": float(len(r)),
        "max_drawdown_days": longest * bar_minutes / 1440.0, "n_trades": float(len(net)),
        "win_rate": float((net > 0).mean()) if len(net) else float("nan"),
        "profit_factor": float(gains / losses) if losses > 0 else float("nan"),
        "expectancy": float(net.mean()) if len(net) else float("nan"),
        "avg_r": float(trades["r_multiple"].mean()) if len(trades) and "r_multiple" in trades else float("nan"),
        "exposure": exposure, "turnover": turnover / initial, "fees_paid": fees, "funding_paid": funding,
        "longest_win_streak": float(win_streak), "longest_loss_streak": float(loss_streak),
        "probabilistic_sharpe": psr, "deflated_sharpe": dsr, "final_equity": float(path[-1]),
        "realised_pnl": float(trades["gross_pnl"].sum()) if len(trades) else 0.0,
    }


def buy_and_hold(result: BacktestResult) -> tuple[pd.Series, pd.DataFrame, float, float]:
    """Long 1x from the first possible fill (bar 1's open), taker fee in and no exit fee, paying the same funding."""
    o, c = result.open.to_numpy(), result.close.to_numpy()
    fee = result.costs.taker_fee * result.initial_equity
    qty = (result.initial_equity - fee) / o[1]
    fund = np.cumsum(np.concatenate([[0.0], qty * o[1:] * result.funding_rate[1:]]))
    eq = np.concatenate([[result.initial_equity], result.initial_equity - fee + qty * (c[1:] - o[1])]) - fund
    gross = qty * (c[-1] - o[1])
    trade = pd.DataFrame({"net_pnl": [gross - fee - fund[-1]], "gross_pnl": [gross], "qty": [qty],
                          "entry_price": [o[1]], "exit_price": [c[-1]], "r_multiple": [np.nan]})
    return pd.Series(eq, result.equity.index, name="buy_and_hold"), trade, fee, float(fund[-1])


def regimes(close: pd.Series, threshold: float = 0.02) -> pd.Series:
    c = close.to_numpy()
    past = np.concatenate([np.full(1440, np.nan), c[:-1440]])[: len(c)]
    r = c / past - 1.0
    return pd.Series(np.where(r > threshold, "bull", np.where(r < -threshold, "bear", "sideways")), close.index,
                     name="regime")


def evaluate(result: BacktestResult, bars: pd.DataFrame, funding: pd.DataFrame | None, *, mark=None,
             n_trials: int = 1, seed: int = 0, regime_threshold: float = 0.02) -> Evaluation:
    """Metrics of ``result`` beside buy-and-hold and a random-entry run with as many entries, split by regime."""
    times = pd.DatetimeIndex(result.equity.index)
    init = result.initial_equity
    strat = summarise(result.equity.to_numpy(), init, times, result.trades, float(result.fees.sum()),
                      float(result.funding.sum()), result.exposure, n_trials)
    bh_eq, bh_trade, bh_fee, bh_fund = buy_and_hold(result)
    bh = summarise(bh_eq.to_numpy(), init, times, bh_trade, bh_fee, bh_fund, 1.0)
    rng = np.random.default_rng(seed)
    n_entries = len(result.trades)
    longs = float((result.trades["side"] == "long").mean()) if n_entries else 0.5
    sig = np.zeros(len(times), np.int8)
    at = rng.choice(len(times) - 1, size=min(n_entries, len(times) - 1), replace=False)
    sig[at] = np.where(rng.random(len(at)) < longs, 1, -1)
    rnd = simulate(bars, pd.Series(sig, times), funding, mark=mark, initial_equity=init, costs=result.costs,
                   risk=result.risk, rules=result.rules)
    rnd_m = summarise(rnd.equity.to_numpy(), init, times, rnd.trades, float(rnd.fees.sum()),
                      float(rnd.funding.sum()), rnd.exposure)
    reg = regimes(result.close, regime_threshold)
    rows = []
    for name in ("bull", "bear", "sideways"):
        mask = (reg == name).to_numpy()
        def ret(eq: pd.Series) -> float:
            r = np.log(np.concatenate([[init], eq.to_numpy()]))
            return float(np.expm1(np.diff(r)[mask].sum()))
        entered = result.trades[reg.reindex(result.trades["entry_time"]).to_numpy() == name]
        rows.append({"regime": name, "share_of_time": float(mask.mean()), "strategy_return": ret(result.equity),
                     "buy_and_hold_return": ret(bh_eq), "random_entry_return": ret(rnd.equity),
                     "trades": len(entered),
                     "win_rate": float((entered["net_pnl"] > 0).mean()) if len(entered) else np.nan,
                     "net_pnl": float(entered["net_pnl"].sum())})
    return Evaluation(strat, bh, rnd_m, pd.DataFrame(rows).set_index("regime"), bh_eq,
                      rnd.equity.rename("random_entry"), reg)
