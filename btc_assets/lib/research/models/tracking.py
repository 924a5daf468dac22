"""MLflow logging and loading of models, with the same metric names for every model family.

One experiment per family (FAMILIES). Every run logs the pooled out-of-sample walk-forward metrics as
`test_<name>` beside `majority_<name>` and `persistence_<name>`, and each fold's as `fold_test_<name>`,
`fold_majority_<name>`, `fold_persistence_<name>` with the fold number as the step, so runs of any family compare
side by side in the MLflow UI. Nothing secret is logged: parameters are hyper-parameters and split boundaries only.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
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
    "transformer": Family("btc_assets.transformer", "btc_assets_transformer_next3m"),
    "ensemble": Family("btc_assets.ensemble", "btc_assets_ensemble_next3m"),
    "tft": Family("btc_assets.tft", "btc_assets_tft_regime"),
    "rf_daily": Family("btc_assets.rf_daily", "btc_assets_rf_daily_next1d"),
}
XGB_EXPERIMENT, XGB_REGISTERED_NAME = FAMILIES["xgb"].experiment, FAMILIES["xgb"].registered_name
DESCRIPTIONS = {
    "xgb": "XGBoost (hist, CPU) on the point-in-time 1m features: SELL/HOLD/BUY over the next 3 minutes, one model "
           "per trading week, trained on the weeks before it.",
    "lstm": "PyTorch LSTM over windows of the point-in-time 1m features: SELL/HOLD/BUY over the next 3 minutes, one "
            "model per trading week.",
    "transformer": "PyTorch Transformer encoder (multi-head self-attention, positional encoding) over windows of the "
                   "point-in-time 1m features: SELL/HOLD/BUY over the next 3 minutes and a confidence, one model per "
                   "trading week.",
    "tft": "Temporal Fusion Transformer (pytorch-forecasting) on the hourly history: quantile forecasts of the log "
           "return over the next 1, 7 and 30 days, scored by pinball loss and interval coverage against a zero "
           "return and historical quantiles; a regime filter for the trading rules, not a trading signal.",
    "ensemble": "XGBoost + LSTM of the week: mean class probabilities, a signal only where both agree.",
    "rf_daily": "Random forest on daily bars: next day's direction, the daily swing strategy's model.",
}
EVIDENCE_NOTE = ("Every run is one model: walk-forward out-of-sample metrics beside the majority-class and "
                 "persistence baselines (test_* / majority_* / persistence_*) and the folds' predictions traded by "
                 "the backtest engine after fees, slippage and funding (wf_net_return, wf_psr, "
                 "wf_random_entry_percentile, wf_trades). Tag promoted=true|false says whether it may trade; the "
                 "registered version with alias `champion` is the family's latest promoted model.")
CHAMPION = "champion"
# What an experiment is, for the MLflow UI: model training (not GenAI traces), with a description.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


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
    experiment_url: str = ""  # the family's runs table on its headline view


def ui_base() -> str:
    """The MLflow UI's address for links: MLFLOW_UI_URL, else 127.0.0.1 on BTC_UI_MLFLOW_PORT (default 5000)."""
    port = os.environ.get("BTC_UI_MLFLOW_PORT", "5000")
    return os.environ.get("MLFLOW_UI_URL", f"http://127.0.0.1:{port}").rstrip("/")


def dagster_base() -> str:
    """The Dagster UI's address for links: DAGSTER_UI_URL, else 127.0.0.1 on BTC_UI_DAGSTER_PORT (default 3000)."""
    port = os.environ.get("BTC_UI_DAGSTER_PORT", "3000")
    return os.environ.get("DAGSTER_UI_URL", f"http://127.0.0.1:{port}").rstrip("/")


# The runs table's saved view every experiment of the project carries (MLflow >= 3.15 keeps saved views as experiment
# tags `mlflow.sharedViewState.<id>`: the UI lists them under Views and opens one from `?viewStateShareKey=<id>`);
# its columns are the headline figures, so the table answers its question without choosing columns by hand.
HEADLINE_VIEW = "headline"
SAVED_VIEW_PREFIX = "mlflow.sharedViewState."
_SIGNAL_HEADLINE = ("wf_net_return", "wf_psr", "wf_trades", "wf_random_entry_percentile", "test_log_loss",
                    "majority_log_loss", "test_accuracy")
