"""A first, thin vectorised backtest of a BTCUSDT perpetual futures strategy on 1m bars.

Conventions (all timestamps UTC; a bar is identified by its open time and becomes known at its close):

* ``target[t]`` is the position (in units of equity: +1 long 1x, -1 short 1x, 0 flat) decided at the CLOSE of
  bar t. It is filled at the OPEN of the next bar in ``bars`` (after a gap, the next bar that exists), so a
  decision never trades at a price it could not have seen. A target on the last bar is never filled. Bars with
  no target entry keep the previous target (0 before the first one).
* Sizing: at a fill the quantity becomes ``target * equity / open`` (equity marked at that open, before the
  fill's fee). The quantity is then held constant until the target changes, so the equity fraction drifts
  with price and no hidden rebalancing trades happen. ``position`` reports the filled target, not the drift.
* Costs: each fill pays ``taker_fee * |delta quantity| * fill price``; the fill price is the open moved against
  the trader by ``slippage_bps``. Slippage is therefore part of the gross trading PnL, fees are not.
* Funding: an event at time T charges ``quantity * price_T * rate`` to the position held at T (long pays a
  positive rate, short receives it). The position held at T is the one of the last bar opening at or before T,
  i.e. a fill at an open exactly at T happens before the funding snapshot. Mark price is not in this data, so
  ``price_T`` is the last traded price known at T: that bar's open, or its close if T falls in a gap after it.
  Events before the first bar's open or at/after the last bar's close are outside the span and ignored.
* Marking: ``equity[t]`` is the equity at the CLOSE of bar t (known at the same instant as the decision
  ``target[t]``), after the fill at that bar's open and any funding inside the bar. The last value is the
  final mark at the last close. No exit fee is charged for that mark; an open position there shows up in
  ``trades`` as a round trip with ``is_open=True``. There is no liquidation model: once equity is <= 0 new
  fills size to zero.

Accounting identity (checked by tests): ``final_equity == initial_equity + realised_pnl - fees_paid -
funding_paid`` where ``realised_pnl`` is summed from the trade legs, independently of the equity path.
The fill loop runs once per position change, not per bar; a numba engine will replace this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MINUTE = pd.Timedelta(minutes=1)
MINUTES_PER_YEAR = 525_600  # 365-day year; crypto trades 24/7
TRADE_COLUMNS = ["entry_time", "exit_time", "side", "entry_price", "exit_price", "gross_pnl", "gross_return",
                 "fees", "funding", "net_pnl", "net_return", "is_open"]


@dataclass(frozen=True)
class Costs:
    """Trading costs applied on every fill."""

    taker_fee: float = 0.0005  # 0.05 % of traded notional, both entry and exit
    slippage_bps: float = 0.0  # extra adverse price move on each fill, in basis points


@dataclass
class BacktestResult:
    """Everything ``simulate`` produced; all series are indexed by bar open_time (UTC). See module docstring."""

    equity: pd.Series  # equity at each bar's close (after that bar's fill/funding)
    benchmark: pd.Series  # buy-and-hold: long 1x filled at the first possible fill (bar 1 open), same costs
    position: pd.Series  # filled target held during each bar, in units of equity
    trades: pd.DataFrame  # one row per round trip, columns TRADE_COLUMNS
    fees_paid: pd.Series  # cumulative fees
    funding_paid: pd.Series  # cumulative funding paid (negative = received)
    metrics: dict[str, float]
    benchmark_metrics: dict[str, float]
    initial_equity: float = 10_000.0


@dataclass
class _Run:
    equity: np.ndarray
    fees: np.ndarray  # per bar
    funding: np.ndarray  # per bar
    trades: pd.DataFrame


def _bars_arrays(bars: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    missing = {"open_time", "open", "close"} - set(bars.columns)
    if missing:
        raise ValueError(f"bars is missing columns {sorted(missing)}; expected open_time, open, high, low, close")
    if len(bars) < 2:
        raise ValueError(f"bars has {len(bars)} rows; a backtest needs at least 2 (a decision and a fill)")
    times = pd.DatetimeIndex(bars["open_time"])
    if times.tz is None:
        raise ValueError("bars.open_time is tz-naive; localise it to UTC (tz_localize('UTC')) first")
    times = times.tz_convert("UTC").as_unit("ns")
    steps = np.diff(times.asi8)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ValueError(f"bars.open_time must be strictly increasing; row {i} ({times[i]}) is not after row "
                         f"{i - 1} ({times[i - 1]}); sort by open_time and drop duplicates first")
    o, c = bars["open"].to_numpy(float), bars["close"].to_numpy(float)
    bad = ~(np.isfinite(o) & np.isfinite(c) & (o > 0) & (c > 0))
    if bad.any():
        raise ValueError(f"bars has a non-positive or non-finite open/close at {times[np.flatnonzero(bad)[0]]}")
    return times, o, c


def _target_per_bar(target: pd.Series, times: pd.DatetimeIndex) -> np.ndarray:
    if not isinstance(target.index, pd.DatetimeIndex) or target.index.tz is None:
        raise ValueError("target must be indexed by tz-aware (UTC) bar open_time")
    idx = target.index.tz_convert("UTC").as_unit("ns")
    if idx.has_duplicates:
        raise ValueError(f"target has duplicate times, first {idx[idx.duplicated()][0]}; keep one decision per bar")
    values = target.to_numpy(float)
    if not np.isfinite(values).all():
        raise ValueError(f"target is NaN/inf at {idx[~np.isfinite(values)][0]}; use 0 for flat, not NaN")
    pos = times.get_indexer(idx)
    if (pos < 0).any():
        raise ValueError(f"target has a time not in bars.open_time: {idx[pos < 0][0]}; "
                         "index targets by the open_time of the bar whose close they were decided at")
    per_bar = np.full(len(times), np.nan)
    per_bar[pos] = values
    return pd.Series(per_bar).ffill().fillna(0.0).to_numpy()


def _funding_per_bar(funding: pd.DataFrame | None, times: pd.DatetimeIndex, o: np.ndarray,
                     c: np.ndarray) -> np.ndarray:
    """Sum of price_T * rate of the funding events charged to the position of each bar (per unit quantity)."""
    out = np.zeros(len(times))
    if funding is None or len(funding) == 0:
        return out
    if not {"funding_time", "rate"} <= set(funding.columns):
        raise ValueError("funding must have columns funding_time and rate (or be None for no funding)")
    ft = pd.DatetimeIndex(funding["funding_time"])
    if ft.tz is None:
        raise ValueError("funding.funding_time is tz-naive; localise it to UTC first")
    ft_ns, rate = ft.tz_convert("UTC").as_unit("ns").asi8, funding["rate"].to_numpy(float)
    if not np.isfinite(rate).all():
        raise ValueError(f"funding.rate is NaN/inf at {ft[~np.isfinite(rate)][0]}; drop or fill those rows")
    bar = np.searchsorted(times.asi8, ft_ns, side="right") - 1
    inside = (bar >= 0) & (ft_ns < times.asi8[-1] + MINUTE.value)
    bar, ft_ns, rate = bar[inside], ft_ns[inside], rate[inside]
    in_gap = ft_ns >= times.asi8[bar] + MINUTE.value  # after the bar closed, before the next one opened
    np.add.at(out, bar, np.where(in_gap, c[bar], o[bar]) * rate)
    return out


def _run(w: np.ndarray, o: np.ndarray, c: np.ndarray, ff: np.ndarray, times: pd.DatetimeIndex,
         initial: float, costs: Costs) -> _Run:
    n, slip = len(o), costs.slippage_bps / 1e4
    fill_bars = np.flatnonzero(np.diff(w, prepend=0.0) != 0)
    ffc = np.concatenate([[0.0], np.cumsum(ff)])  # ffc[j] = funding per unit quantity over bars [0, j)
    k_n = len(fill_bars)
    q_after, cash_after, price, fee, e_pre = (np.zeros(k_n) for _ in range(5))
    cash, q, last = initial, 0.0, 0
    # Sizing depends on equity at each fill, which depends on all earlier fills: a sequential loop over fills.
    for k, j in enumerate(fill_bars):
        cash -= q * (ffc[j] - ffc[last])
        e = cash + q * o[j]
        q_new = w[j] * max(e, 0.0) / o[j]
        dq = q_new - q
        p = o[j] * (1.0 + slip * np.sign(dq))
        f = costs.taker_fee * abs(dq) * p
        cash -= dq * p + f
        q_after[k], cash_after[k], price[k], fee[k], e_pre[k] = q_new, cash, p, f, e
        q, last = q_new, j
    # 1 + index of the last fill at or before each bar; slot 0 is the flat start before any fill
    seg = np.searchsorted(fill_bars, np.arange(n), side="right")
    q_bar = np.concatenate([[0.0], q_after])[seg]
    start = np.concatenate([[0], fill_bars])[seg]
    cash_bar = np.concatenate([[initial], cash_after])[seg] - q_bar * (ffc[1:] - ffc[start])
    fees = np.zeros(n)
    fees[fill_bars] = fee
    seg_end = np.append(fill_bars[1:], n)
    seg_funding = q_after * (ffc[seg_end] - ffc[fill_bars])
    trades = _trades(fill_bars, q_after, price, e_pre, seg_funding, times, c[-1], costs.taker_fee)
    return _Run(cash_bar + q_bar * c, fees, q_bar * ff, trades)


def _trades(fill_bars: np.ndarray, q_after: np.ndarray, price: np.ndarray, e_pre: np.ndarray,
            seg_funding: np.ndarray, times: pd.DatetimeIndex, last_close: float, fee_rate: float) -> pd.DataFrame:
    """Round trips: maximal runs of same-sign quantity. A flip is split into a closing and an opening leg."""
    sign = np.sign(q_after)
    prev_sign = np.concatenate([[0.0], sign[:-1]])
    new = (sign != 0) & (sign != prev_sign)
    tid = np.where(sign != 0, np.cumsum(new) - 1, -1)
    n_tr = int(new.sum())
    if n_tr == 0:
        dtypes = {"entry_time": "datetime64[ns, UTC]", "exit_time": "datetime64[ns, UTC]", "side": object,
                  "is_open": bool}
        return pd.DataFrame({col: pd.Series(dtype=dtypes.get(col, float)) for col in TRADE_COLUMNS})
    prev_tid = np.concatenate([[-1], tid[:-1]])
    q_old = np.concatenate([[0.0], q_after[:-1]])
    flip = q_old * q_after < 0
    closing = (q_old != 0) & ((q_after == 0) | flip)
    opening = q_after != 0
    leg_tid = np.concatenate([prev_tid[closing], tid[opening]])
    leg_dq = np.concatenate([-q_old[closing], np.where(flip, q_after, q_after - q_old)[opening]])
    leg_p = np.concatenate([price[closing], price[opening]])
    leg_fee = fee_rate * np.abs(leg_dq) * leg_p
    is_open = np.zeros(n_tr, bool)
    if q_after[-1] != 0:  # final mark at the last close, no fee: the equity curve marks it the same way
        is_open[-1] = True
        leg_tid, leg_dq = np.append(leg_tid, tid[-1]), np.append(leg_dq, -q_after[-1])
        leg_p, leg_fee = np.append(leg_p, last_close), np.append(leg_fee, 0.0)
    side = sign[new]
    inc = np.sign(leg_dq) == side[leg_tid]

    def total(weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        m = np.ones(len(leg_tid), bool) if mask is None else mask
        return np.bincount(leg_tid[m], weights[m], minlength=n_tr)

    gross = -total(leg_dq * leg_p)
    fees = total(leg_fee)
    funding = np.bincount(tid[tid >= 0], seg_funding[tid >= 0], minlength=n_tr)
    notional = np.abs(leg_dq) * leg_p
    with np.errstate(invalid="ignore", divide="ignore"):
        entry_price = total(notional, inc) / total(np.abs(leg_dq), inc)
        exit_price = total(notional, ~inc) / total(np.abs(leg_dq), ~inc)
    exit_ns = np.full(n_tr, (times[-1] + MINUTE).value)
    exit_ns[prev_tid[closing]] = times.asi8[fill_bars[closing]]
    entry_equity = e_pre[new]
    net = gross - fees - funding
    return pd.DataFrame({
        "entry_time": times[fill_bars[new]], "exit_time": pd.to_datetime(exit_ns, utc=True),
        "side": np.where(side > 0, "long", "short"), "entry_price": entry_price, "exit_price": exit_price,
        "gross_pnl": gross, "gross_return": gross / entry_equity, "fees": fees, "funding": funding,
        "net_pnl": net, "net_return": net / entry_equity, "is_open": is_open,
    })


def _metrics(run: _Run, w: np.ndarray, initial: float, span_minutes: float) -> dict[str, float]:
    eq = run.equity
    final = float(eq[-1])
    prev = np.concatenate([[initial], eq[:-1]])
    r = eq / prev - 1.0
    std = float(r.std(ddof=1))
    sharpe = 0.0 if not np.isfinite(std) or std == 0.0 else float(r.mean() / std * np.sqrt(MINUTES_PER_YEAR))
    path = np.concatenate([[initial], eq])
    drawdown = path / np.maximum.accumulate(path) - 1.0
    growth = final / initial
    with np.errstate(over="ignore"):  # a few minutes of gains annualise to inf; that is the honest answer
        annualised = -1.0 if growth <= 0 else float(np.expm1(np.log(growth) * MINUTES_PER_YEAR / span_minutes))
    net = run.trades["net_pnl"].to_numpy(float)
    return {
        "total_return": growth - 1.0, "annualised_return": annualised, "sharpe": sharpe,
        "max_drawdown": float(drawdown.min()), "n_trades": float(len(net)),
        "win_rate": float((net > 0).mean()) if len(net) else float("nan"),
        "fees_paid": float(run.fees.sum()), "funding_paid": float(run.funding.sum()),
        "exposure": float((w != 0).mean()), "final_equity": final,
        "realised_pnl": float(run.trades["gross_pnl"].to_numpy(float).sum()),
    }


def simulate(bars: pd.DataFrame, target: pd.Series, funding: pd.DataFrame | None, *,
             initial_equity: float = 10_000.0, costs: Costs = Costs()) -> BacktestResult:
    """Simulate ``target`` (decided at each bar's close) filled at the next bar's open. See module docstring."""
    if not initial_equity > 0:
        raise ValueError(f"initial_equity must be > 0, got {initial_equity}")
    if costs.taker_fee < 0 or costs.slippage_bps < 0:
        raise ValueError(f"costs must be non-negative, got {costs}")
    times, o, c = _bars_arrays(bars)
    tgt = _target_per_bar(target, times)
    ff = _funding_per_bar(funding, times, o, c)
    span_minutes = (times[-1] + MINUTE - times[0]) / MINUTE
    w = np.concatenate([[0.0], tgt[:-1]])  # the decision at bar t is held during bar t+1
    w_bench = np.concatenate([[0.0], np.ones(len(times) - 1)])
    run = _run(w, o, c, ff, times, initial_equity, costs)
    bench = _run(w_bench, o, c, ff, times, initial_equity, costs)

    def series(values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=times.rename("open_time"), name=name)

    return BacktestResult(
        equity=series(run.equity, "equity"), benchmark=series(bench.equity, "benchmark"),
        position=series(w, "position"), trades=run.trades,
        fees_paid=series(np.cumsum(run.fees), "fees_paid"), funding_paid=series(np.cumsum(run.funding), "funding_paid"),
        metrics=_metrics(run, w, initial_equity, span_minutes),
        benchmark_metrics=_metrics(bench, w_bench, initial_equity, span_minutes),
        initial_equity=float(initial_equity),
    )
