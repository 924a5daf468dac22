"""Silver logic for the USD-M market datasets besides klines: aggTrades and order flow, bookDepth, metrics and
mark/index/premium klines. Plain pandas/DuckDB, no Dagster; every error names its source file and partition, the
first offending row (1-based data row, and the file line below the header) and what to do.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd


class MarketDataError(ValueError):
    """Archive rows that cannot become silver rows: wrong day, conflicting duplicates, impossible values."""


def file_row(pos: int) -> str:
    """How a person finds row `pos` (0-based, file order) of a parsed file."""
    return f"data row {int(pos) + 1} (file line {int(pos) + 2} below a header line)"


def first_bad(source: str, raw: pd.DataFrame, mask: pd.Series | np.ndarray, what: str, todo: str) -> None:
    """Raise MarketDataError naming how many rows of `raw` match `mask` and the first of them, if any."""
    m = np.asarray(mask, dtype=bool)
    if m.any():
        i = int(m.argmax())
        raise MarketDataError(f"{source}: {int(m.sum())} rows {what} (first: {file_row(i)}: "
                              f"{raw.iloc[i].to_dict()}): {todo}")


def day_window(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[00:00, next 00:00) UTC of `day`."""
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)