_HEADLINES = {
    "btc_assets.backtest": (("total_return", "sharpe", "max_drawdown", "n_trades", "fees_paid", "funding_paid",
                             "buy_and_hold.total_return", "buy_and_hold.sharpe", "random_entry.total_return"),
                            ("strategy", "model_versions")),
    "btc_assets.tft": (("test_pinball", "zero_pinball", "historical_pinball", "test_coverage"),
                       ("week_start", "promoted")),
    "btc_assets.study": (("holdout_net_return", "holdout_sharpe_daily", "holdout_trades", "buy_and_hold_return",
                          "dsr", "pbo", "n_trials", "inner_sharpe_daily"), ()),
}


def headline_columns(experiment: str) -> list[str]:
    """The runs-table columns of an experiment's headline view: metrics and tags, as MLflow's UI names them."""
    if experiment == COMPARISON_EXPERIMENT:
        fams = [f for f in FAMILIES if f != "tft"]
        metrics = [f"{f}.wf_net_return" for f in fams] + [f"{f}.promoted" for f in fams]
        tags: tuple[str, ...] = ("winner_net_of_costs", "promoted_families")
    elif experiment in _HEADLINES:
        metrics, tags = _HEADLINES[experiment]
    else:  # a signal family's experiment
        metrics, tags = _SIGNAL_HEADLINE, ("week_start", "promoted")
    return [f"tags.`{t}`" for t in tags] + [f"metrics.`{m}`" for m in metrics]


def saved_view(experiment: str, now_ms: int) -> str:
    """The tag value of the headline view: MLflow's saved-view envelope around the runs page's state (newest
    first)."""
    columns = headline_columns(experiment)
    state = {"selectedColumns": columns, "columnOrder": columns, "orderByKey": "attributes.start_time",
             "orderByAsc": False}
    return json.dumps({"name": "headline (after costs)", "createdAt": now_ms, "updatedAt": now_ms,
                       "state": json.dumps(state, separators=(",", ":"))}, separators=(",", ":"))


def set_headline_view(client, experiment_id: str, experiment: str, tags: dict[str, str]) -> None:
    """Give the experiment its headline view (idempotent: rewritten only when the columns changed)."""
    key = SAVED_VIEW_PREFIX + HEADLINE_VIEW
    held = tags.get(key)
    if held is not None:
        try:
            if json.loads(json.loads(held)["state"]).get("selectedColumns") == headline_columns(experiment):
                return
        except (ValueError, KeyError, TypeError):
            pass
    client.set_experiment_tag(experiment_id, key, saved_view(experiment, int(time.time() * 1000)))


def experiment_url(experiment_id: str) -> str:
    """An experiment's runs table in the MLflow UI, opened on its headline view."""
    return f"{ui_base()}/#/experiments/{experiment_id}/runs?viewStateShareKey={HEADLINE_VIEW}"


def ui_url(experiment_id: str, run_id: str, artifact: str | None = None) -> str:
    """A run's page in the MLflow UI, or (``artifact``) that run's artifact opened in the UI's viewer (HTML pages
    render there; the raw download endpoint serves them as attachments)."""
    url = f"{ui_base()}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{url}/artifactPath/{artifact}" if artifact else url


def describe_experiment(experiment_id: str, family: str) -> None:
    """Type the experiment as model training and give it its description (idempotent)."""
    import mlflow

    client = mlflow.MlflowClient()
    tags = client.get_experiment(experiment_id).tags
    wanted = {**EXPERIMENT_TAGS, "mlflow.note.content": f"{DESCRIPTIONS.get(family, family)}\n\n{EVIDENCE_NOTE}"}
    for k, v in wanted.items():
        if tags.get(k) != v:
            client.set_experiment_tag(experiment_id, k, v)


