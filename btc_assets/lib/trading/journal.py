"""The trading journal in DuckDB: one row per decision, and append-only order events.

An order is journaled (NEW) before it is handed to a broker, and every later state (FILLED, REJECTED) is a new
event row; nothing is updated in place, so the history of every order survives a crash and a retried run can see
what was already sent. Client order ids are derived from strategy, bar time and leg, never random.

In production both tables are mirrored to S3 by day of bar_time (`mirror_journal`), like the warehouse tables that
`replace_window` writes, and `btc-assets restore-warehouse` brings them back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pandas as pd

from btc_assets.lib.storage.table_mirror import S3TableMirror
from btc_assets.lib.storage.warehouse import ensure_table, frame_of

DECISIONS = "trading.decisions"
# Strategies whose orders share trading.order_events (one journal, the venue in `broker`) but keep their own book:
# the scalper's P&L, dashboard and order tables leave them out (`own_book`); their own assets read them by prefix.
SEPARATE_BOOKS = ("daily_swing",)


def own_book(column: str = "client_order_id") -> str:
    """SQL condition: the row belongs to the scalper's book (not to a SEPARATE_BOOKS strategy)."""
    return " AND ".join(f"{column} NOT LIKE '{s[:16]}-%'" for s in SEPARATE_BOOKS)
ORDER_EVENTS = "trading.order_events"
LIVE_FEATURES = "trading.live_features"
# an entry's protective legs: -sl / -tp as first placed, -s<n> / -t<n> once moved to the plan's prices (same length,
# so the entry's id is always the leg's id less its last three characters)
PROTECTIVE_LEG = r".*-(sl|tp|s[1-9]|t[1-9])$"
STOP_SUFFIXES = ("sl", *(f"s{i}" for i in range(1, 10)))
TARGET_SUFFIXES = ("tp", *(f"t{i}" for i in range(1, 10)))  # the feature row each decision was made on, as the live path computed it
DECISION_TYPES = {
    "decision_id": "VARCHAR", "bar_time": "TIMESTAMP", "decided_at": "TIMESTAMP", "run_id": "VARCHAR",
    "model_version": "VARCHAR", "p_sell": "DOUBLE", "p_hold": "DOUBLE", "p_buy": "DOUBLE", "signal": "TINYINT",
    "target_position": "DOUBLE", "price": "DOUBLE", "requested_at": "TIMESTAMP",
    # the risk rules' plan of the bar (lib/trader.BarPlan.row)
    "action": "VARCHAR", "entry_qty": "DOUBLE", "stop_distance": "DOUBLE", "skip_reason": "VARCHAR",
    "breaker_paused": "BOOLEAN", "sim_equity": "DOUBLE", "sim_position": "DOUBLE", "exits": "VARCHAR",
    "opened": "VARCHAR", "closed": "VARCHAR", "decide_ms": "DOUBLE", "liquidation_probability": "DOUBLE",
}
EVENT_TYPES = {
    "client_order_id": "VARCHAR", "event": "VARCHAR", "event_time": "TIMESTAMP", "bar_time": "TIMESTAMP",
    "side": "VARCHAR", "qty": "DOUBLE", "price": "DOUBLE", "fee": "DOUBLE", "broker": "VARCHAR", "run_id": "VARCHAR",
    "note": "VARCHAR", "seq": "BIGINT",
}


@dataclass(frozen=True)
class OrderEvent:
    client_order_id: str
    event: str  # NEW, ACK (one leg's final state), FILLED, REJECTED, CANCELED
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


def leg_id(client_order_id: str, suffix: str) -> str:
    """The id of one leg of an order (a quote, the market remainder, a stop): deterministic, <= 36 chars."""
    return f"{client_order_id[:35 - len(suffix)]}-{suffix}"


