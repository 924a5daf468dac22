"""XGBoost on gold features: chronological splits with a purge, training with early stopping, prediction.

Nothing is shuffled across time. The data before a model's first trading day is cut into
train | purge | validation (early stopping) | purge | test (the reported out-of-sample metrics); each purge is at
least the label horizon, so no label in an earlier block looks at prices inside a later one.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import xgboost as xgb

from btc_assets.lib.research.labels import HOLD
from btc_assets.lib.research.models import decision


@dataclass(frozen=True)
class XgbParams:
    max_depth: int = 4
    learning_rate: float = 0.05
    n_estimators: int = 400
    early_stopping_rounds: int = 30
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    seed: int = 7
    n_jobs: int = 2

    def booster_params(self) -> dict:
        return {
            "objective": "multi:softprob",
            "num_class": 3,
            "tree_method": "hist",
            "eval_metric": "mlogloss",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "seed": self.seed,
            "nthread": self.n_jobs,
        }

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def chronological_split(
    df: pd.DataFrame, *, validation_fraction: float, test_fraction: float, purge_minutes: int
) -> Split:
    """Cut rows sorted by open_time into train/validation/test, dropping `purge_minutes` before each later block."""
    d = df.sort_values("open_time").reset_index(drop=True)
    t = d["open_time"]
    span_start, span_end = t.iloc[0], t.iloc[-1]
    span = span_end - span_start
    test_start = span_end - span * test_fraction
    val_start = test_start - span * validation_fraction
    purge = pd.Timedelta(minutes=purge_minutes)
    train = d[t < val_start - purge]
    validation = d[(t >= val_start) & (t < test_start - purge)] if test_fraction > 0 else d[t >= val_start]
    test = d[t >= test_start] if test_fraction > 0 else d.iloc[:0]
    if min(len(train), len(validation)) == 0 or (test_fraction > 0 and len(test) == 0):
        raise ValueError(
            f"not enough rows to split {span_start}..{span_end} into train/validation/test "
            f"({len(train)}/{len(validation)}/{len(test)}); train on a longer history"
        )
    return Split(train=train, validation=validation, test=test)


def train(
    train_df: pd.DataFrame, val_df: pd.DataFrame, features: list[str], params: XgbParams
) -> xgb.Booster:
    # QuantileDMatrix bins the features once, straight from the frame: less memory and time than a DMatrix for
    # the hist method; the validation matrix reuses the training bins.
    dtrain = xgb.QuantileDMatrix(train_df[features], label=train_df["label"].astype(int), feature_names=features)
    dval = xgb.QuantileDMatrix(val_df[features], label=val_df["label"].astype(int), feature_names=features,
                               ref=dtrain)
    return xgb.train(
        params.booster_params(),
        dtrain,
        num_boost_round=params.n_estimators,
        evals=[(dval, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )


def predict_proba(booster: xgb.Booster, df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Class probabilities (n, 3) using only the trees up to the early-stopping best iteration, calibrated by the
    booster's own `calibration` attribute when it has one (attach_decision).

    inplace_predict skips building a DMatrix: one bar costs well under a millisecond instead of several.
    """
    raw = _raw_proba(booster, df, features)
    return _calibrator(booster.attr("calibration")).apply(raw)


@lru_cache(maxsize=64)
def _calibrator(text: str | None) -> decision.Calibrator:
    return decision.Calibrator.from_json(text)


@lru_cache(maxsize=16)
def _meta_booster(text: str) -> xgb.Booster:
    b = xgb.Booster()
    b.load_model(bytearray(base64.b64decode(text)))
    return b


def features_of(booster: xgb.Booster) -> list[str]:
    """The feature columns the booster was trained on (stored with it), in order."""
    if not booster.feature_names:
        raise ValueError("the booster has no stored feature names: it was not trained by xgb.train here; retrain it")
    return list(booster.feature_names)


def _raw_proba(booster: xgb.Booster, df: pd.DataFrame, features: list[str]) -> np.ndarray:
    if list(booster.feature_names or features) != list(features):
        trained, asked = list(booster.feature_names), list(features)
        missing = [f for f in trained if f not in asked][:3]
        extra = [f for f in asked if f not in trained][:3]
        raise ValueError(f"the booster was trained on {len(trained)} features but asked to predict with {len(asked)} "
                         f"(missing {missing or 'none'}, not trained on {extra or 'none'}"
                         f"{', same names in another order' if not missing and not extra else ''}); "
                         f"predict with xgb.features_of(booster)")
    best = getattr(booster, "best_iteration", None)
    rng = (0, best + 1) if best is not None else (0, 0)
    x = df[features].to_numpy(dtype=np.float32)
    return booster.inplace_predict(x, iteration_range=rng, validate_features=False).reshape(len(df), -1)


