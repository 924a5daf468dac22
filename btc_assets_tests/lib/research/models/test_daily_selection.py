"""Greedy forward selection for the daily strategy: it finds the feature that carries the signal, never looks at
the hold-out, counts its trials, and refuses what it cannot do by name."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import daily_selection as ds
from btc_assets.lib.research.models import rf_daily

P = rf_daily.RfParams(n_estimators=20, max_depth=3, n_jobs=1)


def synthetic_days(n: int = 700, seed: int = 0) -> pd.DataFrame:
    """Synthetic daily bars (not market data) whose next day follows the day's volume against its last 20 days."""
    rng = np.random.default_rng(seed)
    logv = rng.normal(7.5, 0.3, n)
    lv = pd.Series(logv)
    z = ((lv - lv.rolling(20).mean()) / lv.rolling(20).std()).fillna(0).to_numpy()
    r = np.concatenate([[0.0], 0.02 * np.sign(z[:-1]) + rng.normal(0, 0.01, n - 1)])
    c = 30_000 * np.exp(np.cumsum(r))
    return pd.DataFrame({"open_time": pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC"), "open": c,
                         "high": c * 1.01, "low": c * 0.99, "close": c, "volume": np.expm1(logv)})


def test_the_selection_finds_the_feature_with_the_signal_and_scores_it_on_an_unseen_hold_out():
    data = ds.candidate_dataset(synthetic_days())
    cands = ["log_return_5d", "volume_z20", "range_rel", "rsi14"]
    sel = ds.greedy_forward(data, P, min_train_days=300, test_days=20, holdout_days=100, max_features=2,
                            candidates=cands)
    assert sel.chosen[0] == "volume_z20"
    assert len(sel.trials) >= len(cands) and sel.deflated["n_trials"] == len(sel.trials)
    # the hold-out starts after every day the selection's walk-forward tested
    last_selected = max(t for t in data["open_time"] if t < data["open_time"].iloc[-1] - pd.Timedelta(days=99))
    assert sel.holdout_returns["chosen"].index.min() > last_selected - pd.Timedelta(days=1)
    assert sel.holdout["days"] == 100 and np.isfinite(sel.holdout["chosen_sharpe"])
    assert sel.holdout["chosen_sharpe"] > sel.holdout["fixed_sharpe"]  # the fixed four cannot see volume


def test_costs_are_paid_per_unit_of_position_change():
    t = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    pred = pd.DataFrame({"open_time": t, "signal": [2, 2, 0, 1], "fwd_return": [0.01, 0.01, -0.02, 0.0]})
    r = ds.strategy_returns(pred, cost=0.001)
    np.testing.assert_allclose(r.to_numpy(), [0.01 - 0.001, 0.01, 0.02 - 0.002, -0.001])


def test_bad_requests_are_refused_by_name():
    data = ds.candidate_dataset(synthetic_days(400))
    with pytest.raises(ValueError, match=r"unknown candidate features \['magic'\]"):
        ds.greedy_forward(data, P, candidates=["magic"])
    with pytest.raises(ValueError, match="too few for 1250 training days"):
        ds.greedy_forward(data, P)
