"""What the live path can serve, and the new bar's features from the shortest history: equal to the full window."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.features import FEATURES, checks, compute, pit, registry, serving, window
from btc_assets_tests.lib.research.features import synthetic

MIN = pd.Timedelta(minutes=1)
NAMES = [f.name for f in FEATURES]


@pytest.fixture(scope="module")
def long_synth():
    """18 synthetic days with every source: longer than the slowest warm-up (16.7 days), so every feature has a value."""
    one = synthetic.klines_1m("2024-03-01", 18 * 1440)
    return one, {**synthetic.higher_bars(one), **synthetic.sources(one)}


def windowed(one, inputs, first):
    """Each input from HISTORY[source] before `first` only, as the live path reads them."""
    def cut(name, df):
        src = pit.SOURCES[name]
        return df[df[src.time_column] >= first - window.HISTORY[name] - src.delay]
    return cut("klines_1m", one), {k: cut(k if k in pit.SOURCES else f"klines_{k}", v) for k, v in inputs.items()}


def family_of(name: str) -> str:
    return registry.BY_NAME[name].family


def differing(a: pd.DataFrame, b: pd.DataFrame, names=NAMES) -> set[str]:
    bad = ~np.isclose(a[names].to_numpy(float), b[names].to_numpy(float), equal_nan=True, **checks.TOLERANCE)
    return {names[j] for j in np.flatnonzero(bad.any(axis=0))}


def test_the_new_bars_from_the_shortest_history_equal_the_full_window(long_synth):
    one, inputs = long_synth
    cutoff = one["open_time"].iloc[-1] + MIN
    first = cutoff - pd.Timedelta(hours=2)
    full = window.features_until(one, inputs, cutoff)
    full = full[full["open_time"] >= first].reset_index(drop=True)
    short_one, short_inputs = windowed(one, inputs, first)
    assert len(short_one) < len(one) / 10  # about a day of 1m bars instead of eighteen
    recent = window.recent_features(short_one, short_inputs, first, cutoff)
    assert len(recent) == 120 and (recent["open_time"] == full["open_time"]).all()
    assert np.isfinite(full[NAMES].to_numpy(float)).mean() > 0.99  # every feature warm: a real comparison
    assert differing(recent, full) == set()
    # too short a history for the 1h features: they differ (so the equality above is not vacuous)
    shorter = {k: (v[v["open_time"] >= first - pd.Timedelta(days=3)] if k == "1h" else v) for k, v in short_inputs.items()}
    assert any(n.endswith("_1h") for n in differing(window.recent_features(short_one, shorter, first, cutoff), full))


def test_one_new_bar_equals_the_full_window_and_each_family_needs_its_whole_grid(long_synth, monkeypatch):
    """The live case: one new bar. Each family runs on the 1m bars its rows need (registry.GRID_RUNS); a long grid of
    1,440 bars instead and the 1-day return (1,441 bars) differs (the grid is what makes them equal)."""
    one, inputs = long_synth
    cutoff = one["open_time"].iloc[-1] + MIN
    first = cutoff - MIN
    full = window.features_until(one, inputs, cutoff).iloc[[-1]].reset_index(drop=True)
    short_one, short_inputs = windowed(one, inputs, first)
    recent = window.recent_features(short_one, short_inputs, first, cutoff)
    assert len(recent) == 1 and recent["open_time"].iloc[0] == first and differing(recent, full) == set()
    assert list(recent.columns) == list(full.columns) and recent["open_time"].dtype == full["open_time"].dtype
    assert registry.grid_need("momentum") == 1441 > registry.SHORT_GRID  # ret_1440: 1,440 bars back and the bar
    short = tuple((1440 if grid > registry.SHORT_GRID else grid, fams) for grid, fams in registry.GRID_RUNS)
    monkeypatch.setattr(compute, "GRID_RUNS", short)
    wrong = differing(window.recent_features(short_one, short_inputs, first, cutoff), full)
    assert "ret_1440" in wrong and all(registry.grid_need(family_of(n)) > 1440 for n in wrong)


def test_warm_up_counts_from_the_data_there_is(long_synth):
    """Inputs shorter than the nominal history: the slow features are null exactly where the full window has them
    null."""
    one, inputs = long_synth
    cutoff = one["open_time"].iloc[0] + pd.Timedelta(days=10)
    first = cutoff - pd.Timedelta(hours=2)
    full = window.features_until(one, inputs, cutoff)
    full = full[full["open_time"] >= first].reset_index(drop=True)
    short_one, short_inputs = windowed(one, inputs, first)
    recent = window.recent_features(short_one, short_inputs, first, cutoff, history_start=one["open_time"].iloc[0])
    slow = [f.name for f in FEATURES if f.warmup_bars_1m > 10 * 1440]
    assert slow and full[slow].isna().all().all() and differing(recent, full) == set()
    # without history_start it would claim the nominal 13 days of history: values where the full window has none
    # (the converging 1h indicators; a finite window of daily bars, rv_1d_10, stays null on its own: 10 days of
    # data hold too few daily bars)
    wrong = differing(window.recent_features(short_one, short_inputs, first, cutoff), full)
    assert {n for n in slow if n.endswith("_1h")} <= wrong and "rv_1d_10" not in wrong


def test_the_live_path_serves_exactly_the_servable_features(long_synth):
    """A live minute has its 1m klines (and 5m/15m/1h from them) but no row of the archive-only tables: the
    servable features equal batch there, and every feature that differs is one the models leave out."""
    one, inputs = long_synth
    cutoff = one["open_time"].iloc[-1] + MIN
    day_ago = cutoff - pd.Timedelta(days=1)
    live = {k: (v if k in ("5m", "15m", "1h", "4h", "1d") else v[v[pit.SOURCES[k].time_column] < day_ago])
            for k, v in inputs.items()}
    batch = window.features_until(one, inputs, cutoff).tail(1)
    served = window.features_until(one, live, cutoff).tail(1)
    assert differing(served, batch, serving.servable()) == set()
    diff = differing(served, batch)
    assert diff and diff <= set(serving.unservable())
    # claiming order flow were served live would be caught: its features differ at a live minute
    claimed = serving.servable(serving.LIVE_SOURCES | {"order_flow_1m"})
    assert differing(served, batch, claimed) & {n for n, s in serving.unservable().items() if s == ["order_flow_1m"]}


def test_a_trading_model_reads_only_servable_features_unless_told_otherwise():
    live, everything = serving.feature_set("live"), serving.feature_set("all")
    assert len(everything) == len(FEATURES) and set(live) < set(everything)
    assert not set(live) & set(serving.unservable())
    assert "28 features the live path cannot serve" in serving.excluded_text(live)
    assert serving.excluded_text(everything).startswith("none")
    with pytest.raises(ValueError, match="features='some' is unknown"):
        serving.feature_set("some")
