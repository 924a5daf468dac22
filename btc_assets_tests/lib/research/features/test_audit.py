"""The point-in-time audit against planted leaks: wrong declarations (15m, 1h, 4h, 1d, order flow), a higher-timeframe bar
used one minute early behind the declarations' back, a centred window; the healthy features pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.features import audit, checks, compute_features, pit, registry
from btc_assets.lib.research.features import compute as compute_mod
from btc_assets.lib.research.features import order_book, volatility

MIN = pd.Timedelta(minutes=1)


def run(one, higher, sources, day: int = 3):
    """Stored features and the audit's findings over day `day` of the inputs (the earlier days are warm-up)."""
    full = compute_features(one, higher, sources)
    start = one["open_time"].iloc[0].floor("D") + pd.Timedelta(days=day)
    end = start + pd.Timedelta(hours=6)  # six hours: 144 boundary cut-offs, enough for every timeframe
    out = full[(full["open_time"] >= start) & (full["open_time"] < end)].reset_index(drop=True)
    frames = checks.frames_of(one, higher, sources)
    observed = audit.observe(frames)
    leaks = audit.declaration_leaks(frames, observed, pit.SOURCES)
    sampled = checks.sample_cutoffs(out["open_time"], 3, seed=5)
    mism, covered = audit.recompute_mismatches(out, observed, start, end, sampled, checks.TOLERANCE)
    return leaks, mism, covered


def declare(monkeypatch, name: str, delay: pd.Timedelta) -> None:
    monkeypatch.setitem(pit.SOURCES, name, dataclasses.replace(pit.SOURCES[name], delay=delay, rule="planted"))


def test_the_healthy_features_pass_at_every_boundary(synth):
    leaks, mism, covered = run(*synth)
    assert leaks == [] and mism == []
    assert covered["boundary_cutoffs"] == 2 * 72 and covered["sampled_cutoffs"] == 4


@pytest.mark.parametrize("source, delay, feature", [
    ("klines_15m", pd.Timedelta(0), "_15m"),  # a 15m bar declared known at its open
    ("klines_1h", pd.Timedelta(minutes=59), "_1h"),  # an hourly bar used one minute early
    ("klines_4h", pd.Timedelta(hours=3), "_4h"),  # a 4h bar an hour early
    ("klines_1d", pd.Timedelta(0), "_1d"),  # a day declared known at its open
    ("order_flow_1m", pd.Timedelta(0), "of_"),  # an order-flow minute at its open
])
def test_a_wrong_declaration_is_refused_by_both_checks(monkeypatch, synth, source, delay, feature):
    declare(monkeypatch, source, delay)
    leaks, mism, _ = run(*synth)
    assert len(leaks) == 1 and leaks[0].startswith(f'{source}: declared available "planted"')
    assert "early" in leaks[0] and "pit.py" in leaks[0]
    assert mism, "the recomputation from the physically cut data differs too"
    if source == "order_flow_1m":
        assert any(m.split(" ")[0] in audit.BY_NAME and "order_flow_1m" in audit.BY_NAME[m.split(" ")[0]].sources
                   for m in mism)
    else:
        assert all(feature in m.split(" ")[0] or "align" in m.split(" ")[0] for m in mism)


@pytest.mark.parametrize("early_tf", ["1h", "4h"])
def test_a_one_minute_early_higher_bar_behind_the_declarations_back_is_caught_just_before_the_close(
        monkeypatch, synth, early_tf):
    """The declaration is right, but the join reads the 1h (4h) bar one minute before it closes: only the cut-off
    just before each such close can see it, and it must."""
    real_on_1m = compute_mod.Context.on_1m

    def early_on_1m(self, tf, values):
        if tf != early_tf:
            return real_on_1m(self, tf, values)
        return pit.take(values, pit.asof_index(self.at_ns + MIN.value, self.bars[early_tf].avail_ns))

    monkeypatch.setattr(compute_mod.Context, "on_1m", early_on_1m)
    leaks, mism, _ = run(*synth)
    assert leaks == []
    assert mism and all(f"_{early_tf}" in m.split(" ")[0] or "align" in m.split(" ")[0] for m in mism)
    assert all("just before the 5m/15m/1h close" in m for m in mism), mism[:3]


@pytest.mark.parametrize("family", [volatility, order_book], ids=["long grid", "short grid"])
def test_a_centred_window_is_caught_at_the_sampled_cut_offs(monkeypatch, synth, family):
    """In either of the sampled cut-off's two runs (the families needing a long 1m grid, and the short one)."""
    real = family.compute

    def centred(ctx):
        out = real(ctx)
        name = next(iter(out))
        out[name] = pd.Series(out[name]).rolling(5, center=True, min_periods=1).mean().to_numpy()
        centred.name = name
        return out

    monkeypatch.setattr(family, "compute", centred)  # the registry calls module.compute at run time
    leaks, mism, _ = run(*synth)
    assert leaks == []
    assert mism and {m.split(" ")[0] for m in mism} == {centred.name}
    assert all("sampled, every family" in m for m in mism)


