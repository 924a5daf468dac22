"""The trading journal in DuckDB: one row per decision, and append-only order events.

An order is journaled (NEW) before it is handed to a broker, and every later state (FILLED, REJECTED) is a new
event row; nothing is updated in place, so the history of every order survives a crash and a retried run can see
what was already sent. Client order ids are derived from strategy, bar time and leg, never random.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb
import pandas as pd

from btc_assets.lib.warehouse import ensure_table

DECISIONS = "trading.decisions"
ORDER_EVENTS = "trading.order_events"
DECISION_TYPES = {
    "decision_id": "VARCHAR", "bar_time": "TIMESTAMP", "decided_at": "TIMESTAMP", "run_id": "VARCHAR",
    "model_version": "VARCHAR", "p_sell": "DOUBLE", "p_hold": "DOUBLE", "p_buy": "DOUBLE", "signal": "TINYINT",
    "target_position": "DOUBLE", "price": "DOUBLE", "requested_at": "TIMESTAMP",
}
EVENT_TYPES = {
    "client_order_id": "VARCHAR", "event": "VARCHAR", "event_time": "TIMESTAMP", "bar_time": "TIMESTAMP",
    "side": "VARCHAR", "qty": "DOUBLE", "price": "DOUBLE", "fee": "DOUBLE", "broker": "VARCHAR", "run_id": "VARCHAR",
    "note": "VARCHAR",
}


@dataclass(frozen=True)
class OrderEvent:
    client_order_id: str
    event: str  # NEW, FILLED, REJECTED; ACK (one leg on the exchange, see brokers/binance.py)
    bar_time: pd.Timestamp
    side: str  # BUY or SELL
    qty: float
    price: float | None
    fee: float
    broker: str
    run_id: str
    note: str = ""


def client_order_id(strategy: str, bar_time: pd.Timestamp, leg: str) -> str:
    """Deterministic id (<= 36 chars, Binance's limit): the same decision always maps to the same order."""
    return f"{strategy[:16]}-{int(pd.Timestamp(bar_time).timestamp())}-{leg}"[:36]


class Journal:
    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn
        ensure_table(conn, DECISIONS, DECISION_TYPES)
        ensure_table(conn, ORDER_EVENTS, EVENT_TYPES)
        # journals created before requested_at existed gain the column (null for their old rows)
        conn.execute(f"ALTER TABLE {DECISIONS} ADD COLUMN IF NOT EXISTS requested_at TIMESTAMP")

    def decided_bars(self, start: pd.Timestamp, end: pd.Timestamp) -> set[pd.Timestamp]:
        rows = self.conn.execute(
            f"SELECT bar_time FROM {DECISIONS} WHERE bar_time >= ? AND bar_time < ?", [_naive(start), _naive(end)]
        ).fetchall()
        return {pd.Timestamp(r[0], tz="UTC") for r in rows}

    def record_decisions(self, df: pd.DataFrame) -> None:
        """Insert decisions whose decision_id is not journaled yet (a retried run adds nothing twice)."""
        if df.empty:
            return
        frame = df.reindex(columns=list(DECISION_TYPES)).copy()  # requested_at is optional (manual runs)
        for col in ("bar_time", "decided_at", "requested_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True).dt.tz_localize(None)
        self.conn.register("_decisions", frame)
        self.conn.execute(
            f"INSERT INTO {DECISIONS} SELECT {', '.join(DECISION_TYPES)} FROM _decisions d "
            f"WHERE d.decision_id NOT IN (SELECT decision_id FROM {DECISIONS})"
        )
        self.conn.unregister("_decisions")

    def append(self, ev: OrderEvent) -> None:
        row = asdict(ev)
        row["bar_time"] = _naive(ev.bar_time)
        row["event_time"] = _naive(pd.Timestamp.now(tz="UTC"))
        self.conn.execute(
            f"INSERT INTO {ORDER_EVENTS} ({', '.join(EVENT_TYPES)}) VALUES ({', '.join('?' * len(EVENT_TYPES))})",
            [row[c] for c in EVENT_TYPES],
        )

    def has_order(self, client_order_id: str) -> bool:
        q = f"SELECT count(*) FROM {ORDER_EVENTS} WHERE client_order_id = ?"
        return self.conn.execute(q, [client_order_id]).fetchone()[0] > 0

    def orders(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
        """The latest state of every order (optionally with bar_time in [start, end)), oldest first.

        A broker's ACK rows record one leg each (its qty is that leg's fill), not the order's state: an order
        killed between its legs stays NEW with its full quantity until a retried run journals FILLED."""
        where, params = "WHERE event <> 'ACK'", []
        if start is not None and end is not None:
            where, params = f"{where} AND bar_time >= ? AND bar_time < ?", [_naive(start), _naive(end)]
        df = self.conn.execute(
            f"SELECT * FROM {ORDER_EVENTS} {where} "
            "QUALIFY row_number() OVER (PARTITION BY client_order_id ORDER BY event_time DESC, "
            "CASE event WHEN 'NEW' THEN 0 ELSE 1 END DESC) = 1 ORDER BY bar_time, client_order_id",
            params,
        ).df()
        for col in ("bar_time", "event_time"):
            df[col] = pd.to_datetime(df[col]).dt.tz_localize("UTC")
        return df

    def position_before(self, bar_time: pd.Timestamp) -> float:
        """Net position the journal commits to for bars before `bar_time`: filled orders plus those still NEW.

        Deterministic for a given bar, so a retried run sizes every bar exactly as the first run did and sends
        nothing new (sizing against the position *now* would re-trade bars that needed no order then).
        """
        o = self.orders()
        if o.empty:
            return 0.0
        live = o[(o["bar_time"] < pd.Timestamp(bar_time)) & o["event"].isin(["NEW", "FILLED"])]
        return float((live["qty"] * live["side"].map({"BUY": 1.0, "SELL": -1.0})).sum())

    def position(self) -> float:
        """Net filled position in base units."""
        q = (f"SELECT coalesce(sum(CASE side WHEN 'BUY' THEN qty ELSE -qty END), 0) FROM {ORDER_EVENTS} "
             "WHERE event = 'FILLED'")
        return float(self.conn.execute(q).fetchone()[0])


def _naive(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
