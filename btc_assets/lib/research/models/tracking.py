"""MLflow logging and loading of models, with the same metric names for every model family.

One experiment per family (FAMILIES). Every run logs the pooled out-of-sample walk-forward metrics as
`test_<name>` beside `majority_<name>` and `persistence_<name>`, and each fold's as `fold_test_<name>`,
`fold_majority_<name>`, `fold_persistence_<name>` with the fold number as the step, so runs of any family compare
side by side in the MLflow UI. Nothing secret is logged: parameters are hyper-parameters and split boundaries only.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import pandas as pd


@dataclass(frozen=True)
class Family:
    experiment: str
    registered_name: str | None  # None: the run is logged, no model is registered (the ensemble, the reference)


FAMILIES = {
    "xgb": Family("btc_assets.xgboost", "btc_assets_xgb_next3m"),
    "lstm": Family("btc_assets.lstm", "btc_assets_lstm_next3m"),
    "ensemble": Family("btc_assets.ensemble", "btc_assets_ensemble_next3m"),
    "rf_daily": Family("btc_assets.rf_daily", "btc_assets_rf_daily_next1d"),
}
XGB_EXPERIMENT, XGB_REGISTERED_NAME = FAMILIES["xgb"].experiment, FAMILIES["xgb"].registered_name


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
    """Every metric, NaN included (MLflow stores NaN): an undefined value (a class never predicted has no
    precision) must not make a name disappear, or runs stop lining up in the UI."""
    return {k: float(v) for k, v in d.items() if v is not None and not math.isinf(float(v))}


def _metric_name(k: str) -> str:
    kept = ("majority_", "persistence_", "train_", "wf_", "permuted_", "permutation_", "oracle_")
    return k if k.startswith(kept) else f"test_{k}"


def log_run(
    store: MlflowStore,
    family: str,
    *,
    params: dict,
    overall: dict[str, float],
    fold_metrics: list[dict[str, float]],
    tags: dict[str, str],
    log_model: Callable[[str | None], Any] | None = None,
) -> LoggedModel:
    """One run in the family's experiment: params, metrics beside baselines, and (via `log_model`) the model.

    `overall` and each of `fold_metrics` use walk_forward.evaluate's names (accuracy, majority_accuracy, ...).
    `log_model(registered_name)` logs and registers the model inside the run and returns mlflow's ModelInfo.
    """
    import mlflow

    fam = FAMILIES[family]
    experiment_id = store.activate(fam.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{family} {tags.get('week_start', '')}") as run:
        mlflow.set_tags({"model_family": family, **tags})
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({_metric_name(k): v for k, v in _finite(overall).items()})
        for i, fold in enumerate(fold_metrics):
            mlflow.log_metrics({f"fold_{_metric_name(k)}": v for k, v in _finite(fold).items()}, step=i)
        info = log_model(fam.registered_name) if log_model else None
    return LoggedModel(
        run_id=run.info.run_id,
        model_uri=info.model_uri if info else f"runs:/{run.info.run_id}",
        registered_name=fam.registered_name or family,
        version=str(info.registered_model_version) if info and fam.registered_name else "",
        run_url=ui_url(experiment_id, run.info.run_id),
    )


def tag_run(store: MlflowStore, run_id: str, tags: dict[str, str]) -> None:
    """Tags decided after the run was logged (the promotion verdict)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store.tracking_uri)
    for k, v in tags.items():
        client.set_tag(run_id, k, v)


def xgb_logger(booster, features: list[str], example: pd.DataFrame) -> Callable[[str | None], Any]:
    def log(name: str | None):
        import mlflow.xgboost
        import xgboost as xgb
        from mlflow.models import infer_signature

        proba = booster.predict(xgb.DMatrix(example[features], feature_names=features))
        return mlflow.xgboost.log_model(
            booster, name="model", signature=infer_signature(example[features], proba),
            input_example=example[features], registered_model_name=name,
            # Declared, not inferred: inference loads the model in a subprocess and costs seconds per run.
            pip_requirements=[f"xgboost=={xgb.__version__}"])
    return log


def lstm_logger(net, example: "Any") -> Callable[[str | None], Any]:
    """`example`: a float32 array (n, window, features) of raw feature windows."""
    def log(name: str | None):
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        with torch.no_grad():
            proba = net(torch.from_numpy(example)).numpy()
        return mlflow.pytorch.log_model(
            net, name="model", signature=infer_signature(example, proba), input_example=example,
            registered_model_name=name, pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            # pickle keeps the whole LstmNet (its feature list, window and scaler); pt2 export would drop them.
            serialization_format="pickle")
    return log


def ensemble_logger(example: pd.DataFrame) -> Callable[[str | None], Any]:
    """The ensemble registered as a pyfunc combiner: its input is the members' class probabilities (the members
    are registered models of their own, named in the run's tags), its output the ensemble's probabilities."""
    def log(name: str | None):
        import mlflow.pyfunc
        from mlflow.models import infer_signature

        from btc_assets.lib.research.models.ensemble import MEMBER_COLUMNS, combine_frame

        class Combiner(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):  # noqa: ARG002 - pyfunc API
                return combine_frame(model_input)

        frame = example[MEMBER_COLUMNS].reset_index(drop=True)
        return mlflow.pyfunc.log_model(
            name="model", python_model=Combiner(), signature=infer_signature(frame, combine_frame(frame)),
            input_example=frame, registered_model_name=name, pip_requirements=["numpy", "pandas"])
    return log


def sklearn_logger(model, example: pd.DataFrame) -> Callable[[str | None], Any]:
    def log(name: str | None):
        import mlflow.sklearn
        import sklearn
        from mlflow.models import infer_signature

        return mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(example, model.predict_proba(example)),
            input_example=example, registered_model_name=name,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            # skops (the safe default format) refuses a forest's tree storage unless the type is trusted by name.
            skops_trusted_types=["sklearn.tree._tree.Tree"])
    return log


@functools.lru_cache(maxsize=32)
def _load(tracking_uri: str, model_uri: str, flavor: str):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if flavor == "xgb":
        import mlflow.xgboost
        return mlflow.xgboost.load_model(model_uri)
    import mlflow.pytorch
    net = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    net.eval()
    return net


def load_xgb(store: MlflowStore, model_uri: str):
    """Load a logged booster (cached per process: the live path loads the same model on every bar)."""
    return _load(store.tracking_uri, model_uri, "xgb")


def load_lstm(store: MlflowStore, model_uri: str):
    """Load a logged LstmNet on the CPU (cached per process)."""
    return _load(store.tracking_uri, model_uri, "lstm")
