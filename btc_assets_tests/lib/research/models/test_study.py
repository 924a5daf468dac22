"""Studies that count their trials, on synthetic 1m bars (not market data) with a planted edge: feature f0 is the
label's own forward return plus noise (a strong, known edge), f1 and f2 are noise. Tiny XGBoost fits keep the
whole file within a few seconds: determinism for a seed, a hold-out no trial can see, every trial (failed ones too)
counted by the deflated Sharpe, greedy forward selection, and the overfitting verdict passing and failing."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.features.registry import FEATURE_NAMES, families_of
from btc_assets.lib.research.labels import BUY, HOLD, SELL, next_return_labels
from btc_assets.lib.research.models.study import (
    NO_TRADE_VALUE,
    Market,
    SearchSpace,
    StudyConfig,
    decide,
    run_study,
    units_of,
)
from btc_assets.lib.research.models.walk_forward import WalkForwardConfig
from btc_assets.lib.research.models.xgb import XgbParams
from btc_assets.lib.research.risk import RiskConfig
from btc_assets_tests.lib.research.features.synthetic import klines_1m

H = 10  # label horizon (minutes)
DAYS = 10
FEATURES = ["f0", "f1", "f2"]
WF = WalkForwardConfig(n_folds=8, test_span=pd.Timedelta(days=0.5), purge=pd.Timedelta(minutes=H),
                       embargo=pd.Timedelta(minutes=30))
SPACE = SearchSpace(n_estimators=(5, 15), max_depth=(2, 3), learning_rate=(0.1, 0.5), label_threshold=(0.0008, 0.002),
                    decision_threshold=(0.34, 0.6), max_hold_bars=(5, 20))
TINY_XGB = XgbParams(n_estimators=15, max_depth=3, learning_rate=0.3, early_stopping_rounds=5, n_jobs=1)
PARAMS = StudyConfig(n_trials=4, seed=0, walk_forward=WF, space=SPACE, base_xgb=TINY_XGB)
SELECTION = StudyConfig(kind="forward_selection", unit="feature", max_steps=2, seed=1, walk_forward=WF,
                        base_xgb=TINY_XGB, decision_threshold=0.5, label_threshold=0.0015)


def synthetic(noise: float = 0.5, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(1m bars, rows): f0 = the H-minute forward return + `noise` of its sd in Gaussian noise; f1, f2 noise."""
    bars = klines_1m("2024-01-01", DAYS * 1440, seed=seed)
    lab = next_return_labels(bars, H, 0.001)
    rng = np.random.default_rng(seed)
    sd = float(np.nanstd(lab["fwd_return"]))
    rows = lab.assign(f0=lab["fwd_return"] + noise * sd * rng.normal(size=len(lab)), f1=rng.normal(size=len(lab)),
                      f2=rng.normal(size=len(lab)))
    return bars, rows.dropna().astype({"label": int}).reset_index(drop=True)


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def market(data):
    return Market(data[0], risk=RiskConfig(max_positions=1))


@pytest.fixture(scope="module")
def params_study(data, market):
    return run_study(data[1], FEATURES, market, PARAMS, H)


@pytest.fixture(scope="module")
def selection(data, market):
    return run_study(data[1], FEATURES, market, SELECTION, H)


def _figures(res) -> str:
    """Everything but the timing, NaN-safe for comparison."""
    return json.dumps([res.best_number, res.best_params, res.inner, res.holdout, res.dsr, res.pbo], sort_keys=True,
                      default=str)


def test_the_same_seed_gives_the_same_study(data, market, params_study):
    again = run_study(data[1], FEATURES, market, PARAMS, H)
    pd.testing.assert_frame_equal(again.trials, params_study.trials)
    assert _figures(again) == _figures(params_study)
    assert len(params_study.trials) == PARAMS.n_trials and params_study.trials_per_minute > 0
    searched = json.loads(params_study.trials["params"].iloc[0])
    assert {"label_threshold", "max_depth", "learning_rate", "n_estimators", "min_child_weight", "subsample",
            "decision_threshold", "stop_atr", "take_profit_r", "max_hold_bars"} <= set(searched)


def test_no_trial_sees_the_hold_out_and_hold_out_prices_change_nothing_in_the_study(data, market, params_study):
    hold_from, hold_to = params_study.holdout_window
    seen = params_study.seen
    assert len(seen) == PARAMS.n_trials
    assert (seen["bars_to"] < hold_from).all() and (seen["rows_to"] + pd.Timedelta(minutes=H) < hold_from).all()
    assert hold_to - hold_from == pd.Timedelta(days=PARAMS.final_test_days) - pd.Timedelta(minutes=H)
    assert pd.Timestamp(params_study.holdout["from"]) >= hold_from
    # Rewrite the hold-out: other prices, the edge turned upside down. The trials must not notice; the hold-out must.
    bars, rows = data
    later = bars["open_time"] >= hold_from
    shifted = bars.copy()
    shifted.loc[later, ["open", "high", "low", "close"]] *= 1.07
    flipped = rows.assign(f0=np.where(rows["open_time"] >= hold_from, -rows["f0"], rows["f0"]))
    other = run_study(flipped, FEATURES, Market(shifted, risk=market.risk), PARAMS, H)
    pd.testing.assert_frame_equal(other.trials, params_study.trials)
    assert json.dumps(other.dsr, default=str) == json.dumps(params_study.dsr, default=str)
    assert other.holdout["net_return"] != params_study.holdout["net_return"]


