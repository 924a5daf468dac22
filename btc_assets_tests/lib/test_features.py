"""Gold features: point-in-time by construction, tested by prefix invariance and a deliberate leak."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib import bars
from btc_assets.lib.features import FEATURE_NAMES, WARMUP_BARS_1M, compute_features
from btc_assets_tests.conftest import real_klines

DAYS = [dt.date(2024, 1, d) for d in range(1, 6)]


@pytest.fixture(scope="module")
def sample():
    one = pd.concat([bars.silver_klines_1m(real_klines(d), d, "s").bars for d in DAYS], ignore_index=True)
    higher = {i: bars.resample_bars(one, i) for i in ("5m", "15m", "1h")}
    return one, higher


def until(one, higher, cutoff):
    step = {"5m": "5min", "15m": "15min", "1h": "1h"}
    h = {i: df[df["open_time"] + pd.Timedelta(step[i]) <= cutoff] for i, df in higher.items()}
    return compute_features(one[one["open_time"] + pd.Timedelta(minutes=1) <= cutoff], h)


def test_at_least_twelve_features_finite_after_warmup(sample):
    f = compute_features(*sample)
    assert len(FEATURE_NAMES) >= 12
    warm = f[f["warmed_up"]]
    assert len(warm) == len(f) - WARMUP_BARS_1M
    strict = [c for c in FEATURE_NAMES if c not in {"taker_buy_ratio", "taker_buy_ratio_15", "volume_z_60"}]
    assert np.isfinite(warm[strict].to_numpy()).all()


@pytest.mark.parametrize("minute", [4 * 1440 + 7, 4 * 1440 + 14, 4 * 1440 + 60, 5 * 1440 - 1])
def test_prefix_invariance_every_feature(sample, minute):
    """A row computed with data up to its own close equals the row computed on the whole sample."""
    one, higher = sample
    full = compute_features(one, higher).set_index("open_time")
    t = one["open_time"].iloc[minute]
    row = until(one, higher, t + pd.Timedelta(minutes=1)).set_index("open_time").loc[t, FEATURE_NAMES]
    pd.testing.assert_series_equal(row, full.loc[t, FEATURE_NAMES], check_names=False, rtol=1e-9)


def test_15m_bar_used_only_after_it_closed(sample):
    one, higher = sample
    f = compute_features(one, higher).set_index("open_time")
    day = pd.Timestamp("2024-01-05", tz="UTC")
    # 1m bar 00:13 closes at 00:14: the 00:00 15m bar (closes 00:15) is not known yet; at 00:14 (closes 00:15) it is.
    before, at_close = f.loc[day + pd.Timedelta(minutes=13), "trend_15m"], f.loc[day + pd.Timedelta(minutes=14), "trend_15m"]
    prev = f.loc[day - pd.Timedelta(minutes=1), "trend_15m"]
    assert before == prev and at_close != prev


def test_a_leaky_feature_is_caught_by_prefix_invariance(sample):
    one, higher = sample

    def leaky(b, h):
        out = compute_features(b, h)
        out["ret_1"] = np.log(b["close"].shift(-1) / b["close"]).to_numpy()  # the next bar's return: a leak
        return out

    t = one["open_time"].iloc[4 * 1440 + 30]
    full = leaky(one, higher).set_index("open_time").loc[t, "ret_1"]
    cut = one[one["open_time"] <= t]
    pit = leaky(cut, {k: v[v["open_time"] < t] for k, v in higher.items()}).set_index("open_time").loc[t, "ret_1"]
    assert np.isnan(pit) and not np.isnan(full)  # the check in gold would flag this row
