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


def _crashed(one: pd.DataFrame, at: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """The real bars with every price before `at` 1/0.6 times higher: a 40 % crash at `at` (BTC fell about that much
    on 2020-03-12), higher timeframes rebuilt from them."""
    from btc_assets.lib.data import bars

    j = one.copy()
    before = j["open_time"] < at
    j.loc[before, ["open", "high", "low", "close"]] = j.loc[before, ["open", "high", "low", "close"]] / 0.6
    return j, {i: bars.resample_bars(j, i) for i in ("5m", "15m", "1h", "4h", "1d")}


def test_declared_warmups_hold_through_a_crash_inside_their_seed_window(real20):
    """A recursion (EMA, Wilder) forgets its start by (1 - alpha) per bar; the start error is the size of the shock
    in its seed window, hundreds of times a normal bar's move. Found on a full-history run: a 31 % overnight gap
    left macd_15m 5e-9 away after its warm-up (1e-7 convergence), failing the blocking warm-up check."""
    one, _ = real20
    t = one["open_time"].iloc[-1]
    for w in (3570, 14280):  # the warm-ups of the 15m RSI and of the 1h MACD at the former 1e-7 convergence
        j, higher = _crashed(one, t - (w - 90) * MIN)
        assert checks.warmup_confirmation(checks.frames_of(j, higher, None), t, len(j) - 1) == [], w


def test_a_warmup_too_short_for_a_crash_is_caught(real20, monkeypatch):
    """The same crash with the 15m RSI and 1h MACD warm-ups computed at the former 1e-7 convergence: caught."""
    from btc_assets.lib.research.features.spec import converge, ema_bars, in_minutes, wilder_bars

    old = {"rsi_14_15m": in_minutes(15 + converge(1 / 14, 1e-7), "15m"),
           "macd_1h": in_minutes(26 + converge(2 / 27, 1e-7), "1h")}
    assert old["rsi_14_15m"] < in_minutes(wilder_bars(14), "15m") and old["macd_1h"] < in_minutes(ema_bars(26), "1h")
    short = tuple(dataclasses.replace(f, warmup_bars_1m=old[f.name]) if f.name in old else f for f in FEATURES)
    for module in (checks, compute, registry):
        monkeypatch.setattr(module, "FEATURES", short)
    one, _ = real20
    t = one["open_time"].iloc[-1]
    for name, w in old.items():
        j, higher = _crashed(one, t - (w - 90) * MIN)
        mism = checks.warmup_confirmation(checks.frames_of(j, higher, None), t, len(j) - 1)
        assert any(m.startswith(f"{name} at") for m in mism), (name, mism[:3])
