"""Trader metrics for Prometheus, computed from the journal and written as a text-format snapshot file.

Each trading run rewrites the snapshot after its orders (atomically), and `btc-assets metrics` serves it on
/metrics. Going through a file keeps the exporter away from the DuckDB warehouse, which allows only one writing
process: scraping can never block or be blocked by a trading run. Latency is measured from the moment the sensor
requested the run (the bar's close on the replay or live clock) to the decision and to the order's acknowledgement.
The rate-limit headroom of a live broker (RateLimiter.headroom()) is passed to `render` at the time of writing;
without it (paper trading) the gauge is absent rather than a reassuring 1.0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from btc_assets.lib.trading.journal import own_book
from prometheus_client import CollectorRegistry, Gauge, generate_latest


@dataclass
class TradingSnapshot:
    orders_by_state: dict[str, int]
    fills: int
    fees_usdt: float
    position_btc: float
    last_price: float
    pnl_usdt: float
    equity_usdt: float
    max_drawdown: float
    decisions: int
    latency_s: dict[str, float] = field(default_factory=dict)  # decision_p50, decision_p95, ack_p50, ack_p95


def snapshot(conn, initial_equity: float, until: pd.Timestamp | None = None) -> TradingSnapshot:
    """Account state of the paper book from the journal: cash flows of fills, marked at the last decision price.

    With `until`, only decisions and orders of bars before it count (the account as it stood then).
    """
    cut = [pd.Timestamp(until).tz_convert("UTC").tz_localize(None)] if until is not None else []
    bar = "WHERE bar_time < ?" if cut else ""
    # an order's state is its latest event other than ACK (one leg's outcome, not the order's: journal.orders)
    orders = conn.execute(
        "SELECT client_order_id, arg_max(event, event_time) AS state FROM trading.order_events "
        f"WHERE event <> 'ACK' AND {own_book()} {'AND bar_time < ?' if cut else ''} GROUP BY 1", cut).df()
    fills = conn.execute(f"SELECT bar_time, side, qty, price, fee FROM trading.order_events WHERE event = 'FILLED' "
                         f"AND {own_book()} {'AND bar_time < ?' if cut else ''} ORDER BY bar_time", cut).df()
    dec = conn.execute(f"SELECT bar_time, price, decided_at, requested_at FROM trading.decisions {bar} "
                       "ORDER BY bar_time", cut).df()
    acks = conn.execute(
        "SELECT e.event_time, d.requested_at FROM trading.order_events e JOIN trading.decisions d "
        f"ON e.bar_time = d.bar_time WHERE e.event = 'NEW' AND d.requested_at IS NOT NULL "
        f"AND {own_book('e.client_order_id')} "
        f"{'AND e.bar_time < ?' if cut else ''}", cut).df()
    sign = fills["side"].map({"BUY": 1.0, "SELL": -1.0}).to_numpy() if len(fills) else np.zeros(0)
    qty, px, fee = (fills[c].to_numpy(dtype=float) for c in ("qty", "price", "fee")) if len(fills) else (
        np.zeros(0), np.zeros(0), np.zeros(0))
    position = float((sign * qty).sum())
    cash = initial_equity - float((sign * qty * px).sum()) - float(fee.sum())
    last_price = float(dec["price"].iloc[-1]) if len(dec) else (float(px[-1]) if len(px) else 0.0)
    equity = cash + position * last_price
    return TradingSnapshot(
        orders_by_state=orders["state"].value_counts().to_dict() if len(orders) else {},
        fills=len(fills), fees_usdt=float(fee.sum()), position_btc=position, last_price=last_price,
        pnl_usdt=equity - initial_equity, equity_usdt=equity,
        max_drawdown=_max_drawdown(dec, fills, sign, initial_equity), decisions=len(dec),
        latency_s={**_quantiles("decision", dec["decided_at"] - dec["requested_at"]),
                              **(_quantiles("ack", acks["event_time"] - acks["requested_at"]) if len(acks) else {})},
    )


def _path(dec: pd.DataFrame, fills: pd.DataFrame, sign: np.ndarray, initial: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and equity marked at each decision's price (fills at bar t+1 count from bar t+1)."""
    times = pd.to_datetime(dec["bar_time"]).to_numpy()
    fill_times = (pd.to_datetime(fills["bar_time"]) + pd.Timedelta(minutes=1)).to_numpy() if len(fills) else times[:0]
    idx = np.searchsorted(times, fill_times, side="left")  # the first decision bar at or after each fill
    d_pos, d_cash = np.zeros(len(times) + 1), np.zeros(len(times) + 1)
    if len(fills):
        np.add.at(d_pos, idx, sign * fills["qty"].to_numpy(float))
        np.add.at(d_cash, idx, -sign * fills["qty"].to_numpy(float) * fills["price"].to_numpy(float)
                  - fills["fee"].to_numpy(float))
    pos, cash = np.cumsum(d_pos)[:-1], initial + np.cumsum(d_cash)[:-1]
    return pos, cash + pos * dec["price"].to_numpy(float)


