"""The live account's dashboard: one offline plotly page in the backtest report's look, from the journal alone.

Equity curve (marked at each decided bar), daily P&L, drawdown, rolling Sharpe from daily returns (30 days, or a
third of the days there are; annualised with 365 days and labelled as such), win rate by hour and weekday of the
closing fills (with counts), then the open position and open orders, the breaker and kill-switch state, and the
recent orders with their realised P&L, and every book of the journal (each strategy and venue, with unrealised P&L at
the latest close). Everything is after fees; a day without fills is a day of 0 P&L, not a gap.
"""

from __future__ import annotations

import html as html_lib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from btc_assets.lib.research.backtest.metrics import DAYS_PER_YEAR, sharpe_stats
from btc_assets.lib.research.backtest.report import STATUS, STYLE, WATCH
from btc_assets.lib.trading import metrics as trading_metrics

CHARTS = 5
RECENT_ORDERS = 30


@dataclass
class Dashboard:
    html: str
    figures: dict[str, float]  # headline numbers (also the asset's metadata)


def state(conn, initial_equity: float) -> dict:
    """What the page shows, read from the journal (trading.decisions, trading.order_events, the kill switch)."""
    from btc_assets.lib.trading import kill_switch
    from btc_assets.lib.trading.journal import Journal, own_book

    eq = trading_metrics.equity_curve(conn, initial_equity)
    fills = conn.execute("SELECT client_order_id, bar_time, event_time, side, qty, price, fee FROM "
                         f"trading.order_events WHERE event = 'FILLED' AND {own_book()} ORDER BY event_time, seq").df()
    realised = trading_metrics.realised_pnl(fills) if len(fills) else pd.DataFrame(
        {"gross_pnl": [], "net_pnl": [], "position_after": []})
    fills = pd.concat([fills, realised], axis=1)
    latest = Journal(conn).orders()  # every order's latest state
    orders = latest.rename(columns={"event": "state"})[["client_order_id", "state", "side", "qty", "price", "bar_time"]]
    open_orders = orders[orders["state"] == "NEW"].drop(columns="state").reset_index(drop=True)
    orders = orders.iloc[::-1].head(RECENT_ORDERS).reset_index(drop=True)  # newest first
    last = conn.execute("SELECT bar_time, breaker_paused, model_version, price FROM trading.decisions "
                        "ORDER BY bar_time DESC LIMIT 1").fetchall()
    mark = trading_metrics.last_mark(conn)
    return {"equity": eq, "fills": fills, "orders": orders, "open_orders": open_orders,
            "last_decision": last[0] if last else None, "kill_switch": kill_switch.latched(conn),
            "books": trading_metrics.books(conn, mark), "mark": mark}


def _books_table(books: pd.DataFrame, mark) -> str:
    """Every strategy's and venue's book in the journal (the page's account above is this strategy's own)."""
    if books is None or books.empty:
        return _table(pd.DataFrame(), "Every book in the journal", "no fill yet")
    def money(v):
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:,.2f}"
    shown = pd.DataFrame({
        "strategy": books["strategy"], "venue": books["venue"], "fills": books["fills"].astype(int),
        "fees USDT": books["fees"].map(money), "realised P&L USDT (net)": books["net_pnl"].map(money),
        "position BTC": books["position"].map(lambda v: "–" if np.isnan(v) else f"{v:+.4f}"),
        "unrealised P&L USDT": books["unrealised_pnl"].map(money), "total P&L USDT": books["total_pnl"].map(money)})
    marked = f"open positions marked at {mark[2]}" if mark is not None else "no bar to mark open positions at"
    return _table(shown, f"Every book in the journal, apart and together ({marked})", "no fill yet")


def _table(df: pd.DataFrame, title: str, empty: str) -> str:
    if df.empty:
        return f"<p class='note'><b>{html_lib.escape(title)}</b>: {html_lib.escape(empty)}</p>"
    def cell(v):
        if isinstance(v, pd.Timestamp):
            return f"{v:%Y-%m-%d %H:%M}"
        if isinstance(v, (float, np.floating)):
            return "market" if np.isnan(v) else f"{v:,.2f}"
        return str(v)
    head = "".join(f"<th>{html_lib.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html_lib.escape(cell(v))}</td>" for v in r) + "</tr>"
                   for r in df.itertuples(index=False))
    return f"<table><caption>{html_lib.escape(title)}</caption><tr>{head}</tr>{rows}</table>"