def _meta_inputs(df: pd.DataFrame, features: list[str], proba: np.ndarray, rule: decision.EdgeRule) -> np.ndarray:
    x = df[features].to_numpy(dtype=np.float32)
    return np.column_stack([x, proba.astype(np.float32), rule.expected_return(proba).astype(np.float32)])


def fit_meta(val_df: pd.DataFrame, features: list[str], proba: np.ndarray, rule: decision.EdgeRule,
             min_rows: int, seed: int = 7) -> tuple[xgb.Booster | None, str]:
    """The meta-label model: on the validation rows where the primary rule trades, does acting earn the cost?
    (None, why) when there are too few such rows or only one outcome."""
    sig = rule.signal(proba)
    trades = sig != HOLD
    y = decision.meta_target(sig[trades], val_df["fwd_return"].to_numpy()[trades], rule.cost)
    if trades.sum() < min_rows or y.min() == y.max():
        return None, (f"meta-labelling not fitted: {int(trades.sum())} primary trades on the validation slice "
                      f"(need {min_rows} with both outcomes); the primary rule decides alone")
    d = xgb.DMatrix(_meta_inputs(val_df[trades], features, proba[trades], rule), label=y)
    meta = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.1, "min_child_weight": 5,
                      "subsample": 0.8, "seed": seed, "nthread": 2}, d, num_boost_round=50)
    return meta, f"meta-label model fitted on {int(trades.sum())} primary trades ({y.mean():.0%} earned the cost)"


def attach_decision(booster: xgb.Booster, train_df: pd.DataFrame, val_df: pd.DataFrame, features: list[str],
                    policy: decision.DecisionPolicy) -> str:
    """Calibrate on the validation slice, fit the edge rule on the training slice and (optionally) the meta model
    on the validation slice; store all three on the booster. Returns what was done, for the metadata."""
    raw = _raw_proba(booster, val_df, features)
    cal = decision.fit_calibrator(raw, val_df["label"].astype(int).to_numpy(), policy.calibration)
    rule = decision.fit_edge_rule(train_df, policy.cost)
    booster.set_attr(calibration=cal.to_json(), decision=rule.to_json() if policy.rule == "edge" else None,
                     meta_model=None)
    kinds = "/".join(cal.kinds) if cal.params else "none"
    said = (f"calibration {cal.method} (SELL/HOLD/BUY: {kinds}) on {len(val_df)} validation rows; "
            + policy.describe())
    if policy.meta_labelling and policy.rule != "edge":
        said += "; meta-labelling needs decision=edge: not fitted"
    elif policy.meta_labelling:
        meta, why = fit_meta(val_df, features, cal.apply(raw), rule, policy.min_meta_rows)
        if meta is not None:
            booster.set_attr(meta_model=base64.b64encode(bytes(meta.save_raw("ubj"))).decode())
        said += "; " + why
    return said


def predict_signal(booster: xgb.Booster, df: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated probabilities, signal 0/1/2): the booster's edge rule and meta veto when it has them, else the
    most probable class (a model trained before decisions were stored)."""
    proba = predict_proba(booster, df, features)
    rule_text = booster.attr("decision")
    if not rule_text:
        return proba, proba.argmax(axis=1).astype("int8")
    rule = decision.EdgeRule.from_json(rule_text)
    sig = rule.signal(proba)
    meta_text = booster.attr("meta_model")
    trades = sig != HOLD
    if meta_text and trades.any():
        meta = _meta_booster(meta_text)
        act = meta.inplace_predict(_meta_inputs(df[trades], features, proba[trades], rule)) >= 0.5
        sig[np.flatnonzero(trades)[~act]] = HOLD
    return proba, sig


def fit_predict(features: list[str], params: XgbParams, policy: decision.DecisionPolicy | None = None):
    """A walk-forward callback: train on the fold's training slice, early-stop on its validation slice; with a
    policy, also calibrate/decide (attach_decision) and return (probabilities, signal)."""
    def fn(train_df: pd.DataFrame, val_df: pd.DataFrame, test_df: pd.DataFrame, _context: pd.DataFrame):
        booster = train(train_df, val_df, features, params)
        if policy is None:
            return predict_proba(booster, test_df, features)
        attach_decision(booster, train_df, val_df, features, policy)
        return predict_signal(booster, test_df, features)
    return fn