def _max_drawdown(dec: pd.DataFrame, fills: pd.DataFrame, sign: np.ndarray, initial: float) -> float:
    """Worst peak-to-trough of equity marked at each decision's price."""
    if dec.empty:
        return 0.0
    equity = _path(dec, fills, sign, initial)[1]
    peak = np.maximum.accumulate(np.maximum(equity, initial))
    return float((equity / peak - 1.0).min())


def equity_curve(conn, initial_equity: float) -> pd.DataFrame:
    """The paper account's equity at each decided bar (bar_time, position_btc, equity_usdt), from the journal."""
    fills = conn.execute("SELECT bar_time, side, qty, price, fee FROM trading.order_events WHERE event = 'FILLED' "
                         f"AND {own_book()} ORDER BY bar_time").df()
    dec = conn.execute("SELECT bar_time, price FROM trading.decisions ORDER BY bar_time").df()
    if dec.empty:
        return pd.DataFrame({"bar_time": pd.DatetimeIndex([], tz="UTC"), "equity_usdt": [], "position_btc": []})
    sign = fills["side"].map({"BUY": 1.0, "SELL": -1.0}).to_numpy() if len(fills) else np.zeros(0)
    pos, equity = _path(dec, fills, sign, initial_equity)
    return pd.DataFrame({"bar_time": pd.to_datetime(dec["bar_time"]).dt.tz_localize("UTC"), "position_btc": pos,
                         "equity_usdt": equity})


def realised_pnl(fills: pd.DataFrame) -> pd.DataFrame:
    """Each fill's realised P&L at average cost: `gross_pnl` on the part that reduces the open position (0 for a
    fill that only adds to it), `net_pnl` after the fill's fee, the position after it and its average cost (NaN when
    flat). ``fills`` in time order (side BUY/SELL, qty, price, fee)."""
    pos, avg = 0.0, 0.0
    gross, after, cost = np.zeros(len(fills)), np.zeros(len(fills)), np.full(len(fills), np.nan)
    for i, (side, qty, price) in enumerate(zip(fills["side"], fills["qty"].astype(float),
                                              fills["price"].astype(float))):
        q = qty if side == "BUY" else -qty
        if pos and np.sign(q) != np.sign(pos):
            closed = min(abs(q), abs(pos))
            gross[i] = closed * (price - avg) * np.sign(pos)
            rest = q + pos
            if abs(q) > abs(pos):  # reversed: the remainder opens at this price
                avg = price
            pos = rest if abs(rest) > 1e-12 else 0.0
        else:
            avg = (avg * abs(pos) + price * abs(q)) / (abs(pos) + abs(q))
            pos += q
        after[i] = pos
        cost[i] = avg if pos else np.nan
    return pd.DataFrame({"gross_pnl": gross, "net_pnl": gross - fills["fee"].to_numpy(float), "position_after": after,
                         "avg_cost_after": cost}, index=fills.index)


def _quantiles(name: str, delta: pd.Series) -> dict[str, float]:
    secs = pd.to_timedelta(delta).dt.total_seconds().dropna()
    if secs.empty:
        return {}
    return {f"{name}_p50": float(secs.quantile(0.5)), f"{name}_p95": float(secs.quantile(0.95))}


def render(s: TradingSnapshot, strategy: str, rate_limit_headroom: Mapping[str, float] | None = None) -> bytes:
    """Prometheus text exposition of a snapshot (labelled by strategy), with the broker's rate-limit headroom
    (`RateLimiter.headroom()`: limit name -> 1 - used/limit) when there is one."""
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, value: float, **labels: str) -> None:
        g = gauges.get(name) or Gauge(name, doc, ["strategy", *labels], registry=reg)
        gauges[name] = g
        g.labels(strategy=strategy, **labels).set(value)

    gauges: dict[str, Gauge] = {}
    for state, n in sorted(s.orders_by_state.items()):
        gauge("btc_orders", "Orders by their latest journal state", n, state=state)
    gauge("btc_fills_total", "Fills journaled", s.fills)
    gauge("btc_fees_usdt_total", "Fees paid on fills", s.fees_usdt)
    gauge("btc_position_btc", "Net filled position", s.position_btc)
    gauge("btc_last_price_usdt", "Price of the last decided bar", s.last_price)
    gauge("btc_pnl_usdt", "Equity minus initial equity (after fees)", s.pnl_usdt)
    gauge("btc_equity_usdt", "Cash plus position marked at the last price", s.equity_usdt)
    gauge("btc_max_drawdown_ratio", "Worst peak-to-trough equity drawdown (negative)", s.max_drawdown)
    gauge("btc_decisions_total", "Bars decided", s.decisions)
    for key, value in sorted(s.latency_s.items()):
        stage, q = key.split("_")
        gauge("btc_latency_seconds", "Seconds from the run request (bar close) to decision / order ack", value,
              stage=stage, quantile=q.removeprefix("p"))
    for limit, ratio in sorted((rate_limit_headroom or {}).items()):
        gauge("btc_rate_limit_headroom_ratio", "Share of a Binance rate limit still free in its current window "
              "(1 - used/limit, from the broker's last reply headers)", ratio, limit=limit)
    return generate_latest(reg)


