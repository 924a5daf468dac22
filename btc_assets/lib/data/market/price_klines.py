"""Silver mark, index and premium-index 1m bars (archive markPriceKlines, indexPriceKlines, premiumIndexKlines).

They share the 12-column kline layout; only open_time and OHLC carry information (the volumes are 0 and `count`
is a number of samples). Typing, day bounds, duplicates and missing minutes are the klines' rules
(`bars.silver_klines_1m`). The premium index can be negative, so OHLC consistency here does not ask for prices > 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from btc_assets.lib.data import bars

COLUMNS = ("open_time", "open", "high", "low", "close")
TYPES = {"open_time": "TIMESTAMP", "open": "DOUBLE", "high": "DOUBLE", "low": "DOUBLE", "close": "DOUBLE"}
MARK_LAST_BOUND = 0.01  # |mark / last - 1| above 1 % on a 1m close is not basis, it is bad data or a crash


@dataclass
class PriceBarsDay:
    bars: pd.DataFrame
    duplicates_dropped: int
    unsorted_rows: int
    missing_minutes: list[pd.Timestamp] = field(default_factory=list)


def silver_price_klines(raw: pd.DataFrame, day: dt.date, source: str) -> PriceBarsDay:
    """open_time + OHLC of one day of mark/index/premium klines; raises bars.BarDataError like the klines do."""
    got = bars.silver_klines_1m(raw, day, source)
    return PriceBarsDay(got.bars.loc[:, list(COLUMNS)], got.duplicates_dropped, got.unsorted_rows,
                        got.missing_minutes)


def ohlc_violations(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose high is below open/close/low or whose low is above open/close."""
    bad = (df["high"] < df[["open", "close", "low"]].max(axis=1)) | (df["low"] > df[["open", "close"]].min(axis=1))
    return df[bad]


def mark_last_divergence(mark: pd.DataFrame, last: pd.DataFrame,
                         bound: float = MARK_LAST_BOUND) -> tuple[int, pd.DataFrame]:
    """(minutes compared, minutes where |mark close / last close - 1| > bound) on the minutes both have."""
    both = mark[["open_time", "close"]].merge(last[["open_time", "close"]], on="open_time", suffixes=("_mark", "_last"))
    both["divergence"] = both["close_mark"] / both["close_last"] - 1
    return len(both), both[both["divergence"].abs() > bound].reset_index(drop=True)
