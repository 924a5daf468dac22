"""Turn bars, signals, funding and an optional mark-price series into the flat arrays the engine loops over.

Everything is checked here, once, with errors that name the row and say what to do: the compiled loop trusts
its inputs. Conventions (UTC; a bar is identified by its open time and known at its close):
* ``signals`` is an entry direction per bar (+1 long, -1 short, 0 none) decided at that bar's close. Bars without
  an entry are 0: a signal is an event, never carried forward.
* a funding settlement at time T is charged at the bar it falls in (opening at T, or, for bars longer than the
  8-hour funding interval such as daily bars, opening before T and lasting past it: the position held over the
  bar pays it), at that bar's mark open; a settlement in a gap between bars is charged at the next bar;
  settlements outside the bars are ignored.
* ``mark`` (open_time, open, high, low, close of the mark price) is used where given; bars it does not cover fall
  back to the traded price, and ``mark_source`` says which was used ("mark", "last", or "mixed").
* spread: a ``spread_bps`` column on the bars is used if present; otherwise the bar's high-low range in bps is the
  (pessimistic) proxy, because the 1m klines carry no book data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from btc_assets.lib.research.risk import atr_and_vol

MINUTE_NS = 60_000_000_000


@dataclass
class Inputs:
    times: pd.DatetimeIndex
    time_ns: np.ndarray
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    m_o: np.ndarray
    m_h: np.ndarray
    m_l: np.ndarray
    atr: np.ndarray
    vol: np.ndarray
    spread_bps: np.ndarray
    quote_vol: np.ndarray
    signal: np.ndarray
    funding_rate: np.ndarray
    scale: np.ndarray  # each bar's entry size factor in (0, 1] (1 without a sizing input)
    mark_source: str
    spread_source: str


def _utc_index(values, what: str) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        raise ValueError(f"{what} is tz-naive; localise it to UTC (tz_localize('UTC')) first")
    return idx.tz_convert("UTC").as_unit("ns")


@njit(cache=True)
def _first_bad(time_ns: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> tuple[int, int]:
    """First row whose time is not after the previous one, first row with a bad price; -1 when none (one pass)."""
    bad_time, bad_price = -1, -1
    for t in range(len(o)):
        if bad_time < 0 and t > 0 and time_ns[t] <= time_ns[t - 1]:
            bad_time = t
        ok = lo[t] > 0 and h[t] >= lo[t] and o[t] > 0 and c[t] > 0 and h[t] < np.inf
        if bad_price < 0 and not ok:  # NaN fails every comparison, so it lands here too
            bad_price = t
    return bad_time, bad_price


def _bars(bars: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    missing = {"open_time", "open", "high", "low", "close"} - set(bars.columns)
    if missing:
        raise ValueError(f"bars is missing columns {sorted(missing)}; expected open_time, open, high, low, close")
    if len(bars) < 2:
        raise ValueError(f"bars has {len(bars)} rows; a backtest needs at least 2 (a decision and a fill)")
    times = _utc_index(bars["open_time"], "bars.open_time")
    o, h, lo, c = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    bad_time, bad_price = _first_bad(times.asi8, o, h, lo, c)
    if bad_time >= 0:
        raise ValueError(f"bars.open_time must be strictly increasing; row {bad_time} ({times[bad_time]}) is not after "
                         f"row {bad_time - 1}; sort by open_time and drop duplicates first")
    if bad_price >= 0:
        raise ValueError(f"bars has a non-finite, non-positive or high<low price at row {bad_price} "
                         f"({times[bad_price]}): fix or drop that bar")
    return times, o, h, lo, c


def _signal(signals: pd.Series, times: pd.DatetimeIndex) -> np.ndarray:
    idx = _utc_index(signals.index, "signals.index").asi8
    values = signals.to_numpy()
    v8 = values.astype(np.int8)
    if not (np.array_equal(v8, values) and np.abs(v8).max(initial=0) <= 1):
        bad = values[~np.isin(values, (-1, 0, 1))]
        raise ValueError(f"signals must be -1, 0 or +1 (entry direction); got {bad[0] if len(bad) else 'NaN'}"
                         " — convert model classes with btc_assets.lib.research.backtest.signals_from_classes")
    if len(idx) == len(times) and np.array_equal(idx, times.asi8):  # the usual case, and 10x cheaper than hashing
        return v8
    order = np.sort(idx)
    if (np.diff(order) == 0).any():
        raise ValueError(f"signals has duplicate times, first {pd.Timestamp(order[np.diff(order) == 0][0], tz='UTC')}; "
                         "keep one per bar")
    pos = np.minimum(np.searchsorted(times.asi8, idx), len(times) - 1)  # bar times are strictly increasing
    missing = times.asi8[pos] != idx
    if missing.any():
        raise ValueError(f"signals has a time not in bars.open_time: {pd.Timestamp(idx[missing][0], tz='UTC')}; "
                         "index signals by the open_time of the bar whose close they were decided at")
    out = np.zeros(len(times), np.int8)
    out[pos] = v8
    return out


def _funding(funding: pd.DataFrame | None, time_ns: np.ndarray) -> np.ndarray:
    out = np.zeros(len(time_ns))
    if funding is None or len(funding) == 0:
        return out
    if not {"funding_time", "rate"} <= set(funding.columns):
        raise ValueError("funding must have columns funding_time and rate (or be None for no funding)")
    ft = _utc_index(funding["funding_time"], "funding.funding_time").asi8
    rate = funding["rate"].to_numpy(np.float64)
    if not np.isfinite(rate).all():
        raise ValueError(f"funding.rate is NaN/inf at {pd.Timestamp(ft[~np.isfinite(rate)][0], tz='UTC')}")
    bar = np.searchsorted(time_ns, ft, side="left")
    if len(time_ns) > 1:  # a settlement inside a bar (open < T < open + the bar's length) belongs to that bar
        length = int(np.median(np.diff(time_ns)))
        before = np.searchsorted(time_ns, ft, side="right") - 1
        within = (before >= 0) & (ft < time_ns[np.maximum(before, 0)] + length)
        bar = np.where(within, before, bar)
    inside = (bar < len(time_ns)) & (ft >= time_ns[0])
    np.add.at(out, bar[inside], rate[inside])
    return out


def _mark(mark: pd.DataFrame | None, times: pd.DatetimeIndex, o: np.ndarray, h: np.ndarray,
          lo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    if mark is None or len(mark) == 0:
        return o, h, lo, "last"
    m = mark.set_index(_utc_index(mark["open_time"], "mark.open_time")).reindex(times)
    have = m["open"].notna().to_numpy()
    pick = [np.where(have, m[k].to_numpy(np.float64), last)
            for k, last in (("open", o), ("high", h), ("low", lo))]
    return pick[0], pick[1], pick[2], "mark" if have.all() else ("last" if not have.any() else "mixed")


def _scale(scale: pd.Series | None, times: pd.DatetimeIndex) -> np.ndarray:
    """The size factor of each bar: `scale` by bar open time (a bar it lacks: 1), each in (0, 1]."""
    if scale is None:
        return np.ones(len(times))
    idx = _utc_index(scale.index, "size_scale.index")
    values = pd.Series(scale.to_numpy(np.float64), index=idx)
    if values.index.has_duplicates:
        raise ValueError("size_scale has duplicate times: one factor per bar")
    bad = values[~((values > 0) & (values <= 1))]
    if len(bad):
        raise ValueError(f"size_scale must be in (0, 1] (a factor on the rules' size); got {bad.iloc[0]!r} at "
                         f"{bad.index[0]}")
    return values.reindex(times).fillna(1.0).to_numpy()


def prepare(bars: pd.DataFrame, signals: pd.Series, funding: pd.DataFrame | None,
            mark: pd.DataFrame | None = None, scale: pd.Series | None = None) -> Inputs:
    times, o, h, lo, c = _bars(bars)
    time_ns = times.asi8
    m_o, m_h, m_l, mark_source = _mark(mark, times, o, h, lo)
    if "spread_bps" in bars.columns:
        spread, spread_source = bars["spread_bps"].to_numpy(np.float64), "spread_bps column"
    else:
        spread, spread_source = (h - lo) / c * 1e4, "high-low range proxy (no book data)"
    qv = bars["quote_volume"].to_numpy(np.float64) if "quote_volume" in bars.columns else np.full(len(c), np.inf)
    atr, vol = atr_and_vol(h, lo, c, 14, 60)
    return Inputs(times, time_ns, o, h, lo, c, m_o, m_h, m_l, atr, vol, spread,
                  qv, _signal(signals, times), _funding(funding, time_ns), _scale(scale, times), mark_source,
                  spread_source)
