"""models/rf_daily_selection: the daily strategy's greedy forward feature selection over years of real daily bars
(lib/research/models/daily_selection.py): the chosen set and its hold-out Sharpe beside the four fixed features
and buy-and-hold, every trial an MLflow child run in the study experiment, the deflated Sharpe counting them."""

import math

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.models.rf_baseline import daily_source
from btc_assets.defs.models.study import EXPERIMENT
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.lib.research.models import daily_selection, rf_daily
from btc_assets.lib.research.models.tracking import ui_url

KEY = ["models", "rf_daily_selection"]


class DailySelectionConfig(dg.Config):
    n_estimators: int = 100
    max_depth: int = 4
    min_train_days: int = 1250
    test_days: int = 20
    holdout_days: int = 240
    max_features: int = 6
    seed: int = 7


DEMO_CONFIG = {"n_estimators": 40, "max_features": 3}


def _num(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), 4)


@dg.asset(
    key=KEY,
    deps=[dg.AssetDep(["silver", "klines_1d_history"], partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    pool="training",
    kinds={"scikitlearn", "mlflow"},
    description="Greedy forward selection of daily features for the daily random forest (the daily strategy's "
    "research): nested, the last holdout_days never seen by the selection; the chosen set's out-of-sample Sharpe "
    "on them beside the fixed four features and buy-and-hold (5 bp one way), the deflated Sharpe counting every "
    "trial; each trial an MLflow child run (experiment btc_assets.study).",
)
def rf_daily_selection(context: dg.AssetExecutionContext, config: DailySelectionConfig, warehouse: DuckDBResource,
                       mlflow: MlflowResource):
    import mlflow as ml

    with warehouse.get_connection() as conn:
        daily, source = daily_source(conn)
    data = daily_selection.candidate_dataset(daily)
    p = rf_daily.RfParams(n_estimators=config.n_estimators, max_depth=config.max_depth, seed=config.seed)
    try:
        sel = daily_selection.greedy_forward(data, p, min_train_days=config.min_train_days,
                                             test_days=config.test_days, holdout_days=config.holdout_days,
                                             max_features=config.max_features)
    except ValueError as exc:
        raise dg.Failure(f"models/rf_daily_selection ({source}): {exc}") from None
    exp = mlflow.activate(EXPERIMENT)
    with ml.start_run(experiment_id=exp, run_name="study daily_forward_selection") as parent:
        ml.set_tags({"kind": "daily_forward_selection", "chosen": ",".join(sel.chosen), "daily_bars": source})
        for i, t in enumerate(sel.trials):
            with ml.start_run(experiment_id=exp, run_name=f"trial {i}", nested=True):
                ml.set_tags({"features": t["features"], "step": str(t["step"])})
                ml.log_metrics({"oos_sharpe": t["sharpe"], "oos_days": float(t["days"])})
        ml.log_metrics({k: float(v) for k, v in {**sel.holdout, "n_trials": len(sel.trials),
                                                   "deflated_sharpe": sel.deflated.get("dsr", float("nan"))}.items()})
        run_url = ui_url(exp, parent.info.run_id)
    h = sel.holdout
    table = pd.DataFrame([
        {"strategy": f"chosen: {', '.join(sel.chosen)}", "sharpe": h["chosen_sharpe"], "return": h["chosen_return"]},
        {"strategy": f"fixed: {', '.join(daily_selection.FIXED)}", "sharpe": h["fixed_sharpe"],
         "return": h["fixed_return"]},
        {"strategy": "buy and hold", "sharpe": h["buy_and_hold_sharpe"], "return": h["buy_and_hold_return"]}])
    held = sel.holdout_returns["fixed"]
    span = f"{held.index.min():%Y-%m-%d} .. {held.index.max():%Y-%m-%d}" if len(held) else "none"
    return dg.MaterializeResult(metadata={
        "chosen_features": ", ".join(sel.chosen) or "none", "trials": len(sel.trials),
        "selection_days": sel.selection_days, "holdout": span, "daily_bars": source,
        "holdout_table": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")),
        **{f"holdout_{k}": _num(v) for k, v in h.items()},
        "deflated_sharpe": _num(sel.deflated.get("dsr")), "mlflow_run": dg.MetadataValue.url(run_url),
        "note": "Sharpe annualised from daily returns (x sqrt 365); unit exposure on each call's side, 5 bp per "
                "unit of position change; the hold-out was never seen by the selection"})
