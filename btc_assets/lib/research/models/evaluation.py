"""Out-of-sample evaluation of 3-class (SELL/HOLD/BUY) predictions, always beside naive baselines.

A metric alone says little; beside the majority-class guess (always predict the most frequent training class)
and persistence (predict the label the last fully known bar had) it says whether the model learnt anything.
Every model family reports the same names: accuracy, f1_macro, log_loss, brier, precision_buy, precision_sell and
ic (Spearman rank correlation of the predicted up-probability with the forward return).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score, log_loss

from btc_assets.lib.research.labels import BUY, SELL

N_CLASSES = 3
METRIC_NAMES = ("accuracy", "f1_macro", "log_loss", "brier", "precision_buy", "precision_sell", "ic")


def information_coefficient(p_up: np.ndarray, fwd_return: np.ndarray | None) -> float:
    """Spearman correlation of the predicted up-probability with the realised forward return (NaN if undefined)."""
    if fwd_return is None:
        return float("nan")
    p, r = np.asarray(p_up, dtype=float), np.asarray(fwd_return, dtype=float)
    ok = np.isfinite(p) & np.isfinite(r)
    if ok.sum() < 3 or np.ptp(p[ok]) == 0 or np.ptp(r[ok]) == 0:
        return float("nan")  # a constant prediction (the majority baseline) has no rank correlation
    return float(spearmanr(p[ok], r[ok]).statistic)


def _clip(proba: np.ndarray) -> np.ndarray:
    p = np.clip(proba, 1e-12, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, fwd_return: np.ndarray | None = None
                           ) -> dict[str, float]:
    """accuracy, macro F1, log-loss, Brier score, BUY/SELL precision and IC of class probabilities."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    pred = proba.argmax(axis=1)
    onehot = np.eye(N_CLASSES)[y_true]
    metrics = {
        "accuracy": float(accuracy_score(y_true, pred)),
        "f1_macro": float(f1_score(y_true, pred, average="macro", labels=[0, 1, 2], zero_division=0)),
        "log_loss": float(log_loss(y_true, _clip(proba), labels=[0, 1, 2])),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "ic": information_coefficient(proba[:, BUY], fwd_return),
    }
    for cls, name in ((BUY, "buy"), (SELL, "sell")):
        predicted = pred == cls
        metrics[f"precision_{name}"] = float((y_true[predicted] == cls).mean()) if predicted.any() else float("nan")
        metrics[f"n_predicted_{name}"] = float(predicted.sum())
    return metrics


def majority_proba(y_train: np.ndarray, n: int) -> np.ndarray:
    """The training window's class frequencies, repeated for `n` rows."""
    freq = np.bincount(np.asarray(y_train, dtype=int), minlength=N_CLASSES).astype(float)
    return np.tile(freq / freq.sum(), (n, 1))


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray, fwd_return: np.ndarray | None = None
                      ) -> dict[str, float]:
    """Always predict the training window's most frequent class, with its training frequencies as probabilities."""
    return classification_metrics(y_test, majority_proba(y_train, len(y_test)), fwd_return)


def persistence_baseline(y_test: np.ndarray, horizon: int, fwd_return: np.ndarray | None = None) -> dict[str, float]:
    """Predict the label of the bar `horizon` minutes earlier: the most recent label already known at decision time."""
    y = np.asarray(y_test, dtype=int)
    if len(y) <= horizon:
        return {}
    prev = y[:-horizon]
    proba = np.eye(N_CLASSES)[prev] * (1 - 3e-3) + 1e-3
    return classification_metrics(y[horizon:], proba, None if fwd_return is None else np.asarray(fwd_return)[horizon:])


def suspected_leakage(m: dict[str, float]) -> list[str]:
    """Scores no honest 1m-bar model reaches out-of-sample: a feature that knows the label (a shifted label, a
    centred window, a future join). Returns what looked implausible (empty: nothing)."""
    why = []
    if m["accuracy"] > 0.9 and m["accuracy"] > m.get("majority_accuracy", 0.0) + 0.25:
        why.append(f"accuracy {m['accuracy']:.3f} vs majority {m.get('majority_accuracy', float('nan')):.3f}")
    if np.isfinite(m.get("ic", np.nan)) and abs(m["ic"]) > 0.5:
        why.append(f"information coefficient {m['ic']:.3f}")
    return why


def beats_baselines(m: dict[str, float]) -> tuple[bool, list[str]]:
    """Promotion rule on a flat dict of `evaluate` names: better proper scores than the majority class (log-loss and
    Brier), higher accuracy than persistence, and no suspected leakage. Returns the verdict and, if it fails, why."""
    why = [f"suspected leakage ({w}): find the feature that sees the future" for w in suspected_leakage(m)]
    if not m["log_loss"] < m["majority_log_loss"]:
        why.append(f"log-loss {m['log_loss']:.4f} >= majority {m['majority_log_loss']:.4f}")
    if not m["brier"] < m["majority_brier"]:
        why.append(f"Brier {m['brier']:.4f} >= majority {m['majority_brier']:.4f}")
    if "persistence_accuracy" in m and not m["accuracy"] > m["persistence_accuracy"]:
        why.append(f"accuracy {m['accuracy']:.3f} <= persistence {m['persistence_accuracy']:.3f}")
    return not why, why
