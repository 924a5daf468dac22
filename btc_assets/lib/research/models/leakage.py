"""Too good to be true: a single feature that knows the label.

No honest point-in-time feature of 1m BTCUSDT bars ranks the next minutes' return anywhere near perfectly: measured
rank correlations (Spearman) of the 124 features with the 3-minute forward return stay below ~0.1 in absolute value.
A feature above `MAX_ABS_RANK_IC` is a leak (a copy or shift of the label, a centred window, a future join), and
the model trained on it is refused with the feature named, whatever its scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_ABS_RANK_IC = 0.3


def feature_rank_ic(rows: pd.DataFrame, features: list[str], target: str = "fwd_return") -> pd.Series:
    """Spearman correlation of each feature with `target` over the rows where both are finite."""
    y = rows[target].astype(float)
    out = {}
    for f in features:
        x = rows[f].astype(float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 30 or x[ok].nunique() < 2:
            continue
        out[f] = float(np.corrcoef(x[ok].rank(), y[ok].rank())[0, 1])
    return pd.Series(out, dtype=float)


def too_informative(rows: pd.DataFrame, features: list[str], bound: float = MAX_ABS_RANK_IC) -> list[str]:
    """Why promotion is refused: one reason per feature whose rank IC with the forward return exceeds `bound`."""
    ic = feature_rank_ic(rows, features)
    leaks = ic[ic.abs() > bound].sort_values(key=np.abs, ascending=False)
    return [f"suspected leakage: feature {name} has rank IC {v:+.3f} with the forward return (an honest feature "
            f"stays below {bound}); it knows the label: fix it in lib/research/features before training"
            for name, v in leaks.items()]
