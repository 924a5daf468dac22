"""Chronological splits with purges, reproducible XGBoost training, baselines, and a leak the evaluation exposes."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import xgb
from btc_assets.lib.research.models.evaluation import classification_metrics, majority_baseline, persistence_baseline


def synthetic(n=6000, seed=0):
    """Synthetic rows (not market data): a weak real signal in f0, noise in f1."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    f0, f1 = rng.normal(size=n), rng.normal(size=n)
    score = 0.8 * f0 + rng.normal(size=n)
    label = np.where(score > 0.7, 2, np.where(score < -0.7, 0, 1))
    return pd.DataFrame({"open_time": t, "f0": f0, "f1": f1, "label": label})


def test_split_is_chronological_with_purges_and_no_overlap():
    s = xgb.chronological_split(synthetic(), validation_fraction=0.2, test_fraction=0.2, purge_minutes=3)
    assert s.train["open_time"].max() + pd.Timedelta(minutes=3) < s.validation["open_time"].min()
    assert s.validation["open_time"].max() + pd.Timedelta(minutes=3) < s.test["open_time"].min()
    assert not set(s.train["open_time"]) & set(s.test["open_time"])


def test_split_refuses_too_little_data():
    with pytest.raises(ValueError, match="not enough rows"):
        xgb.chronological_split(synthetic(3), validation_fraction=0.2, test_fraction=0.2, purge_minutes=3)


def test_training_is_reproducible_and_beats_majority_on_learnable_data():
    df = synthetic()
    s = xgb.chronological_split(df, validation_fraction=0.2, test_fraction=0.2, purge_minutes=3)
    p = xgb.XgbParams(n_estimators=60, seed=3)
    a = xgb.predict_proba(xgb.train(s.train, s.validation, ["f0", "f1"], p), s.test, ["f0", "f1"])
    b = xgb.predict_proba(xgb.train(s.train, s.validation, ["f0", "f1"], p), s.test, ["f0", "f1"])
    np.testing.assert_array_equal(a, b)
    m = classification_metrics(s.test["label"].to_numpy(), a)
    base = majority_baseline(s.train["label"].to_numpy(), s.test["label"].to_numpy())
    assert m["log_loss"] < base["log_loss"]


def test_a_label_leaked_into_the_features_is_exposed_by_an_implausible_score():
    df = synthetic()
    df["leak"] = df["label"] + np.random.default_rng(0).normal(scale=0.01, size=len(df))
    s = xgb.chronological_split(df, validation_fraction=0.2, test_fraction=0.2, purge_minutes=3)
    p = xgb.XgbParams(n_estimators=60)
    honest = classification_metrics(s.test["label"], xgb.predict_proba(xgb.train(s.train, s.validation, ["f0", "f1"], p), s.test, ["f0", "f1"]))
    leaky = classification_metrics(s.test["label"], xgb.predict_proba(xgb.train(s.train, s.validation, ["f0", "f1", "leak"], p), s.test, ["f0", "f1", "leak"]))
    assert leaky["accuracy"] > 0.99 > honest["accuracy"] + 0.2


def test_metrics_and_persistence_baseline_by_hand():
    y = np.array([0, 1, 2, 1])
    proba = np.eye(3)[y] * 0.9 + 0.1 / 3
    m = classification_metrics(y, proba)
    assert m["accuracy"] == 1.0 and m["precision_buy"] == 1.0 and m["f1_macro"] == 1.0
    pb = persistence_baseline(np.array([2, 2, 2, 2, 2]), horizon=3)
    assert pb["accuracy"] == 1.0
