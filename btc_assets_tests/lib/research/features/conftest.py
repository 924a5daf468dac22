"""Shared inputs of the feature tests: real sample bars (parsed once per session) and synthetic full sources."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from btc_assets.lib.data import bars
from btc_assets_tests.conftest import real_klines
from btc_assets_tests.lib.research.features import synthetic


def real_bars(days: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    one = pd.concat([bars.silver_klines_1m(real_klines(d), d, "s").bars for d in dates], ignore_index=True)
    return one, {i: bars.resample_bars(one, i) for i in ("5m", "15m", "1h", "4h", "1d")}


@pytest.fixture(scope="session")
def real20() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """20 real days (2024-01-01..20): longer than the slowest warm-up (16.7 days)."""
    return real_bars(20)


@pytest.fixture(scope="session")
def synth() -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """4 synthetic days with every source present."""
    one = synthetic.klines_1m("2024-03-01", 4 * 1440)
    return one, synthetic.higher_bars(one), synthetic.sources(one)
