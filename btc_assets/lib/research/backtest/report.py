"""One self-contained, offline HTML page for a backtest (plotly.js inlined once, no CDN).

Sections: the headline (after costs, beside buy-and-hold and random entry; annualised only over a year, from daily
returns), the costs waterfall, metrics, regimes, what was skipped, per-week and per-model-version breakdowns and
the assumptions in force; then the charts: equity against buy-and-hold and random entry, drawdown, monthly returns
(only the months covered, with trade counts), hour x weekday win rate (with counts), rolling Sharpe, trades marked
on price, fees and funding over time; last, the sortable trade list with each exit's reason.

Lines are resampled to at most ``max_points`` time buckets (last value per bucket; the drawdown keeps each bucket's
worst) because plotly.js is ~4.8 MB already and a screen has fewer pixels than a year has minutes; the tables use
every bar. A tiny script records script errors and how many charts drew into ``#render-status`` so a headless
browser test can tell a page that renders from one that does not.
"""

from __future__ import annotations

import html as html_lib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from btc_assets.lib.research.backtest.metrics import DAYS_PER_YEAR, Evaluation, daily_returns
from btc_assets.lib.research.backtest.simulation import BacktestResult

CHARTS = 7
PERCENT = {"total_return", "win_rate", "annualised_return", "max_drawdown", "win_rate", "exposure", "probabilistic_sharpe",
           "deflated_sharpe", "share_of_time", "strategy_return", "buy_and_hold_return", "random_entry_return"}
STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}h1{margin-bottom:.2rem}.sub{color:#555}"
         "table{border-collapse:collapse;margin:.6rem 1.2rem .6rem 0;display:inline-table;vertical-align:top}"
         "th,td{padding:.2rem .7rem;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child"
         "{text-align:left}.note{color:#666;font-size:.85rem;max-width:70rem}")
WATCH = ("<script>window.__reportErrors=[];window.addEventListener('error',function(e){"
         "window.__reportErrors.push(String(e.message))});</script>")
STATUS = ("<pre id='render-status'></pre><script>window.addEventListener('load',function(){setTimeout(function(){"
          "var s=document.getElementById('render-status');s.setAttribute('data-plots',"
          "document.querySelectorAll('.js-plotly-plot .main-svg').length?document.querySelectorAll('.js-plotly-plot')"
          ".length:0);s.setAttribute('data-errors',window.__reportErrors.length);"
          "s.textContent=window.__reportErrors.join('\\n')},500)});</script>")


