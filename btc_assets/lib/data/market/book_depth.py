"""Silver bookDepth: snapshots of cumulative depth at -5..-1 and 1..5 % from mid, typed and validated.

`timestamp` is a formatted string in the archive (parsed by archive_csv); `percentage` is written as a number and
must be one of the ten levels. Exact duplicate rows are dropped and counted; two different rows for one
(snapshot, level) are an error. Snapshots missing a level are reported (a check decides), never filled in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.data.market import MarketDataError, day_window, first_bad

LEVELS = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)
TYPES = {"snapshot_time": "TIMESTAMP", "percentage": "INTEGER", "depth": "DOUBLE", "notional": "DOUBLE"}


@dataclass
class BookDepthDay:
    depth: pd.DataFrame
    duplicates_dropped: int
    unsorted_rows: int
    snapshots: int
    incomplete: list[tuple[pd.Timestamp, list[int]]] = field(default_factory=list)
    not_cumulative: int = 0  # (snapshot, side) pairs whose depth shrinks further from mid


def silver_book_depth(raw: pd.DataFrame, day: dt.date, source: str) -> BookDepthDay:
    """Type and validate one day of archive bookDepth (archive_csv.BOOK_DEPTH)."""
    if raw.empty:
        raise MarketDataError(f"{source}: no bookDepth rows for {day}: re-fetch the file")
    start, end = day_window(day)
    t = raw["timestamp"]
    first_bad(source, raw, (t < start) | (t >= end), f"have a timestamp outside {day}",
              "the file does not belong to this partition: check its name and path")
    pct = raw["percentage"].to_numpy()
    first_bad(source, raw, ~np.isin(pct, LEVELS), f"have a percentage that is not one of {LEVELS}",
              "the file is not a USD-M bookDepth file or the format changed: inspect it")
    first_bad(source, raw, ~(raw["depth"] >= 0) | ~(raw["notional"] >= 0), "have a negative depth or notional",
              "re-fetch the file")
    df = pd.DataFrame({"snapshot_time": t, "percentage": pct.astype("int32"),
                       "depth": raw["depth"].astype("float64"), "notional": raw["notional"].astype("float64")})
    key = df["snapshot_time"].array.asi8 * 16 + (df["percentage"].to_numpy() + 5)
    unsorted = int((np.diff(key) < 0).sum())
    before = len(df)
    df = df.drop_duplicates()
    clash = df.duplicated(["snapshot_time", "percentage"], keep=False)
    if clash.any():
        row = df[clash].iloc[0]
        raise MarketDataError(f"{source}: {int(clash.sum())} rows give different depths for one snapshot and level "
                              f"(first: {row['snapshot_time']} at {row['percentage']} %): re-fetch the file; "
                              "if it persists, report it upstream")
    df = df.sort_values(["snapshot_time", "percentage"], kind="stable").reset_index(drop=True)
    return BookDepthDay(df, before - len(df), unsorted, int(df["snapshot_time"].nunique()),
                        incomplete_snapshots(df), not_cumulative(df))


def incomplete_snapshots(df: pd.DataFrame) -> list[tuple[pd.Timestamp, list[int]]]:
    """Snapshots that lack one of the ten levels, with the missing levels (df sorted, no duplicates)."""
    counts = df.groupby("snapshot_time", sort=True).size()
    short = counts.index[counts.to_numpy() < len(LEVELS)]
    if not len(short):
        return []
    rows = df[df["snapshot_time"].isin(short)].groupby("snapshot_time")["percentage"].agg(set)
    return [(t, sorted(set(LEVELS) - levels)) for t, levels in rows.items()]


def not_cumulative(df: pd.DataFrame) -> int:
    """(snapshot, side) pairs where depth decreases moving away from mid: the column is cumulative by definition.

    `df` is sorted by (snapshot_time, percentage): asks run 1..5 forward, bids -1..-5 backward."""
    t = df["snapshot_time"].array.asi8
    pct = df["percentage"].to_numpy()
    depth = df["depth"].to_numpy()
    same = (t[1:] == t[:-1]) & (np.sign(pct[1:]) == np.sign(pct[:-1]))
    ask_shrinks = same & (pct[1:] > 0) & (depth[1:] < depth[:-1])   # moving outwards on the ask side
    bid_shrinks = same & (pct[1:] < 0) & (depth[:-1] < depth[1:])   # -5 before -4: outer must be >= inner
    bad = np.flatnonzero(ask_shrinks | bid_shrinks)
    return int(len(set(zip(t[bad].tolist(), np.sign(pct[bad]).tolist()))))