class Journal:
    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn
        ensure_table(conn, DECISIONS, DECISION_TYPES)
        ensure_table(conn, ORDER_EVENTS, EVENT_TYPES)

    def decided_bars(self, start: pd.Timestamp, end: pd.Timestamp) -> set[pd.Timestamp]:
        rows = self.conn.execute(
            f"SELECT bar_time FROM {DECISIONS} WHERE bar_time >= ? AND bar_time < ?", [_naive(start), _naive(end)]
        ).fetchall()
        return {pd.Timestamp(r[0], tz="UTC") for r in rows}

    def record_decisions(self, df: pd.DataFrame) -> None:
        """Insert decisions whose decision_id is not journaled yet (a retried run adds nothing twice)."""
        if df.empty:
            return
        cols = list(DECISION_TYPES)
        if len(df) <= 5:  # the live path's bar: plain parameters, no DataFrame work (it is on the order path)
            marks = ", ".join("?" for _ in cols)
            for i in range(len(df)):
                row = [_param(df[c].iat[i]) if c in df.columns else None for c in cols]  # requested_at optional
                # the bar_time filter first: the table's zone maps skip every other day (it grows 1,440 rows a day)
                self.conn.execute(f"INSERT INTO {DECISIONS} ({', '.join(cols)}) SELECT {marks} WHERE NOT EXISTS "
                                  f"(SELECT 1 FROM {DECISIONS} WHERE bar_time = ? AND decision_id = ?)",
                                  [*row, row[cols.index("bar_time")], row[0]])
            return
        frame = df.reindex(columns=cols).copy()  # requested_at is optional (manual runs)
        for col in ("bar_time", "decided_at", "requested_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True).dt.tz_localize(None)
        self.conn.register("_decisions", frame)
        self.conn.execute(
            f"INSERT INTO {DECISIONS} SELECT {', '.join(DECISION_TYPES)} FROM _decisions d "
            f"WHERE d.decision_id NOT IN (SELECT decision_id FROM {DECISIONS})"
        )
        self.conn.unregister("_decisions")

    def record_features(self, decision_ids: list[str], rows: pd.DataFrame) -> None:
        """The feature rows (gold.features columns, `open_time` = the bar) the decisions were made on, once per
        decision: what the live-vs-batch feature check compares with gold once the archive has the day."""
        if rows is None or rows.empty:
            return
        names = [c for c in rows.columns if c not in ("open_time", "available_at", "warmed_up")]
        types = {"decision_id": "VARCHAR", "bar_time": "TIMESTAMP", **{n: "DOUBLE" for n in names}}
        ensure_table(self.conn, LIVE_FEATURES, types)
        frame = rows[names].astype("float64")
        frame.insert(0, "bar_time", pd.to_datetime(rows["open_time"], utc=True).dt.tz_localize(None).to_numpy())
        frame.insert(0, "decision_id", list(decision_ids))
        self.conn.register("_live_features", frame)
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        self.conn.execute(
            f"INSERT INTO {LIVE_FEATURES} ({cols}) SELECT {cols} FROM _live_features f "
            f"WHERE f.decision_id NOT IN (SELECT decision_id FROM {LIVE_FEATURES})")
        self.conn.unregister("_live_features")

    def append(self, ev: OrderEvent) -> None:
        row = asdict(ev)
        row["bar_time"] = _naive(ev.bar_time)
        row["event_time"] = _naive(pd.Timestamp.now(tz="UTC"))
        cols = [c for c in EVENT_TYPES if c != "seq"]
        # seq orders the events of one order even within one clock tick (one process holds the DuckDB file at a time)
        self.conn.execute(
            f"INSERT INTO {ORDER_EVENTS} ({', '.join(cols)}, seq) VALUES ({', '.join('?' * len(cols))}, "
            f"(SELECT coalesce(max(seq), 0) + 1 FROM {ORDER_EVENTS}))",
            [row[c] for c in cols],
        )

    def sent_at(self, client_order_id: str) -> pd.Timestamp | None:
        """When the order was journaled NEW (just before it was sent)."""
        q = f"SELECT min(event_time) FROM {ORDER_EVENTS} WHERE client_order_id = ? AND event = 'NEW'"
        t = self.conn.execute(q, [client_order_id]).fetchall()[0][0]
        return pd.Timestamp(t, tz="UTC") if t is not None else None

    def has_order(self, client_order_id: str) -> bool:
        q = f"SELECT count(*) FROM {ORDER_EVENTS} WHERE client_order_id = ?"
        return self.conn.execute(q, [client_order_id]).fetchone()[0] > 0

    def orders(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
               ids: list[str] | None = None, legs_of: str | None = None) -> pd.DataFrame:
        """The latest state of every order (optionally with bar_time in [start, end), or of these ids), oldest first.

        A broker's ACK rows record one leg each (its qty is that leg's fill), not the order's state: an order
        killed between its legs stays NEW with its full quantity until a retried run journals FILLED."""
        where, params = "WHERE event <> 'ACK'", []
        if start is not None and end is not None:
            where, params = f"{where} AND bar_time >= ? AND bar_time < ?", [_naive(start), _naive(end)]
        if ids is not None:
            where, params = f"{where} AND list_contains(?, client_order_id)", [*params, list(ids)]
        if legs_of is not None:  # the protective legs of one broker only (filtered before the latest-state pass)
            where = f"{where} AND broker = ? AND regexp_matches(client_order_id, ?)"
            params = [*params, legs_of, PROTECTIVE_LEG]
        df = frame_of(self.conn.execute(  # on the order path (every submit looks its id up): no .df()
            f"SELECT * FROM {ORDER_EVENTS} {where} "
            "QUALIFY row_number() OVER (PARTITION BY client_order_id ORDER BY seq DESC NULLS LAST, event_time DESC, "
            "CASE event WHEN 'NEW' THEN 0 ELSE 1 END DESC) = 1 ORDER BY bar_time, client_order_id",
            params,
        ))
        for col in ("bar_time", "event_time"):
            df[col] = pd.to_datetime(df[col]).dt.tz_localize("UTC")
        return df

    def orders_by_id(self, ids: list[str]) -> dict[str, dict]:
        """The latest state of each of these orders that the journal has (absent ids are left out)."""
        if not ids:
            return {}
        return {r["client_order_id"]: r for r in self.orders(ids=ids).to_dict("records")}

    def open_protective_legs(self, broker: str) -> pd.DataFrame:
        """The stop and target legs (ids ending -sl / -tp, or -s1.. / -t1.. once moved to the plan's prices) of
        `broker` that are still NEW."""
        o = self.orders(legs_of=broker)  # on the order path (settle, every bar): not the whole journal
        return o[o["event"] == "NEW"] if len(o) else o

    def position(self, broker: str | None = None) -> float:
        """Net filled position in base units (of one broker's orders when named: paper and exchange books differ)."""
        where, params = "WHERE event = 'FILLED'", []
        if broker is not None:
            where, params = f"{where} AND broker = ?", [broker]
        q = f"SELECT coalesce(sum(CASE side WHEN 'BUY' THEN qty ELSE -qty END), 0) FROM {ORDER_EVENTS} {where}"
        return float(self.conn.execute(q, params).fetchone()[0])


def mirror_journal(conn: duckdb.DuckDBPyConnection, mirror: S3TableMirror | None, start: pd.Timestamp,
                   end: pd.Timestamp) -> dict[str, int]:
    """Write both journal tables' rows of every UTC day that [start, end) touches to the S3 mirror, by bar_time.

    `start`/`end` may be any instants (a run's bar range): the whole days around them are mirrored from DuckDB,
    one object per table and day, replacing the previous one. Nothing in the journal is ever deleted, so an event
    or decision the existing object holds and DuckDB does not is kept (decisions by decision_id, events as whole
    rows); re-running changes nothing. Returns rows mirrored per table; {} without a mirror (local profile).
    """
    if mirror is None:
        return {}
    if pd.Timestamp(end) < pd.Timestamp(start):
        raise ValueError(f"journal mirror window ends ({end}) before it starts ({start})")
    Journal(conn)  # the tables exist even before the first decision: an empty day is mirrored as an empty object
    first = _naive(start).floor("D")
    last = _naive(end).ceil("D")
    if last <= first:
        last = first + pd.Timedelta(days=1)
    return {DECISIONS: mirror.put_merged(conn, DECISIONS, "bar_time", first, last, key=("decision_id",)),
            ORDER_EVENTS: mirror.put_merged(conn, ORDER_EVENTS, "bar_time", first, last)}


def journal_to_lakehouse(conn: duckdb.DuckDBPyConnection, lake, start: pd.Timestamp, end: pd.Timestamp,
                         note: dict | None = None) -> dict[str, int]:
    """Append both journal tables' rows of every UTC day that [start, end) touches to their Delta tables (lib/storage/
    lakehouse.py), by key: decisions by decision_id, events by (seq, client_order_id, event). Append-only: rows are
    never updated or deleted there, so the Delta log is the journal's audit trail. Returns rows appended per table
    ({} without a lakehouse)."""
    if lake is None:
        return {}
    Journal(conn)
    first, last = _naive(start).floor("D"), max(_naive(end).ceil("D"), _naive(start).floor("D") + pd.Timedelta(days=1))
    out = {}
    for table, types, key in ((DECISIONS, DECISION_TYPES, ("decision_id",)),
                              (ORDER_EVENTS, EVENT_TYPES, ("seq", "client_order_id", "event"))):
        rows = conn.execute(f"SELECT {', '.join(types)} FROM {table} WHERE bar_time >= ? AND bar_time < ?",
                            [first, last]).df()
        out[table] = lake.append_new(table, types, rows, "bar_time", key, note=note)
    out.update(events_to_lakehouse(conn, lake, note=note))
    return out


# The trading events that are not keyed by bar: the kill switch's latch (ENGAGED / CLEARED, who and why) and the
# account equity each run read (the account breakers' input). Stamped by the wall clock, mirrored by it.
EVENTS_WINDOW = pd.Timedelta(days=2)


def event_tables() -> tuple[tuple[str, dict[str, str], tuple[str, ...]], ...]:
    from btc_assets.lib.trading.kill_switch import LATCH, LATCH_TYPES
    from btc_assets.lib.trading.session import EQUITY, EQUITY_TYPES

    return ((LATCH, LATCH_TYPES, ("event_time", "event", "actor")),
            (EQUITY, EQUITY_TYPES, ("event_time", "broker", "run_id")))


def events_to_lakehouse(conn: duckdb.DuckDBPyConnection, lake, now: pd.Timestamp | None = None,
                        note: dict | None = None) -> dict[str, int]:
    """Append the kill-switch latch's and the account equity's rows of the last EVENTS_WINDOW (wall clock) to their
    Delta tables by key, like the journal: append-only, so the latch's Delta log is the audit trail of every
    engagement and every clearing. Returns rows appended per table ({} without a lakehouse; a table not created
    yet is skipped)."""
    if lake is None:
        return {}
    from btc_assets.lib.storage.warehouse import table_exists

    since = _naive(now if now is not None else pd.Timestamp.now(tz="UTC")) - EVENTS_WINDOW
    out = {}
    for table, types, key in event_tables():
        if not table_exists(conn, table):
            continue
        rows = conn.execute(f"SELECT {', '.join(types)} FROM {table} WHERE event_time >= ?", [since]).df()
        out[table] = lake.append_new(table, types, rows, "event_time", key, note=note)
    return out


def _param(v):
    """One value as a DuckDB parameter: None for NaN/NaT/None, a naive UTC datetime for a timestamp, a Python
    scalar otherwise."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        t = pd.Timestamp(v)
        # DuckDB's TIMESTAMP holds microseconds: the nanoseconds a pandas clock reading may carry are floored here
        # (not dropped with a warning per value by to_pydatetime)
        return (t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t).floor("us").to_pydatetime()
    return v.item() if isinstance(v, np.generic) else v


def _naive(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