def render(st: dict, initial_equity: float, title: str) -> Dashboard:
    eq = st["equity"]
    if eq.empty:
        raise ValueError("the journal has no decided bar yet: run the live trading sensor (or the demo) first")
    s = eq.set_index("bar_time")["equity_usdt"]
    days_eq = s.resample("D").last().ffill()  # equity at each UTC day's last decided bar
    daily = days_eq.diff().fillna(days_eq.iloc[0] - initial_equity)
    r = (days_eq / np.concatenate([[initial_equity], days_eq.to_numpy()[:-1]]) - 1.0).to_numpy()
    sharpe, psr, _ = sharpe_stats(r)
    peak = np.maximum.accumulate(np.maximum(s.to_numpy(), initial_equity))
    dd = pd.Series(s.to_numpy() / peak - 1.0, s.index)
    fills = st["fills"]
    closing = fills[fills["gross_pnl"] != 0] if len(fills) else fills
    figs = []
    f = go.Figure(go.Scattergl(x=s.index, y=s.to_numpy(), mode="lines", name="equity", line=dict(color="#1f77b4")))
    f.add_hline(y=initial_equity, line_dash="dot", line_color="#888")
    figs.append(("Equity (USDT, after fees, marked at each decided bar)", f))
    figs.append(("Daily P&L (USDT)", go.Figure(go.Bar(
        x=[f"{d:%Y-%m-%d}" for d in daily.index], y=daily.to_numpy(),
        marker_color=np.where(daily.to_numpy() >= 0, "#2ca02c", "#d62728")))))
    f = go.Figure(go.Scattergl(x=dd.index, y=dd.to_numpy(), mode="lines", fill="tozeroy", line=dict(color="#d62728")))
    f.update_yaxes(tickformat=".1%")
    figs.append(("Drawdown", f))
    window = int(min(30, max(3, len(r) // 3)))
    rets = pd.Series(r, days_eq.index)
    roll = (rets.rolling(window).mean() / rets.rolling(window).std() * math.sqrt(DAYS_PER_YEAR)).dropna()
    figs.append((f"Rolling Sharpe ({window} days of daily returns, annualised with 365 days"
                 + ("; not enough days yet" if roll.empty else "") + ")",
                 go.Figure(go.Scatter(x=roll.index, y=roll.to_numpy(), mode="lines", line=dict(color="#9467bd")))))
    t = pd.DatetimeIndex(pd.to_datetime(closing["bar_time"])) if len(closing) else pd.DatetimeIndex([])
    wins = pd.DataFrame({"d": t.dayofweek, "h": t.hour, "w": (closing["net_pnl"] > 0).to_numpy(float)})
    wr = wins.pivot_table(index="d", columns="h", values="w", aggfunc="mean").reindex(index=range(7), columns=range(24))
    wn = wins.pivot_table(index="d", columns="h", values="w", aggfunc="count").reindex(
        index=range(7), columns=range(24)).fillna(0).astype(int)
    text = [[f"{wr.iat[i, j]:.0%}<br>n={wn.iat[i, j]}" if wn.iat[i, j] else "" for j in range(24)] for i in range(7)]
    figs.append(("Win rate of closing fills by hour (UTC) and weekday",
                 go.Figure(go.Heatmap(z=wr.to_numpy(), x=list(range(24)), y=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
                                                                            "Sun"], colorscale="RdYlGn", zmin=0, zmax=1,
                                      text=text, texttemplate="%{text}"))))
    parts = []
    for i, (name, fig) in enumerate(figs):
        fig.update_layout(title=name, template="simple_white", height=380, margin=dict(l=60, r=20, t=50, b=40))
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    last = st["last_decision"]
    position = float(eq["position_btc"].iloc[-1])
    equity = float(s.iloc[-1])
    figures = {"equity_usdt": round(equity, 2), "pnl_usdt": round(equity - initial_equity, 2),
               "return": equity / initial_equity - 1.0, "max_drawdown": float(dd.min()), "days": float(len(r)),
               "sharpe_daily_annualised": sharpe, "probabilistic_sharpe": psr, "position_btc": position,
               "closing_fills": float(len(closing)),
               "win_rate": float((closing["net_pnl"] > 0).mean()) if len(closing) else float("nan"),
               "fees_usdt": float(fills["fee"].sum()) if len(fills) else 0.0,
               "open_orders": float(len(st["open_orders"]))}
    breaker = ("kill switch ENGAGED: " + st["kill_switch"]) if st["kill_switch"] else (
        "drawdown breaker PAUSED new entries at the last bar" if last is not None and last[1] else
        "running: no breaker tripped at the last bar")
    annual = (f"Sharpe {sharpe:+.2f} from {len(r)} daily returns (probabilistic Sharpe vs 0: {psr:.0%})"
              if len(r) >= 2 and np.isfinite(psr) else f"{len(r)} day(s): too few daily returns for a Sharpe")
    headline = (f"Equity {equity:,.2f} USDT ({equity / initial_equity - 1:+.2%} on {initial_equity:,.0f}) after "
                f"{figures['fees_usdt']:,.2f} USDT of fees; max drawdown {dd.min():.2%}; {annual}. Position "
                f"{position:+.3f} BTC; {breaker}. Last bar {last[0]:%Y-%m-%d %H:%M} UTC, model "
                f"{last[2] or 'none (nothing promoted)'}." if last is not None else "")
    recent = st["orders"].rename(columns={"bar_time": "bar (UTC)"})
    closed = closing.tail(RECENT_ORDERS)[["bar_time", "client_order_id", "side", "qty", "price", "fee", "net_pnl"]] \
        if len(closing) else closing
    tables = (_table(pd.DataFrame([{"position BTC": position, "open orders": len(st["open_orders"]),
                                    "state": breaker}]), "Now", "")
              + _table(st["open_orders"], "Open orders", "none")
              + _table(recent, f"Recent orders (last {RECENT_ORDERS})", "no order yet")
              + _table(closed, "Realised P&L of the last closing fills (USDT, net of fees)", "no position closed yet")
              + _books_table(st.get("books"), st.get("mark")))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html_lib.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{WATCH}<h1>{html_lib.escape(title)}</h1>"
            f"<p class='headline'><b>{html_lib.escape(headline)}</b></p>{tables}" + "".join(parts)
            + STATUS + "</body></html>")
    return Dashboard(page, figures)
