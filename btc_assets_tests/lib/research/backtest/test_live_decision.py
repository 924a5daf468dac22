"""decide(): the rules' decision at the last close is the one the backtest takes at that bar (live parity)."""

import pandas as pd
import pytest

from btc_assets.lib.research.backtest import simulate
from btc_assets.lib.research.backtest.simulation import decide
from btc_assets.lib.research.risk import RiskConfig
from btc_assets_tests.lib.research.backtest.conftest import eight_hourly_funding, flat_bars, one_signal, random_bars, \
    random_signals

MINUTE = pd.Timedelta(minutes=1)


@pytest.mark.parametrize("max_positions", [1, 3])
def test_bar_by_bar_decisions_reproduce_the_backtest_trades(max_positions):
    bars = random_bars(900, seed=5)
    sig = random_signals(bars, seed=6, p=0.08)
    funding = eight_hourly_funding(bars)
    risk = RiskConfig(max_positions=max_positions)
    full = simulate(bars, sig, funding, risk=risk)
    entries, exits = [], []
    for t in range(201, len(bars) - 1):  # the live session starts at bar 200 in both runs
        res, d = decide(bars.iloc[200:t + 1], sig.iloc[200:t + 1], funding, risk=risk)
        if d.entry_side:
            entries.append((d.bar_time + MINUTE, d.entry_side))
        exits += [(entry_time, d.bar_time + MINUTE, reason) for entry_time, reason in d.exits]
    same = simulate(bars.iloc[200:], sig.iloc[200:], funding, risk=risk)
    tr = same.trades
    # every entry the backtest made (filled at the open after its decision) was decided live at the bar before
    backtest_entries = [(t, 1 if s == "long" else -1) for t, s in zip(tr["entry_time"], tr["side"])]
    decided = [e for e in entries if e[0] <= bars["open_time"].iloc[-1]]
    assert len(backtest_entries) > 10
    # an entry decided at a close can still be refused at the fill (margin or liquidation guard at the fill price,
    # counted in the backtest's skips): the live order is sent, the fill model refuses it
    assert set(backtest_entries) <= set(decided)
    refused_at_fill = same.skipped["too_small"] + same.skipped["liquidation_guard"]
    assert len(set(decided) - set(backtest_entries)) <= refused_at_fill
    if max_positions == 1:
        assert decided == backtest_entries
    market_exits = tr[tr["exit_reason"].isin(["time", "signal"])]
    assert sorted(exits) == sorted(zip(market_exits["entry_time"], market_exits["exit_time"],
                                       market_exits["exit_reason"].astype(str)))
    assert len(full.trades) > 0  # the full-history run trades too (its state differs: another session start)


def test_a_signal_without_room_says_why():
    bars = flat_bars(60)
    sig = one_signal(bars, 30, 1)
    _, d = decide(bars.iloc[:31], sig.iloc[:31], None, risk=RiskConfig(max_vol=1e-9))
    assert d.entry_side == 0 and d.skip == "filters" and d.exits == ()
    _, d = decide(bars.iloc[:31], sig.iloc[:31], None, risk=RiskConfig(sizing="fixed", liq_guard=0.0))
    assert d.entry_side == 1 and d.entry_qty > 0 and d.stop_distance == pytest.approx(1.5 * 40.0)
    assert d.skip is None and not d.paused


def test_decide_does_not_change_the_backtest():
    bars = random_bars(500, seed=9)
    sig = random_signals(bars, seed=10)
    res, _ = decide(bars, sig, None)
    ref = simulate(bars, sig, None)
    pd.testing.assert_series_equal(res.equity, ref.equity)
    pd.testing.assert_frame_equal(res.trades, ref.trades)


def test_an_entry_likely_to_be_liquidated_is_refused_live_and_in_the_backtest():
    """100x leverage puts the liquidation price ~0.6 % away; with 0.08 %/min volatility over a 15-minute hold it is
    reached with a probability of several percent: refused above max_liq_prob, and recorded either way."""
    bars = random_bars(400, seed=3)
    sig = random_signals(bars, seed=4, p=0.1)
    sig.iloc[:70] = 0  # after the 60 bars the volatility needs (before them it is unknown: NaN, not refused for it)
    lax = RiskConfig(sizing="fixed", leverage=100.0, liq_guard=0.0, max_liq_prob=1.0)
    strict = RiskConfig(sizing="fixed", leverage=100.0, liq_guard=0.0, max_liq_prob=0.01)
    traded = simulate(bars, sig, None, risk=lax)
    assert len(traded.trades) > 5 and traded.skipped["liquidation_probability"] == 0
    p = traded.trades["liquidation_probability"]
    assert ((p > 0.01) & (p <= 1)).all()  # every one of these entries would be refused by the strict rule
    refused = simulate(bars, sig, None, risk=strict)
    assert len(refused.trades) == 0 and refused.skipped["liquidation_probability"] > 5
    # at 10x (the default) the same entries are far from their liquidation price and pass
    normal = simulate(bars, sig, None, risk=RiskConfig(sizing="fixed", liq_guard=0.0))
    assert len(normal.trades) > 5 and (normal.trades["liquidation_probability"] < 1e-6).all()
    # live: the decision of a signal bar says why and with what probability
    t = next(i for i in range(100, 400) if sig.iloc[i] != 0)
    _, d = decide(bars.iloc[:t + 1], sig.iloc[:t + 1], None, risk=strict)
    assert d.entry_side == 0 and d.skip == "liquidation_probability" and d.liquidation_probability > 0.01
    _, d = decide(bars.iloc[:t + 1], sig.iloc[:t + 1], None, risk=lax)
    assert d.entry_side != 0 and d.liquidation_probability > 0.01
