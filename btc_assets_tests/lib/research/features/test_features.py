"""The public feature API: the registry (100+ features, 9 families), compute_features, nulls with reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.features import (
    FEATURE_NAMES,
    FEATURES,
    ROW_WARMUP_BARS_1M,
    WARMUP_BARS_1M,
    checks,
    compute_features,
    null_reasons,
    pit,
)
from btc_assets_tests.lib.research.features.conftest import real_bars

FAMILIES = {"price_action": 56, "momentum": 12, "volatility": 8, "volume_flow": 13, "order_book": 8,
            "structure": 8, "perpetual": 15, "calendar": 4, "higher_tf": 6}


@pytest.fixture(scope="module")
def sample():
    return real_bars(5)


def test_registry_declares_100_plus_features_once_each():
    assert len(FEATURES) >= 100 and len(set(FEATURE_NAMES)) == len(FEATURES)
    assert {fam: sum(f.family == fam for f in FEATURES) for fam in FAMILIES} == FAMILIES
    assert WARMUP_BARS_1M == max(f.warmup_bars_1m for f in FEATURES)
    for f in FEATURES:
        assert f.inputs and f.available and f.description, f.name
        assert all(s in pit.SOURCES for s in f.sources), f.name
    for tf in ("1m", "5m", "15m", "1h"):
        assert {f"{i}_{tf}" for i in ("rsi_14", "macd", "macd_signal", "macd_hist", "adx_14", "stoch_k")} <= set(
            FEATURE_NAMES)


def test_two_argument_call_still_works_and_is_finite_after_warmup(sample):
    one, higher = sample
    f = compute_features(one, higher)
    assert list(f.columns) == ["open_time", "available_at", *FEATURE_NAMES, "warmed_up"]
    assert int(f["warmed_up"].sum()) == len(f) - ROW_WARMUP_BARS_1M
    assert checks.not_finite_after_warmup(f, set(null_reasons(higher, None))) == {}


def test_15m_bar_used_only_after_it_closed(sample):
    f = compute_features(*sample).set_index("open_time")["ema_ratio_12_15m"]
    day = pd.Timestamp("2024-01-05", tz="UTC")
    m = pd.Timedelta(minutes=1)
    # 1m bar 00:13 closes at 00:14: the 00:00 15m bar (closes 00:15) is not known yet; at 00:14 it is.
    assert f.loc[day + 13 * m] == f.loc[day - m] and f.loc[day + 14 * m] != f.loc[day - m]


def test_4h_and_1d_values_change_only_when_their_bar_has_closed():
    one, higher = real_bars(15)
    f = compute_features(one, higher).set_index("open_time")
    m = pd.Timedelta(minutes=1)
    day = pd.Timestamp("2024-01-14", tz="UTC")
    # the 1d bar of 01-13 closes at 01-14 00:00: the 23:59 bar of 01-13 (known at 00:00) is the first to see it
    assert f.loc[day - 2 * m, "ret_1d_bar"] != f.loc[day - m, "ret_1d_bar"] == f.loc[day + 600 * m, "ret_1d_bar"]
    d13 = higher["1d"].set_index("open_time").loc[day - pd.Timedelta(days=1)]
    assert f.loc[day - m, "ret_1d_bar"] == pytest.approx(np.log(d13["close"] / d13["open"]))
    # 4h: the 04:00-08:00 bar is seen from the 07:59 row on, not before
    t = day + pd.Timedelta(hours=8)
    assert f.loc[t - 2 * m, "ret_4h_bar"] != f.loc[t - m, "ret_4h_bar"] == f.loc[t + 200 * m, "ret_4h_bar"]
    assert f["rv_1d_10"].notna().any() and f.loc[:pd.Timestamp("2024-01-11", tz="UTC"), "rv_1d_10"].isna().all()


def test_absent_sources_are_null_with_a_reason(sample):
    one, higher = sample
    reasons = null_reasons(higher, {"funding_rates": None})
    assert set(reasons) == {"order_flow_1m", "book_depth", "metrics", "funding_rates", "mark_price_1m",
                            "index_price_1m", "premium_index_1m", "liquidations"}
    assert "live data only" in reasons["liquidations"] and "silver.metrics" in reasons["metrics"]
    f = compute_features(one, higher)
    for f_ in FEATURES:
        if set(f_.sources) & set(reasons):
            assert f[f_.name].isna().all(), f_.name


def test_bad_inputs_fail_naming_the_source_and_the_fix(sample):
    one, higher = sample
    with pytest.raises(ValueError, match=r"metrics \(table silver.metrics\) lacks columns \['sum_open_interest'"):
        compute_features(one, higher, {"metrics": pd.DataFrame({"create_time": one["open_time"], "x": 1.0})})
    with pytest.raises(KeyError, match="unknown input 'trades'.*pit.py"):
        compute_features(one, higher, {"trades": one})


def test_extra_sources_may_also_travel_in_higher(sample):
    """gold's load_bars puts existing source tables next to the bars: the live path then computes the same."""
    one, higher = sample
    fund = pd.DataFrame({"funding_time": pd.date_range("2024-01-01", periods=15, freq="8h", tz="UTC"),
                         "interval_hours": 8, "rate": np.linspace(1e-4, 2e-4, 15)})
    a = compute_features(one, higher, {"funding_rates": fund})
    b = compute_features(one, {**higher, "funding_rates": fund})
    pd.testing.assert_frame_equal(a, b)
    assert a["funding_rate"].iloc[-1] == fund["rate"].iloc[-1]
