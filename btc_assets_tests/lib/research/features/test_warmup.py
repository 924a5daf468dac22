"""Warm-up lengths: confirmed on real bars by recomputing with longer history; an under-declared one is caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.features import FEATURES, WARMUP_BARS_1M, checks, compute, compute_features, registry

MIN = pd.Timedelta(minutes=1)


def test_every_declared_warmup_holds_on_real_bars(real20):
    one, higher = real20
    t = one["open_time"].iloc[-1]
    assert len(one) - 1 > WARMUP_BARS_1M  # every group is compared, the slowest (1h MACD signal) included
    assert checks.warmup_confirmation(checks.frames_of(one, higher, None), t, len(one) - 1) == []


def test_an_underdeclared_warmup_is_caught(real20, monkeypatch):
    one, higher = real20
    short = tuple(dataclasses.replace(f, warmup_bars_1m=20 * 60) if f.name == "rsi_14_1h" else f for f in FEATURES)
    for module in (checks, compute, registry):
        monkeypatch.setattr(module, "FEATURES", short)
    mism = checks.warmup_confirmation(checks.frames_of(one, higher, None), one["open_time"].iloc[-1], len(one) - 1)
    assert mism and all(m.startswith("rsi_14_1h at") for m in mism)


def test_a_days_first_minute_equals_the_whole_history(real20):
    """What gold stores for a day (computed from the day minus WARMUP_BARS_1M) equals the all-at-once values."""
    one, higher = real20
    whole = compute_features(one, higher).set_index("open_time")
    day = pd.Timestamp("2024-01-19", tz="UTC")
    start = day - WARMUP_BARS_1M * MIN
    part = compute_features(one[one["open_time"] >= start], {k: v[v["open_time"] >= start] for k, v in higher.items()})
    part = part.set_index("open_time")
    names = [f.name for f in FEATURES if f.family != "perpetual" and not f.sources[0].startswith(("order", "book"))]
    for t in (day, day + 59 * MIN, day + 23 * 60 * MIN):
        assert checks.differences(part.loc[t], whole.loc[t], names, str(t)) == []
    assert not part.loc[day, names].isna().any()


def test_values_before_their_warmup_are_null_after_it_set(real20):
    one, higher = real20
    f = compute_features(one.iloc[: 3 * 1440], {k: v[v["open_time"] < one["open_time"].iloc[3 * 1440]]
                                                 for k, v in higher.items()})
    for name, w in (("ret_60", 60), ("rsi_14_1m", next(x.warmup_bars_1m for x in FEATURES if x.name == "rsi_14_1m")),
                    ("dist_high_1440", 1439)):
        assert f[name].iloc[:w].isna().all() and np.isfinite(f[name].iloc[w]), name
    assert f["rsi_14_1h"].isna().all()  # 3 days are less than its warm-up: null, not a half-converged number


@pytest.mark.slow
def test_prefix_invariance_on_real_bars_at_many_cutoffs(real20):
    one, higher = real20
    full = compute_features(one, higher)
    cut = checks.sample_cutoffs(one["open_time"].iloc[WARMUP_BARS_1M:], 12, seed=5)
    assert checks.prefix_invariance(full, checks.frames_of(one, higher, None), cut) == []
