"""The shared risk rules, called from Python the way the live trader calls them, and as the engine applies them."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research import risk
from btc_assets.lib.research.backtest import rules_for, simulate
from btc_assets.lib.research.backtest.exchange import liquidation_price, round_price, round_qty
from btc_assets_tests.lib.research.backtest.conftest import random_bars, random_signals

P = risk.RiskConfig().to_array()


def test_kelly_and_its_fraction_are_capped_at_max_risk():
    assert risk.kelly(0.6, 1.0) == pytest.approx(0.2) and risk.kelly(0.3, 1.0) == 0.0
    p = risk.RiskConfig(sizing="kelly", kelly_fraction=0.5, kelly_min_trades=10).to_array()
    assert risk.risk_fraction(p, 6, 4, 6.0, 4.0, 0.001, 0.002) == pytest.approx(0.01)  # 0.5 x 0.2 -> capped at 1 %
    assert risk.risk_fraction(p, 2, 1, 2.0, 1.0, 0.001, 0.002) == pytest.approx(0.0025)  # too few trades: the prior
    fixed = risk.RiskConfig(sizing="fixed", fixed_fraction=0.004).to_array()
    assert risk.risk_fraction(fixed, 0, 0, 0, 0, 0, 0) == pytest.approx(0.004)


def test_quantity_risks_the_fraction_at_the_stop_within_the_margin():
    assert risk.position_qty(P, 10_000, 10_000, 40_000, 100.0, 0.01, 125) == pytest.approx(1.0)
    assert risk.position_qty(P, 10_000, 1_000, 40_000, 100.0, 0.01, 125) == pytest.approx(0.25)  # 1,000 x 10x
    stop, target = risk.stop_and_target(P, -1.0, 40_000.0, 20.0)
    assert (stop, target) == (40_030.0, 39_940.0)  # 1.5 x ATR above a short, 2 R below


def test_breaker_pauses_for_the_rest_of_the_day_and_resumes_next_day():
    state = risk.new_breaker_state()
    day = risk.NANOS_PER_DAY
    t0 = 19_723 * day  # 2024-01-01 (a Monday)
    assert not risk.breaker_update(P, state, t0, 10_000, 10_000)
    assert risk.breaker_update(P, state, t0 + 60_000_000_000, 9_400, 10_000)  # -6 % on the day
    assert risk.breaker_update(P, state, t0 + 3_600_000_000_000, 9_900, 9_400)  # still the same day: paused
    assert not risk.breaker_update(P, state, t0 + day, 9_900, 9_900)  # next day: resumes


def test_no_entries_while_a_breaker_is_active():
    bars = random_bars(6_000)
    res = simulate(bars, random_signals(bars, p=0.3), None, risk=risk.RiskConfig(daily_dd=0.002, weekly_dd=0.5))
    paused = res.paused.to_numpy()
    assert res.skipped["breaker"] > 0 and paused.any() and not paused.all()
    entry_bar = pd.DatetimeIndex(res.equity.index).get_indexer(res.trades["entry_time"])
    assert not paused[entry_bar - 1].any()  # the decision bar of every entry was not paused
    days = pd.DatetimeIndex(res.trades["entry_time"]).normalize().unique()
    assert len(days) > 1  # trading resumed on the next day


def test_filters_and_liquidation_guard():
    assert risk.passes_filters(P, 5.0, 40.0, 40_000.0, 1e6)
    assert not risk.passes_filters(P, 80.0, 40.0, 40_000.0, 1e6)  # spread
    assert not risk.passes_filters(P, 5.0, 1_000.0, 40_000.0, 1e6)  # too volatile (2.5 %)
    assert not risk.passes_filters(risk.RiskConfig(min_quote_volume=1e7).to_array(), 5.0, 40.0, 40_000.0, 1e6)
    assert risk.liquidation_guard_ok(P, 40_000, 39_900, 39_700)
    assert not risk.liquidation_guard_ok(P, 40_000, 39_900, 39_850)


def test_exchange_rules_are_versioned_and_rounding_never_overshoots():
    rules = rules_for(pd.Timestamp("2024-01-01").date())
    assert rules.version.startswith("binance-um-BTCUSDT") and rules.tiers_array().shape == (4, 5)
    with pytest.raises(ValueError, match="add one"):
        rules_for(pd.Timestamp("2018-01-01").date())
    assert round_qty(0.0309999, 0.001) == pytest.approx(0.030) and round_qty(0.03, 0.001) == pytest.approx(0.03)
    assert round_price(40_000.04, 0.1, 1.0) == pytest.approx(40_000.1)  # a buy rounds up
    assert round_price(40_000.06, 0.1, -1.0) == pytest.approx(40_000.0)  # a sell rounds down
    # A short of 2 BTC at 40,000 (80k notional: tier 2, 0.5 %, cum 50) with 8,000 margin:
    assert liquidation_price(rules.tiers_array(), -1.0, 2.0, 40_000.0, 8_000.0) == pytest.approx(88_050 / 2.01)
    atr, vol = risk.atr_and_vol(*(np.linspace(1, 2, 100),) * 3)
    assert np.isnan(atr[12]) and np.isfinite(atr[13]) and np.isnan(vol[59]) and np.isfinite(vol[60])


def test_the_liquidation_probability_is_the_barrier_formula():
    """Driftless Brownian log price: P(touch a barrier d away within T) = 2 * Phi(-d / (sigma * sqrt(T)))."""
    from scipy.stats import norm

    entry, sigma, bars = 40_000.0, 0.001, 15
    liq = entry * np.exp(-sigma * np.sqrt(bars))  # one standard deviation of the horizon away
    assert risk.liquidation_probability(entry, liq, sigma, bars) == pytest.approx(2 * norm.cdf(-1.0))
    short_liq = entry * np.exp(2 * sigma * np.sqrt(bars))
    assert risk.liquidation_probability(entry, short_liq, sigma, bars) == pytest.approx(2 * norm.cdf(-2.0))
    # a Monte Carlo of the same model agrees (the formula counts touches between bars too: it is the upper bound)
    rng = np.random.default_rng(0)
    paths = np.cumsum(rng.normal(0, sigma / 10, size=(20_000, bars * 100)), axis=1)
    touched = (paths.min(axis=1) <= np.log(liq / entry)).mean()
    assert touched == pytest.approx(2 * norm.cdf(-1.0), abs=0.02)
    assert np.isnan(risk.liquidation_probability(entry, liq, float("nan"), bars))  # no volatility known yet
    assert risk.liquidation_probability(entry, 0.0, sigma, bars) == 0.0  # no liquidation price
    assert risk.liquidation_probability(entry, liq, 2 * sigma, bars) > risk.liquidation_probability(
        entry, liq, sigma, bars)
    with pytest.raises(ValueError, match="max_liq_prob=1.5"):
        risk.RiskConfig(max_liq_prob=1.5).to_array()


def test_the_position_tables_rules_size_by_exposure_and_need_no_stop():
    table = risk.RiskConfig(sizing="exposure", exposure=0.5, stop_atr=float("inf"), max_vol=float("inf"),
                            leverage=1.0, exit_on_neutral=True, liq_horizon_bars=30, max_hold_bars=10**9).to_array()
    # half the equity as notional, capped by the free margin at the leverage
    assert risk.exposure_qty(table, 10_000.0, 10_000.0, 40_000.0, 125.0) == pytest.approx(0.125)
    assert risk.exposure_qty(table, 10_000.0, 2_000.0, 40_000.0, 125.0) == pytest.approx(0.05)
    assert risk.exposure_qty(table, 0.0, 2_000.0, 40_000.0, 125.0) == 0.0
    # no stop: the guard that measures the liquidation in stop distances passes; the ATR is not needed
    assert risk.liquidation_guard_ok(table, 40_000.0, float("-inf"), 39_999.0)
    assert risk.passes_filters(table, 5.0, float("nan"), 40_000.0, 1e6)
    assert not risk.passes_filters(P, 5.0, float("nan"), 40_000.0, 1e6)  # with a stop it is
    # the liquidation probability's horizon: liq_horizon_bars when set, else max_hold_bars
    assert risk.liquidation_horizon(table) == 30 and risk.liquidation_horizon(P) == 15
    with pytest.raises(ValueError, match="exposure=0"):
        risk.RiskConfig(sizing="exposure", exposure=0.0).to_array()
    with pytest.raises(ValueError, match="liq_horizon_bars=-1"):
        risk.RiskConfig(liq_horizon_bars=-1).to_array()
