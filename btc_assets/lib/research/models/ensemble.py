"""The agree-only ensemble of the week's signal models (XGBoost, LSTM, Transformer): trade only when all agree.

Probabilities are the mean of the members' (so log-loss and Brier compare with the members'); the signal is the
class every member predicts when their argmaxes agree on BUY or SELL, and HOLD otherwise. Because log-loss and the
other metrics are computed from `signal_proba`, which moves the disagreeing rows' mass to HOLD, the ensemble is
evaluated on exactly what it trades. Two members or more; which ones is the ensemble asset's setting.
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.labels import HOLD

FAMILIES = ("xgb", "lstm", "transformer")  # the families that can be members, in their canonical order
CLASSES = ("p_sell", "p_hold", "p_buy")


def member_columns(members) -> list[str]:
    """The combiner's input columns for `members`: each member's class probabilities."""
    return [f"{m}_{c}" for m in members for c in CLASSES]


MEMBER_COLUMNS = member_columns(("xgb", "lstm"))  # the two-member ensemble (the first one built)


def agree_signal(*members: np.ndarray) -> np.ndarray:
    """Class per row: the common argmax where every member agrees, else HOLD."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    votes = np.stack([np.asarray(p).argmax(axis=1) for p in members])
    return np.where((votes == votes[0]).all(axis=0), votes[0], HOLD).astype("int8")


def signal_proba(*members: np.ndarray) -> np.ndarray:
    """Mean probabilities, with rows where the members disagree made to argmax to HOLD.

    Where they disagree, HOLD gets at least the largest mean class probability plus a hair (mass taken
    proportionally from the other classes), so `argmax` equals `agree_signal` row for row.
    """
    p = np.mean([np.asarray(m, dtype=float) for m in members], axis=0)
    sig = agree_signal(*members)
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


def members_of(columns) -> list[str]:
    """The members whose class probabilities are all in `columns`, in canonical order."""
    cols = set(columns)
    return [m for m in FAMILIES if set(member_columns([m])) <= cols]


def combine_frame(members: "pd.DataFrame") -> "pd.DataFrame":
    """The ensemble as a model of its own: member probabilities (`member_columns`) in, ensemble probabilities out."""
    import pandas as pd

    found = members_of(members.columns)
    if len(found) < 2:
        raise ValueError(f"ensemble input has the class probabilities of {found or 'no member'}: pass at least two "
                         f"members' columns ({', '.join(member_columns(FAMILIES[:2]))}, ...)")
    p = signal_proba(*(members[member_columns([m])].to_numpy() for m in found))
    return pd.DataFrame(p, columns=list(CLASSES), index=members.index)


def parse_uri(model_uri: str) -> list[tuple[str, str]]:
    """(family, model uri) of each member of an ensemble's registry model_uri: 'xgb=uri|lstm=uri|...'; the first
    ensembles stored 'uri|uri' for xgb and lstm."""
    parts = model_uri.split("|")
    if all("=" in p.split(":", 1)[0] for p in parts):
        return [tuple(p.split("=", 1)) for p in parts]
    if len(parts) != 2:
        raise ValueError(f"ensemble model_uri {model_uri!r}: expected 'family=uri|family=uri...'")
    return list(zip(("xgb", "lstm"), parts))
