"""Class probabilities of a registered model of any family for a week's rows: one code path for models/signals
and trading/decisions, so the batch and the live predictions are equal by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.research.models import ensemble, tracking, xgb
from btc_assets.lib.research.models.tracking import MlflowStore

# Families whose net reads a window of the last bars (lstm.py's prediction serves both), and their loaders.
SEQUENCE_FAMILIES = {"lstm": tracking.load_lstm, "transformer": tracking.load_transformer}
CONTEXT = pd.Timedelta(hours=2)  # feature rows before the first predicted bar that a sequence model may look at


def _one(store: MlflowStore, family: str, uri: str, rows: pd.DataFrame, context: pd.DataFrame | None) -> np.ndarray:
    if family in SEQUENCE_FAMILIES:
        from btc_assets.lib.research.models import lstm  # torch only where a sequence model predicts

        return lstm.predict_proba(SEQUENCE_FAMILIES[family](store, uri), rows, context)
    if family == "xgb":
        booster = tracking.load_xgb(store, uri)
        return xgb.predict_proba(booster, rows, xgb.features_of(booster))
    raise ValueError(f"no predictor for model family {family!r} ({uri}); expected xgb, lstm, transformer or ensemble")


def predict(store: MlflowStore, model: dict, rows: pd.DataFrame, context: pd.DataFrame | None = None) -> np.ndarray:
    """(n, 3) probabilities for `rows` (time-sorted gold features) from the registry row `model`.

    `context`: feature rows just before `rows` (an LSTM's window reaches back into them).
    """
    family = model["family"]
    if family == "ensemble":
        return ensemble.signal_proba(*(_one(store, fam, uri, rows, context)
                                       for fam, uri in ensemble.parse_uri(model["model_uri"])))
    return _one(store, family, model["model_uri"], rows, context)


def predict_signal(store: MlflowStore, model: dict, rows: pd.DataFrame,
                   context: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, signal 0 SELL / 1 HOLD / 2 BUY) for `rows`: the decision stored with the model (XGBoost:
    calibrated probabilities, the expected edge beyond the round-trip cost, the optional meta-label veto; LSTM and
    Transformer: the same without the veto); the most probable class of the ensemble's agreement rule and of older models."""
    if model["family"] == "xgb":
        booster = tracking.load_xgb(store, model["model_uri"])
        return xgb.predict_signal(booster, rows, xgb.features_of(booster))
    if model["family"] in SEQUENCE_FAMILIES:
        from btc_assets.lib.research.models import lstm

        return lstm.predict_signal(SEQUENCE_FAMILIES[model["family"]](store, model["model_uri"]), rows, context)
    proba = predict(store, model, rows, context)
    return proba, proba.argmax(axis=1).astype("int8")


def version_label(model: dict) -> str:
    return f"{model['registered_name']}/{model['model_version']}"
