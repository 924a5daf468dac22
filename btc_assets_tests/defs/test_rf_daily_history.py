"""The daily random forest on the bundled five years of real daily bars: the expanding walk-forward of the daily
strategy (1,250 days to start, 20-day steps), judged after costs like every family."""

import dagster as dg
import pandas as pd

from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.models import assets as models
from btc_assets.defs.resources import local_resources
from btc_assets.defs.silver import history

ASSETS = dg.load_assets_from_modules([bronze, history, models])


def test_the_daily_forest_walks_forward_over_years_of_real_daily_bars(tmp_path, sample_archive):
    resources = local_resources(tmp_path, archive_url=str(sample_archive))
    with dg.instance_for_test() as instance:
        def run(keys, tags=None, run_config=None):
            return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                                  instance=instance, tags=tags, run_config=run_config, raise_on_error=False)

        assert run([["bronze", "klines_history"], ["silver", "klines_1d_history"]],
                   tags={"dagster/asset_partition_range_start": "2019-10-01",
                         "dagster/asset_partition_range_end": "2024-12-01"}).success
        res = run([["models", "rf_daily_baseline"]], run_config={"ops": {"models__rf_daily_baseline": {"config": {
            "n_estimators": 40, "n_folds": 3}}}})
        selection = run([["models", "rf_daily_selection"]], run_config={"ops": {"models__rf_daily_selection": {
            "config": {"n_estimators": 10, "max_features": 1, "min_train_days": 1500, "holdout_days": 120}}}})
    assert res.success
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["daily_bars"].value == "silver.klines_1d_history + silver.klines_1d"
    assert meta["folds"].value == 3 and meta["days"].value > 1850  # 1,919 real days less the 20-day warm-up
    assert meta["first_day"].value.startswith("2019-10") and meta["last_day"].value.startswith("2024-12")
    # the last three 20-day steps: out of sample from 60 days before the end
    assert pd.Timestamp(meta["last_day"].value) - pd.Timestamp(meta["out_of_sample_from"].value) < pd.Timedelta(
        days=62)
    assert meta["days_with_assumed_spread"].value == meta["days"].value + 21  # no 1m bars here: all assumed, said
    for k in ("wf_net_return", "wf_psr", "wf_trades", "wf_random_entry_percentile"):
        assert k in meta
    (check,) = res.get_asset_check_evaluations()
    assert check.check_name == "rf_daily_model_beats_baselines"
    # the forward selection on the same bars: one feature chosen among the 12 candidates (12 trials, counted), its
    # hold-out (the last 120 days, never seen by the selection) beside the fixed four and buy-and-hold
    assert selection.success
    sm = selection.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert sm["trials"].value == 12 and len(sm["chosen_features"].value.split(", ")) == 1
    assert sm["holdout"].value.endswith("2024-12-30") and sm["holdout_days"].value == 120
    for k in ("holdout_chosen_sharpe", "holdout_fixed_sharpe", "holdout_buy_and_hold_return", "deflated_sharpe"):
        assert k in sm, k