def _finite(d: dict[str, float]) -> dict[str, float]:
    """Every metric, NaN included (MLflow stores NaN): an undefined value (a class never predicted has no
    precision) must not make a name disappear, or runs stop lining up in the UI."""
    return {k: float(v) for k, v in d.items() if v is not None and not math.isinf(float(v))}


def _metric_name(k: str) -> str:
    kept = ("majority_", "persistence_", "train_", "wf_", "permuted_", "permutation_", "oracle_", "zero_",
            "historical_")
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
    started_at: float | None = None,
    predictions: pd.DataFrame | None = None,
) -> LoggedModel:
    """One run in the family's experiment: params, metrics beside baselines, and (via `log_model`) the model.

    `overall` and each of `fold_metrics` use walk_forward.evaluate's names (accuracy, majority_accuracy, ...).
    `log_model(registered_name)` logs and registers the model inside the run and returns mlflow's ModelInfo.
    `started_at` (time.time() when training began) makes the run's duration the training's, not the logging's;
    `predictions` (label, signal) adds the out-of-sample confusion matrix as an artifact.
    """
    import mlflow

    fam = FAMILIES[family]
    experiment_id = store.activate(fam.experiment)
    describe_experiment(experiment_id, family)
    client = mlflow.MlflowClient()
    created = client.create_run(experiment_id, start_time=int((started_at or time.time()) * 1000),
                                run_name=f"{family} {tags.get('week_start', '')}".strip(),
                                tags={"model_family": family, **tags})
    with mlflow.start_run(run_id=created.info.run_id) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({_metric_name(k): v for k, v in _finite(overall).items()})
        for i, fold in enumerate(fold_metrics):
            mlflow.log_metrics({f"fold_{_metric_name(k)}": v for k, v in _finite(fold).items()}, step=i)
        if predictions is not None and {"label", "signal"} <= set(predictions.columns) and len(predictions):
            mlflow.log_table(confusion_matrix(predictions), "evaluation/confusion_matrix.json")
        info = log_model(fam.registered_name) if log_model else None
    return LoggedModel(
        run_id=run.info.run_id,
        model_uri=info.model_uri if info else f"runs:/{run.info.run_id}",
        registered_name=fam.registered_name or family,
        version=str(info.registered_model_version) if info and fam.registered_name else "",
        run_url=ui_url(experiment_id, run.info.run_id), experiment_url=experiment_url(experiment_id),
    )


CLASSES = ("SELL", "HOLD", "BUY")


def confusion_matrix(predictions: pd.DataFrame) -> pd.DataFrame:
    """Out-of-sample counts of true label (rows) by predicted signal (columns), with each row's share right."""
    t = pd.crosstab(predictions["label"].astype(int), predictions["signal"].astype(int)).reindex(
        index=range(3), columns=range(3), fill_value=0)
    out = pd.DataFrame({"true": list(CLASSES)})
    for j, c in enumerate(CLASSES):
        out[f"predicted_{c}"] = t[j].to_numpy()
    out["rows"] = t.sum(axis=1).to_numpy()
    out["recall"] = [float(t.iloc[i, i] / r) if r else float("nan") for i, r in enumerate(out["rows"])]
    return out


def importance_table(scores: dict[str, float]) -> pd.DataFrame:
    """Features by importance, largest first, with each one's share of the total."""
    df = pd.DataFrame({"feature": list(scores), "importance": [float(v) for v in scores.values()]})
    df = df.sort_values("importance", ascending=False, ignore_index=True)
    total = df["importance"].sum()
    df["share"] = df["importance"] / total if total else 0.0
    return df


