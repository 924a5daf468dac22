"""Market structure: distance to rolling highs and lows, position in the UTC day's range so far."""

from __future__ import annotations

import numpy as np
from numba import njit

from btc_assets.lib.research.features.rolling import ratio, rmax, rmin
from btc_assets.lib.research.features.spec import Feature

FAMILY = "structure"
WINDOWS = (60, 240, 1440)
_HLC = ("klines_1m.high", "klines_1m.low", "klines_1m.close")
_AT = "close of the 1m bar"
DAY = 1440

FEATURES: tuple[Feature, ...] = (
    *(Feature(f"dist_high_{n}", FAMILY, _HLC, n - 1, _AT, f"close / highest high of the last {n} minutes - 1")
      for n in WINDOWS),
    *(Feature(f"dist_low_{n}", FAMILY, _HLC, n - 1, _AT, f"close / lowest low of the last {n} minutes - 1")
      for n in WINDOWS),
    # The day's range needs the day's first bar in the window: at most 1439 bars back.
    Feature("day_range_position", FAMILY, _HLC, DAY - 1, _AT,
            "position of close in the UTC day's high-low range so far: 0 = low, 1 = high", "flat day so far"),
    Feature("day_open_distance", FAMILY, ("klines_1m.open", "klines_1m.close"), DAY - 1, _AT,
            "close / the UTC day's first open - 1"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    b = ctx.one
    out = {}
    for n in WINDOWS:
        out[f"dist_high_{n}"] = b.close / rmax(b.high, n) - 1.0
        out[f"dist_low_{n}"] = b.close / rmin(b.low, n) - 1.0
    # at_ns is the bar's close; the bar opening at 23:59 belongs to the day that started before it.
    day = (ctx.at_ns - 60 * 10**9) // (86_400 * 10**9)
    hi, lo, first = _day_so_far(day, b.high, b.low, b.open)
    out["day_range_position"] = ratio(b.close - lo, hi - lo)
    out["day_open_distance"] = b.close / first - 1.0
    return out


@njit(cache=True)
def _day_so_far(day: np.ndarray, high: np.ndarray, low: np.ndarray, open_: np.ndarray):
    """The day's highest high and lowest low up to each bar (a NaN bar is NaN and skipped by the later ones) and the
    day's first open that is not NaN; rows are in time order, so a day is one run of rows."""
    n = len(day)
    hi, lo, first = np.empty(n), np.empty(n), np.empty(n)
    h = lw = np.nan
    for i in range(n):
        if i == 0 or day[i] != day[i - 1]:
            h = lw = np.nan
        if not np.isnan(high[i]) and (np.isnan(h) or high[i] > h):
            h = high[i]
        if not np.isnan(low[i]) and (np.isnan(lw) or low[i] < lw):
            lw = low[i]
        hi[i] = np.nan if np.isnan(high[i]) else h  # a NaN bar stays NaN, as pandas' cummax/cummin leave it
        lo[i] = np.nan if np.isnan(low[i]) else lw
    # "first" is the day's first non-NaN open for every row of the day, later rows included
    i = 0
    while i < n:
        j = i
        f = np.nan
        while j < n and day[j] == day[i]:
            if np.isnan(f) and not np.isnan(open_[j]):
                f = open_[j]
            j += 1
        first[i:j] = f
        i = j
    return hi, lo, first
