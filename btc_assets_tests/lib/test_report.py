"""Tests for the HTML backtest report. All bars are SYNTHETIC (a seeded random walk), not market data."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from btc_assets.lib.backtest import BacktestResult, Costs, simulate
from btc_assets.lib.report import _drawdown, _grid, _resample, render_report, write_report

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def synthetic_result(n: int, seed: int = 0) -> BacktestResult:
    rng = np.random.default_rng(seed)
    closes = 40_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, n)))
    opens = np.concatenate([[40_000.0], closes[:-1]])
    times = pd.date_range(T0, periods=n, freq="1min")
    bars = pd.DataFrame({"open_time": times, "open": opens, "high": np.maximum(opens, closes),
                         "low": np.minimum(opens, closes), "close": closes})
    change = rng.random(n) < 0.02
    target = pd.Series(np.where(change, rng.choice([-1.0, 0.0, 1.0], n), np.nan), index=times).ffill().fillna(0.0)
    funding = pd.DataFrame({"funding_time": pd.date_range(T0, times[-1], freq="8h"), "rate": 1e-4})
    return simulate(bars, target, funding, costs=Costs(taker_fee=0.0005, slippage_bps=1.0))


@pytest.fixture(scope="module")
def small() -> BacktestResult:
    return synthetic_result(2_000)


def test_title_and_subtitle_are_escaped(small):
    page = render_report(small, title='<script>alert("x")</script> BTC & co', subtitle="<i>1m</i>")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; BTC &amp; co" in page
    assert "&lt;i&gt;1m&lt;/i&gt;" in page
    assert '<script>alert("x")' not in page and "<i>1m</i>" not in page


def test_page_is_self_contained_with_plotly_inlined_once(small):
    page = render_report(small, title="t")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "Plotly" in page
    # plotly.js itself mentions cdn.plot.ly (topojson default) but nothing may be loaded from it
    assert "<script src" not in page and 'src="https://cdn.plot.ly' not in page
    bundle_start = get_plotlyjs()[:200]
    assert page.count(bundle_start) == 1


def test_page_has_all_traces_and_both_metric_columns(small):
    page = render_report(small, title="t")
    for name in ("Strategy equity", "Buy & hold equity", "Strategy drawdown", "Buy & hold drawdown"):
        assert f'"name":"{name}"' in page
    assert "<th>Strategy</th><th>Buy &amp; hold</th>" in page
    m, b = small.metrics, small.benchmark_metrics
    assert f"{m['final_equity']:,.2f}" in page and f"{b['final_equity']:,.2f}" in page
    assert f"{m['max_drawdown']:.2%}" in page and f"{m['sharpe']:.2f}" in page
    assert f"{int(m['n_trades']):,d}" in page
    for label in ("Total return", "Annualised return", "Max drawdown", "Win rate", "Fees paid", "Funding paid",
                  "Exposure", "Final equity"):
        assert label in page


def test_100k_bars_make_a_small_page_and_metrics_are_untouched():
    result = synthetic_result(100_000, seed=1)
    before = copy.deepcopy((result.metrics, result.benchmark_metrics))
    page = render_report(result, title="100k synthetic bars")
    assert len(page.encode("utf-8")) < 5_000_000  # inlined plotly.js alone is ~4.8 MB
    assert (result.metrics, result.benchmark_metrics) == before
    assert len(result.equity) == 100_000


def test_downsampling_keeps_the_worst_drawdown_and_the_final_value():
    result = synthetic_result(50_000, seed=2)
    times = pd.DatetimeIndex(result.equity.index)
    bucket, step = _grid(times, 1_000)
    assert step > 1 and bucket[-1] + 2 <= 1_000
    equity = result.equity.to_numpy()
    dd = _drawdown(equity, result.initial_equity)
    plotted_dd = _resample(bucket, dd, 0.0, worst=True)
    plotted_eq = _resample(bucket, equity, result.initial_equity, worst=False)
    assert plotted_dd.min() == pytest.approx(dd.min(), rel=1e-6)
    assert plotted_eq[-1] == pytest.approx(equity[-1], rel=1e-6)
    assert plotted_eq[0] == result.initial_equity


def test_gaps_hold_the_last_value_on_the_plot_grid():
    times = pd.DatetimeIndex([T0, T0 + pd.Timedelta(minutes=1), T0 + pd.Timedelta(minutes=10)])
    bucket, step = _grid(times, 100)
    assert step == 1
    plotted = _resample(bucket, np.array([1.0, 2.0, 3.0]), 0.0, worst=False)
    assert plotted.tolist() == [0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0]


def test_write_report_creates_parents_and_writes_utf8(tmp_path, small):
    page = render_report(small, title="BTC ₿ perp", subtitle="synthetic")
    path = tmp_path / "deep" / "dir" / "report.html"
    write_report(page, path)
    assert path.read_text(encoding="utf-8") == page
    assert "BTC ₿ perp" in path.read_bytes().decode("utf-8")
