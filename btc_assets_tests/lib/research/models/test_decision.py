"""Cost-aware decisions: the round trip, calibration on held-out rows, the expected edge against the cost, and the
meta-label veto, through XGBoost's fold callback and the booster that carries them."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from btc_assets.lib.research.labels import BUY, HOLD, SELL
from btc_assets.lib.research.models import decision, xgb
from btc_assets_tests.lib.research.models import synthetic


def test_round_trip_cost_is_what_the_engine_charges():
    assert decision.round_trip_cost(0.0005, 1.0) == pytest.approx(0.0012)
    assert decision.round_trip_cost(0.0005, 1.0, 0.1, 0.0004) == pytest.approx(0.0012 + 0.00008)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_repairs_overconfident_probabilities_and_travels_as_json(method):
    rng = np.random.default_rng(0)
    n = 4000
    true = rng.dirichlet([2, 6, 2], n)
    y = np.array([rng.choice(3, p=p) for p in true])
    over = true**3 / (true**3).sum(axis=1, keepdims=True)  # overconfident
    cal = decision.fit_calibrator(over[:2000], y[:2000], method)
    fixed = cal.apply(over[2000:])
    assert np.allclose(fixed.sum(axis=1), 1.0)
    assert log_loss(y[2000:], fixed, labels=[0, 1, 2]) < log_loss(y[2000:], over[2000:], labels=[0, 1, 2])
    back = decision.Calibrator.from_json(cal.to_json())
    assert np.allclose(back.apply(over[2000:]), fixed)


def test_too_few_rows_or_none_means_no_calibration_and_a_bad_method_is_named():
    p = np.full((10, 3), 1 / 3)
    assert decision.fit_calibrator(p, np.zeros(10, int)).method == "none"
    with pytest.raises(ValueError, match="calibration 'sigmoid' is unknown"):
        decision.fit_calibrator(p, np.zeros(10, int), "sigmoid")


def test_the_edge_rule_trades_only_beyond_the_cost():
    train = pd.DataFrame({"label": [SELL, SELL, HOLD, HOLD, BUY, BUY],
                          "fwd_return": [-0.004, -0.002, 0.0001, -0.0001, 0.002, 0.004]})
    rule = decision.fit_edge_rule(train, cost=0.0012)
    assert rule.class_returns == pytest.approx((-0.003, 0.0, 0.003))
    proba = np.array([[0.1, 0.8, 0.1], [0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.4, 0.4]])
    # expected returns: 0, +0.0009 (below the cost), -0.0015, +0.0006
    assert rule.signal(proba).tolist() == [HOLD, HOLD, SELL, HOLD]
    assert decision.EdgeRule.from_json(rule.to_json()) == rule
    assert decision.fit_edge_rule(train, cost=0.0005).signal(proba).tolist() == [HOLD, BUY, SELL, BUY]


def test_meta_target_is_one_where_acting_earned_the_cost():
    sig = np.array([BUY, SELL, BUY, SELL])
    assert decision.meta_target(sig, np.array([0.002, 0.002, 0.0005, -0.003]), 0.001).tolist() == [1, 0, 0, 1]


def _rows(n=6000):
    r = synthetic.rows(n, strength=1.5)
    r["fwd_return"] = np.where(r["label"] == BUY, 0.003, np.where(r["label"] == SELL, -0.003, 0.0)) + \
        np.random.default_rng(1).normal(0, 5e-4, n)
    return r


def test_the_fold_callback_returns_calibrated_probabilities_and_cost_aware_signals():
    r = _rows()
    train, val, test = r.iloc[:4000], r.iloc[4000:5000], r.iloc[5000:]
    params = xgb.XgbParams(n_estimators=40, n_jobs=1)
    cheap = decision.DecisionPolicy(cost=0.0005)
    proba, sig = xgb.fit_predict(["f0", "f1"], params, cheap)(train, val, test, test.iloc[:0])
    assert proba.shape == (len(test), 3) and set(np.unique(sig)) <= {SELL, HOLD, BUY} and (sig != HOLD).any()
    # a cost above any expected edge: nothing trades, whatever the probabilities
    _, none = xgb.fit_predict(["f0", "f1"], params, decision.DecisionPolicy(cost=0.05))(train, val, test, test)
    assert (none == HOLD).all()


def test_the_meta_model_vetoes_and_travels_with_the_booster():
    r = _rows()
    train, val, test = r.iloc[:4000], r.iloc[4000:5500], r.iloc[5500:]
    params = xgb.XgbParams(n_estimators=40, n_jobs=1)
    booster = xgb.train(train, val, ["f0", "f1"], params)
    said = xgb.attach_decision(booster, train, val, ["f0", "f1"],
                               decision.DecisionPolicy(cost=0.0005, meta_labelling=True, min_meta_rows=20))
    assert "meta-label model fitted" in said and booster.attr("meta_model")
    proba, with_meta = xgb.predict_signal(booster, test, ["f0", "f1"])
    primary = decision.EdgeRule.from_json(booster.attr("decision")).signal(proba)
    vetoed = (primary != HOLD) & (with_meta == HOLD)
    assert ((with_meta == primary) | vetoed).all()  # the meta model only ever removes trades
    # serialised and loaded back (what MLflow does), the booster decides the same
    loaded = xgb.xgb.Booster()
    loaded.load_model(bytearray(booster.save_raw("json")))
    assert (xgb.predict_signal(loaded, test, ["f0", "f1"])[1] == with_meta).all()
    # too few primary trades: no meta model, said plainly
    b2 = xgb.train(train, val, ["f0", "f1"], params)
    said2 = xgb.attach_decision(b2, train, val, ["f0", "f1"],
                                decision.DecisionPolicy(cost=0.0005, meta_labelling=True, min_meta_rows=10**6))
    assert "meta-labelling not fitted" in said2 and not b2.attr("meta_model")
