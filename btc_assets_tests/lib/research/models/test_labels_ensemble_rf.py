"""Triple-barrier labels, the agree-only ensemble and the daily random-forest reference."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.labels import BUY, HOLD, SELL, LabelConfig, balance_by_partition, triple_barrier_labels
from btc_assets.lib.research.models import ensemble, rf_daily


def bars(closes, highs=None, lows=None):
    c = np.asarray(closes, dtype=float)
    t = pd.date_range("2024-01-01", periods=len(c), freq="1min", tz="UTC")
    return pd.DataFrame({"open_time": t, "close": c, "high": c if highs is None else highs,
                         "low": c if lows is None else lows})


def test_triple_barrier_takes_the_first_barrier_touched_within_the_time_limit():
    base = [100.0 + 0.1 * (i % 2) for i in range(30)]  # ATR ~0.1 after warm-up
    up = base + [100.05, 100.5, 99.0] + [100.0] * 10  # take-profit (2 ATR) hit first, then the stop
    lab = triple_barrier_labels(bars(up), horizon=5, take_profit=2, stop_loss=2, atr_period=14)
    assert lab["label"].iloc[29] == BUY
    down = base + [99.5, 101.0] + [100.0] * 10
    assert triple_barrier_labels(bars(down), horizon=5, atr_period=14)["label"].iloc[29] == SELL
    flat = base + [100.05] * 10
    out = triple_barrier_labels(bars(flat), horizon=5, atr_period=14)
    assert out["label"].iloc[29] == HOLD
    assert out["label"].iloc[:13].isna().all()  # no ATR yet: unknown, not guessed
    assert out["label"].iloc[-5:].isna().all()  # the future is not known yet
    assert LabelConfig(kind="triple_barrier", horizon=5).make(bars(flat))["label"].equals(out["label"])


def test_class_balance_is_reported_per_partition():
    lab = pd.DataFrame({"open_time": pd.date_range("2024-01-01", periods=2880, freq="1min", tz="UTC"),
                        "label": pd.array([BUY] * 1440 + [SELL, HOLD] * 720, dtype="Int8")})
    b = balance_by_partition(lab)
    assert b["BUY"].tolist() == [1.0, 0.0] and b["HOLD"].tolist() == [0.0, 0.5] and b["n"].tolist() == [1440, 1440]


def test_ensemble_trades_only_when_both_models_agree():
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.6, 0.2]])
    b = np.array([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]])
    assert ensemble.agree_signal(a, b).tolist() == [SELL, HOLD, HOLD, HOLD]
    p = ensemble.signal_proba(a, b)
    assert p.argmax(axis=1).tolist() == [SELL, HOLD, HOLD, HOLD] and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(p[0], (a[0] + b[0]) / 2)  # agreeing rows keep the mean


def test_rf_daily_reference_has_four_features_and_walks_forward():
    rng = np.random.default_rng(1)
    n = 1440 * 60
    c = 100 * np.exp(np.cumsum(rng.normal(0, 4e-4, n)))
    one = pd.DataFrame({"open_time": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"), "open": c,
                        "high": c * 1.001, "low": c * 0.999, "close": c, "volume": rng.uniform(1, 2, n)})
    daily = rf_daily.daily_bars(one.drop(index=range(100, 200)))  # a day with missing minutes is dropped
    assert len(daily) == 59
    data = rf_daily.daily_dataset(daily)
    assert list(data.columns[1:5]) == rf_daily.DAILY_FEATURES and set(data["label"]) <= {SELL, HOLD, BUY}
    res = rf_daily.walk_forward(data, rf_daily.RfParams(n_estimators=20), n_folds=3, test_days=4)
    assert len(res.fold_metrics) == 3 and "majority_log_loss" in res.overall


def test_an_ensemble_of_three_trades_only_when_all_three_agree_and_reads_its_members_uris():
    a = np.array([[0.1, 0.2, 0.7], [0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    b = np.array([[0.2, 0.2, 0.6], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    c = np.array([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.7, 0.2, 0.1]])
    assert ensemble.agree_signal(a, b, c).tolist() == [BUY, SELL, HOLD]
    assert ensemble.signal_proba(a, b, c).argmax(axis=1).tolist() == [BUY, SELL, HOLD]
    with pytest.raises(ValueError, match="at least two members"):
        ensemble.agree_signal(a)
    assert ensemble.parse_uri("xgb=models:/x/1|lstm=models:/l/1|transformer=models:/t/2") == [
        ("xgb", "models:/x/1"), ("lstm", "models:/l/1"), ("transformer", "models:/t/2")]
    assert ensemble.parse_uri("models:/x/1|models:/l/1") == [("xgb", "models:/x/1"), ("lstm", "models:/l/1")]
    with pytest.raises(ValueError, match="expected 'family=uri"):
        ensemble.parse_uri("models:/x/1|models:/l/1|models:/t/1")
    frame = pd.DataFrame(np.hstack([a, c]), columns=ensemble.member_columns(["xgb", "transformer"]))
    np.testing.assert_allclose(ensemble.combine_frame(frame).to_numpy(), ensemble.signal_proba(a, c))
