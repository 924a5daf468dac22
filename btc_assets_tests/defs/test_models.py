"""LSTM, ensemble and promotion in Dagster on real sample days: blocking checks, registry, signals of promoted
models only (with the reason in metadata when a week has none), the weekly job's selection."""

import dagster as dg
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from btc_assets.defs.automation import weekly_model_job
from btc_assets.defs.models import assets as model_assets
from btc_assets.defs.models.assets import ensemble, lstm_model, xgb_model
from btc_assets_tests.defs.conftest import SMALL_TRANSFORMER, SMALL_WALK_FORWARD, train_config

WEEK = "2024-01-08"


@pytest.fixture(scope="module")
def models(model_pipeline):
    members = model_pipeline.run([["models", "xgb_model"], ["models", "lstm_model"], ["models", "transformer_model"]],
                                 partition_key=WEEK, run_config=train_config(lstm=True, transformer=True),
                                 raise_on_error=False)
    # Its own run, with its own config (promotion on the baselines only, so the tiny test members can be combined).
    ens = model_pipeline.run([["models", "ensemble"]], partition_key=WEEK, raise_on_error=False,
                             run_config={"ops": {"models__ensemble": {"config": {"promotion": "baselines_only"}}}})
    return model_pipeline, Results(members, ens)


class Results:
    """The members' run and the ensemble's run, read as one."""

    def __init__(self, *runs):
        self.runs = runs

    def get_asset_materialization_events(self):
        return [e for r in self.runs for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self):
        return [e for r in self.runs for e in r.get_asset_check_evaluations()]


def meta_of(res, key):
    mats = [e for e in res.get_asset_materialization_events()
            if e.event_specific_data.materialization.asset_key == dg.AssetKey(key)]
    return mats[0].event_specific_data.materialization.metadata


