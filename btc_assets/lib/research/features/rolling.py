"""Causal rolling helpers on float64 arrays (a window ends at the current bar; NaN until the window is full).

The sums, means and standard deviations are compiled loops (numba, cached on disk) that make the same floating-point
operations in the same order as pandas' fixed-window rolling (Kahan-compensated adds and removes, Welford's variance,
the exact value of a window of one repeated value), so they return pandas' numbers to the last bit (tested) at a
fraction of its per-call cost: the point-in-time audit and the live decision step recompute every feature on short
windows, where that cost dominated.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from btc_assets.lib.research.features.ta import talib


def shift(a: np.ndarray, n: int) -> np.ndarray:
    """a shifted n bars later (the value n bars ago), NaN for the first n."""
    res = np.full(len(a), np.nan)
    if n < len(a):
        res[n:] = a[: len(a) - n]
    return res


@njit(cache=True)
def _rolling_sum_mean(a: np.ndarray, n: int, mean: bool) -> np.ndarray:
    out = np.empty(len(a))
    nobs, neg, same = 0, 0, 0
    total, c_add, c_remove = 0.0, 0.0, 0.0
    prev = a[0] if len(a) else np.nan
    for i in range(len(a)):
        if i >= n:  # the value leaving the window, removed before the new one is added
            old = a[i - n]
            if not np.isnan(old):
                nobs -= 1
                y = -old - c_remove
                t = total + y
                c_remove = t - total - y
                total = t
                if old < 0:
                    neg -= 1
        v = a[i]
        if not np.isnan(v):
            nobs += 1
            y = v - c_add
            t = total + y
            c_add = t - total - y
            total = t
            if v < 0:
                neg += 1
            same = same + 1 if v == prev else 1
            prev = v
        if nobs < n or nobs == 0:
            out[i] = np.nan
        elif not mean:
            out[i] = prev * nobs if same >= nobs else total
        else:
            r = total / nobs
            if same >= nobs:
                r = prev
            elif neg == 0 and r < 0:
                r = 0.0
            elif neg == nobs and r > 0:
                r = 0.0
            out[i] = r
    return out


@njit(cache=True)
def _rolling_var(a: np.ndarray, n: int, ddof: int) -> np.ndarray:
    out = np.empty(len(a))
    nobs, same = 0, 0
    mean_x, ssqdm, c_add, c_remove = 0.0, 0.0, 0.0, 0.0
    prev = a[0] if len(a) else np.nan
    minp = max(n, 1)
    for i in range(len(a)):
        if i >= n:
            old = a[i - n]
            if not np.isnan(old):
                nobs -= 1
                if nobs:
                    prev_mean = mean_x - c_remove
                    y = old - c_remove
                    t = y - mean_x
                    c_remove = t + mean_x - y
                    mean_x -= t / nobs
                    ssqdm -= (old - prev_mean) * (old - mean_x)
                else:
                    mean_x, ssqdm = 0.0, 0.0
        v = a[i]
        if not np.isnan(v):
            same = same + 1 if v == prev else 1
            prev = v
            nobs += 1
            prev_mean = mean_x - c_add
            y = v - c_add
            t = y - mean_x
            c_add = t + mean_x - y
            mean_x += t / nobs
            ssqdm += (v - prev_mean) * (v - mean_x)
        if nobs >= minp and nobs > ddof:
            out[i] = 0.0 if (nobs == 1 or same >= nobs) else ssqdm / (nobs - ddof)
        else:
            out[i] = np.nan
    return out


@njit(cache=True)
def _rolling_rank_pct(a: np.ndarray, n: int) -> np.ndarray:
    """Share of the window's values at or below the current one; NaN unless the window holds n numbers.

    The window's values are counted in a Fenwick tree over the array's distinct values: O(log m) per bar."""
    out = np.full(len(a), np.nan)
    finite = a[~np.isnan(a)]
    if len(finite) == 0:
        return out
    levels = np.unique(finite)
    m = len(levels)
    tree = np.zeros(m + 1, dtype=np.int64)
    pos = np.searchsorted(levels, a)  # a value's level (meaningless where a is NaN, never read there)
    size = 0
    for i in range(len(a)):
        if i >= n and not np.isnan(a[i - n]):
            k = pos[i - n] + 1
            while k <= m:
                tree[k] -= 1
                k += k & -k
            size -= 1
        if np.isnan(a[i]):
            continue
        k = pos[i] + 1
        while k <= m:
            tree[k] += 1
            k += k & -k
        size += 1
        if size >= n:
            at_or_below, k = 0, pos[i] + 1
            while k > 0:
                at_or_below += tree[k]
                k -= k & -k
            out[i] = at_or_below / size
    return out


def _floats(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def rsum(a: np.ndarray, n: int) -> np.ndarray:
    return _rolling_sum_mean(_floats(a), n, False)


def rmean(a: np.ndarray, n: int) -> np.ndarray:
    return _rolling_sum_mean(_floats(a), n, True)


def rstd(a: np.ndarray, n: int) -> np.ndarray:
    var = _rolling_var(_floats(a), n, 0)
    return np.sqrt(np.maximum(var, 0.0), where=~np.isnan(var), out=np.full(len(var), np.nan))


def rmax(a: np.ndarray, n: int) -> np.ndarray:
    return talib.MAX(a, timeperiod=n)


def rmin(a: np.ndarray, n: int) -> np.ndarray:
    return talib.MIN(a, timeperiod=n)


def rank_pct(a: np.ndarray, n: int) -> np.ndarray:
    """Share of the last n values (current included) at or below the current one."""
    return _rolling_rank_pct(_floats(a), n)


@njit(cache=True)
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.empty(len(num))
    for i in range(len(num)):
        out[i] = num[i] / den[i] if den[i] != 0 else np.nan
    return out


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is zero or NaN (undefined, never a made-up 0 or inf). One compiled pass: the
    features call it a few dozen times per recomputation, where numpy's temporaries and error-state switch were most
    of its cost."""
    num, den = _floats(num), _floats(den)
    if num.shape != den.shape or num.ndim != 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    return _ratio(num, den)


def zscore(a: np.ndarray, n: int) -> np.ndarray:
    sd = rstd(a, n)
    return ratio(a - rmean(a, n), np.where(sd > 1e-12 * np.abs(rmean(a, n)) + 1e-300, sd, 0.0))
