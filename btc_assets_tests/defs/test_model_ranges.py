"""A range of weeks of a weekly model in one run (BackfillPolicy.single_run; common.each_week): every week trained,
recorded and judged on its own, with its own metadata and its own verdict; a failed week says which were done."""

import dagster as dg

from btc_assets.defs.models.assets import ensemble, lstm_model, transformer_model, xgb_model
from btc_assets_tests.defs.conftest import train_config


def test_every_weekly_model_takes_a_range_in_one_run():
    for asset in (xgb_model, lstm_model, transformer_model, ensemble):
        assert asset.backfill_policy == dg.BackfillPolicy.single_run(), asset.key


def test_a_range_of_weeks_is_one_run_with_each_weeks_own_figures_and_verdict(built):
    res = built.run([["models", "xgb_model"]], first="2024-01-08", last="2024-01-15", run_config=train_config())
    assert res.success
    mats = {e.event_specific_data.materialization.partition: e.event_specific_data.materialization.metadata
            for e in res.get_asset_materialization_events()}
    assert set(mats) == {"2024-01-08", "2024-01-15"}
    # each week its own MLflow run and model version (not the range's last one copied to every partition)
    assert mats["2024-01-08"]["mlflow_run"].value != mats["2024-01-15"]["mlflow_run"].value
    assert mats["2024-01-08"]["model_version"].value != mats["2024-01-15"]["model_version"].value
    assert mats["2024-01-15"]["range_weeks"].value == 2
    checks = {c.partition: c for c in res.get_asset_check_evaluations()}
    assert set(checks) == {"2024-01-08", "2024-01-15"}
    assert all(c.check_name == "xgb_model_beats_baselines" and c.severity == dg.AssetCheckSeverity.WARN
               for c in checks.values())
    weeks = built.sql("SELECT strftime(week_start, '%Y-%m-%d'), run_id FROM models.xgb_models ORDER BY week_start")
    assert [w for w, _ in weeks] == ["2024-01-08", "2024-01-15"]
    assert all(r in mats[w]["mlflow_run"].value for w, r in weeks)  # each week's row is its own MLflow run


def test_a_failed_week_of_a_range_is_named_with_the_weeks_done_before_it(built):
    res = built.run([["models", "xgb_model"]], first="2024-01-01", last="2024-01-08", run_config=train_config(),
                    raise_on_error=False)
    assert not res.success
    text = str(res.get_step_failure_events()[0].event_specific_data.error)
    assert "xgb week 2024-01-01 of the range 2024-01-01..2024-01-08 failed" in text
    assert "Weeks trained before it (in MLflow and the registry, not materialized by this failed run): none" in text


def test_the_cli_launches_a_range_of_weeks_as_one_run(tmp_path):
    """`dagster asset materialize --partition-range` (as `dg launch` does) over weekly models (refused before:
    "Partition ranges with the CLI require all selected assets to have a BackfillPolicy.single_run()"): one run over
    the weeks; here, on an empty warehouse, its first week fails and says so by the range. Run outside the repo so
    that its .env (the developer's instance) is not read."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from btc_assets.defs.resources.sources import SAMPLE_ARCHIVE

    repo = Path(__file__).resolve().parents[2]
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(repo / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "BTC_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(home),
           "BINANCE_ARCHIVE_URL": str(SAMPLE_ARCHIVE)}
    cli = Path(os.sys.executable).parent / "dagster"
    res = subprocess.run([str(cli), "asset", "materialize", "-m", "btc_assets.definitions", "--select",
                          "models/xgb_model", "--partition-range", "2024-01-01...2024-01-08"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    text = res.stdout + res.stderr
    assert "BackfillPolicy.single_run" not in text
    assert "xgb week 2024-01-01 of the range 2024-01-01..2024-01-08 failed: table gold.labels does not exist" in text
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    assert len(runs) == 1
    assert runs[0].tags["dagster/asset_partition_range_start"] == "2024-01-01"
    assert runs[0].tags["dagster/asset_partition_range_end"] == "2024-01-08"
