"""The XGBoost + LSTM ensemble: trade only when both models agree.

Probabilities are the mean of the two models' (so log-loss and Brier compare with the members'); the signal is the
class both models predict when their argmaxes agree on BUY or SELL, and HOLD otherwise. Because log-loss and the
other metrics are computed from `signal_proba`, which moves the disagreeing rows' mass to HOLD, the ensemble is
evaluated on exactly what it trades.
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.labels import HOLD


def agree_signal(p_a: np.ndarray, p_b: np.ndarray) -> np.ndarray:
    """Class per row: the common argmax where both models agree, else HOLD."""
    a, b = np.asarray(p_a).argmax(axis=1), np.asarray(p_b).argmax(axis=1)
    return np.where(a == b, a, HOLD).astype("int8")


def signal_proba(p_a: np.ndarray, p_b: np.ndarray) -> np.ndarray:
    """Mean probabilities, with rows where the models disagree made to argmax to HOLD.

    Where they disagree, HOLD gets at least the largest mean class probability plus a hair (mass taken
    proportionally from the other classes), so `argmax` equals `agree_signal` row for row.
    """
    p = (np.asarray(p_a, dtype=float) + np.asarray(p_b, dtype=float)) / 2
    sig = agree_signal(p_a, p_b)
    out = p.copy()
    mean_arg = p.argmax(axis=1)
    fix = np.flatnonzero((sig == HOLD) & (mean_arg != HOLD))
    if len(fix):
        top = p[fix].max(axis=1)
        target = np.minimum(top + 1e-6, 1.0)
        others = 1.0 - p[fix, HOLD]
        scale = np.where(others > 0, (1.0 - target) / np.where(others > 0, others, 1.0), 0.0)
        out[fix] = p[fix] * scale[:, None]
        out[fix, HOLD] = target
    return out


MEMBER_COLUMNS = [f"{m}_{c}" for m in ("xgb", "lstm") for c in ("p_sell", "p_hold", "p_buy")]


def combine_frame(members: "pd.DataFrame") -> "pd.DataFrame":
    """The ensemble as a model of its own: member probabilities (MEMBER_COLUMNS) in, ensemble probabilities out."""
    import pandas as pd

    missing = [c for c in MEMBER_COLUMNS if c not in members.columns]
    if missing:
        raise ValueError(f"ensemble input lacks {missing}: pass both members' class probabilities")
    p = signal_proba(members[MEMBER_COLUMNS[:3]].to_numpy(), members[MEMBER_COLUMNS[3:]].to_numpy())
    return pd.DataFrame(p, columns=["p_sell", "p_hold", "p_buy"], index=members.index)
