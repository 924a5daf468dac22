"""Feature drift per partition: population stability index (PSI) of a day against the week before it.

PSI = sum over reference-quantile bins of (cur - ref) * ln(cur / ref). Below 0.1 is stable, 0.1-0.25 a shift,
above PSI_DRIFT a drift worth a look, if it is also unusual for that feature (see drift_by_day): reported as a
warning with the drifting features named, never blocking
(markets do change; a model owner decides what to do).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.registry import FEATURES

PSI_DRIFT = 0.25
BINS = 10
MIN_VALUES = 200
REF_STRIDE = 5
REFERENCE_DAYS = 7
MIN_HISTORY_DAYS = 3
RELATIVE = 3.0
# Calendar features differ between a day and its reference by construction (another weekday), not by drift.
SKIP_FAMILIES = {"calendar"}


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """PSI of current against reference over reference quantile bins; NaN if either has too few finite values."""
    r = reference[np.isfinite(reference)]
    edges = np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]) if len(r) >= MIN_VALUES else None
    return _psi_with_edges(r, current, edges)


def _psi_with_edges(reference: np.ndarray, current: np.ndarray, edges: np.ndarray | None) -> float:
    r, c = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if edges is None or len(r) < MIN_VALUES or len(c) < MIN_VALUES:
        return float("nan")
    edges = np.unique(edges)
    rp = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1) / len(r)
    cp = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(edges) + 1) / len(c)
    rp, cp = np.clip(rp, 1e-4, None), np.clip(cp, 1e-4, None)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def psi_by_day(full: pd.DataFrame, reference_days: int = REFERENCE_DAYS) -> pd.DataFrame:
    """PSI of every whole UTC day in `full` against the reference_days before it (days x features)."""
    t = pit.ns(full["open_time"])
    if len(t) == 0:
        return pd.DataFrame()
    names = [f.name for f in FEATURES if f.family not in SKIP_FAMILIES]
    values = full[names].to_numpy("float64")
    first = full["open_time"].iloc[0].ceil("D") + pd.Timedelta(days=reference_days)
    days = pd.date_range(first, full["open_time"].iloc[-1].floor("D"), freq="D")
    rows = {}
    for day in days:
        r0, d0, d1 = np.searchsorted(t, [(day - pd.Timedelta(days=reference_days)).value, day.value,
                                         (day + pd.Timedelta(days=1)).value])
        # Every REF_STRIDE-th reference row: quantile edges need a sample, not a week of minutes.
        ref, cur = values[r0:d0:REF_STRIDE], values[d0:d1]
        finite = np.isfinite(ref)
        count = finite.sum(axis=0)
        # Quantile edges of every column at once: sort (NaN and inf go last), pick the order statistics.
        srt = np.sort(np.where(finite, ref, np.inf), axis=0)
        qi = (np.linspace(0, 1, BINS + 1)[1:-1, None] * np.maximum(count - 1, 0)[None, :]).astype(int)
        edges = np.take_along_axis(srt, qi, axis=0)
        rows[day] = [_psi_with_edges(ref[:, i], cur[:, i], edges[:, i] if count[i] >= MIN_VALUES else None)
                     for i in range(len(names))]
    return pd.DataFrame.from_dict(rows, orient="index", columns=names)


def drift_by_day(full: pd.DataFrame, days: list[pd.Timestamp]) -> dict[str, dict[str, float]]:
    """For each of `days` (UTC midnights), the drifting features and their PSI.

    A feature drifts on a day when its PSI exceeds PSI_DRIFT and RELATIVE times its median PSI of the previous
    REFERENCE_DAYS days: slow features (1h indicators, day-long windows) differ from their last week every day,
    which is not news. Days with fewer than MIN_HISTORY_DAYS earlier PSIs are not judged (absent from the result).
    """
    table = psi_by_day(full)
    if table.empty:
        return {}
    usual = table.shift(1).rolling(REFERENCE_DAYS, min_periods=MIN_HISTORY_DAYS).median()
    out: dict[str, dict[str, float]] = {}
    for day in days:
        if day not in table.index or usual.loc[day].isna().all():
            continue
        p, u = table.loc[day], usual.loc[day]
        hit = (p > PSI_DRIFT) & (p > RELATIVE * u)
        out[str(day.date())] = {n: round(float(p[n]), 3) for n in p.index[hit.to_numpy()]}
    return out
