"""Metrics: beside buy-and-hold and random entry, by regime, and the Sharpe statistics."""

import numpy as np
import pytest

from btc_assets.lib.research.backtest import simulate
import pandas as pd

from btc_assets.lib.research.backtest.metrics import daily_returns, evaluate, sharpe_stats, summarise
from btc_assets.lib.research.backtest.report import headline
from btc_assets_tests.lib.research.backtest.conftest import eight_hourly_funding, random_bars, random_signals

KEYS = {"total_return", "annualised_return", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_days",
        "win_rate", "profit_factor", "expectancy", "avg_r", "exposure", "turnover", "fees_paid", "funding_paid",
        "longest_win_streak", "longest_loss_streak", "probabilistic_sharpe", "deflated_sharpe"}


def test_evaluation_has_every_metric_for_all_three_and_regimes():
    bars = random_bars(4_000)
    funding = eight_hourly_funding(bars)
    res = simulate(bars, random_signals(bars), funding)
    ev = evaluate(res, bars, funding, n_trials=5)
    for m in (ev.strategy, ev.buy_and_hold, ev.random_entry):
        assert KEYS <= set(m)
    assert ev.strategy["n_trades"] == len(res.trades)
    assert ev.strategy["deflated_sharpe"] <= ev.strategy["probabilistic_sharpe"]
    bh_return = bars["close"].iloc[-1] / bars["open"].iloc[1] - 1
    assert ev.buy_and_hold["total_return"] == pytest.approx(bh_return, abs=2e-3)  # minus the fee and funding
    assert abs(ev.random_entry["n_trades"] - len(res.trades)) <= 0.2 * len(res.trades)
    assert list(ev.by_regime.index) == ["bull", "bear", "sideways"]
    assert ev.by_regime["share_of_time"].sum() == pytest.approx(1.0)
    assert ev.by_regime["trades"].sum() == len(res.trades)


def test_probabilistic_sharpe_grows_with_evidence():
    rng = np.random.default_rng(0)
    r = rng.normal(0.00002, 0.001, 20_000)
    sr, psr, dsr = sharpe_stats(r)
    assert sr > 0 and 0.5 < psr <= 1 and dsr == psr
    _, psr_short, _ = sharpe_stats(r[:500])
    _, _, dsr_many = sharpe_stats(r, n_trials=100)
    assert psr_short < psr and dsr_many < psr


def test_sharpe_comes_from_daily_returns_and_nothing_under_a_year_is_annualised():
    rng = np.random.default_rng(1)
    times = pd.date_range("2024-01-01", periods=10 * 1440, freq="1min", tz="UTC")
    equity = 10_000 * np.exp(np.cumsum(rng.normal(2e-6, 5e-4, len(times))))
    m = summarise(equity, 10_000.0, times, pd.DataFrame(columns=["net_pnl", "gross_pnl", "qty", "entry_price",
                                                                   "exit_price", "r_multiple"]), 0.0, 0.0, 0.0)
    daily = equity.reshape(10, 1440)[:, -1]
    r = np.concatenate([[daily[0] / 10_000 - 1], daily[1:] / daily[:-1] - 1])
    np.testing.assert_allclose(daily_returns(equity, 10_000.0, times), r)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(365))
    assert m["days_of_returns"] == 10 and m["period_days"] == pytest.approx(10.0)
    assert np.isnan(m["annualised_return"]) and np.isnan(m["calmar"])  # 10 days: not annualised
    year = pd.date_range("2023-01-01", periods=400, freq="1D", tz="UTC")
    long_m = summarise(np.linspace(10_100, 12_000, 400), 10_000.0, year, pd.DataFrame(
        columns=["net_pnl", "gross_pnl", "qty", "entry_price", "exit_price", "r_multiple"]), 0.0, 0.0, 0.0)
    assert np.isfinite(long_m["annualised_return"]) and long_m["annualised_return"] > 0


def test_headline_states_the_after_cost_result_beside_both_baselines_and_the_costs():
    bars = random_bars(4_000)
    funding = eight_hourly_funding(bars)
    res = simulate(bars, random_signals(bars), funding)
    ev = evaluate(res, bars, funding)
    text, waterfall = headline(ev, slippage_impact=12.5)
    assert "too short to annualise" in text and "buy-and-hold" in text and "random entry" in text
    assert waterfall["slippage"] == -12.5 and waterfall["fees"] == pytest.approx(-ev.strategy["fees_paid"])
    assert waterfall["net P&L"] == pytest.approx(res.final_equity - res.initial_equity)
    assert waterfall["gross P&L (after slippage)"] + waterfall["fees"] + waterfall["funding"] == pytest.approx(
        waterfall["net P&L"], abs=1e-6)
