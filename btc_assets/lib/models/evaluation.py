"""Out-of-sample evaluation of 3-class (SELL/HOLD/BUY) predictions, always beside naive baselines.

A metric alone says little; beside the majority-class guess (always predict the most frequent training class)
and persistence (predict the label the last fully known bar had) it says whether the model learnt anything.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss

from btc_assets.lib.labels import BUY, SELL

N_CLASSES = 3


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """accuracy, macro F1, log-loss, Brier score and BUY/SELL precision of class probabilities."""
    y_true = np.asarray(y_true, dtype=int)
    pred = proba.argmax(axis=1)
    onehot = np.eye(N_CLASSES)[y_true]
    metrics = {
        "accuracy": float(accuracy_score(y_true, pred)),
        "f1_macro": float(f1_score(y_true, pred, average="macro", labels=[0, 1, 2], zero_division=0)),
        "log_loss": float(log_loss(y_true, np.clip(proba, 1e-12, 1.0), labels=[0, 1, 2])),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
    }
    for cls, name in ((BUY, "buy"), (SELL, "sell")):
        predicted = pred == cls
        metrics[f"precision_{name}"] = float((y_true[predicted] == cls).mean()) if predicted.any() else float("nan")
        metrics[f"n_predicted_{name}"] = float(predicted.sum())
    return metrics


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Always predict the training window's most frequent class, with its training frequencies as probabilities."""
    freq = np.bincount(np.asarray(y_train, dtype=int), minlength=N_CLASSES).astype(float)
    freq /= freq.sum()
    proba = np.tile(freq, (len(y_test), 1))
    return classification_metrics(y_test, proba)


def persistence_baseline(y_test: np.ndarray, horizon: int) -> dict[str, float]:
    """Predict the label of the bar `horizon` minutes earlier: the most recent label already known at decision time."""
    y = np.asarray(y_test, dtype=int)
    if len(y) <= horizon:
        return {}
    prev = y[:-horizon]
    proba = np.eye(N_CLASSES)[prev] * (1 - 3e-3) + 1e-3
    return classification_metrics(y[horizon:], proba)
