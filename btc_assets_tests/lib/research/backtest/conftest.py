"""Small hand-made bar series for the backtest tests (synthetic by construction: named flat/random below)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.backtest import Costs
from btc_assets.lib.research.risk import RiskConfig

START = pd.Timestamp("2024-01-01", tz="UTC")
NO_SLIP = Costs(slippage_bps=0.0, slippage_vol_mult=0.0)


def flat_bars(n: int = 60, price: float = 40_000.0, half_range: float = 20.0) -> pd.DataFrame:
    """Synthetic: open = close = price, a constant +-half_range wick, so ATR(14) = 2 * half_range."""
    times = pd.date_range(START, periods=n, freq="1min")
    p = np.full(n, price)
    return pd.DataFrame({"open_time": times, "open": p, "high": p + half_range, "low": p - half_range, "close": p})


def random_bars(n: int = 4_000, seed: int = 1) -> pd.DataFrame:
    """Synthetic random walk, 0.08 % per minute."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=n, freq="1min")
    c = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.0005, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.0005, n))
    return pd.DataFrame({"open_time": times, "open": o, "high": h, "low": lo, "close": c})


def one_signal(bars: pd.DataFrame, at: int, side: int) -> pd.Series:
    s = pd.Series(0, index=pd.DatetimeIndex(bars["open_time"]), dtype="int8")
    s.iloc[at] = side
    return s


def random_signals(bars: pd.DataFrame, seed: int = 2, p: float = 0.05) -> pd.Series:
    rng = np.random.default_rng(seed)
    u = rng.random(len(bars))
    return pd.Series(np.where(u < p / 2, 1, np.where(u < p, -1, 0)).astype("int8"),
                     index=pd.DatetimeIndex(bars["open_time"]))


def eight_hourly_funding(bars: pd.DataFrame, rate: float = 0.0001) -> pd.DataFrame:
    t = pd.date_range(START, bars["open_time"].iloc[-1], freq="8h")
    return pd.DataFrame({"funding_time": t, "rate": rate})


@pytest.fixture
def risk_fixed() -> RiskConfig:
    return RiskConfig(sizing="fixed", fixed_fraction=0.01, liq_guard=0.0)
