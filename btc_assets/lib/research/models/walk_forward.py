"""Walk-forward evaluation: folds in time order with a purge before each test window and an embargo after it.

A fold is train | validation (early stopping, the last slice of the training window) | purge | test. The purge
(at least the label horizon) drops the training rows whose labels look into the test window; the embargo drops,
from every later fold's training window, the rows just after an earlier test window (their features overlap the
test window's last bars). Windows are rolling (fixed `train_span`) or expanding (`train_span=None`).

`run_walk_forward` fits a model per fold through a callback that receives only that fold's training and
validation rows, so every scaler, normaliser or feature selector inside the callback is fitted on the training
window only. It returns the out-of-sample probabilities of every test row and per-fold metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from btc_assets.lib.research.models.evaluation import classification_metrics, majority_proba, persistence_baseline

# fit_predict(train, validation, test, context) -> class probabilities (len(test), 3). `context` holds the rows just
# before the test window without their labels (what a sequence model may look back at when predicting).
FitPredict = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame], np.ndarray]
CONTEXT_ROWS = 240


@dataclass(frozen=True)
class WalkForwardConfig:
    n_folds: int = 3
    test_span: pd.Timedelta = pd.Timedelta(days=2)
    train_span: pd.Timedelta | None = None  # None: expanding window from the first row
    validation_fraction: float = 0.15
    purge: pd.Timedelta = pd.Timedelta(minutes=3)
    embargo: pd.Timedelta = pd.Timedelta(minutes=60)


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # boolean masks over the (time-sorted) rows
    validation: np.ndarray
    test: np.ndarray
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def make_folds(times: pd.Series, cfg: WalkForwardConfig, label_horizon: pd.Timedelta) -> list[Fold]:
    """Folds over sorted `times`: the last `n_folds` test windows of `test_span` each, back to back."""
    if cfg.purge < label_horizon:
        raise ValueError(f"walk-forward purge {cfg.purge} is shorter than the label horizon {label_horizon}: "
                         "a training label would look into the test window; set purge >= the label horizon")
    t = pd.Series(pd.to_datetime(times)).reset_index(drop=True)
    if not t.is_monotonic_increasing:
        raise ValueError("walk-forward needs rows sorted by open_time; sort them first")
    end = t.iloc[-1] + pd.Timedelta(minutes=1)
    folds: list[Fold] = []
    embargoed = np.zeros(len(t), dtype=bool)
    for i in range(cfg.n_folds):
        test_start = end - (cfg.n_folds - i) * cfg.test_span
        test_end = test_start + cfg.test_span
        train_start = t.iloc[0] if cfg.train_span is None else test_start - cfg.purge - cfg.train_span
        fit = ((t >= train_start) & (t < test_start - cfg.purge)).to_numpy() & ~embargoed
        fit_times = t[fit]
        if len(fit_times) == 0:
            raise ValueError(f"walk-forward fold {i}: no training rows before {test_start}; use fewer folds, a "
                             "shorter test_span or a longer history")
        val_start = fit_times.iloc[-1] - (fit_times.iloc[-1] - fit_times.iloc[0]) * cfg.validation_fraction
        train = fit & (t < val_start - cfg.purge).to_numpy()
        validation = fit & (t >= val_start).to_numpy()
        test = ((t >= test_start) & (t < test_end)).to_numpy()
        if min(train.sum(), validation.sum(), test.sum()) == 0:
            raise ValueError(f"walk-forward fold {i} ({test_start}..{test_end}) has an empty block "
                             f"(train {train.sum()}, validation {validation.sum()}, test {test.sum()}); "
                             "train on a longer history or use fewer folds")
        folds.append(Fold(i, train, validation, test, test_start, test_end))
        embargoed |= ((t >= test_end) & (t < test_end + cfg.embargo)).to_numpy()
    return folds


def assert_no_overlap(times: pd.Series, folds: list[Fold], purge: pd.Timedelta) -> None:
    """Raise if any fitted row (train or validation) sits within `purge` before, or inside, its test window."""
    t = pd.Series(pd.to_datetime(times)).reset_index(drop=True)
    for f in folds:
        fitted = t[f.train | f.validation]
        if ((fitted >= f.test_start - purge) & (fitted < f.test_end)).any():
            raise AssertionError(f"fold {f.index}: training rows overlap the test window {f.test_start}..{f.test_end} "
                                 f"or its purge of {purge}")


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame  # open_time, fold, label, fwd_return, p_sell, p_hold, p_buy (test rows only)
    fold_metrics: list[dict[str, float]]  # per fold: the model's metrics, majority_* and persistence_*
    overall: dict[str, float]  # pooled over all test rows, same names


def evaluate(y: np.ndarray, proba: np.ndarray, fwd: np.ndarray, majority: np.ndarray, horizon: int
             ) -> dict[str, float]:
    """The model's metrics beside the majority-class (`majority`: its probabilities) and persistence baselines."""
    out = dict(classification_metrics(y, proba, fwd))
    out |= {f"majority_{k}": v for k, v in classification_metrics(y, majority, fwd).items()}
    out["majority_ic"] = float("nan")  # constant per fold: pooled folds' steps would fake a rank correlation
    out |= {f"persistence_{k}": v for k, v in persistence_baseline(y, horizon, fwd).items()}
    out["n_test"] = float(len(y))
    return out


def run_walk_forward(df: pd.DataFrame, fit_predict: FitPredict, cfg: WalkForwardConfig,
                     label_horizon_minutes: int, persistence_rows: int | None = None) -> WalkForwardResult:
    """Fit and predict every fold of `df` (open_time, features, label, fwd_return) and score it out-of-sample.

    `persistence_rows`: how many rows back the last known label is (default: the horizon, for 1m rows).
    """
    lag = persistence_rows or label_horizon_minutes
    d = df.sort_values("open_time").reset_index(drop=True)
    folds = make_folds(d["open_time"], cfg, pd.Timedelta(minutes=label_horizon_minutes))
    assert_no_overlap(d["open_time"], folds, cfg.purge)
    preds, per_fold, majority = [], [], []
    for f in folds:
        train, val, test = d[f.train], d[f.validation], d[f.test]
        before = np.flatnonzero(f.test)[0]
        context = d.iloc[max(0, before - CONTEXT_ROWS):before].drop(columns=["label", "fwd_return"])
        got = fit_predict(train, val, test, context)
        # a callback may also decide (lib/research/models/decision.py): (probabilities, signal)
        proba, signal = got if isinstance(got, tuple) else (got, None)
        proba = np.asarray(proba, dtype=float)
        signal = proba.argmax(axis=1) if signal is None else np.asarray(signal)
        y, fwd = test["label"].astype(int).to_numpy(), test["fwd_return"].to_numpy(dtype=float)
        majority.append(majority_proba(train["label"].astype(int).to_numpy(), len(y)))
        per_fold.append(evaluate(y, proba, fwd, majority[-1], lag))
        preds.append(pd.DataFrame({"open_time": test["open_time"].to_numpy(), "fold": f.index, "label": y,
                                   "fwd_return": fwd, "p_sell": proba[:, 0], "p_hold": proba[:, 1],
                                   "p_buy": proba[:, 2], "signal": signal.astype("int8")}))
    p = pd.concat(preds, ignore_index=True)
    y_all = p["label"].to_numpy()
    overall = evaluate(y_all, p[["p_sell", "p_hold", "p_buy"]].to_numpy(), p["fwd_return"].to_numpy(),
                       np.vstack(majority), lag)
    return WalkForwardResult(predictions=p, fold_metrics=per_fold, overall=overall)
