"""Prefix invariance on every feature with every source present, and leaks of one bar / one 15m bar caught."""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.research.features import FEATURES, checks, compute_features, pit

MIN = pd.Timedelta(minutes=1)


def cutoffs(one: pd.DataFrame) -> list[pd.Timestamp]:
    t = one["open_time"]
    # A day's first minute, an hour's first minute, a 15m bar's last minute, random ones, the last bar.
    return [t.iloc[1440], t.iloc[2 * 1440 + 60], t.iloc[2 * 1440 + 74], *checks.sample_cutoffs(t, 3, seed=3)]


def test_every_feature_is_prefix_invariant_with_every_source(synth):
    one, higher, sources = synth
    full = compute_features(one, higher, sources)
    warm = [f.name for f in FEATURES if f.warmup_bars_1m < len(one)]
    assert len(warm) > 100 and not full[warm].iloc[-1].isna().any(), "every source present: every warm feature set"
    frames = checks.frames_of(one, higher, sources)
    assert checks.prefix_invariance(full, frames, cutoffs(one)) == []


def test_a_one_bar_leak_is_caught(synth):
    one, higher, sources = synth

    def leaky(b, h=None, s=None):
        out = compute_features(b, h, s)
        out["rsi_14_1m"] = out["rsi_14_1m"].shift(-1)  # the next bar's RSI: one bar of look-ahead
        return out

    full = leaky(one, higher, sources)
    mism = checks.prefix_invariance(full, checks.frames_of(one, higher, sources), cutoffs(one), compute=leaky)
    assert mism and all(m.startswith("rsi_14_1m at") for m in mism)


def test_a_15m_bar_used_before_its_close_is_caught(synth):
    one, higher, sources = synth

    def at_open(b, h=None, s=None):
        early = dict(h)
        early["15m"] = h["15m"].assign(open_time=h["15m"]["open_time"] - pd.Timedelta(minutes=15))
        return compute_features(b, early, s)

    full = at_open(one, higher, sources)
    t = [one["open_time"].iloc[2 * 1440 + 70]]  # 01:10: the 01:00 bar is still open
    mism = checks.prefix_invariance(full, checks.frames_of(one, higher, sources), t, compute=at_open)
    assert any(m.startswith("ema_ratio_12_15m") for m in mism)


def test_metrics_row_used_only_after_its_delay(synth):
    one, higher, sources = synth
    m = sources["metrics"].copy()
    c = m["create_time"].iloc[500]
    m.loc[m.index[500], "sum_toptrader_long_short_ratio"] = 123.0
    f = compute_features(one, higher, {**sources, "metrics": m}).set_index("open_time")["top_trader_ls_ratio"]
    # Row with open o is known at o + 1m; the metrics row at c + METRICS_DELAY (5m): first used by o = c + 4m.
    assert f.loc[c + 3 * MIN] != 123.0 and f.loc[c + 4 * MIN] == 123.0


def test_funding_known_at_settlement_with_countdown(synth):
    one, higher, sources = synth
    f = compute_features(one, higher, sources).set_index("open_time")
    fr = sources["funding_rates"].set_index("funding_time")["rate"]
    s = fr.index[5]
    assert f.loc[s - 2 * MIN, "funding_rate"] == fr.iloc[4]  # known at 1 minute before the settlement: old rate
    assert f.loc[s - MIN, "funding_rate"] == fr.iloc[5]  # the bar closing at the settlement sees it
    assert np.isclose(f.loc[s - 2 * MIN, "hours_to_next_funding"], 1 / 60)


def test_a_stale_book_is_null_not_carried_forward(synth):
    one, higher, sources = synth
    book = sources["book_depth"]
    gap_from = one["open_time"].iloc[3000]
    kept = book[(book["snapshot_time"] < gap_from) | (book["snapshot_time"] >= gap_from + 20 * MIN)]
    f = compute_features(one, higher, {**sources, "book_depth": kept}).set_index("open_time")["book_imbalance_1pct"]
    assert np.isfinite(f.loc[gap_from + 2 * MIN]) and np.isnan(f.loc[gap_from + 10 * MIN])


def test_asof_index_uses_rows_available_at_or_before():
    src = np.array([10, 20, 30])
    assert pit.asof_index(np.array([5, 10, 29, 30, 100]), src).tolist() == [-1, 0, 1, 2, 2]
    assert pit.asof_index(np.array([25, 45]), src, max_age=pd.Timedelta(10)).tolist() == [1, -1]


def test_the_funding_countdown_follows_the_schedule_past_the_last_known_settlement(synth):
    """Live, the month's funding file is not archived yet: the last known settlement is days old, and the countdown
    must still be the time to the next settlement on the 8-hour grid, never negative."""
    one, higher, sources = synth
    fr = sources["funding_rates"]
    old = fr[fr["funding_time"] <= one["open_time"].iloc[0] + pd.Timedelta(hours=8)]  # nothing after the first day
    f = compute_features(one, higher, {**sources, "funding_rates": old}).set_index("open_time")["hours_to_next_funding"]
    late = f[f.index > one["open_time"].iloc[0] + pd.Timedelta(days=2)].dropna()
    assert len(late) and (late >= 0).all() and (late <= 8).all()
    t = late.index[100]
    close = t + MIN
    nxt = close.ceil("8h") if close != close.floor("8h") else close + pd.Timedelta(hours=8)
    assert np.isclose(late.loc[t], (nxt - close) / pd.Timedelta(hours=1))


def test_daily_cutoffs_draw_per_utc_day_whatever_the_row_order():
    """The cut-offs are drawn day by day with a seed per day (the same draw as a groupby on the UTC day), from
    bars in any order, and every day of the window gets its own."""
    times = pd.Series(pd.date_range("2024-03-01 22:00", periods=3000, freq="1min", tz="UTC"))
    shuffled = times.sample(frac=1.0, random_state=3).reset_index(drop=True)
    for src in (times, shuffled):
        expected = []
        for day, group in src.groupby(src.dt.floor("D"), sort=True):
            rng = np.random.default_rng([7, int(day.timestamp())])
            picks = rng.choice(len(group), size=min(2, len(group)), replace=False)
            expected += [group.iloc[j] for j in sorted(picks.tolist())]
        got = checks.daily_cutoffs(src, 2, seed=7)
        assert got == expected
        assert len({t.floor("D") for t in got}) == 3  # 22:00 on day 1 to day 3
    assert checks.daily_cutoffs(pd.Series([], dtype="datetime64[ns, UTC]"), 2, seed=7) == []
