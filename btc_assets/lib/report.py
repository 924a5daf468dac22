"""Render a BacktestResult as one self-contained, offline HTML page (plotly.js inlined, no CDN).

The page has a header (title, subtitle), a metrics table (strategy vs buy-and-hold) and one figure: equity of
both on top, drawdown of both below, on a shared UTC time axis.

Plotted lines are resampled onto a regular time grid of at most ``max_points`` points (default 4,000): the
inlined plotly.js alone is ~4.8 MB, and a screen cannot show more points than it has pixels anyway. Each grid
point sits at the end of its time bucket and shows the last equity marked in the bucket (the value known at
that instant) and the worst drawdown in the bucket, so troughs are never smoothed away. Because the grid is
regular, traces are sent as ``x0``/``dx`` plus float32 y values instead of timestamp arrays. The metrics table
always comes from the full-resolution result; downsampling only touches the picture.
"""

from __future__ import annotations

import html as html_lib
import math
import pathlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from btc_assets.lib.backtest import BacktestResult

STRATEGY_NAME = "Strategy"
BENCHMARK_NAME = "Buy & hold"
PERCENT_KEYS = {"total_return", "annualised_return", "max_drawdown", "win_rate", "exposure"}
MONEY_KEYS = {"fees_paid", "funding_paid", "final_equity", "realised_pnl"}
METRIC_LABELS = {
    "total_return": "Total return", "annualised_return": "Annualised return (365 d)",
    "sharpe": "Sharpe (1m, annualised)",
    "max_drawdown": "Max drawdown", "n_trades": "Round trips", "win_rate": "Win rate", "fees_paid": "Fees paid",
    "funding_paid": "Funding paid (neg = received)", "exposure": "Exposure (bars in market)",
    "final_equity": "Final equity", "realised_pnl": "Trading PnL before costs",
}
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
h1 {{ margin-bottom: 0.2rem; }} .sub {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: 0.25rem 0.8rem; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.note {{ color: #777; font-size: 0.85rem; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="sub">{subtitle}</p>
{table}
<p class="note">{note}</p>
{figure}
</body></html>
"""


def _format(key: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key in PERCENT_KEYS:
        return f"{value:.2%}"
    if key in MONEY_KEYS:
        return f"{value:,.2f}"
    if key == "n_trades":
        return f"{int(value):,d}"
    return f"{value:.2f}"


def _metrics_table(strategy: dict[str, float], benchmark: dict[str, float]) -> str:
    keys = list(strategy) + [k for k in benchmark if k not in strategy]
    rows = [
        f"<tr><td>{html_lib.escape(METRIC_LABELS.get(k, k))}</td>"
        f"<td>{_format(k, strategy.get(k, math.nan))}</td><td>{_format(k, benchmark.get(k, math.nan))}</td></tr>"
        for k in keys
    ]
    head = f"<tr><th>Metric</th><th>{STRATEGY_NAME}</th><th>{html_lib.escape(BENCHMARK_NAME)}</th></tr>"
    return '<table class="metrics">' + head + "".join(rows) + "</table>"


def _drawdown(equity: np.ndarray, initial: float) -> np.ndarray:
    path = np.concatenate([[initial], equity])
    return (path / np.maximum.accumulate(path) - 1.0)[1:]


def _grid(times: pd.DatetimeIndex, max_points: int) -> tuple[np.ndarray, int]:
    """Bucket of each bar and the bucket width (whole minutes) so that the grid has at most max_points points."""
    minute_ns = pd.Timedelta(minutes=1).value
    span_minutes = (times.asi8[-1] - times.asi8[0]) // minute_ns + 1
    step_minutes = max(1, math.ceil(span_minutes / max(max_points - 1, 1)))
    return (times.asi8 - times.asi8[0]) // (step_minutes * minute_ns), step_minutes


def _resample(bucket: np.ndarray, values: np.ndarray, first: float, worst: bool) -> np.ndarray:
    """Grid values: ``first`` at the grid start, then per bucket the last (or min) value; empty buckets hold."""
    n_buckets = int(bucket[-1]) + 1
    last_bar = np.searchsorted(bucket, np.arange(n_buckets), side="right") - 1  # always >= 0: bucket[0] == 0
    out = values[last_bar].astype(float)
    if worst:
        starts = np.flatnonzero(np.diff(bucket, prepend=-1) != 0)
        out[bucket[starts]] = np.minimum.reduceat(values, starts)
    return np.concatenate([[first], out]).astype(np.float32)


def _figure(result: BacktestResult, max_points: int) -> tuple[go.Figure, int]:
    times = pd.DatetimeIndex(result.equity.index)
    bucket, step_minutes = _grid(times, max_points)
    x0 = times[0].tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    dx = step_minutes * 60_000  # milliseconds, as plotly date axes expect
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.04,
                        subplot_titles=("Equity", "Drawdown"))
    initial = result.initial_equity
    for name, series, color in ((STRATEGY_NAME, result.equity, "#1f77b4"), (BENCHMARK_NAME, result.benchmark, "#888")):
        eq = series.to_numpy(float)
        common = dict(x0=x0, dx=dx, mode="lines", line=dict(color=color, width=1.2), legendgroup=name)
        fig.add_trace(go.Scatter(y=_resample(bucket, eq, initial, worst=False), name=f"{name} equity",
                                 hovertemplate="%{x}<br>%{y:,.2f}<extra>" + name + "</extra>", **common), row=1, col=1)
        fig.add_trace(go.Scatter(y=_resample(bucket, _drawdown(eq, initial), 0.0, worst=True),
                                 name=f"{name} drawdown", hovertemplate="%{x}<br>%{y:.2%}<extra>" + name + "</extra>",
                                 **common), row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    fig.update_layout(template="simple_white", height=750, hovermode="x unified", margin=dict(l=60, r=20, t=40, b=40))
    return fig, step_minutes


def render_report(result: BacktestResult, *, title: str, subtitle: str = "", max_points: int = 4_000) -> str:
    """One self-contained HTML page for ``result``; works offline (plotly.js is inlined once)."""
    if len(result.equity) == 0:
        raise ValueError("result.equity is empty; there is nothing to report (was simulate given any bars?)")
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    fig, step_minutes = _figure(result, max_points)
    figure_html = fig.to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False})
    note = (f"{len(result.equity):,d} bars from {result.equity.index[0]} to {result.equity.index[-1]} (UTC). "
            f"Lines plotted at one point per {step_minutes} min "
            f"(last equity / worst drawdown in each bucket); metrics use every bar. "
            f"Buy & hold enters long 1x at the first possible fill and pays the same fees, slippage and funding.")
    return PAGE.format(title=html_lib.escape(title), subtitle=html_lib.escape(subtitle),
                       table=_metrics_table(result.metrics, result.benchmark_metrics),
                       note=html_lib.escape(note), figure=figure_html)


def write_report(html: str, path: pathlib.Path) -> None:
    """Write the page as UTF-8, creating parent directories."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
