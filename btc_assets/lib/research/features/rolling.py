"""Causal rolling helpers on float64 arrays (a window ends at the current bar; NaN until the window is full)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib


def shift(a: np.ndarray, n: int) -> np.ndarray:
    """a shifted n bars later (the value n bars ago), NaN for the first n."""
    res = np.full(len(a), np.nan)
    if n < len(a):
        res[n:] = a[: len(a) - n]
    return res


def rsum(a: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(a).rolling(n, min_periods=n).sum().to_numpy()


def rmean(a: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(a).rolling(n, min_periods=n).mean().to_numpy()


def rstd(a: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(a).rolling(n, min_periods=n).std(ddof=0).to_numpy()


def rmax(a: np.ndarray, n: int) -> np.ndarray:
    return talib.MAX(a, timeperiod=n)


def rmin(a: np.ndarray, n: int) -> np.ndarray:
    return talib.MIN(a, timeperiod=n)


def rank_pct(a: np.ndarray, n: int) -> np.ndarray:
    """Share of the last n values (current included) at or below the current one."""
    return pd.Series(a).rolling(n, min_periods=n).rank(pct=True, method="max").to_numpy()


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is zero or NaN (undefined, never a made-up 0 or inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def zscore(a: np.ndarray, n: int) -> np.ndarray:
    sd = rstd(a, n)
    return ratio(a - rmean(a, n), np.where(sd > 1e-12 * np.abs(rmean(a, n)) + 1e-300, sd, 0.0))
