"""Silver aggTrades: typing, duplicate/ordering handling and id contiguity; the 1m order-flow aggregation in DuckDB;
and the comparison of klines rebuilt from aggTrades with silver klines.

Ids: `agg_trade_id` increases by 1 from row to row and `first_trade_id` of a row is `last_trade_id + 1` of the
previous one, across day boundaries too. A gap means trades are missing from the file: it is reported (id range
and size), never papered over. Exact duplicate rows are dropped and counted; two different rows with one id are
an error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.data.market import MarketDataError, day_window, first_bad

COLUMNS = ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker")
TYPES = {"agg_trade_id": "BIGINT", "price": "DOUBLE", "quantity": "DOUBLE", "first_trade_id": "BIGINT",
         "last_trade_id": "BIGINT", "transact_time": "TIMESTAMP", "is_buyer_maker": "BOOLEAN"}
_REFETCH = "re-fetch the file; if it persists, report it upstream"


@dataclass
class IdGap:
    """Ids missing between two consecutive rows: `kind` is 'agg_trade_id' or 'trade_id'; size < 0 is an overlap."""

    kind: str
    after_agg_trade_id: int
    expected: int
    found: int

    @property
    def size(self) -> int:
        return self.found - self.expected

    def __str__(self) -> str:
        what = "missing" if self.size > 0 else "overlapping"
        return (f"{self.kind}: {abs(self.size)} {what} after agg_trade_id {self.after_agg_trade_id} "
                f"(expected {self.expected}, found {self.found})")


@dataclass
class AggTradesDay:
    trades: pd.DataFrame
    duplicates_dropped: int
    unsorted_rows: int
    time_reversals: int
    gaps: list[IdGap] = field(default_factory=list)

    @property
    def last_ids(self) -> tuple[int, int]:
        return int(self.trades["agg_trade_id"].iat[-1]), int(self.trades["last_trade_id"].iat[-1])


def silver_agg_trades(raw: pd.DataFrame, day: dt.date, source: str,
                      previous: tuple[int, int] | None = None) -> AggTradesDay:
    """Type and validate one day of archive aggTrades (archive_csv.AGG_TRADES); `previous` is the
    (agg_trade_id, last_trade_id) of the previous day's last row, when known, to check the day boundary."""
    if raw.empty:
        raise MarketDataError(f"{source}: no aggTrades for {day}: {_REFETCH}")
    start, end = day_window(day)
    t = raw["transact_time"]
    first_bad(source, raw, (t < start) | (t >= end), f"have a transact_time outside {day}",
              "the file does not belong to this partition: check its name and path")
    first_bad(source, raw, ~(raw["price"] > 0) | ~(raw["quantity"] > 0), "have a price or quantity <= 0", _REFETCH)
    first_bad(source, raw, raw["last_trade_id"] < raw["first_trade_id"], "have last_trade_id < first_trade_id",
              _REFETCH)
    ids = raw["agg_trade_id"].to_numpy()
    step = np.diff(ids)
    df = raw.loc[:, list(COLUMNS)]
    duplicates = unsorted = 0
    if not (step == 1).all():  # the slow path only when the file is not already perfect
        unsorted = int((step < 0).sum())
        before = len(df)
        df = df.drop_duplicates()
        duplicates = before - len(df)
        clash = df["agg_trade_id"].duplicated(keep=False)
        if clash.any():
            first = df[clash].sort_values("agg_trade_id").head(2).to_dict("records")
            raise MarketDataError(f"{source}: {int(clash.sum())} rows share an agg_trade_id with different values "
                                  f"(first: {first}): the file is inconsistent; {_REFETCH}")
        df = df.sort_values("agg_trade_id", kind="stable").reset_index(drop=True)
    reversals = int((np.diff(df["transact_time"].array.asi8) < 0).sum())
    return AggTradesDay(df, duplicates, unsorted, reversals, id_gaps(df, previous))


def id_gaps(df: pd.DataFrame, previous: tuple[int, int] | None = None, limit: int = 1000) -> list[IdGap]:
    """Breaks in agg_trade_id (+1) and trade-id (first = previous last + 1) contiguity, in id order."""
    agg = df["agg_trade_id"].to_numpy()
    first, last = df["first_trade_id"].to_numpy(), df["last_trade_id"].to_numpy()
    prev_agg = np.r_[previous[0] if previous else agg[0] - 1, agg[:-1]]
    prev_last = np.r_[previous[1] if previous else first[0] - 1, last[:-1]]
    gaps: list[IdGap] = []
    for i in np.flatnonzero(agg != prev_agg + 1)[:limit]:
        gaps.append(IdGap("agg_trade_id", int(prev_agg[i]), int(prev_agg[i] + 1), int(agg[i])))
    for i in np.flatnonzero(first != prev_last + 1)[:limit]:
        gaps.append(IdGap("trade_id", int(prev_agg[i]), int(prev_last[i] + 1), int(first[i])))
    return gaps
