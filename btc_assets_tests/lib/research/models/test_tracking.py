"""MLflow as a comparison tool: typed, described experiments; each version tagged with its verdict and described;
the family's `champion` alias on the latest week's promoted version only; a run lasting as long as its training."""

import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.lib.research.models import tracking


@pytest.fixture()
def store(tmp_path):
    return MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts"))


def _train(store, week: str, started: float | None = None) -> tracking.LoggedModel:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = rng.integers(0, 3, size=60)
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    preds = pd.DataFrame({"label": y, "signal": model.predict(x)})
    return tracking.log_run(store, "rf_daily", params={"week": week}, overall={"accuracy": 0.5},
                            fold_metrics=[], tags={"week_start": week}, started_at=started, predictions=preds,
                            log_model=tracking.sklearn_logger(model, x.head(3)))


def _row(week: str, promoted: bool) -> dict:
    return {"week_start": pd.Timestamp(week), "family": "rf_daily", "promoted": promoted,
            "reason": "promoted on after costs" if promoted else "loses after costs (net -1.2 %)",
            "train_from": pd.Timestamp("2024-01-01"), "train_to": pd.Timestamp(week) - pd.Timedelta(minutes=1),
            "wf_net_return": 0.012 if promoted else -0.012, "wf_trades": 7, "wf_psr": 0.97,
            "wf_random_entry_percentile": 96.0}


def test_versions_carry_the_verdict_and_the_champion_is_the_latest_promoted_week(store, monkeypatch):
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example:3000")
    client = mlflow.MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    name = tracking.FAMILIES["rf_daily"].registered_name

    v1 = _train(store, "2024-01-08", started=time.time() - 30)
    tracking.record_verdict(store, v1, _row("2024-01-08", False), dagster_run_id="r1")
    assert tracking.CHAMPION not in client.get_registered_model(name).aliases  # refused: no champion
    mv = client.get_model_version(name, v1.version)
    assert mv.tags["promoted"] == "false" and mv.tags["week_start"] == "2024-01-08"
    assert mv.tags["dagster_run"] == "http://dagster.example:3000/runs/r1" and "NOT promoted" in mv.description
    run = client.get_run(v1.run_id)
    assert run.data.tags["promoted"] == "false" and run.info.end_time - run.info.start_time >= 29_000

    v2 = _train(store, "2024-01-15")
    tracking.record_verdict(store, v2, _row("2024-01-15", True), dagster_run_id="r2")
    assert str(client.get_registered_model(name).aliases[tracking.CHAMPION]) == v2.version
    # a backfilled older week, promoted, does not take the alias from the newer champion
    v0 = _train(store, "2024-01-01")
    tracking.record_verdict(store, v0, _row("2024-01-01", True), dagster_run_id="r0")
    assert str(client.get_registered_model(name).aliases[tracking.CHAMPION]) == v2.version
    assert "net +1.20 % over 7 trades" in client.get_model_version(name, v2.version).description.replace("%", " %")

    exp = client.get_experiment_by_name(tracking.FAMILIES["rf_daily"].experiment)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "after fees" in exp.tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(v1.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.json", "evaluation/feature_importance.json"} <= artifacts


def test_the_confusion_matrix_counts_each_true_class_by_prediction():
    cm = tracking.confusion_matrix(pd.DataFrame({"label": [0, 0, 1, 2, 2, 2], "signal": [0, 1, 1, 2, 2, 0]}))
    assert cm["predicted_SELL"].tolist() == [1, 0, 1] and cm["rows"].tolist() == [2, 1, 3]
    assert cm["recall"].round(3).tolist() == [0.5, 1.0, 0.667]


def test_one_comparison_run_per_week_ranks_the_families_after_costs(store):
    mlflow.set_tracking_uri(store.tracking_uri)
    logged = _train(store, "2024-01-15")
    week = "2024-01-15"
    tracking.compare_week(store, {**_row(week, False), "family": "xgb", "wf_net_return": -0.03}, logged.run_id)
    tracking.compare_week(store, {**_row(week, True), "family": "rf_daily", "wf_net_return": 0.01}, logged.run_id)
    run_id = tracking.compare_week(store, {**_row(week, False), "family": "lstm", "wf_net_return": float("nan")},
                                   logged.run_id)
    tracking.compare_week(store, {**_row("2024-01-22", False), "family": "xgb"}, logged.run_id)
    exp = mlflow.get_experiment_by_name(tracking.COMPARISON_EXPERIMENT)
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    assert sorted(r.data.tags["week_start"] for r in runs) == ["2024-01-15", "2024-01-22"]  # one run per week
    run = mlflow.get_run(run_id)
    assert run.data.tags["winner_net_of_costs"] == "rf_daily (+1.00%)"
    assert run.data.tags["promoted_families"] == "rf_daily"
    assert run.data.metrics["xgb.wf_net_return"] == -0.03 and "lstm.wf_net_return" not in run.data.metrics
    assert run.data.metrics["lstm.promoted"] == 0.0 and run.info.status == "FINISHED"
    other = [r for r in runs if r.data.tags["week_start"] == "2024-01-22"][0]
    assert other.data.tags["promoted_families"] == "none: nothing trades this week"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_every_experiment_opens_on_its_headline_columns(store):
    """MLflow's saved-view envelope (experiment tag mlflow.sharedViewState.<id>): the runs table's columns are the
    after-cost headline, written once and rewritten only when the columns change; the link opens that view."""
    import json

    key = tracking.SAVED_VIEW_PREFIX + tracking.HEADLINE_VIEW
    exp_id = store.activate("btc_assets.xgboost")
    client = mlflow.MlflowClient()
    held = client.get_experiment(exp_id).tags[key]
    envelope = json.loads(held)
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])  # a string holding the runs page's state, as the UI reads it
    assert state["selectedColumns"][:2] == ["tags.`week_start`", "tags.`promoted`"]
    assert "metrics.`wf_net_return`" in state["selectedColumns"] and "metrics.`wf_psr`" in state["selectedColumns"]
    time.sleep(0.01)
    store.activate("btc_assets.xgboost")
    assert client.get_experiment(exp_id).tags[key] == held  # unchanged: not rewritten on every run
    client.set_experiment_tag(exp_id, key, "not a view")  # damaged or from an older column set: rewritten
    store.activate("btc_assets.xgboost")
    assert json.loads(client.get_experiment(exp_id).tags[key])["state"] == envelope["state"]
    # each kind of experiment has its own headline
    comparison = tracking.headline_columns(tracking.COMPARISON_EXPERIMENT)
    assert "metrics.`xgb.wf_net_return`" in comparison and "tags.`winner_net_of_costs`" in comparison
    assert "metrics.`buy_and_hold.total_return`" in tracking.headline_columns("btc_assets.backtest")
    assert tracking.experiment_url(exp_id).endswith(f"/#/experiments/{exp_id}/runs?viewStateShareKey=headline")
