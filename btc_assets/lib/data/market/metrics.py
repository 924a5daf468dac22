"""Silver metrics: open interest, its value, top-trader and global long/short ratios and the taker long/short
volume ratio, one row per 5 minutes.

The archive writes `create_time` as a formatted string and does not sort rows (FORMATS.md): rows are sorted here,
inversions counted, exact duplicates dropped and counted; two different rows for one time are an error, and so is
a row off the 5-minute grid or of another symbol. Missing 5-minute slots are reported for the check to judge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.data.market import MarketDataError, day_window, first_bad

VALUE_COLUMNS = ("sum_open_interest", "sum_open_interest_value", "count_toptrader_long_short_ratio",
                 "sum_toptrader_long_short_ratio", "count_long_short_ratio", "sum_taker_long_short_vol_ratio")
TYPES = {"create_time": "TIMESTAMP", **{c: "DOUBLE" for c in VALUE_COLUMNS}}
SLOTS_PER_DAY = 288


@dataclass
class MetricsDay:
    metrics: pd.DataFrame
    duplicates_dropped: int
    unsorted_rows: int
    missing_slots: list[pd.Timestamp] = field(default_factory=list)


def silver_metrics(raw: pd.DataFrame, day: dt.date, source: str, symbol: str) -> MetricsDay:
    """Type, sort, de-duplicate and validate one day of archive metrics (archive_csv.METRICS)."""
    if raw.empty:
        raise MarketDataError(f"{source}: no metrics rows for {day}: re-fetch the file")
    start, end = day_window(day)
    t = raw["create_time"]
    first_bad(source, raw, raw["symbol"] != symbol, f"are for another symbol than {symbol}",
              "check the file name and the BTC_SYMBOL setting")
    first_bad(source, raw, (t < start) | (t >= end), f"have a create_time outside {day}",
              "the file does not belong to this partition: check its name and path")
    first_bad(source, raw, t != t.dt.floor("5min"), "have a create_time off the 5-minute grid",
              "the file is not a 5-minute metrics file or it is damaged: inspect it")
    first_bad(source, raw, raw[list(VALUE_COLUMNS)].lt(0).any(axis=1), "have a negative value", "re-fetch the file")
    df = raw[["create_time", *VALUE_COLUMNS]].astype({c: "float64" for c in VALUE_COLUMNS})
    unsorted = int((np.diff(df["create_time"].array.asi8) < 0).sum())
    before = len(df)
    df = df.drop_duplicates()
    clash = df["create_time"].duplicated(keep=False)
    if clash.any():
        raise MarketDataError(f"{source}: {df.loc[clash, 'create_time'].nunique()} create_times appear with "
                              f"different values (first {df.loc[clash, 'create_time'].min()}): re-fetch the file; "
                              "if it persists, report it upstream")
    df = df.sort_values("create_time", kind="stable").reset_index(drop=True)
    grid = pd.date_range(start, end, freq="5min", inclusive="left")
    missing = list(grid.difference(pd.DatetimeIndex(df["create_time"])))
    return MetricsDay(df, before - len(df), unsorted, missing)