def test_metrics_delay_is_measured_from_the_taker_ratio(synth):
    one = synth[0].iloc[:2000]
    k = one.set_index("open_time")
    buy = k["taker_buy_volume"].resample("5min").sum()
    ratio = buy / (k["volume"].resample("5min").sum() - buy)
    for stamp_is_start, expected in ((True, pd.Timedelta(minutes=5)), (False, pd.Timedelta(0))):
        stamps = ratio.index if stamp_is_start else ratio.index + pd.Timedelta(minutes=5)
        m = pd.DataFrame({"create_time": stamps, "sum_taker_long_short_vol_ratio": ratio.to_numpy()})
        delay, why = audit.measure_metrics_delay(m, one)
        assert delay == expected and why.startswith("measured")
    noise = m.assign(sum_taker_long_short_vol_ratio=np.random.default_rng(1).uniform(0.5, 2, len(m)))
    delay, why = audit.measure_metrics_delay(noise, one)
    assert delay == pd.Timedelta(minutes=5) and why.startswith("not conclusive")


def test_metrics_stamped_at_the_window_end_declared_five_minutes_later_is_not_a_leak(synth):
    """The later declaration is merely conservative: the audit reports leaks, not staleness."""
    one, higher, sources = synth
    frames = checks.frames_of(one, higher, sources)
    observed = audit.observe(frames)
    assert audit.declaration_leaks(frames, observed, pit.SOURCES) == []


def test_a_table_with_no_stated_meaning_is_refused():
    with pytest.raises(KeyError, match="MEANING"):
        audit.observe({"klines_1m": pd.DataFrame({"open_time": [pd.Timestamp("2024-01-01", tz="UTC")]}),
                       "mystery": pd.DataFrame({"t": [1]})})