def test_the_deflated_sharpe_counts_every_trial_run_failed_ones_too(data, market):
    # stop_atr <= 0 is refused by RiskConfig: with seed 0 the last of 4 trials draws one and fails.
    cfg = StudyConfig(n_trials=4, seed=0, walk_forward=WF, base_xgb=TINY_XGB,
                      space=SearchSpace(n_estimators=(5, 15), max_depth=(2, 3), stop_atr=(-2.0, 1.0)))
    res = run_study(data[1], FEATURES, market, cfg, H)
    states = res.trials["state"].tolist()
    assert states.count("FAIL") >= 1 and states.count("COMPLETE") >= 2
    failed = res.trials[res.trials["state"] == "FAIL"].iloc[0]
    assert "stop_atr > 0" in failed["note"] and np.isnan(failed["value"])
    assert res.dsr["n_trials"] == len(res.trials) == cfg.n_trials
    assert (res.dsr["n_completed"], res.dsr["n_failed"], res.dsr["n_pruned"]) == (states.count("COMPLETE"),
                                                                                  states.count("FAIL"), 0)
    assert res.pbo["n_trials"] == states.count("COMPLETE")  # PBO ranks the trials that have returns
    assert res.trials.loc[res.best_number, "state"] == "COMPLETE"


def test_a_study_whose_every_trial_fails_says_why():
    bars, rows = synthetic()
    cfg = StudyConfig(n_trials=2, seed=0, walk_forward=WF, base_xgb=TINY_XGB,
                      space=SearchSpace(n_estimators=(5, 6), max_depth=(2, 2), stop_atr=(-2.0, -1.0)))
    with pytest.raises(ValueError, match="every one of the 2 study trials failed.*stop_atr > 0"):
        run_study(rows, FEATURES, Market(bars), cfg, H)


def test_forward_selection_adds_the_best_unit_greedily_and_counts_every_candidate(selection):
    res = selection
    t = res.trials.assign(p=res.trials["params"].map(json.loads))
    t = t.assign(step=t["p"].map(lambda p: p["step"]), units=t["p"].map(lambda p: p["units"]))
    first, second = t[t["step"] == 0], t[t["step"] == 1]
    assert first["units"].tolist() == [["f0"], ["f1"], ["f2"]]  # every unit alone
    winner = first.loc[first["value"].idxmax(), "units"][0]
    assert winner == "f0"  # the planted edge
    assert len(second) == 2 and all(u[0] == winner for u in second["units"])  # the winner kept, one unit added
    assert len(res.trials) == 3 + 2 == res.dsr["n_trials"]  # every evaluated candidate is a trial
    assert res.best_params["units"][0] == "f0"
    assert (t["value"] == NO_TRADE_VALUE).sum() == (t["inner_trades"] == 0).sum()  # no trade: the low value, said
    assert all("no trade" in n for n in t.loc[t["inner_trades"] == 0, "note"])


def test_forward_selection_stops_when_no_candidate_improves(data, market):
    # Acting only above 0.99 probability nobody trades: step 0 picks the first unit, step 1 cannot improve on it.
    res = run_study(data[1], FEATURES, market, replace(SELECTION, decision_threshold=0.99), H)
    assert len(res.trials) == 3 + 2 and res.best_params["units"] == ["f0"]
    assert (res.trials["inner_trades"] == 0).all()
    assert any("not computable" in w for w in res.verdict())  # flat returns: nothing to deflate


def test_the_overfitting_verdict_passes_on_a_strong_edge_and_fires_on_luck(data, market, selection):
    strong = selection
    assert strong.verdict() == [] and strong.dsr["dsr"] >= 0.95 and strong.pbo["pbo"] <= 0.5
    # The hold-out is traded once and reported beside buy-and-hold, whatever it shows (one day after costs is noisy).
    h = strong.holdout
    assert h["trades"] > 0 and np.isfinite(h["net_return"]) and np.isfinite(h["buy_and_hold_return"])
    assert h["net_pnl"] == pytest.approx(h["net_return"] * market.initial_equity)
    # Noise only: the best of several trials is luck and the deflated Sharpe says so.
    lucky = run_study(data[1], ["f1", "f2"], market, replace(PARAMS, seed=1), H)
    why = lucky.verdict()
    assert why and any("deflated Sharpe" in w for w in why)


def test_pbo_is_reported_as_not_computable_with_too_few_days(data, market):
    short = WalkForwardConfig(n_folds=2, test_span=pd.Timedelta(hours=6), purge=pd.Timedelta(minutes=H),
                              embargo=pd.Timedelta(minutes=30))
    res = run_study(data[1], FEATURES, market, replace(PARAMS, n_trials=2, walk_forward=short), H)
    assert np.isnan(res.pbo["pbo"]) and "PBO not computable" in res.pbo["reason"]
    assert any("PBO not computable" in w for w in res.verdict())


def test_units_are_feature_families_by_default_and_capped():
    fam = units_of(FEATURE_NAMES, StudyConfig())
    assert fam == families_of(FEATURE_NAMES) and len(fam) >= 5
    assert list(units_of(FEATURES, StudyConfig(unit="feature", max_candidates=2))) == ["f0", "f1"]
    with pytest.raises(ValueError, match="use 'family' or 'feature'"):
        units_of(FEATURES, StudyConfig(unit="column"))


def test_the_decision_threshold_turns_weak_calls_into_hold():
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0.45, 0.1, 0.45]])
    assert decide(proba, 0.55).tolist() == [SELL, HOLD, HOLD, HOLD]
    assert decide(proba, 0.0).tolist() == [SELL, BUY, HOLD, SELL]