def record_verdict(store: MlflowStore, logged: LoggedModel, row: dict, *, dagster_run_id: str) -> None:
    """The promotion verdict everywhere MLflow shows a model: the run's tags, the registered version's tags and
    description, and the family's `champion` alias on the latest week's promoted version."""
    import mlflow

    promoted = bool(row["promoted"])
    week = f"{pd.Timestamp(row['week_start']):%Y-%m-%d}"
    data_range = f"{pd.Timestamp(row['train_from']):%Y-%m-%d %H:%M} .. {pd.Timestamp(row['train_to']):%Y-%m-%d %H:%M}"
    tags = {"promoted": str(promoted).lower(), "promotion_reason": str(row["reason"])[:500], "week_start": week,
            "data_range": data_range, "dagster_run": f"{dagster_base()}/runs/{dagster_run_id}"}
    client = mlflow.MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    for k, v in tags.items():
        client.set_tag(logged.run_id, k, v)
    compare_week(store, row, logged.run_id)
    if not logged.version:
        return
    name, version = logged.registered_name, logged.version
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    net = row.get("wf_net_return", float("nan"))
    headline = (f"out of sample after costs: net {net:+.2%} over {int(row.get('wf_trades', 0) or 0)} trades, "
                f"PSR {row.get('wf_psr', float('nan')):.2f}, random-entry percentile "
                f"{row.get('wf_random_entry_percentile', float('nan')):.0f}" if math.isfinite(net) else
                "no after-cost evidence")
    client.update_model_version(name, version, description=(
        f"Week {week} ({'PROMOTED' if promoted else 'NOT promoted'}): {row['reason']}. Trained on {data_range} UTC; "
        f"{headline}."))
    family = row.get("family", "")
    try:
        registered = client.get_registered_model(name)
        if not registered.description:
            client.update_registered_model(name, description=DESCRIPTIONS.get(family, name))
        current = registered.aliases.get(CHAMPION)
        current = None if current is None else str(current)
    except mlflow.exceptions.MlflowException:
        current = None
    if not promoted:
        return
    if current is not None and current != version:
        held = client.get_model_version(name, current).tags.get("week_start", "")
        if held > week:  # a backfill of an older week does not take the alias from a newer champion
            return
    client.set_registered_model_alias(name, CHAMPION, version)


COMPARISON_EXPERIMENT = "btc_assets.model_comparison"
COMPARED = ("wf_net_return", "wf_net_sharpe", "wf_psr", "wf_trades", "wf_random_entry_percentile")
COMPARISON_NOTE = ("Which family wins out of sample after costs, week by week: one run per trading week, the metrics "
                   "`<family>.wf_net_return`, `.wf_psr`, `.wf_trades`, ... and `<family>.promoted` (1/0) of every "
                   "family trained for it, the tag `winner_net_of_costs` (the best pooled walk-forward net return, "
                   "promoted or not) and `promoted_families`. Sort or chart by a column; each family's own run is "
                   "linked in the tag `<family>.run`. " + EVIDENCE_NOTE)


def compare_week(store: MlflowStore, row: dict, family_run_id: str) -> str:
    """Add a family's after-cost verdict of a week to that week's run in the comparison experiment (created on
    first use) and re-rank the week; returns the week's run id."""
    import mlflow

    family, week = str(row.get("family", "")), f"{pd.Timestamp(row['week_start']):%Y-%m-%d}"
    experiment_id = store.activate(COMPARISON_EXPERIMENT)
    client = mlflow.MlflowClient(tracking_uri=store.tracking_uri)
    exp = client.get_experiment(experiment_id)
    if exp.tags.get("mlflow.note.content") != COMPARISON_NOTE:
        client.set_experiment_tag(experiment_id, "mlflow.note.content", COMPARISON_NOTE)
        client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
    found = client.search_runs([experiment_id], f"tags.week_start = '{week}'", max_results=1)
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, run_name=f"week {week}", tags={"week_start": week}).info.run_id
    for k in COMPARED:
        v = row.get(k)
        if v is not None and math.isfinite(float(v)):
            client.log_metric(run_id, f"{family}.{k}", float(v))
    client.log_metric(run_id, f"{family}.promoted", float(bool(row["promoted"])))
    client.set_tag(run_id, f"{family}.run", ui_url(
        client.get_run(family_run_id).info.experiment_id, family_run_id))
    metrics = client.get_run(run_id).data.metrics
    nets = {k.removesuffix(".wf_net_return"): v for k, v in metrics.items() if k.endswith(".wf_net_return")}
    promoted = sorted(k.removesuffix(".promoted") for k, v in metrics.items() if k.endswith(".promoted") and v)
    if nets:
        best = max(nets, key=nets.get)
        client.set_tag(run_id, "winner_net_of_costs", f"{best} ({nets[best]:+.2%})")
    client.set_tag(run_id, "promoted_families", ", ".join(promoted) or "none: nothing trades this week")
    client.set_terminated(run_id)
    return run_id


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
        mlflow.log_table(importance_table(booster.get_score(importance_type="gain")),
                         "evaluation/feature_importance.json")
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

        from btc_assets.lib.research.models.ensemble import combine_frame, member_columns, members_of

        class Combiner(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):  # noqa: ARG002 - pyfunc API
                return combine_frame(model_input)

        frame = example[member_columns(members_of(example.columns))].reset_index(drop=True)
        return mlflow.pyfunc.log_model(
            name="model", python_model=Combiner(), signature=infer_signature(frame, combine_frame(frame)),
            input_example=frame, registered_model_name=name, pip_requirements=["numpy", "pandas"])
    return log


