"""models/study on the 10-day test pipeline, in process: the study asset for week 2024-01-08 with a tiny search. Its
metadata carries the trials, the hold-out after costs beside buy-and-hold, the deflated Sharpe and the PBO; every
trial is an MLflow child run of the study's parent run; and the WARN check study_not_overfit fires on these few
real days (a handful of inner periods and trials cannot clear a deflated Sharpe of 0.95), without failing the run.
The check passing on a strong edge is tested on synthetic data in btc_assets_tests/lib/research/models/test_study.py.
"""

from __future__ import annotations

import dagster as dg
import mlflow
import pytest

from btc_assets.defs.models.study import CHECK, EXPERIMENT, study
from btc_assets_tests.defs.conftest import SMALL_WALK_FORWARD

WEEK = "2024-01-08"
# 4 half-day inner folds on the 3 days before the hold-out day (2024-01-07); a low label threshold so that tiny
# models trade at all.
TINY = {**SMALL_WALK_FORWARD, "n_folds": 4, "n_trials": 4, "min_rounds": 5, "max_rounds": 15, "random_seeds": 20,
        "min_label_threshold": 0.0002, "max_label_threshold": 0.0006}


def _materialize(p, config: dict):
    # The asset is materialized on its own (its gold inputs are Nothing deps already in the pipeline's warehouse),
    # so the test does not depend on it being listed in defs/models/assets.py.
    return dg.materialize([study], partition_key=WEEK, resources=p.resources, instance=p.instance,
                          run_config={"ops": {"models__study": {"config": config}}})


@pytest.fixture(scope="module")
def studied(model_pipeline):
    res = _materialize(model_pipeline, TINY)
    mat = res.get_asset_materialization_events()[0].event_specific_data.materialization
    return model_pipeline, res, mat.metadata


def test_the_study_reports_trials_hold_out_and_overfitting_figures(studied):
    _, res, meta = studied
    assert res.success
    assert {"n_trials", "n_completed", "n_failed", "trials_per_minute", "best_params", "inner_sharpe_daily",
            "inner_net_return", "inner_trades", "holdout_period", "holdout_net_return", "holdout_sharpe_daily",
            "holdout_trades", "buy_and_hold_return", "buy_and_hold_sharpe_daily", "dsr", "dsr_detail", "dsr_note",
            "pbo", "pbo_detail", "pbo_note", "trials", "mlflow_parent_run", "study_rows"} <= set(meta)
    assert meta["n_trials"].value == TINY["n_trials"] == len(meta["trials"].value.records)
    assert meta["dsr_detail"].value["n_trials"] == TINY["n_trials"]  # the deflated Sharpe counts every trial
    assert meta["trials_per_minute"].value > 0
    assert {"label_threshold", "max_depth", "decision_threshold", "stop_atr", "max_hold_bars"} <= set(
        meta["best_params"].value)
    assert 0.0002 <= meta["best_params"].value["label_threshold"] <= 0.0006
    # The hold-out is the last day before the week, after the label horizon's purge; the study stops before it.
    assert meta["holdout_period"].value.startswith("2024-01-07 00:03")
    assert "2024-01-06 23:59" in meta["study_rows"].value
    print(f"\nstudy on the 10-day pipeline: {meta['trials_per_minute'].value:.1f} trials/minute")


def test_every_trial_is_an_mlflow_child_run_of_the_study(studied):
    p, _, meta = studied
    mlflow.set_tracking_uri(p.resources["mlflow"].tracking_uri)
    parent = mlflow.get_run(meta["mlflow_run_id"].value)
    assert parent.data.tags["kind"] == "params" and parent.data.tags["week_start"] == WEEK
    assert {"dsr", "pbo", "n_trials", "holdout_net_return", "holdout_sharpe_daily", "trials_per_minute"} <= set(
        parent.data.metrics)
    assert parent.data.metrics["n_trials"] == TINY["n_trials"]
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    children = mlflow.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  output_format="list")
    assert len(children) == TINY["n_trials"]
    for child in children:
        assert {"inner_sharpe_daily", "inner_net_return", "inner_trades"} <= set(child.data.metrics)
        assert {"label_threshold", "learning_rate", "decision_threshold", "stop_atr"} <= set(child.data.params)


def test_the_overfitting_check_warns_on_the_sample_without_failing_the_run(studied):
    _, res, meta = studied
    [check] = [c for c in res.get_asset_check_evaluations() if c.check_name == CHECK]
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert not check.passed  # 4 trials over a few half-day periods: the deflated Sharpe stays below 0.95
    assert "deflated Sharpe" in check.description or "backtest overfitting" in check.description
    assert check.metadata["min_dsr"].value == 0.95 and check.metadata["max_pbo"].value == 0.5
    assert check.metadata["n_trials"].value == TINY["n_trials"]


def test_forward_selection_over_feature_families_counts_every_candidate(model_pipeline):
    p = model_pipeline
    res = _materialize(p, {**TINY, "kind": "forward_selection", "max_steps": 1})
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    families = 9  # price_action, momentum, volatility, volume_flow, order_book, structure, perpetual, calendar, higher_tf
    assert meta["kind"].value == "forward_selection" and meta["n_trials"].value == families
    assert meta["dsr_detail"].value["n_trials"] == families and len(meta["best_params"].value["units"]) == 1
    mlflow.set_tracking_uri(p.resources["mlflow"].tracking_uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    children = mlflow.search_runs([exp.experiment_id], output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{meta['mlflow_run_id'].value}'")
    assert len(children) == families
    assert mlflow.get_run(meta["mlflow_run_id"].value).data.tags["kind"] == "forward_selection"