def test_every_family_logs_the_same_metrics_beside_the_baselines(models):
    built, res = models
    mlflow.set_tracking_uri(built.resources["mlflow"].tracking_uri)
    names = []
    for key in (["models", "xgb_model"], ["models", "lstm_model"], ["models", "ensemble"]):
        meta = meta_of(res, key)
        assert meta["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
        assert "per_fold" in meta and meta["folds"].value == 2
        run = mlflow.get_run(meta["mlflow_run"].value.rsplit("/", 1)[1])
        names.append({k for k in run.data.metrics if k.startswith(("test_", "majority_", "persistence_", "fold_"))})
        assert {"test_accuracy", "test_f1_macro", "test_log_loss", "test_brier", "test_ic", "majority_log_loss",
                "persistence_accuracy", "fold_test_accuracy"} <= names[-1]
    assert names[0] == names[1]  # xgb and lstm: identical metric names (the ensemble lacks only undefined ones)
    exps = {e.name for e in mlflow.search_experiments()}
    assert {"btc_assets.xgboost", "btc_assets.lstm", "btc_assets.ensemble"} <= exps
    # The ensemble is registered as a model of its own (a pyfunc over the members' probabilities) with a signature
    mlflow.set_registry_uri(built.resources["mlflow"].tracking_uri)
    combiner = mlflow.pyfunc.load_model("models:/btc_assets_ensemble_next3m/latest")
    assert combiner.metadata.signature is not None
    from btc_assets.lib.research.models.ensemble import FAMILIES, member_columns, parse_uri, signal_proba

    # xgb, lstm and the Transformer: all three agree on BUY in the first row; the LSTM disagrees in the second
    x = pd.DataFrame([[0.1, 0.2, 0.7, 0.2, 0.2, 0.6, 0.1, 0.1, 0.8], [0.6, 0.3, 0.1, 0.1, 0.2, 0.7, 0.7, 0.2, 0.1]],
                     columns=member_columns(FAMILIES))
    out = combiner.predict(x).to_numpy()
    np.testing.assert_allclose(out, signal_proba(x.iloc[:, :3].to_numpy(), x.iloc[:, 3:6].to_numpy(),
                                                 x.iloc[:, 6:].to_numpy()))
    assert out.argmax(axis=1).tolist() == [2, 1]  # all agree on BUY; one disagrees -> HOLD
    members = meta_of(res, ["models", "ensemble"])["members"].value
    assert list(members) == ["xgb", "lstm", "transformer"]
    (uri,), = built.sql("SELECT model_uri FROM models.ensemble_models")
    assert [f for f, _ in parse_uri(uri)] == ["xgb", "lstm", "transformer"]
    assert meta_of(res, ["models", "lstm_model"])["model_version"].value == "btc_assets_lstm_next3m v1"
    assert meta_of(res, ["models", "lstm_model"])["train_samples_per_second"].value > 0


def test_the_ensemble_takes_the_members_it_is_given(models):
    """Two members (no Transformer) is an ensemble too; a member that is no signal family, or a single one, is
    refused by name."""
    built, _ = models
    two = built.run([["models", "ensemble"]], partition_key=WEEK, raise_on_error=False, run_config={"ops": {
        "models__ensemble": {"config": {"promotion": "baselines_only", "members": ["lstm", "xgb"]}}}})
    assert two.success and list(meta_of(two, ["models", "ensemble"])["members"].value) == ["xgb", "lstm"]
    for bad in (["xgb"], ["xgb", "rf"], ["xgb", "xgb"]):
        res = built.run([["models", "ensemble"]], partition_key=WEEK, raise_on_error=False, run_config={"ops": {
            "models__ensemble": {"config": {"members": bad}}}})
        failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
        assert f"ensemble members={bad}: pick two or more distinct families" in str(failure.event_specific_data.error)
    built.run([["models", "ensemble"]], partition_key=WEEK, run_config={"ops": {  # the default again, for the rest
        "models__ensemble": {"config": {"promotion": "baselines_only"}}}})


def test_promotion_is_a_warn_check_that_says_so_and_the_run_stays_green(models):
    built, res = models
    checks = {ev.check_name: ev for ev in res.get_asset_check_evaluations()}
    assert set(checks) == {"xgb_model_beats_baselines", "lstm_model_beats_baselines",
                           "transformer_model_beats_baselines", "ensemble_model_beats_baselines"}
    # "not promoted" is an honest outcome, not a failure: nothing downstream is blocked by it (signals and trading
    # read `promoted` from the registry and refuse an unpromoted model themselves)
    assert not any(spec.blocking for a in (xgb_model, lstm_model, ensemble) for spec in a.check_specs)
    assert all(ev.severity == dg.AssetCheckSeverity.WARN for ev in checks.values()) and all(r.success for r in res.runs)
    rows = dict(built.sql("SELECT family, promoted FROM models.xgb_models UNION ALL SELECT family, promoted FROM "
                          "models.lstm_models UNION ALL SELECT family, promoted FROM models.transformer_models "
                          "UNION ALL SELECT family, promoted FROM models.ensemble_models"))
    for name, ev in checks.items():
        family = name.removesuffix("_model_beats_baselines")
        assert ev.passed == rows[family] and ("NOT promoted" in ev.description) == (not ev.passed)
    for member in ("xgb", "lstm", "transformer"):
        if not rows[member]:  # the tiny test nets rarely beat the baselines: then the ensemble may not trade either
            (reason,), = built.sql("SELECT reason FROM models.ensemble_models")[0:1]
            assert not rows["ensemble"] and f"member {member}" in reason


def test_signals_skip_a_week_without_a_promoted_model_and_say_why(models):
    built, _ = models
    built.sql("UPDATE models.xgb_models SET promoted = false, reason = 'test: demoted' WHERE week_start = ?", [WEEK])
    try:
        res = built.run([["models", "signals"]], partition_key="2024-01-09")
        meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
        assert meta["rows"].value == 0 and "test: demoted" in meta["weeks_without_promoted_model"].value[WEEK]
        assert built.sql("SELECT count(*) FROM models.signals WHERE open_time::DATE = '2024-01-09'") == [(0,)]
    finally:
        built.sql("UPDATE models.xgb_models SET promoted = true WHERE week_start = ?", [WEEK])
        built.run([["models", "signals"]], partition_key="2024-01-09")
    assert built.sql("SELECT count(*) FROM models.signals WHERE open_time::DATE = '2024-01-09'") == [(1440,)]


def test_the_weekly_job_retrains_every_family():
    keys = weekly_model_job.selection.resolve(dg.load_assets_from_modules([model_assets]))
    assert {k.path[-1] for k in keys} == {"xgb_model", "lstm_model", "transformer_model", "ensemble",
                                          "tft_model"}


def test_the_daily_reference_refuses_too_short_a_history(model_pipeline):
    res = model_pipeline.run([["models", "rf_daily_baseline"]], raise_on_error=False)
    assert "usable days in silver.klines_1d_history + silver.klines_1d after the 20-day warm-up, need" in str(res.get_step_failure_events()[0].event_specific_data.error)


def test_the_transformer_trains_in_the_same_skeleton_and_is_judged_after_costs(model_pipeline):
    """The Transformer family: the same rows, folds, metric names, after-cost figures, leak detectors and registry
    as the others; a bad setting is refused by name."""
    small = {**SMALL_WALK_FORWARD, **SMALL_TRANSFORMER}
    mlflow.set_tracking_uri(model_pipeline.resources["mlflow"].tracking_uri)
    before = len(mlflow.search_runs(experiment_names=["btc_assets.transformer"]))  # the ensemble's member, if run
    res = model_pipeline.run([["models", "transformer_model"]], partition_key=WEEK, raise_on_error=False,
                             run_config={"ops": {"models__transformer_model": {"config": small}}})
    assert res.success
    meta = meta_of(res, ["models", "transformer_model"])
    assert meta["model_version"].value == f"btc_assets_transformer_next3m v{before + 1}"
    assert {"wf_net_return", "wf_psr", "wf_trades", "wf_random_entry_percentile", "oracle_f1", "permuted_log_loss",
            "validation_mean_confidence"} <= set(meta)
    check = next(c for c in res.get_asset_check_evaluations() if c.check_name == "transformer_model_beats_baselines")
    assert check.severity == dg.AssetCheckSeverity.WARN
    row = model_pipeline.sql("SELECT family, promoted, reason FROM models.transformer_models")
    assert row and row[0][0] == "transformer" and (row[0][1] or row[0][2])
    mlflow.set_tracking_uri(model_pipeline.resources["mlflow"].tracking_uri)
    runs = mlflow.search_runs(experiment_names=["btc_assets.transformer"])
    assert len(runs) == before + 1 and runs["tags.promoted"].iloc[0] in ("true", "false")
    assert {"metrics.test_accuracy", "metrics.majority_accuracy", "metrics.wf_net_return"} <= set(runs.columns)
    bad = model_pipeline.run([["models", "transformer_model"]], partition_key=WEEK, raise_on_error=False,
                             run_config={"ops": {"models__transformer_model": {"config": {**small, "d_model": 9}}}})
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "d_model=9 must be a multiple of heads=2" in str(failure.event_specific_data.error)
