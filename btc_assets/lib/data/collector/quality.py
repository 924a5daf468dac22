"""What must hold of a day of the live silver tables (silver.liquidations, silver.order_book_live) before anything
reads them, as plain functions of the day's frame: each returns a `Finding` (passed, counts, a sample of the
offending rows) for a Dagster check to report.

Schemas (pandera) cover types and values: prices and sizes positive, side BUY/SELL, a book snapshot with every
level its stream promises. The rest needs more than one row: duplicate events (two collectors appending to one
hour file, or a file read twice), event times out of order or received before they happened (a clock or unit
bug), a crossed book, update ids going backwards, and the gaps the collector itself recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

CLOCK_SKEW = pd.Timedelta(seconds=5)  # an event may appear received this much before it happened, no more
SIDES = ("BUY", "SELL")

_positive = pa.Column(float, pa.Check.gt(0), nullable=False)
_time = pa.Column("datetime64[ns, UTC]", nullable=False)
LIQUIDATIONS = pa.DataFrameSchema(
    {"time": _time, "side": pa.Column(str, pa.Check.isin(SIDES), nullable=False), "price": _positive,
     "quantity": _positive, "average_price": _positive, "status": pa.Column(str, nullable=False),
     "received_at": _time},
    strict=True, name="silver.liquidations")
ORDER_BOOK_LIVE = pa.DataFrameSchema(
    {"time": _time, "best_bid": _positive, "best_ask": _positive, "bid_qty": _positive, "ask_qty": _positive,
     "mid": _positive, "spread": pa.Column(float, nullable=False), "bid_depth": _positive, "ask_depth": _positive,
     "levels": pa.Column(int, pa.Check.ge(1), nullable=False), "last_update_id": pa.Column(int, nullable=False),
     "received_at": _time, "stream_levels": pa.Column(int, pa.Check.ge(1), nullable=False)},
    checks=[pa.Check(lambda d: d["levels"] >= d["stream_levels"], name="every_level_the_stream_promises")],
    strict=True, name="silver.order_book_live")


@dataclass
class Finding:
    passed: bool
    counts: dict[str, float] = field(default_factory=dict)
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)

    def sample_md(self, n: int = 10) -> str:
        return self.sample.head(n).to_markdown(index=False) if len(self.sample) else "none"


def matches_schema(df: pd.DataFrame, schema: pa.DataFrameSchema) -> Finding:
    if df.empty:  # no events that day (e.g. no liquidation recorded): nothing can be wrong, and an empty frame
        return Finding(True, {"rows": 0})  # has no dtypes to compare
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        return Finding(False, {"failures": len(cases)}, cases[["column", "check", "failure_case", "index"]])
    return Finding(True, {"rows": len(df)})


def no_duplicates(df: pd.DataFrame, key: list[str]) -> Finding:
    dup = df[df.duplicated(key, keep=False)]
    return Finding(dup.empty, {"duplicate_rows": int(df.duplicated(key).sum())}, dup.sort_values(key))


def times_in_order(df: pd.DataFrame, back_in_file: pd.DataFrame, update_id: str | None = None) -> Finding:
    """Event times never go back in the order they were recorded (`back_in_file`: the typed rows whose time is
    earlier than the record before them in the hour files; the table itself is sorted by time, where nothing can
    go back), no event is received before it happened (beyond CLOCK_SKEW), and (for the book) update ids never go
    back as time goes on (a repeated id is the duplicates check's)."""
    early = df["received_at"] < df["time"] - CLOCK_SKEW
    ids_back = df[update_id].diff() < 0 if update_id else pd.Series(False, index=df.index)
    bad = early | ids_back
    sample = pd.concat([back_in_file, df[bad]], ignore_index=True) if len(back_in_file) else df[bad]
    return Finding(not bad.any() and back_in_file.empty,
                   {"time_goes_back_in_file": len(back_in_file), "received_before_event": int(early.sum()),
                    "update_id_not_increasing": int(ids_back.sum())}, sample)


def not_crossed(df: pd.DataFrame) -> Finding:
    crossed = df[df["best_bid"] >= df["best_ask"]]
    return Finding(crossed.empty, {"crossed_snapshots": len(crossed)}, crossed)


def recorded_gaps(gaps: list[dict], start: pd.Timestamp, end: pd.Timestamp) -> Finding:
    """The collector's gap records that overlap [start, end), clipped to it."""
    rows = []
    for g in gaps:
        a, b = pd.Timestamp(g["start_ms"], unit="ms", tz="UTC"), pd.Timestamp(g["end_ms"], unit="ms", tz="UTC")
        if a < end and b > start:
            rows.append({"from": max(a, start), "to": min(b, end), "reason": g.get("reason", "")})
    frame = pd.DataFrame(rows, columns=["from", "to", "reason"])
    seconds = float((frame["to"] - frame["from"]).dt.total_seconds().sum()) if rows else 0.0
    return Finding(not rows, {"gaps": len(rows), "gap_seconds": round(seconds, 3)}, frame)