def _fmt(key: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if key in PERCENT:
        return f"{v:.2%}"
    if float(v).is_integer():  # counts (trades, streaks, skipped entries) and round money
        return f"{int(v):,d}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3f}"


def _table(columns: dict[str, dict], title: str) -> str:
    keys = list(next(iter(columns.values())))
    head = "".join(f"<th>{html_lib.escape(c)}</th>" for c in columns)
    rows = "".join(f"<tr><td>{html_lib.escape(k)}</td>" + "".join(f"<td>{_fmt(k, col.get(k))}</td>"
                   for col in columns.values()) + "</tr>" for k in keys)
    return f"<table><caption>{html_lib.escape(title)}</caption><tr><th></th>{head}</tr>{rows}</table>"


def _bucket(s: pd.Series, max_points: int, how: str = "last") -> pd.Series:
    span = (s.index[-1] - s.index[0]).total_seconds() / 60 + 1
    step = max(1, math.ceil(span / max_points))
    return s if step == 1 else getattr(s.resample(f"{step}min", label="right"), how)().dropna()


def _line(fig: go.Figure, s: pd.Series, name: str, color: str, **kw) -> None:
    fig.add_trace(go.Scattergl(x=s.index, y=s.to_numpy(np.float32), name=name, mode="lines",
                               line=dict(color=color, width=1.2), **kw))


def _figures(res: BacktestResult, ev: Evaluation, max_points: int) -> list[tuple[str, go.Figure]]:
    init, eq = res.initial_equity, res.equity
    f_eq = go.Figure()
    for s, name, color in ((eq, "Strategy", "#1f77b4"), (ev.buy_and_hold_equity, "Buy & hold", "#888"),
                           (ev.random_equity, "Random entry", "#d62728")):
        _line(f_eq, _bucket(s, max_points), name, color)
    dd = eq / np.maximum(eq.cummax(), init) - 1.0
    f_dd = go.Figure()
    _line(f_dd, _bucket(dd, max_points, "min"), "Strategy drawdown", "#1f77b4", fill="tozeroy")
    f_dd.update_yaxes(tickformat=".1%")
    monthly = eq.resample("MS").last()
    m_ret = monthly / np.concatenate([[init], monthly.to_numpy()[:-1]]) - 1.0
    tr = res.trades
    et = pd.DatetimeIndex(tr["entry_time"])
    m_n = pd.Series(1, index=et).resample("MS").sum().reindex(m_ret.index, fill_value=0) if len(tr) else \
        pd.Series(0, index=m_ret.index)
    # Only the months the backtest covers (a 2-month test is a 2-cell heatmap), each with its trade count.
    labels = [f"{t:%Y %b}" for t in m_ret.index]
    f_month = go.Figure(go.Heatmap(z=[m_ret.to_numpy()], x=labels, y=["return"], colorscale="RdYlGn", zmid=0,
                                   text=[[f"{r:+.1%}<br>{n:,d} trades" for r, n in zip(m_ret, m_n)]],
                                   texttemplate="%{text}", hovertemplate="%{x}: %{z:.2%}<extra></extra>"))
    days_ = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    wins = pd.DataFrame({"d": et.dayofweek, "h": et.hour, "w": (tr["net_pnl"] > 0).to_numpy(float)})
    wr = wins.pivot_table(index="d", columns="h", values="w", aggfunc="mean").reindex(index=range(7), columns=range(24))
    wn = wins.pivot_table(index="d", columns="h", values="w", aggfunc="count").reindex(
        index=range(7), columns=range(24)).fillna(0).astype(int)
    cell = np.where(wn.to_numpy() > 0, np.char.add(np.char.add(np.char.mod("%.0f%%", np.nan_to_num(wr.to_numpy()) * 100),
                                                              "<br>n="), wn.to_numpy().astype(str)), "")
    f_hw = go.Figure(go.Heatmap(z=wr.to_numpy(), x=list(range(24)), y=days_, colorscale="RdYlGn", zmin=0, zmax=1,
                                text=cell, texttemplate="%{text}", customdata=wn.to_numpy(),
                                hovertemplate="%{y} %{x}h: %{z:.0%} of %{customdata} trades<extra></extra>"))
    days = pd.DatetimeIndex(eq.index).floor("D").unique()
    dr = pd.Series(daily_returns(eq.to_numpy(), init, eq.index), index=days)
    window = int(min(30, max(3, len(dr) // 3)))
    roll = dr.rolling(window).mean() / dr.rolling(window).std() * math.sqrt(DAYS_PER_YEAR)
    f_rs = go.Figure()
    _line(f_rs, roll.dropna(), f"Rolling Sharpe ({window} days)", "#9467bd")
    f_px = go.Figure()
    _line(f_px, _bucket(res.close, max_points), "BTCUSDT close", "#444")
    shown = tr.tail(3_000)  # markers beyond a few thousand only hide the price
    for side, color, symbol in (("long", "#2ca02c", "triangle-up"), ("short", "#d62728", "triangle-down")):
        t = shown[shown["side"] == side]
        f_px.add_trace(go.Scattergl(x=t["entry_time"], y=t["entry_price"], mode="markers", name=f"{side} entry",
                                    marker=dict(color=color, symbol=symbol, size=7)))
    f_px.add_trace(go.Scattergl(x=shown["exit_time"], y=shown["exit_price"], mode="markers", name="exit",
                                marker=dict(color="#000", symbol="x", size=5), text=shown["exit_reason"]))
    f_cost = go.Figure()
    _line(f_cost, _bucket(res.fees.cumsum(), max_points), "Fees (cumulative)", "#ff7f0e")
    _line(f_cost, _bucket(res.funding.cumsum(), max_points), "Funding paid (cumulative, neg = received)", "#17becf")
    return [("Equity: strategy, buy & hold, random entry", f_eq), ("Drawdown", f_dd),
            ("Monthly returns", f_month), ("Win rate by entry hour (UTC) and weekday", f_hw),
            ("Rolling Sharpe (daily returns, annualised with 365 days)", f_rs),
            (f"Trades on price (last {len(shown):,} of {len(tr):,})", f_px), ("Fees and funding over time", f_cost)]


def headline(ev: Evaluation, slippage_impact: float | None = None) -> tuple[str, dict[str, float]]:
    """One sentence a trader reads first (the after-cost result beside buy-and-hold and random entry, annualised
    only over a year) and the costs waterfall: gross P&L -> fees -> funding -> net (slippage is inside the fill
    prices, so it is part of the gross; `slippage_impact`, when given, is what it cost: the same signals re-run
    without slippage)."""
    m, b, r = ev.strategy, ev.buy_and_hold, ev.random_entry
    days = m.get("period_days", float("nan"))
    period = (f"{days:.0f} days: too short to annualise" if not days >= DAYS_PER_YEAR
              else f"{days / DAYS_PER_YEAR:.1f} years, annualised {m['annualised_return']:+.2%}")
    net = m["final_equity"] - (m["final_equity"] / (1 + m["total_return"]))
    psr = m.get("probabilistic_sharpe", float("nan"))
    sharpe = (f"Sharpe {m['sharpe']:+.2f} from daily returns (probabilistic Sharpe vs 0: {psr:.0%})"
              if math.isfinite(psr) else
              f"no Sharpe: {int(m.get('days_of_returns', 0))} daily return(s) without spread are too few")
    text = (f"After costs the strategy returned {m['total_return']:+.2%} ({period}) over {int(m['n_trades']):,} "
            f"trades, against {b['total_return']:+.2%} for buy-and-hold and {r['total_return']:+.2%} for random "
            f"entry with as many trades; {sharpe}.")
    waterfall = {"gross P&L (after slippage)": m["realised_pnl"], "fees": -m["fees_paid"],
                 "funding": -m["funding_paid"], "net P&L": net}
    if slippage_impact is not None:
        waterfall = {"gross P&L before slippage": m["realised_pnl"] + slippage_impact,
                     "slippage": -slippage_impact, **waterfall}
    text += (f" Gross P&L {m['realised_pnl']:+,.0f} USDT, fees {-m['fees_paid']:+,.0f}, funding "
             f"{-m['funding_paid']:+,.0f}: net {net:+,.0f} USDT.")
    return text, waterfall


TRADE_LIST_MAX = 5_000
SORT = ("<script>document.querySelectorAll('table.sortable th').forEach(function(th,i){th.style.cursor='pointer';"
        "th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0],r=Array.from(b.rows),"
        "d=th.dataset.dir==='a'?-1:1;th.dataset.dir=d>0?'a':'d';r.sort(function(x,y){var p=x.cells[i].dataset.v,"
        "q=y.cells[i].dataset.v;var m=parseFloat(p),n=parseFloat(q);return (isNaN(m)||isNaN(n)?p.localeCompare(q)"
        ":m-n)*d});r.forEach(function(e){b.appendChild(e)})})})</script>")


def trade_versions(trades: pd.DataFrame, versions: pd.Series | None) -> pd.Series:
    """The model version whose signal opened each trade: the last signal bar at or before the fill."""
    if versions is None or versions.empty or trades.empty:
        return pd.Series(["n/a"] * len(trades), index=trades.index, dtype=object)
    v = versions.sort_index()
    pos = np.searchsorted(pd.DatetimeIndex(v.index).asi8, pd.DatetimeIndex(trades["entry_time"]).asi8, side="right") - 1
    return pd.Series(np.where(pos >= 0, v.to_numpy()[np.clip(pos, 0, None)], "n/a"), index=trades.index, dtype=object)


def breakdown(trades: pd.DataFrame, key: pd.Series) -> pd.DataFrame:
    """Trades, win rate and the gross -> fees -> funding -> net P&L of each group (week, model version)."""
    g = trades.assign(_k=key.to_numpy(), _w=(trades["net_pnl"] > 0).astype(float)).groupby("_k", observed=True)
    out = pd.DataFrame({"trades": g.size().astype(float), "win_rate": g["_w"].mean(), "gross_pnl": g["gross_pnl"].sum(),
                        "fees": -g["fees"].sum(), "funding": -g["funding"].sum(), "net_pnl": g["net_pnl"].sum()})
    out.index.name = None
    return out


def _trade_list(trades: pd.DataFrame, versions: pd.Series) -> str:
    shown = trades.tail(TRADE_LIST_MAX)
    cols = (("entry (UTC)", "entry_time"), ("exit (UTC)", "exit_time"), ("side", "side"), ("model", None),
            ("entry price", "entry_price"), ("exit price", "exit_price"), ("qty BTC", "qty"),
            ("gross USDT", "gross_pnl"), ("fees", "fees"), ("funding", "funding"), ("net USDT", "net_pnl"),
            ("R", "r_multiple"), ("exit reason", "exit_reason"))
    head = "".join(f"<th>{c}</th>" for c, _ in cols)
    body = []
    for i, t in shown.iterrows():
        cells = []
        for _, k in cols:
            v = versions.loc[i] if k is None else t[k]
            if isinstance(v, pd.Timestamp):
                txt, key = f"{v:%Y-%m-%d %H:%M}", str(v.value)
            elif isinstance(v, (float, np.floating)):
                txt = "n/a" if not np.isfinite(v) else (f"{v:.4f}" if k == "qty" else f"{v:,.2f}")
                key = repr(float(v)) if np.isfinite(v) else ""
            else:
                txt = key = str(v)
            cells.append(f"<td data-v='{html_lib.escape(key)}'>{html_lib.escape(txt)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = (f"Trade list ({len(shown):,} of {len(trades):,}, the last ones; click a header to sort)"
           if len(shown) < len(trades) else f"Trade list ({len(trades):,} trades; click a header to sort)")
    if trades.empty:
        return "<p class='note'>Trade list: no trade was taken.</p>"
    return (f"<table class='sortable' id='trade-list'><caption>{cap}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _frame_table(df: pd.DataFrame, title: str) -> str:
    if df.empty:
        return f"<p class='note'>{html_lib.escape(title)}: no trade.</p>"
    return (f"<table><caption>{html_lib.escape(title)}</caption><tr><th></th>"
        + "".join(f"<th>{html_lib.escape(str(c))}</th>" for c in df.columns) + "</tr>"
        + "".join(f"<tr><td>{html_lib.escape(str(k))}</td>" + "".join(f"<td>{_fmt(c, row[c])}</td>" for c in df.columns)
                  + "</tr>" for k, row in df.iterrows()) + "</table>")


def render_report(res: BacktestResult, ev: Evaluation, *, title: str, subtitle: str = "",
                  max_points: int = 3_000, slippage_impact: float | None = None,
                  versions: pd.Series | None = None) -> str:
    """The whole page as a string; works offline. ``versions`` (model version per signal bar) splits the trades
    by the model that opened them."""
    if len(res.equity) < 2:
        raise ValueError("the backtest has fewer than 2 bars; there is nothing to report")
    parts = []
    for i, (name, fig) in enumerate(_figures(res, ev, max_points)):
        fig.update_layout(title=name, template="simple_white", height=420, margin=dict(l=60, r=20, t=50, b=40))
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    text, waterfall = headline(ev, slippage_impact)
    tables = (f"<p class='headline'><b>{html_lib.escape(text)}</b></p>"
              + _table({"USDT": waterfall}, "Costs waterfall: gross to net")
              + _table({"Strategy": ev.strategy, "Buy & hold": ev.buy_and_hold, "Random entry": ev.random_entry},
                     "Metrics (after costs; Sharpe and Sortino from daily returns)")
              + _table({k: row.to_dict() for k, row in ev.by_regime.iterrows()}, "By regime (trailing 24 h return)")
              + _table({"count": {k: float(v) for k, v in res.skipped.items()}}, "Entries not taken"))
    tv = trade_versions(res.trades, versions)
    weeks = pd.DatetimeIndex(res.trades["entry_time"]).tz_localize(None).to_period("W-SUN").start_time
    tables += (_frame_table(breakdown(res.trades, pd.Series([f"{w:%Y-%m-%d}" for w in weeks], index=res.trades.index)),
                            "By week (Monday of the entry's week; P&L in USDT)")
               + _frame_table(breakdown(res.trades, tv), "By model version (the one whose signal opened the trade)"))
    note = (f"{len(res.equity):,} bars {res.equity.index[0]} .. {res.equity.index[-1]} UTC. Fills on the bar after the "
            f"signal; taker {res.costs.taker_fee:.3%}, maker {res.costs.maker_fee:.3%}, slippage "
            f"{res.costs.slippage_bps} bps + {res.costs.slippage_vol_mult} x 1m volatility; entries: "
            f"{res.costs.order_type}. Exchange rules {res.rules.version}. Liquidation and funding priced at: "
            f"{'the mark price' if res.mark_source == 'mark' else 'the LAST traded price (no mark-price series given)'}"
            f" ({res.mark_source}). Spread filter input: {res.spread_source}. Risk: {res.risk}.")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html_lib.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{WATCH}<h1>{html_lib.escape(title)}</h1><p class='sub'>"
            f"{html_lib.escape(subtitle)}</p>{tables}<p class='note'>{html_lib.escape(note)}</p>"
            + "".join(parts) + _trade_list(res.trades, tv) + SORT + STATUS + "</body></html>")


def write_report(html: str, path: Path) -> Path:
    """Write the page as UTF-8, creating parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