def test_a_window_of_many_days_is_sampled_day_by_day():
    """A single-run backfill still gets a full-family recomputation on every one of its days, reproducibly."""
    t = pd.Series(pd.date_range("2024-01-01", periods=3 * 1440, freq="1min", tz="UTC"))
    cut = checks.daily_cutoffs(t, 1, seed=7)
    assert [c.floor("D") for c in cut] == list(pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"))
    assert cut == checks.daily_cutoffs(t, 1, seed=7) and cut != checks.daily_cutoffs(t, 1, seed=8)
    assert len(checks.daily_cutoffs(t, 2, seed=7)) == 6 and checks.daily_cutoffs(t.iloc[:0], 1, 7) == []


def test_the_sampled_cut_off_recomputes_every_family_once_on_a_long_enough_grid():
    runs = audit.SAMPLED_RUNS
    families = [f for _, fams in runs for f in fams]
    assert sorted(families) == sorted(audit.FAMILIES) and len(set(families)) == len(families)
    for grid, fams in runs:
        for fam in fams:
            assert grid >= 1 + max([f.warmup_bars_1m for f in audit.FEATURES if f.family == fam
                                    and not set(f.sources) & audit._HIGHER_KLINES
                                    and not set(f.sources) <= registry.OWN_ROW_SOURCES] or [0]), fam
    by_family = {f: grid for grid, fams in runs for f in fams}
    assert by_family["order_book"] <= audit.SHORT_GRID < by_family["volatility"]  # the test above's two runs
    # funding's day-long mean is history of the funding rows, not of the 1m grid: perpetual runs on the short grid
    assert by_family["perpetual"] <= audit.SHORT_GRID


def test_a_grid_shorter_than_a_family_needs_is_caught_and_the_funding_history_is_not_the_grids(synth):
    """The grid each family is recomputed on is what the sampled cut-off trusts: one bar short of the 60-minute
    premium mean, the recomputation differs from the stored value; the funding features need no 1m history (a grid
    of the bar alone gives the stored values), since the mean of the last settlements is taken on funding rows."""
    one, higher, sources = synth
    full = compute_features(one, higher, sources)
    t = one["open_time"].iloc[0].floor("D") + pd.Timedelta(days=3, hours=5, minutes=7)
    stored = full.set_index("open_time").loc[t]
    observed = audit.observe(checks.frames_of(one, higher, sources))
    names = [f.name for f in audit.FEATURES if f.family == "perpetual"]
    need = registry.grid_need("perpetual")
    exact = audit.recompute_row(observed, t, need, ["perpetual"], names)
    assert audit.compare(stored.to_dict(), exact, "t", checks.TOLERANCE) == []
    short = audit.recompute_row(observed, t, need - 1, ["perpetual"], names)
    assert any(m.startswith("premium_index_mean_60 ") for m in audit.compare(stored.to_dict(), short, "t",
                                                                              checks.TOLERANCE))
    funding = [n for n in names if set(audit.BY_NAME[n].sources) <= registry.OWN_ROW_SOURCES]
    assert "funding_rate_mean_3" in funding and np.isfinite(stored["funding_rate_mean_3"])
    alone = audit.recompute_row(observed, t, 1, ["perpetual"], funding)
    assert set(alone) == set(funding) and audit.compare(stored.to_dict(), alone, "t", checks.TOLERANCE) == []


def test_columns_read_from_the_blocks_equal_the_series_path():
    t = pd.date_range("2024-01-01", periods=4, freq="min", tz="UTC")
    df = pd.DataFrame({"open_time": t, "naive": t.tz_localize(None), "us": t.as_unit("us"),
                       "x": [1.0, 2.0, np.nan, 4.0], "n": [1, 2, 3, 4],
                       "nullable": pd.array([1.5, None, 2.5, 3.0], dtype="Float64"), "s": list("abcd")})
    for col in ("open_time", "naive", "us"):
        assert (audit._time_ns(df, col) == pit.ns(df[col])).all(), col
    np.testing.assert_array_equal(audit._array(df, "x", "float64"), df["x"].to_numpy("float64"))
    assert audit._array(df, "n", "float64").dtype == np.float64
    assert list(audit._array(df, "s")) == list("abcd")
    # an extension column (nullable floats) takes the Series path: the same values, missing ones as NaN
    np.testing.assert_array_equal(audit._array(df, "nullable", "float64"), df["nullable"].to_numpy("float64"))
    with pytest.raises(KeyError):
        audit._array(df, "absent")
    dup = pd.concat([df[["x"]], df[["x"]]], axis=1)  # duplicate names: the Series path
    assert audit._array(dup, "x").shape == (4, 2)


def test_a_tables_period_is_its_median_step():
    grid = pd.date_range("2024-01-01", periods=100, freq="5min", tz="UTC")
    assert audit.measured_period(pd.Series(grid)) == pd.Timedelta(minutes=5)  # gapless
    gaps = pd.Series(grid.delete([3, 4, 10, 50]))
    assert audit.measured_period(gaps) == pd.Timedelta(minutes=5)  # missing bars never lengthen it
    odd = pd.Series(grid.append(grid[:5] + pd.Timedelta(seconds=7)).sort_values())
    assert audit.measured_period(odd) == pd.Timedelta(minutes=5)  # a few off-grid stamps never shorten it
    hourly_gappy = pd.Series(pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC").delete([2, 4, 6, 8]))
    assert audit.measured_period(hourly_gappy) == pd.Timedelta(hours=2)  # mostly 2 h apart: the median says 2 h
    assert audit.measured_period(pd.Series(grid[:1])) is None
    assert audit.measured_period(pd.Series([grid[0], grid[0]])) is None


def test_stored_rows_read_from_the_feature_block_equal_the_column_by_column_path(monkeypatch, synth):
    one, higher, sources = synth
    out = compute_features(one, higher, sources).iloc[3 * 1440: 3 * 1440 + 600].reset_index(drop=True)
    t_ns = pit.ns(out["open_time"])[::7]
    fast = audit.StoredRows(out, t_ns)
    assert fast._block is not None  # compute_features keeps the features in one float block
    monkeypatch.setattr(audit, "_float_block", lambda df, cols: None)
    slow = audit.StoredRows(out, t_ns)
    cols = [f.name for f in audit.FEATURES][::3]
    np.testing.assert_array_equal(fast.block(t_ns[5:40], cols), slow.block(t_ns[5:40], cols))
    assert fast.at(int(t_ns[9])).keys() == slow.at(int(t_ns[9])).keys()
    np.testing.assert_array_equal(list(fast.at(int(t_ns[9])).values()), list(slow.at(int(t_ns[9])).values()))


def test_the_compiled_mismatch_rule_is_isclose_on_the_stored_numbers():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 7))
    b = a * (1 + rng.choice([0.0, 1e-7, 1e-5], size=a.shape)) + rng.choice([0.0, 1e-10, 1e-8], size=a.shape)
    a[rng.random(a.shape) < 0.05] = np.nan
    b[rng.random(b.shape) < 0.05] = np.nan
    b[rng.random(b.shape) < 0.02] = np.inf
    expected = np.isfinite(a) & ~np.isclose(a, b, equal_nan=True, **checks.TOLERANCE)
    got = audit._differs(a, b, checks.TOLERANCE["rtol"], checks.TOLERANCE["atol"])
    np.testing.assert_array_equal(got, expected)
    assert expected.any() and not expected.all()
