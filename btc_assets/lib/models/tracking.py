"""MLflow logging and loading of models, with the same metric names for every model family.

Metrics are logged as `test_<name>` beside `majority_<name>` and `persistence_<name>`, so runs compare side by side
in the MLflow UI. Nothing secret is logged: parameters are model hyper-parameters and split boundaries only.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import xgboost as xgb

XGB_EXPERIMENT = "btc_assets.xgboost"
XGB_REGISTERED_NAME = "btc_assets_xgb_next3m"


class MlflowStore(Protocol):
    tracking_uri: str

    def activate(self, experiment: str) -> str: ...


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str
    registered_name: str
    version: str
    run_url: str


def ui_url(experiment_id: str, run_id: str) -> str:
    base = os.environ.get("MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def _finite(d: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if v is not None and math.isfinite(float(v))}


def log_xgb_model(
    store: MlflowStore,
    *,
    booster: xgb.Booster,
    features: list[str],
    example: pd.DataFrame,
    params: dict,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
    tags: dict[str, str],
    split_bounds: dict[str, str],
) -> LoggedModel:
    """Log params, out-of-sample metrics beside baselines, and the model with signature; register a version."""
    import mlflow
    import mlflow.xgboost
    from mlflow.models import infer_signature

    experiment_id = store.activate(XGB_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"xgb {tags.get('week_start', '')}") as run:
        mlflow.set_tags({"model_family": "xgboost", **tags})
        mlflow.log_params({**params, **split_bounds, "n_features": len(features)})
        mlflow.log_metrics({f"test_{k}": v for k, v in _finite(metrics).items()})
        for name, base in baselines.items():
            mlflow.log_metrics({f"{name}_{k}": v for k, v in _finite(base).items()})
        mlflow.log_metric("best_iteration", float(getattr(booster, "best_iteration", -1)))
        proba = booster.predict(xgb.DMatrix(example[features], feature_names=features))
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            signature=infer_signature(example[features], proba),
            input_example=example[features],
            registered_model_name=XGB_REGISTERED_NAME,
            # Declared, not inferred: inference loads the model in a subprocess and costs seconds per run.
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
    return LoggedModel(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        registered_name=XGB_REGISTERED_NAME,
        version=str(info.registered_model_version),
        run_url=ui_url(experiment_id, run.info.run_id),
    )


@functools.lru_cache(maxsize=16)
def _load(tracking_uri: str, model_uri: str) -> xgb.Booster:
    import mlflow
    import mlflow.xgboost

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.xgboost.load_model(model_uri)


def load_xgb(store: MlflowStore, model_uri: str) -> xgb.Booster:
    """Load a logged booster (cached per process: the live path loads the same model on every bar)."""
    return _load(store.tracking_uri, model_uri)
