"""Tests for the vectorised backtest. Every bar series here is SYNTHETIC (hand-made or seeded random), not market data.

Hand-computed cases use round prices so the expected numbers can be checked on paper; the comments show the sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.backtest import Costs, simulate

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")
NO_COSTS = Costs(taker_fee=0.0, slippage_bps=0.0)


def make_bars(opens, closes, times=None) -> pd.DataFrame:
    """Synthetic bars; 1-minute spacing from T0 unless explicit times (for gaps) are given."""
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    t = pd.date_range(T0, periods=len(o), freq="1min") if times is None else pd.DatetimeIndex(times)
    return pd.DataFrame({"open_time": t, "open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c})


def tgt(bars: pd.DataFrame, values) -> pd.Series:
    return pd.Series(np.asarray(values, float), index=pd.DatetimeIndex(bars["open_time"]))


def fund(*pairs) -> pd.DataFrame:
    return pd.DataFrame({"funding_time": pd.DatetimeIndex([p[0] for p in pairs]), "rate": [p[1] for p in pairs]})


def minute(i: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=i)


def flat_bars(n: int = 5, price: float = 100.0) -> pd.DataFrame:
    return make_bars([price] * n, [price] * n)


def test_always_flat_target_keeps_equity_constant_with_no_trades_or_costs():
    bars = make_bars([100, 101, 99, 105, 103], [101, 99, 105, 103, 104])
    res = simulate(bars, tgt(bars, [0] * 5), fund((minute(2), 0.01)))
    assert (res.equity == 10_000.0).all()
    assert res.trades.empty
    assert res.fees_paid.iloc[-1] == 0.0 and res.funding_paid.iloc[-1] == 0.0
    m = res.metrics
    assert m["n_trades"] == 0 and np.isnan(m["win_rate"])
    assert m["sharpe"] == 0.0 and m["max_drawdown"] == 0.0 and m["exposure"] == 0.0
    assert m["final_equity"] == 10_000.0 and m["total_return"] == 0.0


def test_long_for_one_bar_by_hand():
    bars = make_bars([100, 100, 110, 120], [100, 105, 115, 125])
    res = simulate(bars, tgt(bars, [1, 0, 0, 0]), None, costs=Costs(taker_fee=0.0005))
    # decided at close of bar 0 -> buy at bar 1 open 100: qty 10_000/100 = 100, fee 0.0005*100*100 = 5
    # decided flat at close of bar 1 -> sell at bar 2 open 110: gross 100*10 = 1000, fee 0.0005*100*110 = 5.5
    assert res.position.tolist() == [0, 1, 0, 0]
    assert res.equity.tolist() == pytest.approx([10_000, 10_000 - 5 + 100 * 5, 10_989.5, 10_989.5])
    (row,) = res.trades.itertuples()
    assert (row.entry_time, row.exit_time, row.side) == (minute(1), minute(2), "long")
    assert (row.entry_price, row.exit_price) == pytest.approx((100, 110))
    assert row.gross_pnl == pytest.approx(1000) and row.gross_return == pytest.approx(0.10)
    assert row.fees == pytest.approx(10.5) and row.funding == 0.0
    assert row.net_pnl == pytest.approx(989.5) and row.net_return == pytest.approx(0.09895)
    assert not row.is_open
    m = res.metrics
    assert m["final_equity"] == pytest.approx(10_989.5) and m["fees_paid"] == pytest.approx(10.5)
    assert m["realised_pnl"] == pytest.approx(1000) and m["win_rate"] == 1.0 and m["exposure"] == 0.25


def test_flip_long_to_short_splits_into_two_round_trips():
    bars = make_bars([100, 100, 110, 121, 121], [100, 110, 121, 121, 121])
    res = simulate(bars, tgt(bars, [1, -1, 0, 0, 0]), None, costs=Costs(taker_fee=0.0005))
    long_, short = res.trades.itertuples()
    assert (long_.side, short.side) == ("long", "short")
    assert long_.exit_time == short.entry_time == minute(2)
    assert long_.gross_pnl == pytest.approx(1000) and long_.fees == pytest.approx(5 + 5.5)
    e_flip = 10_000 - 5 + 1000  # equity at bar 2 open before the flip fill
    q_short = e_flip / 110
    assert short.gross_pnl == pytest.approx(q_short * (110 - 121))
    assert short.fees == pytest.approx(0.0005 * q_short * (110 + 121))
    assert res.metrics["final_equity"] == pytest.approx(10_000 + 1000 - 10.5 + short.net_pnl)


def test_long_pays_positive_funding_at_that_bars_open():
    bars = make_bars([100, 100, 200, 200], [100, 100, 200, 200])
    res = simulate(bars, tgt(bars, [1, 1, 1, 1]), fund((minute(2), 0.001)), costs=NO_COSTS)
    # qty 100 bought at 100; funding at 00:02 on notional 100 * open(00:02)=200 -> pays 20
    assert res.metrics["funding_paid"] == pytest.approx(20.0)
    assert res.funding_paid.tolist() == pytest.approx([0, 0, 20, 20])
    assert res.trades["funding"].sum() == pytest.approx(20.0)
    assert res.metrics["final_equity"] == pytest.approx(10_000 + 100 * 100 - 20)


@pytest.mark.parametrize("side, rate, expected_paid", [(-1, 0.001, -10.0), (-1, -0.001, 10.0), (1, -0.001, -10.0)])
def test_funding_sign_follows_side_and_rate(side, rate, expected_paid):
    bars = flat_bars()
    res = simulate(bars, tgt(bars, [side] * 5), fund((minute(3), rate)), costs=NO_COSTS)
    assert res.metrics["funding_paid"] == pytest.approx(expected_paid)  # |qty| 100 * price 100 * |rate|
    assert res.metrics["final_equity"] == pytest.approx(10_000 - expected_paid)


def test_funding_while_flat_or_outside_the_span_costs_nothing():
    bars = flat_bars()
    events = fund((minute(1), 0.01), (T0 - pd.Timedelta(hours=8), 0.01), (minute(5), 0.01))  # minute 5 = last close
    res = simulate(bars, tgt(bars, [0, 1, 1, 0, 0]), events, costs=NO_COSTS)  # long during bars 2 and 3 only
    assert res.metrics["funding_paid"] == 0.0
    assert res.metrics["final_equity"] == 10_000.0


def test_funding_snapshot_is_taken_after_a_fill_at_the_same_open():
    bars = flat_bars()
    # target decided at close of bar 1 is filled at 00:02:00; a funding event at 00:02:00 sees the new position
    res = simulate(bars, tgt(bars, [0, 1, 0, 0, 0]), fund((minute(2), 0.001)), costs=NO_COSTS)
    assert res.metrics["funding_paid"] == pytest.approx(10.0)
    # and the position closed at 00:03:00 no longer pays for an event at 00:03:00
    res = simulate(bars, tgt(bars, [0, 1, 0, 0, 0]), fund((minute(3), 0.001)), costs=NO_COSTS)
    assert res.metrics["funding_paid"] == 0.0


def test_funding_in_a_gap_uses_the_last_close_before_it():
    times = [minute(0), minute(1), minute(2), minute(60), minute(61)]
    bars = make_bars([100, 100, 100, 150, 150], [100, 100, 120, 150, 150], times)
    res = simulate(bars, tgt(bars, [1] * 5), fund((minute(30), 0.001)), costs=NO_COSTS)
    assert res.metrics["funding_paid"] == pytest.approx(100 * 120 * 0.001)  # qty 100, last price 120 (close 00:02)


def test_a_decision_never_earns_its_own_bars_move():
    # synthetic: only bar 2 moves (100 -> 110); the price then stays at 110
    bars = make_bars([100, 100, 100, 110, 110, 110], [100, 100, 110, 110, 110, 110])
    own_move = np.sign(bars["close"] - bars["open"])  # sign of bar t's own return, known at its close
    honest = simulate(bars, tgt(bars, own_move), None, costs=NO_COSTS)
    assert honest.metrics["final_equity"] == 10_000.0  # bought at 110 after the move: nothing earned
    leaked = simulate(bars, tgt(bars, own_move.shift(-1).fillna(0.0)), None, costs=NO_COSTS)
    # the leaked signal knows at close of bar 1 that bar 2 will rise, so it holds bar 2 and earns the full 10 %
    assert leaked.metrics["final_equity"] == pytest.approx(11_000.0)


def test_look_ahead_on_alternating_moves_rewards_only_the_leak():
    # synthetic: +1 %, -1 %, +1 %, ... with each open equal to the previous close
    n = 40
    closes = 100 * np.cumprod(np.where(np.arange(n) % 2 == 0, 1.01, 0.99))
    opens = np.concatenate([[100.0], closes[:-1]])
    bars = make_bars(opens, closes)
    own = np.sign(closes - opens)
    honest = simulate(bars, tgt(bars, own), None, costs=NO_COSTS)
    leak = simulate(bars, tgt(bars, np.append(own[1:], 0.0)), None, costs=NO_COSTS)
    # bars 1..n-1 are held; every one goes against the own-move signal and with the leaked one
    assert honest.metrics["final_equity"] == pytest.approx(10_000 * 0.99 ** (n - 1))
    assert leak.metrics["final_equity"] == pytest.approx(10_000 * 1.01 ** (n - 1))


def test_equity_up_to_a_bar_does_not_depend_on_later_bars():
    rng = np.random.default_rng(7)
    bars = random_bars(rng, 300)
    target = tgt(bars, rng.choice([-1.0, 0.0, 1.0], len(bars)))
    base = simulate(bars, target, None)
    later = bars.copy()
    later.loc[150:, ["open", "close"]] *= 1.5
    changed = simulate(later, target, None)
    pd.testing.assert_series_equal(base.equity.iloc[:150], changed.equity.iloc[:150])


def test_target_on_the_last_bar_is_never_filled():
    bars = make_bars([100, 100, 100], [100, 100, 150])
    res = simulate(bars, tgt(bars, [0, 0, 1]), None)
    assert res.trades.empty and res.metrics["final_equity"] == 10_000.0


def test_sparse_target_holds_the_last_decision():
    bars = flat_bars(6)
    res = simulate(bars, pd.Series([1.0, 0.0], index=[minute(1), minute(3)]), None, costs=NO_COSTS)
    assert res.position.tolist() == [0, 0, 1, 1, 0, 0]


def test_open_position_is_marked_at_the_last_close_without_an_exit_fee():
    bars = make_bars([100, 100, 100], [100, 100, 130])
    res = simulate(bars, tgt(bars, [1, 1, 1]), None, costs=Costs(taker_fee=0.001))
    (row,) = res.trades.itertuples()
    assert row.is_open and row.exit_time == minute(3) and row.exit_price == 130
    assert row.fees == pytest.approx(10.0)  # entry only: 0.001 * 100 * 100
    assert res.metrics["final_equity"] == pytest.approx(10_000 - 10 + 100 * 30)


def test_benchmark_equals_buy_and_hold_by_hand():
    bars = make_bars([100, 100, 120, 90], [100, 110, 125, 95])
    res = simulate(bars, tgt(bars, [0] * 4), fund((minute(2), 0.001)), costs=Costs(taker_fee=0.0005))
    qty = 10_000 / 100  # enters at bar 1's open, the first price any decision can be filled at
    fee = 0.0005 * qty * 100
    funding = qty * 120 * 0.001
    expected = [10_000, 10_000 - fee + qty * 10, 10_000 - fee + qty * 25 - funding, 10_000 - fee - qty * 5 - funding]
    assert res.benchmark.tolist() == pytest.approx(expected)
    bm = res.benchmark_metrics
    assert bm["fees_paid"] == pytest.approx(fee) and bm["funding_paid"] == pytest.approx(funding)
    assert bm["n_trades"] == 1 and bm["exposure"] == 0.75
    assert bm["max_drawdown"] == pytest.approx(expected[3] / expected[2] - 1)
    assert set(bm) == set(res.metrics)


def random_bars(rng: np.random.Generator, n: int, gaps: bool = False) -> pd.DataFrame:
    """Synthetic seeded random walk around 40k; optionally with random missing minutes."""
    closes = 40_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n)))
    opens = np.concatenate([[40_000.0], closes[:-1]]) * (1 + rng.normal(0, 1e-4, n))
    minutes = np.arange(n) + (np.cumsum(rng.random(n) < 0.01) * 7 if gaps else 0)
    return make_bars(opens, closes, T0 + pd.to_timedelta(minutes, unit="min"))


def random_target(rng: np.random.Generator, bars: pd.DataFrame) -> pd.Series:
    change = rng.random(len(bars)) < 0.05  # hold each decision for ~20 bars so costs do not wipe out equity
    levels = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0], len(bars))
    return tgt(bars, pd.Series(np.where(change, levels, np.nan)).ffill().fillna(0.0))


def test_accounting_identity_on_random_target_over_5000_bars():
    rng = np.random.default_rng(42)
    bars = random_bars(rng, 5_000, gaps=True)
    times = pd.date_range(T0, bars["open_time"].iloc[-1], freq="8h") + pd.Timedelta(milliseconds=3)
    funding = pd.DataFrame({"funding_time": times, "rate": rng.normal(1e-4, 2e-4, len(times))})
    res = simulate(bars, random_target(rng, bars), funding, costs=Costs(taker_fee=0.0005, slippage_bps=1.5))
    m = res.metrics
    assert m["n_trades"] > 50 and m["funding_paid"] != 0.0
    expected = 10_000 + m["realised_pnl"] - m["fees_paid"] - m["funding_paid"]
    assert m["final_equity"] == pytest.approx(expected, rel=1e-9)
    assert res.trades["fees"].sum() == pytest.approx(m["fees_paid"], rel=1e-9)
    assert res.trades["funding"].sum() == pytest.approx(m["funding_paid"], rel=1e-9)
    assert res.trades["net_pnl"].sum() == pytest.approx(m["final_equity"] - 10_000, rel=1e-9)
    assert res.fees_paid.iloc[-1] == pytest.approx(m["fees_paid"])
    assert res.equity.iloc[-1] == m["final_equity"]
    assert (res.trades["exit_time"] > res.trades["entry_time"]).all()


def test_slippage_makes_results_strictly_worse():
    rng = np.random.default_rng(3)
    bars = random_bars(rng, 5_000)
    target = random_target(rng, bars)
    clean = simulate(bars, target, None, costs=Costs(taker_fee=0.0005, slippage_bps=0.0))
    slipped = simulate(bars, target, None, costs=Costs(taker_fee=0.0005, slippage_bps=2.0))
    assert slipped.metrics["final_equity"] < clean.metrics["final_equity"]
    assert slipped.metrics["realised_pnl"] < clean.metrics["realised_pnl"]
    assert slipped.benchmark_metrics["final_equity"] < clean.benchmark_metrics["final_equity"]
    longs = slipped.trades["side"] == "long"
    assert (slipped.trades.loc[longs, "entry_price"] > clean.trades.loc[longs, "entry_price"]).all()


def test_metrics_have_the_documented_keys():
    bars = flat_bars()
    res = simulate(bars, tgt(bars, [1] * 5), None)
    assert set(res.metrics) == {"total_return", "annualised_return", "sharpe", "max_drawdown", "n_trades",
                                "win_rate", "fees_paid", "funding_paid", "exposure", "final_equity", "realised_pnl"}


def test_target_at_a_time_not_in_bars_is_rejected():
    bars = flat_bars()
    bad = pd.Series([1.0], index=[minute(1) + pd.Timedelta(seconds=30)])
    with pytest.raises(ValueError, match=r"not in bars.*2024-01-01 00:01:30"):
        simulate(bars, bad, None)


def test_nan_target_is_rejected():
    bars = flat_bars()
    with pytest.raises(ValueError, match=r"NaN.*2024-01-01 00:02:00"):
        simulate(bars, tgt(bars, [0, 1, np.nan, 0, 0]), None)


def test_unsorted_bars_are_rejected():
    bars = flat_bars().iloc[[0, 2, 1, 3, 4]].reset_index(drop=True)
    with pytest.raises(ValueError, match="strictly increasing.*sort"):
        simulate(bars, tgt(flat_bars(), [0] * 5), None)


@pytest.mark.parametrize("case", ["duplicate_bars", "naive_bars", "naive_target", "one_bar", "nan_funding"])
def test_other_bad_inputs_are_rejected(case):
    bars, target, funding = flat_bars(), tgt(flat_bars(), [0] * 5), None
    if case == "duplicate_bars":
        bars = pd.concat([bars, bars.iloc[[-1]]], ignore_index=True)
    elif case == "naive_bars":
        bars = bars.assign(open_time=bars["open_time"].dt.tz_localize(None))
    elif case == "naive_target":
        target.index = target.index.tz_localize(None)
    elif case == "one_bar":
        bars, target = bars.iloc[:1], target.iloc[:1]
    else:
        funding = fund((minute(1), np.nan))
    with pytest.raises(ValueError):
        simulate(bars, target, funding)
