"""The engine's accounting, fill timing, funding sign, liquidation and determinism."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.backtest import Costs, simulate
from btc_assets.lib.research.risk import RiskConfig
from btc_assets_tests.lib.research.backtest.conftest import (NO_SLIP, eight_hourly_funding, flat_bars, one_signal,
                                                    random_bars, random_signals)


def test_final_equity_is_initial_plus_realised_minus_fees_minus_funding():
    bars = random_bars(6_000)
    res = simulate(bars, random_signals(bars), eight_hourly_funding(bars, 0.0003))
    tr = res.trades
    assert len(tr) > 50 and res.funding.abs().sum() > 0
    expected = res.initial_equity + tr["gross_pnl"].sum() - res.fees.sum() - res.funding.sum()
    assert res.final_equity == pytest.approx(expected, rel=1e-12, abs=1e-6)
    assert tr["fees"].sum() == pytest.approx(res.fees.sum()) and tr["funding"].sum() == pytest.approx(res.funding.sum())
    assert np.allclose(tr["qty"] / 0.001, np.round(tr["qty"] / 0.001))  # step size on every order
    assert (tr["qty"] * tr["entry_price"] >= 10).all()  # minimum notional
    assert np.allclose(tr["entry_price"] * 10, np.round(tr["entry_price"] * 10))  # tick size


def test_market_entry_fills_at_the_next_open_and_pays_taker(risk_fixed):
    bars = flat_bars(40)
    bars.loc[21, "open"] = 40_010.0  # the fill bar opens elsewhere: the signal bar's close (40,000) was not tradable
    res = simulate(bars, one_signal(bars, 20, +1), None, costs=NO_SLIP, risk=risk_fixed)
    t = res.trades.iloc[0]
    assert t["entry_time"] == bars["open_time"][21] and t["entry_price"] == 40_010.0
    assert res.fees.iloc[21] == pytest.approx(0.0005 * t["qty"] * 40_010.0)
    assert t["exit_reason"] == "time" and t["exit_time"] == bars["open_time"][21 + 15]


def test_post_only_limit_fills_only_when_traded_through_and_pays_maker(risk_fixed):
    costs = Costs(slippage_bps=0, slippage_vol_mult=0, order_type="limit", limit_offset_bps=2.0)
    bars = flat_bars(40)  # the limit is 40,000 * (1 - 2 bps) = 39,992; lows at 39,980 trade through it
    res = simulate(bars, one_signal(bars, 20, +1), None, costs=costs, risk=risk_fixed)
    t = res.trades.iloc[0]
    assert t["entry_price"] == pytest.approx(39_992.0)
    assert res.fees.iloc[21] == pytest.approx(0.0002 * t["qty"] * 39_992)
    touch = flat_bars(40, half_range=8.0)  # low 39,992 touches but does not trade through
    res = simulate(touch, one_signal(touch, 20, +1), None, costs=costs, risk=risk_fixed)
    assert res.trades.empty and res.skipped["limit_not_filled"] == 1


def test_liquidation_computed_by_hand():
    bars = flat_bars(40)
    bars.loc[25, "low"] = 38_100.0  # through the liquidation price, above the (far) stop
    risk = RiskConfig(sizing="fixed", fixed_fraction=0.01, stop_atr=50.0, leverage=20.0, liq_guard=0.0)
    res = simulate(bars, one_signal(bars, 20, +1), None, costs=NO_SLIP, risk=risk)
    t = res.trades.iloc[0]
    # ATR = 40, stop distance 50 x 40 = 2,000; 1 % of 10,000 at risk -> 0.05 BTC at 40,000, margin 2,000 / 20 = 100.
    qty, entry, margin, mmr, cum = 0.05, 40_000.0, 100.0, 0.004, 0.0
    liq = (qty * entry - margin - cum) / (qty * (1 - mmr))  # 38,152.61...
    assert t["qty"] == pytest.approx(qty) and t["exit_reason"] == "liquidation"
    assert t["liquidation_price"] == pytest.approx(liq) and t["exit_price"] == pytest.approx(liq)
    loss = qty * (liq - entry)
    liq_fee = min(0.012 * qty * liq, margin + loss)  # the clearance fee takes what margin is left
    assert t["gross_pnl"] == pytest.approx(loss) and t["fees"] == pytest.approx(0.0005 * qty * entry + liq_fee)
    assert res.final_equity == pytest.approx(10_000 - 0.0005 * qty * entry - margin)  # isolated: the margin is lost


@pytest.mark.parametrize("side", [+1, -1])
def test_funding_sign_long_pays_short_receives_a_positive_rate(side, risk_fixed):
    bars = flat_bars(40)
    funding = pd.DataFrame({"funding_time": [bars["open_time"][25]], "rate": [0.0001]})
    res = simulate(bars, one_signal(bars, 20, side), funding, costs=NO_SLIP, risk=risk_fixed)
    qty = res.trades["qty"].iloc[0]
    assert res.funding.iloc[25] == pytest.approx(side * qty * 40_000 * 0.0001)
    assert res.trades["funding"].iloc[0] == pytest.approx(side * qty * 4.0)


def test_same_signals_same_result():
    bars = random_bars(3_000)
    a = simulate(bars, random_signals(bars), eight_hourly_funding(bars))
    b = simulate(bars, random_signals(bars), eight_hourly_funding(bars))
    pd.testing.assert_series_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.trades, b.trades)


def test_never_more_than_max_positions_and_stops_placed_at_atr_multiple():
    bars = random_bars(3_000)
    res = simulate(bars, random_signals(bars, p=0.5), None, risk=RiskConfig(max_positions=2))
    tr = res.trades
    events = sorted([(t, 1) for t in tr["entry_time"]] + [(t, -1) for t in tr["exit_time"]], key=lambda e: (e[0], e[1]))
    assert max(np.cumsum([d for _, d in events])) <= 2 and res.skipped["max_positions"] > 0
    r = (tr["target"] - tr["entry_price"]) / (tr["entry_price"] - tr["stop"])
    assert np.allclose(r, 2.0)  # take-profit at 2 R


def test_bad_inputs_say_what_to_do():
    bars = flat_bars(30)
    with pytest.raises(ValueError, match="signals_from_classes"):
        simulate(bars, one_signal(bars, 3, 2), None)
    with pytest.raises(ValueError, match="tz-naive"):
        simulate(bars.assign(open_time=bars["open_time"].dt.tz_localize(None)), one_signal(bars, 3, 1), None)


def test_a_size_scale_shrinks_each_entry_by_its_factor_and_is_checked():
    """The regime sizing's input: a factor in (0, 1] per bar on the rules' size (1 where absent: unchanged)."""
    bars = random_bars(3_000, seed=11)
    sig = random_signals(bars, seed=12)
    base = simulate(bars, sig, None)
    same = simulate(bars, sig, None, size_scale=pd.Series(1.0, index=pd.DatetimeIndex(bars["open_time"])))
    pd.testing.assert_frame_equal(base.trades, same.trades)  # factor 1: bit for bit the rules' sizes
    times = pd.DatetimeIndex(bars["open_time"])
    half = simulate(bars, sig, None, size_scale=pd.Series(0.5, index=times[: len(times) // 2]))  # first half only
    first = base.trades["entry_time"] <= times[len(times) // 2 - 1] + pd.Timedelta(minutes=1)
    n = min(len(base.trades), len(half.trades), int(first.sum()))
    assert n > 5
    # the first entry's size halves exactly (rounded down to the step); later ones follow the (smaller) equity
    assert half.trades["qty"].iloc[0] == pytest.approx(np.floor(base.trades["qty"].iloc[0] / 2 / 0.001) * 0.001)
    assert (half.trades["qty"].iloc[:n] < base.trades["qty"].iloc[:n]).all()
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="size_scale must be in \\(0, 1\\]"):
            simulate(bars, sig, None, size_scale=pd.Series(bad, index=times[:3]))


def test_a_settlement_is_charged_at_the_bar_it_falls_in_and_after_a_gap_at_the_next():
    from btc_assets.lib.research.backtest.inputs import _funding

    t = pd.date_range("2024-01-01", periods=5, freq="1min", tz="UTC").delete(3)  # 00:03 is missing
    ns = pd.DatetimeIndex(t).asi8
    f = pd.DataFrame({"funding_time": pd.to_datetime(["2024-01-01 00:01:00", "2024-01-01 00:02:00.004",
                                                      "2024-01-01 00:03:30"], utc=True, format="ISO8601"), "rate": [1.0, 2.0, 4.0]})
    # on time: its bar; 4 ms late (Binance stamps settlements so): still the bar it falls in; in the gap: the next
    assert list(_funding(f, ns)) == [0.0, 1.0, 2.0, 4.0]
    days = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    eight = pd.DataFrame({"funding_time": pd.date_range("2024-01-01", periods=9, freq="8h", tz="UTC"), "rate": 1.0})
    assert list(_funding(eight, pd.DatetimeIndex(days).asi8)) == [3.0, 3.0, 3.0]  # daily bars: the day's three
