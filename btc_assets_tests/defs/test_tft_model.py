"""models/tft_model and models/regime_forecast in Dagster on the bundled real hourly history: trained on every bar
before the week, scored beside the naive baselines, registered in MLflow, and a forecast per day from the promoted
model of the latest week; none from an unpromoted one."""

import dagster as dg
import mlflow
import pandas as pd
import pytest

from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.models import assets as models
from btc_assets.defs.resources import local_resources
from btc_assets.defs.silver import history
from btc_assets.defs.silver import klines as silver_klines

ASSETS = dg.load_assets_from_modules([bronze, silver_klines, history, models])
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
TINY = {"encoder_hours": 48, "hidden_size": 8, "hidden_continuous_size": 4, "max_epochs": 1, "batches_per_epoch": 4,
        "batch_size": 64, "validation_days": 10, "n_folds": 1, "test_days": 10}
WEEK = "2024-01-01"


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, sample_archive):
    resources = local_resources(tmp_path_factory.mktemp("tft"), archive_url=str(sample_archive))
    with dg.instance_for_test() as instance:
        def run(keys, partition_key=None, first=None, last=None, run_config=None):
            return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                                  instance=instance, partition_key=partition_key, run_config=run_config,
                                  tags=dict(zip(RANGE, (first, last))) if first else None, raise_on_error=False)

        def sql(q, params=None):
            with resources["warehouse"].get_connection() as conn:
                return conn.execute(q, params or []).fetchall()

        assert run([["bronze", "klines_history"], ["silver", "klines_1h_history"]], first="2023-06-01",
                   last="2023-12-01").success
        assert run([["bronze", "klines_1m"], ["silver", "klines_1m"], ["silver", "klines_1h"]], first="2024-01-01",
                   last="2024-01-02").success
        yield run, sql, resources


def cfg(**extra):
    return {"ops": {"models__tft_model": {"config": {**TINY, **extra}}}}


def test_the_tft_trains_on_the_history_before_its_week_and_is_judged_by_the_baselines(pipe):
    run, sql, resources = pipe
    res = run([["models", "tft_model"]], partition_key=WEEK, run_config=cfg())
    assert res.success
    mat = res.get_asset_materialization_events()[0].event_specific_data.materialization
    meta = mat.metadata
    assert meta["model_version"].value == "btc_assets_tft_regime v1"
    for k in ("pinball", "zero_pinball", "historical_pinball", "coverage", "pinball_30d", "train_seconds",
              "train_samples_per_second"):
        assert k in meta, k
    assert meta["train_range"].value.endswith("UTC") and meta["train_range"].value.startswith("2023-06-08")  # after the 7-day feature warm-up
    (check,) = res.get_asset_check_evaluations()
    assert check.check_name == "tft_model_beats_baselines" and check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed == meta["promoted"].value
    (row,) = sql("SELECT train_to, promoted, reason FROM models.tft_models")
    # trained on outcomes known before the week: the 30-day return of its last row ends before 2024-01-01
    assert pd.Timestamp(row[0]) + pd.Timedelta(days=30) <= pd.Timestamp(WEEK)
    mlflow.set_tracking_uri(resources["mlflow"].tracking_uri)
    runs = mlflow.search_runs(experiment_names=["btc_assets.tft"])
    assert len(runs) == 1 and runs["tags.promoted"].iloc[0] == str(row[1]).lower()
    assert {"metrics.test_pinball", "metrics.zero_pinball", "metrics.historical_pinball",
            "metrics.test_coverage"} <= set(runs.columns)
    if not row[1]:  # an unpromoted forecaster forecasts nothing
        forecast = run([["models", "regime_forecast"]], first="2024-01-01", last="2024-01-02")
        assert forecast.success and sql("SELECT count(*) FROM models.regime_forecast") == [(0,)]


def test_each_day_gets_the_promoted_models_forecast_made_at_midnight(pipe):
    run, sql, resources = pipe
    assert run([["models", "tft_model"]], partition_key=WEEK, run_config=cfg(promotion="off")).success
    res = run([["models", "regime_forecast"]], first="2024-01-01", last="2024-01-02")
    assert res.success
    rows = sql("SELECT open_time, horizon, q10, q50, q90, spread, model_version FROM models.regime_forecast "
               "ORDER BY open_time, horizon")
    assert [(str(r[0]), r[1]) for r in rows] == [(f"2024-01-0{d} 00:00:00", h) for d in (1, 2)
                                                  for h in ("1d", "30d", "7d")]
    assert all(r[2] <= r[3] <= r[4] and r[5] > 0 for r in rows)
    assert {r[6] for r in rows} == {"btc_assets_tft_regime/2"}
    bad = run([["models", "tft_model"]], partition_key=WEEK, run_config=cfg(hidden_size=9))
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "hidden_size=9 must be a multiple of attention_heads=2" in str(failure.event_specific_data.error)