def write_textfile(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)


def last_mark(conn) -> tuple[float, pd.Timestamp, str] | None:
    """The latest BTCUSDT close the warehouse has (price, its close time, source): the bar that closed last among the
    1m bars (live and silver), the hourly and the daily ones (silver and the monthly archive's history); None when
    there is no bar at all."""
    from btc_assets.lib.storage.warehouse import table_exists

    best = None
    for table, length in (("live.klines_1m", "1m"), ("silver.klines_1m", "1m"), ("silver.klines_1h", "1h"),
                          ("silver.klines_1h_history", "1h"), ("silver.klines_1d", "1d"),
                          ("silver.klines_1d_history", "1d")):
        if not table_exists(conn, table):
            continue
        row = conn.execute(f"SELECT open_time, close FROM {table} ORDER BY open_time DESC LIMIT 1").fetchone()
        if row is None:
            continue
        at = pd.Timestamp(row[0], tz="UTC") + pd.Timedelta(length.replace("m", "min"))
        if best is None or at > best[1]:
            best = (float(row[1]), at, f"Binance USD-M BTCUSDT {length} close at {at:%Y-%m-%d %H:%M} UTC ({table})")
    return best


def books(conn, mark: tuple[float, pd.Timestamp, str] | None = None) -> pd.DataFrame:
    """Every book of the one journal, apart and together: per strategy (the client order id's prefix, the scalper's
    `strategy` setting or a SEPARATE_BOOKS strategy) and venue (`broker`): fills, traded notional, fees, realised P&L
    at average cost (gross and after fees), the open position, its average cost and its unrealised P&L marked at
    `mark` (price, time, source: `last_mark`; every venue is marked at Binance's BTCUSDT, so a Kraken PF_XBTUSD
    position's mark is off by the venues' basis), total P&L (net realised + unrealised), first and last fill; then
    one `all` row per venue and the grand total. An open position without a mark has no unrealised P&L (NaN)."""
    fills = conn.execute(
        "SELECT client_order_id, broker, bar_time, side, qty, price, fee FROM trading.order_events "
        "WHERE event = 'FILLED' ORDER BY event_time, seq").df()
    cols = ["strategy", "venue", "fills", "notional", "fees", "gross_pnl", "net_pnl", "position", "avg_cost",
            "mark_price", "unrealised_pnl", "total_pnl", "first_fill", "last_fill"]
    if fills.empty:
        return pd.DataFrame(columns=cols)
    fills["strategy"] = fills["client_order_id"].str.split("-").str[0]
    price = mark[0] if mark is not None else float("nan")
    rows = []
    for (strategy, venue), f in fills.groupby(["strategy", "broker"], sort=True):
        r = realised_pnl(f.reset_index(drop=True))
        position, cost = float(r["position_after"].iloc[-1]), float(r["avg_cost_after"].iloc[-1])
        unrealised = position * (price - cost) if position else 0.0
        net = float(r["net_pnl"].sum())
        rows.append({"strategy": strategy, "venue": venue, "fills": len(f),
                     "notional": float((f["qty"] * f["price"]).sum()), "fees": float(f["fee"].sum()),
                     "gross_pnl": float(r["gross_pnl"].sum()), "net_pnl": net, "position": position,
                     "avg_cost": cost, "mark_price": price if position else float("nan"),
                     "unrealised_pnl": unrealised, "total_pnl": net + unrealised,
                     "first_fill": f["bar_time"].min(), "last_fill": f["bar_time"].max()})
    apart = pd.DataFrame(rows)
    summed = ["fills", "notional", "fees", "gross_pnl", "net_pnl"]

    def total(df: pd.DataFrame, strategy: str, venue: str) -> dict:
        # an unmarked open book makes the sums unknown (NaN), never a partial total
        unrealised = float(df["unrealised_pnl"].sum(min_count=len(df)))
        return {"strategy": strategy, "venue": venue, **{k: df[k].sum() for k in summed}, "position": float("nan"),
                "avg_cost": float("nan"), "mark_price": float("nan"), "unrealised_pnl": unrealised,
                "total_pnl": float(df["net_pnl"].sum()) + unrealised,
                "first_fill": df["first_fill"].min(), "last_fill": df["last_fill"].max()}
    per_venue = [total(g, "all", v) for v, g in apart.groupby("venue")] if apart["strategy"].nunique() > 1 else []
    return pd.DataFrame([*apart.to_dict("records"), *per_venue, total(apart, "all", "all")], columns=cols)
