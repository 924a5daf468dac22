"""models/rf_daily_baseline: the reference random forest on daily bars (lib/models/rf_daily.py), walk-forward over
all of silver's history, logged in its own MLflow experiment with the same metric names. It never trades."""


import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.lib.research.models import rf_daily, tracking
from btc_assets.lib.research.models.evaluation import METRIC_NAMES, beats_baselines

KEY = ["models", "rf_daily_baseline"]
MIN_TRAIN_DAYS = 10


class RfDailyConfig(dg.Config):
    n_estimators: int = 300
    max_depth: int = 4
    n_folds: int = 3
    test_days: int = 5
    seed: int = 7


@dg.asset(
    key=KEY,
    deps=[dg.AssetKey(["silver", "klines_1m"])],
    group_name="models",
    pool="duckdb",
    kinds={"scikitlearn", "mlflow"},
    check_specs=[common.promotion_spec("rf_daily", KEY)],
    description="Reference: random forest on daily bars (EMA-12 ratio, ATR-14, 20-day log return, MFI-14; "
    "next day beyond ±1 %), expanding walk-forward over every complete day in silver, logged and registered.",
)
def rf_daily_baseline(context: dg.AssetExecutionContext, config: RfDailyConfig, warehouse: DuckDBResource,
                      mlflow: MlflowResource):
    with warehouse.get_connection() as conn:
        bars = conn.execute("SELECT open_time, open, high, low, close, volume FROM silver.klines_1m "
                            "ORDER BY open_time").df()
    bars["open_time"] = pd.to_datetime(bars["open_time"]).dt.tz_localize("UTC")
    p = rf_daily.RfParams(n_estimators=config.n_estimators, max_depth=config.max_depth, seed=config.seed)
    data = rf_daily.daily_dataset(rf_daily.daily_bars(bars), p.threshold)
    needed = MIN_TRAIN_DAYS + config.n_folds * config.test_days
    if len(data) < needed:
        raise dg.Failure(f"rf_daily_baseline: {len(data)} usable days in silver.klines_1m after the 20-day warm-up, "
                         f"need {needed} ({MIN_TRAIN_DAYS} to train + {config.n_folds} folds x {config.test_days} "
                         "days); materialize more days or lower n_folds/test_days")
    wf = rf_daily.walk_forward(data, p, config.n_folds, config.test_days)
    final = rf_daily.fit(data, p)
    logged = tracking.log_run(mlflow, "rf_daily", params={**p.as_dict(), **config.model_dump(), "days": len(data)},
                              overall=wf.overall, fold_metrics=wf.fold_metrics,
                              tags={"dagster_run_id": context.run.run_id},
                              log_model=tracking.sklearn_logger(final, data[rf_daily.DAILY_FEATURES].tail(3)))
    promoted, why = beats_baselines(wf.overall)
    m = wf.overall
    yield dg.MaterializeResult(metadata={
        "mlflow_run": dg.MetadataValue.url(logged.run_url), "model_version": f"{logged.registered_name} v{logged.version}",
        "days": len(data), "folds": len(wf.fold_metrics), **{f"test_{k}": m[k] for k in METRIC_NAMES},
        **{f"majority_{k}": m[f"majority_{k}"] for k in METRIC_NAMES}})
    text = "beats its baselines" if promoted else "does not beat its baselines: " + "; ".join(why)
    yield dg.AssetCheckResult(check_name="rf_daily_model_beats_baselines", passed=promoted,
                              severity=dg.AssetCheckSeverity.ERROR, description=text, metadata={"verdict": text})
