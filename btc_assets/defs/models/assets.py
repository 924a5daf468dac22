"""Models: one XGBoost per trading week, trained only on the weeks before it, and its out-of-sample signals.

Walk-forward by construction: the model of week W sees gold rows strictly before W's Monday 00:00 UTC (minus a
purge of the label horizon), and `models/signals` of a day uses the model of that day's week. Every signal is
therefore out-of-sample.
"""


import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.gold.assets import LABEL_HORIZON
from btc_assets.defs.resources import MlflowResource
from btc_assets.lib.features import FEATURE_NAMES
from btc_assets.lib.labels import CLASS_NAMES
from btc_assets.lib.models import tracking, xgb
from btc_assets.lib.models.evaluation import classification_metrics, majority_baseline, persistence_baseline
from btc_assets.lib.warehouse import ensure_table, read_window, replace_window

TRAIN_WEEKS = 4
train_mapping = dg.TimeWindowPartitionMapping(start_offset=-TRAIN_WEEKS, end_offset=-1)
REGISTRY_TABLE = "models.xgb_models"
REGISTRY_TYPES = {
    "week_start": "TIMESTAMP", "run_id": "VARCHAR", "model_uri": "VARCHAR", "registered_name": "VARCHAR",
    "model_version": "VARCHAR", "train_from": "TIMESTAMP", "train_to": "TIMESTAMP", "test_accuracy": "DOUBLE",
    "test_log_loss": "DOUBLE", "baseline_log_loss": "DOUBLE", "beats_baseline": "BOOLEAN", "trained_at": "TIMESTAMP",
}
SIGNAL_TYPES = {"open_time": "TIMESTAMP", "model_version": "VARCHAR", "p_sell": "DOUBLE", "p_hold": "DOUBLE",
                "p_buy": "DOUBLE", "signal": "TINYINT"}


class XgbTrainingConfig(dg.Config):
    min_train_days: int = 10
    validation_fraction: float = 0.15
    test_fraction: float = 0.2
    max_depth: int = 4
    learning_rate: float = 0.05
    n_estimators: int = 400
    seed: int = 7


