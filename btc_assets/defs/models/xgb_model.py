"""models/xgb_model: XGBoost (hist, CPU) for a trading week, evaluated walk-forward, registered, promoted or not."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.models import tracking, xgb

KEY = ["models", "xgb_model"]


class XgbTrainingConfig(common.WalkForwardSettings):
    max_depth: int = 4
    learning_rate: float = 0.05
    n_estimators: int = 400
    seed: int = 7
    n_jobs: int = 2

    def params(self) -> xgb.XgbParams:
        return xgb.XgbParams(max_depth=self.max_depth, learning_rate=self.learning_rate,
                             n_estimators=self.n_estimators, seed=self.seed, n_jobs=self.n_jobs)


# `make demo`: 2 folds instead of 3 and a doubled learning rate (about half the boosting rounds) keep 7 weekly
# retrains of all families within the demo's budget on 2 shared cores.
DEMO_CONFIG = {"n_folds": 2, "learning_rate": 0.1}


@dg.asset(
    key=KEY,
    ins=common.TRAINING_INS,
    group_name="models",
    partitions_def=partitions.weekly,
    backfill_policy=dg.BackfillPolicy.single_run(),  # a range of weeks in one run (common.each_week)
    pool="training",
    kinds={"xgboost", "mlflow"},
    check_specs=[common.promotion_spec("xgb", KEY, partitions.weekly)],
    description=f"XGBoost (hist, CPU) for the trading week, trained on the {common.TRAIN_WEEKS} weeks before it; "
    "walk-forward folds inside them give the out-of-sample metrics beside the baselines; the final model (all "
    "weeks, early-stopped on their last slice) is registered in MLflow and promoted only if it beats the baselines.",
)
def xgb_model(context: dg.AssetExecutionContext, config: XgbTrainingConfig, warehouse: DuckDBResource,
              mlflow: MlflowResource, trading: TradingResource):
    params = config.params()
    features = config.feature_list()

    def fit_final(split, policy) -> common.FinalModel:
        booster = xgb.train(split.train, split.validation, features, params)
        # calibrated on the last (validation) slice, edge rule from the training slice: stored on the booster
        said = xgb.attach_decision(booster, split.train, split.validation, features, policy)
        return common.FinalModel(
            params={**params.as_dict(), "decision_cost": policy.cost},
            log_model=tracking.xgb_logger(booster, features, split.validation[features].tail(5)),
            metadata={"best_iteration": int(getattr(booster, "best_iteration", -1)), "decision_fit": said},
            decided={"rule": booster.attr("decision"), "text": said})

    yield from common.train_family(context, "xgb", config, warehouse, mlflow, trading,
                                   lambda policy: xgb.fit_predict(features, params, policy), fit_final,
                                   policy_aware=True)
