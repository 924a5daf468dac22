"""Silver typing of the collector's recordings: liquidations (forceOrder) and the live top of book (depth20).

Both are keyed on the exchange's event time, not the receive time, so a day's table gathers the events of that
UTC day from the hour files around it (an event at 23:59:59.9 may be received, and filed, after midnight). Rows
the typing cannot read are counted and returned with the reason, never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

LIQUIDATION_TYPES = {"time": "TIMESTAMP", "side": "VARCHAR", "price": "DOUBLE", "quantity": "DOUBLE",
                     "average_price": "DOUBLE", "status": "VARCHAR", "received_at": "TIMESTAMP"}
ORDER_BOOK_TYPES = {"time": "TIMESTAMP", "best_bid": "DOUBLE", "best_ask": "DOUBLE", "bid_qty": "DOUBLE",
                    "ask_qty": "DOUBLE", "mid": "DOUBLE", "spread": "DOUBLE", "bid_depth": "DOUBLE",
                    "ask_depth": "DOUBLE", "levels": "INTEGER", "last_update_id": "BIGINT",
                    "received_at": "TIMESTAMP", "stream_levels": "INTEGER"}


@dataclass
class Typed:
    frame: pd.DataFrame  # sorted by event time, as readers get it
    rejected: list[str] = field(default_factory=list)  # "<file> line <n>: <reason>"
    # Events whose time is earlier than the event before them *in the recordings' own order* (hour files in order,
    # lines in order): a stream delivers its events in time order, so this counts what sorting would hide.
    back_in_file: pd.DataFrame = field(default_factory=pd.DataFrame)


def _typed(rows: list, where: list[tuple[str, int]], columns: list[str], rejected: list[str]) -> Typed:
    """The frame in time order, and the rows whose event time is earlier than an event recorded before them (file,
    line kept). A record repeated whole is the duplicates check's, not counted here."""
    df = pd.DataFrame(rows, columns=columns)
    df["time"], df["received_at"] = _ts(df["time"]), _ts(df["received_at"])
    repeated = df.drop(columns="received_at").duplicated()
    back = (df["time"] < df["time"].cummax().shift(1)) & ~repeated
    back_rows = df[back].assign(file=[w[0] for w, b in zip(where, back) if b],
                                line=[w[1] for w, b in zip(where, back) if b],
                                latest_before=df["time"].cummax().shift(1)[back])
    return Typed(df.sort_values("time", kind="stable").reset_index(drop=True), rejected,
                 back_rows.reset_index(drop=True))


def _ts(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(ms.astype("int64"), unit="ms", utc=True)


def liquidations(records: list[tuple[str, int, dict]]) -> Typed:
    """(file, line, record) of forceOrder -> time, side, price (order price), quantity (filled), average_price."""
    rows, at, rejected = [], [], []
    for where, line, rec in records:
        try:
            o = rec["data"]["o"]
            rows.append((int(o["T"]), str(o["S"]), float(o["p"]), float(o["z"]), float(o["ap"]), str(o["X"]),
                         int(rec["recv_ms"])))
            at.append((where, line))
        except (KeyError, TypeError, ValueError) as e:
            rejected.append(f"{where} line {line}: {e!r}")
    return _typed(rows, at, list(LIQUIDATION_TYPES), rejected)


def order_book(records: list[tuple[str, int, dict]]) -> Typed:
    """(file, line, record) of depth20/depth10 -> one top-of-book row per update (time = transaction time T)."""
    rows, at, rejected = [], [], []
    for where, line, rec in records:
        try:
            d = rec["data"]
            bids = [(float(p), float(q)) for p, q in d["b"]]
            asks = [(float(p), float(q)) for p, q in d["a"]]
            if not bids or not asks:
                raise ValueError("an empty side")
            (bb, bq), (ba, aq) = max(bids), min(asks)
            promised = re.search(r"@depth(\d+)", rec["stream"])  # the levels per side the stream sends
            rows.append((int(d["T"]), bb, ba, bq, aq, (bb + ba) / 2, ba - bb, sum(q for _, q in bids),
                         sum(q for _, q in asks), min(len(bids), len(asks)), int(d["u"]), int(rec["recv_ms"]),
                         int(promised.group(1)) if promised else None))
            at.append((where, line))
        except (KeyError, TypeError, ValueError) as e:
            rejected.append(f"{where} line {line}: {e!r}")
    return _typed(rows, at, list(ORDER_BOOK_TYPES), rejected)


def in_window(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return df[(df["time"] >= start) & (df["time"] < end)].reset_index(drop=True)
