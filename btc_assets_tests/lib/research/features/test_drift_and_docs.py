"""Drift (PSI) names a feature whose distribution moved; docs/FEATURES.md and the gold schema follow the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.data import schemas
from btc_assets.lib.research.features import FEATURE_NAMES, FEATURES, compute_features, docs, drift
from btc_assets_tests.lib.research.features import synthetic


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000), rng.normal(0, 1, 2000)
    assert drift.psi(a, b) < 0.05
    assert drift.psi(a, b + 2.0) > drift.PSI_DRIFT
    assert np.isnan(drift.psi(a, np.full(2000, np.nan)))  # absent source: no verdict, not a drift


def test_drift_by_day_names_the_feature_that_moved():
    one = synthetic.klines_1m("2024-03-01", 14 * 1440)
    full = compute_features(one, synthetic.higher_bars(one))
    last = pd.Timestamp("2024-03-14", tz="UTC")
    moved = full.copy()
    moved.loc[moved["open_time"] >= last, "taker_buy_ratio"] += 0.3
    assert "taker_buy_ratio" not in drift.drift_by_day(full, [last]).get("2024-03-14", {})
    assert "taker_buy_ratio" in drift.drift_by_day(moved, [last])["2024-03-14"]


def test_docs_are_generated_from_the_registry():
    text = docs.render()
    assert all(f"| `{f.name}` | {f.family} |" in text for f in FEATURES)
    assert docs.main(["--check"]) == 0, "docs/FEATURES.md is stale: python -m btc_assets.lib.research.features.docs"


def test_gold_schema_has_one_column_per_feature():
    cols = list(schemas.GOLD_FEATURES.columns)
    assert cols == ["open_time", "available_at", *FEATURE_NAMES, "warmed_up"]