def sklearn_logger(model, example: pd.DataFrame) -> Callable[[str | None], Any]:
    def log(name: str | None):
        import mlflow.sklearn
        import sklearn
        from mlflow.models import infer_signature

        if hasattr(model, "feature_importances_"):
            mlflow.log_table(importance_table(dict(zip(example.columns, model.feature_importances_))),
                             "evaluation/feature_importance.json")
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


def load_tft(store: MlflowStore, model_uri: str):
    """Load a logged pytorch-forecasting TemporalFusionTransformer on the CPU (cached per process)."""
    return _load(store.tracking_uri, model_uri, "tft")


def tft_logger(net) -> Callable[[str | None], Any]:
    """The TFT as an mlflow.pytorch model (pickled whole: its dataset parameters, normalisers and weights)."""
    def log(name: str | None):
        import lightning
        import mlflow.pytorch
        import pytorch_forecasting
        import torch

        return mlflow.pytorch.log_model(
            net, name="model", registered_model_name=name, serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                              f"pytorch-forecasting=={pytorch_forecasting.__version__}",
                              f"lightning=={lightning.__version__}"])
    return log


def record_forecaster_verdict(store: MlflowStore, logged: LoggedModel, row: dict, *, dagster_run_id: str) -> None:
    """A forecaster's verdict where MLflow shows it: run and version tags, the version's description, and the
    `champion` alias on the latest week's promoted version (as record_verdict does for the trading families)."""
    import mlflow

    promoted = bool(row["promoted"])
    week = f"{pd.Timestamp(row['week_start']):%Y-%m-%d}"
    tags = {"promoted": str(promoted).lower(), "promotion_reason": str(row["reason"])[:500], "week_start": week,
            "data_range": f"{pd.Timestamp(row['train_from']):%Y-%m-%d %H:%M} .. "
                          f"{pd.Timestamp(row['train_to']):%Y-%m-%d %H:%M}",
            "dagster_run": f"{dagster_base()}/runs/{dagster_run_id}"}
    client = mlflow.MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    for k, v in tags.items():
        client.set_tag(logged.run_id, k, v)
    if not logged.version:
        return
    name, version = logged.registered_name, logged.version
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    client.update_model_version(name, version, description=f"Week {week} ({'PROMOTED' if promoted else 'NOT promoted'})"
                                f": {row['reason']}.")
    registered = client.get_registered_model(name)
    if not registered.description:
        client.update_registered_model(name, description=DESCRIPTIONS.get(row.get("family", ""), name))
    if promoted:
        current = registered.aliases.get(CHAMPION)
        if current is not None and str(current) != version:
            if client.get_model_version(name, str(current)).tags.get("week_start", "") > week:
                return
        client.set_registered_model_alias(name, CHAMPION, version)


def load_transformer(store: MlflowStore, model_uri: str):
    """Load a logged TransformerNet on the CPU (cached per process)."""
    return _load(store.tracking_uri, model_uri, "transformer")