def load_training_rows(conn, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Warmed-up gold rows in [start, end) joined to their known labels."""
    feats = read_window(conn, "gold.features", "open_time", start, end)
    labs = read_window(conn, "gold.labels", "open_time", start, end)
    df = feats.merge(labs, on="open_time", how="inner")
    return df[df["warmed_up"] & df["label"].notna()].reset_index(drop=True)


@dg.asset(
    key=["models", "xgb_model"],
    ins={
        "features": dg.AssetIn(["gold", "features"], partition_mapping=train_mapping, dagster_type=dg.Nothing),
        "labels": dg.AssetIn(["gold", "labels"], partition_mapping=train_mapping, dagster_type=dg.Nothing),
    },
    group_name="models",
    partitions_def=partitions.weekly,
    pool="duckdb",
    kinds={"xgboost", "mlflow"},
    check_specs=[dg.AssetCheckSpec("xgb_model_beats_majority_baseline", asset=["models", "xgb_model"],
                                   description="Out-of-sample log-loss below the majority-class baseline's.")],
    description=f"XGBoost (hist, CPU) for the trading week, trained on the {TRAIN_WEEKS} weeks before it; "
    "registered in MLflow with its out-of-sample test metrics beside the baselines.",
)
def xgb_model(
    context: dg.AssetExecutionContext, config: XgbTrainingConfig, warehouse: DuckDBResource, mlflow: MlflowResource
):
    week_start = pd.Timestamp(context.partition_time_window.start)
    train_from = week_start - pd.Timedelta(weeks=TRAIN_WEEKS)
    # The last labels before the week look LABEL_HORIZON minutes into it: purge them.
    train_to = week_start - pd.Timedelta(minutes=LABEL_HORIZON)
    with warehouse.get_connection() as conn:
        rows = load_training_rows(conn, train_from, train_to)
    days = rows["open_time"].dt.floor("D").nunique() if len(rows) else 0
    if days < config.min_train_days:
        raise dg.Failure(
            f"week {week_start:%Y-%m-%d}: only {days} days of warmed-up gold rows between {train_from} and "
            f"{train_to} (need {config.min_train_days}); materialize gold/features and gold/labels for the "
            f"{TRAIN_WEEKS} weeks before it, or pick a later week"
        )
    split = xgb.chronological_split(rows, validation_fraction=config.validation_fraction,
                                    test_fraction=config.test_fraction, purge_minutes=LABEL_HORIZON)
    params = xgb.XgbParams(max_depth=config.max_depth, learning_rate=config.learning_rate,
                           n_estimators=config.n_estimators, seed=config.seed)
    booster = xgb.train(split.train, split.validation, FEATURE_NAMES, params)
    y_test = split.test["label"].astype(int).to_numpy()
    metrics = classification_metrics(y_test, xgb.predict_proba(booster, split.test, FEATURE_NAMES))
    baseline = majority_baseline(split.train["label"].astype(int).to_numpy(), y_test)
    persistence = persistence_baseline(y_test, LABEL_HORIZON)
    logged = tracking.log_xgb_model(
        mlflow, booster=booster, features=FEATURE_NAMES, example=split.test[FEATURE_NAMES].head(5),
        params=params.as_dict(), metrics=metrics, baselines={"majority": baseline, "persistence": persistence},
        tags={"week_start": f"{week_start:%Y-%m-%d}", "dagster_run_id": context.run.run_id},
        split_bounds={f"{name}_{edge}": str(part["open_time"].agg(edge)) for name, part in
                      (("train", split.train), ("validation", split.validation), ("test", split.test))
                      for edge in ("min", "max")},
    )
    beats = metrics["log_loss"] < baseline["log_loss"]
    record = pd.DataFrame([{
        "week_start": week_start, "run_id": logged.run_id, "model_uri": logged.model_uri,
        "registered_name": logged.registered_name, "model_version": logged.version,
        "train_from": split.train["open_time"].min(), "train_to": split.test["open_time"].max(),
        "test_accuracy": metrics["accuracy"], "test_log_loss": metrics["log_loss"],
        "baseline_log_loss": baseline["log_loss"], "beats_baseline": beats,
        "trained_at": pd.Timestamp.now(tz="UTC"),
    }])
    with warehouse.get_connection() as conn:
        replace_window(conn, REGISTRY_TABLE, REGISTRY_TYPES, record, "week_start", week_start,
                       week_start + pd.Timedelta(weeks=1))
    yield dg.MaterializeResult(
        metadata={
            "mlflow_run": dg.MetadataValue.url(logged.run_url),
            "model_uri": logged.model_uri,
            "model_version": f"{logged.registered_name} v{logged.version}",
            "train_rows": len(split.train), "validation_rows": len(split.validation), "test_rows": len(split.test),
            "test_period": f"{split.test['open_time'].min()} .. {split.test['open_time'].max()}",
            "best_iteration": int(getattr(booster, "best_iteration", -1)),
            **{f"test_{k}": v for k, v in metrics.items() if not k.startswith("n_")},
            **{f"majority_{k}": baseline[k] for k in ("accuracy", "f1_macro", "log_loss")},
            **{f"persistence_{k}": persistence.get(k, float("nan")) for k in ("accuracy", "f1_macro")},
        }
    )
    yield dg.AssetCheckResult(
        check_name="xgb_model_beats_majority_baseline", passed=bool(beats),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"test_log_loss": metrics["log_loss"], "majority_log_loss": baseline["log_loss"],
                  "test_f1_macro": metrics["f1_macro"], "majority_f1_macro": baseline["f1_macro"]},
    )


@dg.asset(
    key=["models", "signals"],
    ins={
        "features": dg.AssetIn(["gold", "features"], dagster_type=dg.Nothing),
        "model": dg.AssetIn(["models", "xgb_model"], partition_mapping=dg.TimeWindowPartitionMapping(),
                            dagster_type=dg.Nothing),
    },
    group_name="models",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="duckdb",
    kinds={"duckdb"},
    description="Out-of-sample class probabilities and signal (0 SELL, 1 HOLD, 2 BUY) per warmed-up bar, from the "
    "model of the bar's week. Table models.signals: the input of the backtest.",
)
def signals(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource):
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    frames = []
    with warehouse.get_connection() as conn:
        feats = read_window(conn, "gold.features", "open_time", start, end)
        feats = feats[feats["warmed_up"]]
        for week, rows in feats.groupby(feats["open_time"].dt.tz_localize(None).dt.to_period("W-SUN")):
            model = model_for_week(conn, week.start_time.tz_localize("UTC"))
            booster = tracking.load_xgb(mlflow, model["model_uri"])
            proba = xgb.predict_proba(booster, rows, FEATURE_NAMES)
            frames.append(signal_frame(rows["open_time"], proba, f"{model['registered_name']}/{model['model_version']}"))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(SIGNAL_TYPES))
        written = replace_window(conn, "models.signals", SIGNAL_TYPES, out, "open_time", start, end)
    counts = out["signal"].astype(int).map(CLASS_NAMES).value_counts().to_dict() if written else {}
    return dg.MaterializeResult(metadata={"rows": written, "models": sorted(out["model_version"].unique().tolist()),
                                          **{f"signals_{k}": int(v) for k, v in counts.items()}})


def model_for_week(conn, week_start: pd.Timestamp) -> dict:
    ensure_table(conn, REGISTRY_TABLE, REGISTRY_TYPES)
    found = read_window(conn, REGISTRY_TABLE, "week_start", week_start, week_start + pd.Timedelta(seconds=1))
    if found.empty:
        raise dg.Failure(f"no XGBoost model for the week starting {week_start:%Y-%m-%d}: materialize "
                         f"models/xgb_model partition {week_start:%Y-%m-%d} first")
    return found.iloc[-1].to_dict()


def signal_frame(times: pd.Series, proba: np.ndarray, model_version: str) -> pd.DataFrame:
    return pd.DataFrame({"open_time": times.reset_index(drop=True), "model_version": model_version, "p_sell": proba[:, 0],
                         "p_hold": proba[:, 1], "p_buy": proba[:, 2], "signal": proba.argmax(axis=1).astype("int8")})
