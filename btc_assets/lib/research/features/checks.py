"""Checks that prove the absence of look-ahead, cheaply enough to run inside every gold materialization.

- prefix invariance: the features of the bar at cut-off t, recomputed from only the data available at t's close
  (and only WARMUP_BARS_1M bars of it), equal the stored ones. A feature that reads even one bar ahead differs.
- warm-up confirmation: for each distinct declared warm-up w, the features declaring w recomputed from exactly w
  bars of history equal the same features recomputed from a longer history.
- finiteness: no NaN after a feature's warm-up (unless null by definition or its source is absent), no infinity.
Values are equal when within TOLERANCE (EMA-type recursions converge to ~1e-7 relative, see spec.CONVERGENCE).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.compute import compute_features
from btc_assets.lib.research.features.registry import FEATURE_NAMES, FEATURES, WARMUP_BARS_1M

TOLERANCE = {"rtol": 1e-6, "atol": 1e-9}
MINUTE = pd.Timedelta(minutes=1)
DAY_NS = pd.Timedelta(days=1).value
Compute = Callable[..., pd.DataFrame]


def frames_of(one: pd.DataFrame, higher: dict | None, sources: dict | None) -> dict[str, pd.DataFrame]:
    """All inputs keyed by pit.SOURCES name (klines_1m, klines_5m, ..., extra sources)."""
    named = {(k if k in pit.SOURCES else f"klines_{k}"): v for k, v in (higher or {}).items()}
    return {"klines_1m": one} | named | dict(sources or {})


def window(frames: dict[str, pd.DataFrame], t: pd.Timestamp, history_bars: int) -> dict[str, pd.DataFrame]:
    """The inputs a live run at the close of bar t would hold, history_bars 1m bars back."""
    return pit.cut_from(pit.cut_to(frames, t + MINUTE), t - history_bars * MINUTE)


def recompute_at(frames: dict[str, pd.DataFrame], t: pd.Timestamp, history_bars: int,
                 compute: Compute = compute_features) -> pd.Series:
    """Features of the 1m bar opening at t from the data available at its close, history_bars bars back only."""
    known = window(frames, t, history_bars)
    one = known.pop("klines_1m")
    higher = {k.removeprefix("klines_"): v for k, v in known.items() if k.startswith("klines_")}
    sources = {k: v for k, v in known.items() if not k.startswith("klines_")}
    res = compute(one, higher, sources)
    row = res[res["open_time"] == t]
    if row.empty:
        raise LookupError(f"no 1m bar opening at {t} in the recomputation window: is silver.klines_1m complete there?")
    return row.iloc[0]


def differences(a: pd.Series, b: pd.Series, names: list[str], label: str) -> list[str]:
    """'name at label: a vs b' for every feature not equal within TOLERANCE (NaN equals NaN)."""
    x, y = a[names].to_numpy("float64"), b[names].to_numpy("float64")
    same = np.isclose(x, y, equal_nan=True, **TOLERANCE)
    return [f"{n} at {label}: {x[i]!r} vs {y[i]!r}" for i, n in enumerate(names) if not same[i]]


def prefix_invariance(stored: pd.DataFrame, frames: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp],
                      compute: Compute = compute_features, names: list[str] | None = None) -> list[str]:
    """Mismatches between stored rows (open_time column) and their point-in-time recomputation at each cut-off."""
    names = names or FEATURE_NAMES
    by_time = stored.set_index("open_time")
    out: list[str] = []
    for t in cutoffs:
        out += differences(by_time.loc[t], recompute_at(frames, t, WARMUP_BARS_1M, compute), names,
                           f"{t} (stored vs data up to its close)")
    return out


def warmup_confirmation(frames: dict[str, pd.DataFrame], t: pd.Timestamp, longer_bars: int,
                        compute: Compute = compute_features) -> list[str]:
    """Mismatches between each warm-up group recomputed from exactly its declared warm-up and from longer_bars."""
    groups: dict[int, list[str]] = {}
    for f in FEATURES:
        groups.setdefault(f.warmup_bars_1m, []).append(f.name)
    frames = window(frames, t, longer_bars)  # cut once: every recomputation below reads inside it
    reference = recompute_at(frames, t, longer_bars, compute)
    out: list[str] = []
    for w, names in sorted(groups.items()):
        if w >= longer_bars:
            continue
        out += differences(recompute_at(frames, t, w, compute), reference, names,
                           f"{t} (warm-up {w} bars vs {longer_bars})")
    return out


def not_finite_after_warmup(full: pd.DataFrame, absent_sources: set[str]) -> dict[str, int]:
    """Feature -> count of rows that break finiteness: any infinity, or NaN after the feature's warm-up when the
    feature is never null by definition and its sources are present. `full` starts where its history starts."""
    history = ((full["open_time"] - full["open_time"].iloc[0]) // MINUTE).to_numpy() if len(full) else np.zeros(0)
    bad: dict[str, int] = {}
    for f in FEATURES:
        v = full[f.name].to_numpy("float64")
        n = int(np.isinf(v).sum())
        if not f.nullable and not set(f.sources) & absent_sources:
            n += int(np.isnan(v[history >= f.warmup_bars_1m]).sum())
        if n:
            bad[f.name] = n
    return bad


def daily_cutoffs(open_times: pd.Series, per_day: int, seed: int) -> list[pd.Timestamp]:
    """per_day bar times drawn reproducibly from every UTC day of `open_times` (each day its own draw), so that a
    window of many days is covered day by day. The window's last bar is not favoured: the features there were
    computed from data that ends at its close, so a recomputation cut at that close sees the very same data."""
    out: list[pd.Timestamp] = []
    if open_times.empty:
        return out
    t = pit.ns(open_times)
    day = t // DAY_NS * DAY_NS  # the UTC day of each bar, as groupby(dt.floor("D"), sort=True) groups them
    order = np.argsort(day, kind="stable")
    day = day[order]
    first = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    for lo, hi in zip(first, np.r_[first[1:], len(day)]):
        rng = np.random.default_rng([seed, int(day[lo] // 10**9)])
        picks = rng.choice(hi - lo, size=min(per_day, hi - lo), replace=False)
        out += [open_times.iloc[order[lo + j]] for j in sorted(picks.tolist())]
    return out


def sample_cutoffs(open_times: pd.Series, k: int, seed: int) -> list[pd.Timestamp]:
    """k bar times drawn reproducibly (always including the last bar, where a one-bar leak shows first)."""
    if open_times.empty:
        return []
    rng = np.random.default_rng(seed)
    picks = set(rng.choice(len(open_times), size=min(k, len(open_times)), replace=False).tolist())
    picks.add(len(open_times) - 1)
    return [open_times.iloc[i] for i in sorted(picks)]
