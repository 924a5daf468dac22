"""Metrics: beside buy-and-hold and random entry, by regime, and the Sharpe statistics."""

import numpy as np
import pytest

from btc_assets.lib.research.backtest import simulate
from btc_assets.lib.research.backtest.metrics import evaluate, sharpe_stats
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
