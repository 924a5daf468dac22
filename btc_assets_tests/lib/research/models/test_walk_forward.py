"""Walk-forward folds: no overlap with the purge, embargo after each test window, leakage exposed, scores pooled."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import walk_forward as wf
from btc_assets.lib.research.models import xgb
from btc_assets.lib.research.models.evaluation import beats_baselines, suspected_leakage
from btc_assets_tests.lib.research.models.synthetic import rows

CFG = wf.WalkForwardConfig(n_folds=3, test_span=pd.Timedelta(hours=12), purge=pd.Timedelta(minutes=3),
                           embargo=pd.Timedelta(minutes=30))


@pytest.mark.parametrize("train_span", [None, pd.Timedelta(days=1)])
def test_folds_never_train_on_the_test_window_or_its_purge(train_span):
    t = rows(n=6000)["open_time"]
    cfg = wf.WalkForwardConfig(**{**CFG.__dict__, "train_span": train_span})
    folds = wf.make_folds(t, cfg, pd.Timedelta(minutes=3))
    wf.assert_no_overlap(t, folds, cfg.purge)
    for f in folds:
        fitted = t[f.train | f.validation]
        assert fitted.max() < f.test_start - cfg.purge
        assert t[f.train].max() + cfg.purge < t[f.validation].min()  # purge between train and validation too
        if train_span is not None:
            assert fitted.min() >= f.test_start - cfg.purge - train_span
    for earlier, later in zip(folds, folds[1:]):
        embargo = (t >= earlier.test_end) & (t < earlier.test_end + cfg.embargo)
        assert not (later.train & embargo.to_numpy()).any()  # embargoed after the earlier test window
        assert (later.train | later.validation)[earlier.test].any()  # later folds learn from earlier test windows


def test_overlap_is_detected_and_a_short_purge_refused():
    t = rows(n=3000)["open_time"]
    folds = wf.make_folds(t, CFG, pd.Timedelta(minutes=3))
    bad = [wf.Fold(0, folds[0].train | folds[0].test, folds[0].validation, folds[0].test, folds[0].test_start,
                   folds[0].test_end)]
    with pytest.raises(AssertionError, match="overlap"):
        wf.assert_no_overlap(t, bad, CFG.purge)
    with pytest.raises(ValueError, match="shorter than the label horizon"):
        wf.make_folds(t, CFG, pd.Timedelta(minutes=30))


def test_a_label_shifted_into_the_features_is_flagged_as_leakage():
    df = rows(n=5000, strength=0.3)
    df["leak"] = df["label"].shift(-0).astype(float)  # the label itself, "shifted" zero bars: the worst case
    df["leak_next"] = df["label"].shift(-1).fillna(1).astype(float)  # the next bar's label: a future join
    p = xgb.XgbParams(n_estimators=40, n_jobs=1)
    honest = wf.run_walk_forward(df, xgb.fit_predict(["f0", "f1"], p), CFG, 3)
    leaky = wf.run_walk_forward(df, xgb.fit_predict(["f0", "f1", "leak", "leak_next"], p), CFG, 3)
    assert suspected_leakage(leaky.overall) and not suspected_leakage(honest.overall)
    promoted, why = beats_baselines(leaky.overall)
    assert not promoted and "leakage" in why[0]
    assert beats_baselines(honest.overall)[0]
    assert len(honest.fold_metrics) == 3 and honest.predictions["open_time"].is_monotonic_increasing
    for k in ("accuracy", "f1_macro", "log_loss", "brier", "precision_buy", "precision_sell", "ic"):
        assert f"majority_{k}" in honest.overall and f"persistence_{k}" in honest.overall
    assert np.isnan(honest.overall["majority_ic"])  # a constant guess has no rank correlation
