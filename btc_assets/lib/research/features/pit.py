"""Point-in-time plumbing: every source, its availability rule, and the as-of join on availability time.

A 1m row with open time t is known at t + 1m (its `available_at`). A source row may be used by that row only if
the source row's availability time is at or before it. Availability rules are declared here once, per source:
a kline of interval i at open + i, an order-flow minute at its close, a book snapshot at its timestamp, a 5-minute
metrics row METRICS_DELAY after its create_time (the archive stamps the row with the end of its 5 minutes, but
its publication time is not recorded, so one more 5 minutes is assumed), a funding rate at settlement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS_DELAY = pd.Timedelta(minutes=5)


@dataclass(frozen=True)
class Source:
    """An input frame of compute_features: its silver table, time column, columns and availability rule."""

    name: str
    table: str
    time_column: str
    columns: tuple[str, ...]
    delay: pd.Timedelta  # available_at = time_column + delay
    rule: str
    live_only: bool = False

    def available_at(self, df: pd.DataFrame) -> pd.Series:
        return df[self.time_column] + self.delay

    def available_ns(self, df: pd.DataFrame) -> np.ndarray:
        """available_at as int64 UTC nanoseconds (what the as-of joins compare)."""
        return column_ns(df, self.time_column) + self.delay.value


_KLINE = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume")
_PRICE = ("open", "high", "low", "close")
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("klines_1m", "silver.klines_1m", "open_time", _KLINE, pd.Timedelta(minutes=1), "at the bar's close"),
    Source("klines_5m", "silver.klines_5m", "open_time", _KLINE, pd.Timedelta(minutes=5), "at the bar's close"),
    Source("klines_15m", "silver.klines_15m", "open_time", _KLINE, pd.Timedelta(minutes=15), "at the bar's close"),
    Source("klines_1h", "silver.klines_1h", "open_time", _KLINE, pd.Timedelta(hours=1), "at the bar's close"),
    Source("klines_4h", "silver.klines_4h", "open_time", _KLINE, pd.Timedelta(hours=4), "at the bar's close"),
    Source("klines_1d", "silver.klines_1d", "open_time", _KLINE, pd.Timedelta(days=1), "at the bar's close"),
    Source("order_flow_1m", "silver.order_flow_1m", "open_time",
           ("buy_volume", "sell_volume", "vwap", "trade_count", "mean_trade_size", "max_trade_size"),
           pd.Timedelta(minutes=1), "at the minute's close"),
    Source("book_depth", "silver.book_depth", "snapshot_time", ("percentage", "depth", "notional"),
           pd.Timedelta(0), "at the snapshot time"),
    Source("metrics", "silver.metrics", "create_time",
           ("sum_open_interest", "sum_open_interest_value", "sum_toptrader_long_short_ratio",
            "count_long_short_ratio", "sum_taker_long_short_vol_ratio"),
           METRICS_DELAY, "5 minutes after create_time"),
    Source("funding_rates", "silver.funding_rates", "funding_time", ("rate", "interval_hours"),
           pd.Timedelta(0), "at settlement"),
    Source("mark_price_1m", "silver.mark_price_1m", "open_time", _PRICE, pd.Timedelta(minutes=1), "at the bar's close"),
    Source("index_price_1m", "silver.index_price_1m", "open_time", _PRICE, pd.Timedelta(minutes=1),
           "at the bar's close"),
    Source("premium_index_1m", "silver.premium_index_1m", "open_time", _PRICE, pd.Timedelta(minutes=1),
           "at the bar's close"),
    Source("liquidations", "silver.liquidations", "time", ("side", "price", "quantity"), pd.Timedelta(0),
           "at the event time (live stream only; no archive)", live_only=True),
)}
# Book snapshots and metrics rows older than this are stale: the feature is null rather than a held value.
MAX_AGE = {"book_depth": pd.Timedelta(minutes=5), "metrics": pd.Timedelta(minutes=15)}
# A 1m-keyed source row (order flow, mark/index/premium) is used only by the 1m bar it belongs to: a missing
# minute is null, never the previous minute carried forward.
MAX_AGE_1M = pd.Timedelta(0)


def ns(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds (what the as-of joins compare); naive input is taken as UTC."""
    if isinstance(ts, (pd.Series, pd.DatetimeIndex)) and ts.dtype.kind == "M":
        # a datetime column, aware or naive: its int64 values already count from the UTC epoch
        arr = ts.array if isinstance(ts, pd.Series) else ts
        return arr.asi8 if getattr(arr, "unit", None) == "ns" else arr.as_unit("ns").asi8
    idx = pd.DatetimeIndex(ts)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns").asi8


def column(df: pd.DataFrame, col: str, dtype: str | None = None) -> np.ndarray:
    """Column `col` of df as a numpy array, read from the frame's block without building a Series (building one is
    most of what reading a column of a small or freshly read frame costs: the live decision and the point-in-time
    audit read a hundred per run). Columns held in pandas extension arrays, duplicate names or a pandas without
    the block accessor: the Series path, same values."""
    try:
        arr = df._get_column_array(df.columns.get_loc(col))
    except (AttributeError, TypeError):
        arr = None
    if not isinstance(arr, np.ndarray):
        s = df[col]
        return s.to_numpy() if dtype is None else s.to_numpy(dtype)
    return arr if dtype is None else arr.astype(dtype, copy=False)


def column_ns(df: pd.DataFrame, col: str) -> np.ndarray:
    """Time column `col` of df as UTC int64 nanoseconds (`ns`), read like `column`."""
    try:
        arr = df._get_column_array(df.columns.get_loc(col))
    except (AttributeError, TypeError):
        arr = None
    if isinstance(arr, pd.arrays.DatetimeArray) and arr.unit == "ns":
        return arr.asi8  # aware or naive: the int64 values count from the UTC epoch (naive is taken as UTC)
    return ns(df[col])


def asof_index(at_ns: np.ndarray, src_avail_ns: np.ndarray, max_age: pd.Timedelta | None = None) -> np.ndarray:
    """For each time in at_ns, the index of the last source row available at or before it (-1 if none/stale).

    src_avail_ns must be sorted ascending. This is the only way a source reaches a feature row.
    """
    idx = np.searchsorted(src_avail_ns, at_ns, side="right") - 1
    if max_age is not None and len(src_avail_ns):
        stale = at_ns - src_avail_ns[np.maximum(idx, 0)] > max_age.value
        idx = np.where(stale, -1, idx)
    return idx


def take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] as float64, NaN where idx is -1 (no source row available yet)."""
    if len(values) == 0:
        return np.full(len(idx), np.nan)
    out = np.asarray(values, dtype="float64")[np.maximum(idx, 0)]
    out[idx < 0] = np.nan
    return out


def cut_to(frames: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Every source frame reduced to the rows available at or before `cutoff` (what a live run would have seen)."""
    out = {}
    limit = int(pd.Timestamp(cutoff).value)
    for name, df in frames.items():
        if df is None:
            out[name] = None
            continue
        avail = SOURCES[name].available_ns(df)
        if len(avail) < 2 or (avail[1:] >= avail[:-1]).all():  # in time order (the usual case): a prefix, no copy
            out[name] = df.iloc[:int(np.searchsorted(avail, limit, side="right"))]
        else:
            out[name] = df[avail <= limit]
    return out


def cut_from(frames: dict[str, pd.DataFrame], start: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Every source frame reduced to rows at or after `start` (what a bounded read starting at `start` returns)."""
    return {n: (df[df[SOURCES[n].time_column] >= start] if df is not None else None) for n, df in frames.items()}
