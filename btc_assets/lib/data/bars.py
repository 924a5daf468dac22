"""Silver OHLCV bars: typing, de-duplication and validation of archive klines, and resampling 1m -> 5m/15m/1h.

A bar is identified by its open time (UTC) and becomes known at its close. Missing minutes are never invented:
they are reported, and the checks on silver decide what happens next. Exchange halts are published by Binance as
flat candles with zero trades; they are real rows and are flagged, not removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SILVER_KLINE_COLUMNS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "is_halt",
)
MINUTE = pd.Timedelta(minutes=1)
RESAMPLE_RULES: dict[str, str] = {"5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}
# Intervals of the archive's monthly kline files that silver reads as long history (years without minute files).
HISTORY_INTERVALS: dict[str, pd.Timedelta] = {"1h": pd.Timedelta(hours=1), "1d": pd.Timedelta(days=1)}
# The archive writes close_time as the bar's last millisecond; the spot archive's last microsecond from 2025 on.
_CLOSE_OFFSETS = (pd.Timedelta(milliseconds=1), pd.Timedelta(microseconds=1))


class BarDataError(ValueError):
    """Kline rows that cannot be made into silver bars (wrong day, conflicting duplicates, bad close_time)."""


@dataclass
class SilverDay:
    """One day of typed 1m bars plus what was done to get there (reported as metadata, nothing silent)."""

    bars: pd.DataFrame
    duplicates_dropped: int
    unsorted_rows: int
    missing_minutes: list[pd.Timestamp] = field(default_factory=list)
    halt_windows: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)


def day_bounds(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)


def silver_klines_1m(raw: pd.DataFrame, day: dt.date, source: str) -> SilverDay:
    """Type and validate one day of archive klines (as parsed by archive_csv.read_archive_csv with KLINES).

    `source` names the file in every error. Exact duplicate rows are dropped and counted; two different rows for
    the same minute are an error, because choosing one would be a guess.
    """
    if raw.empty:
        raise BarDataError(f"{source}: no kline rows for {day}; re-fetch the file or check the archive")
    start, end = day_bounds(day)
    outside = raw[(raw["open_time"] < start) | (raw["open_time"] >= end)]
    if len(outside):
        first = outside.iloc[0]
        raise BarDataError(
            f"{source}: {len(outside)} rows fall outside {day} (first open_time {first['open_time']}); "
            "the file does not belong to this partition: check the file name and the archive path"
        )
    # the bar's last millisecond (futures; spot until 2024) or its last microsecond (spot from 2025-01-01)
    bad_close = ~(raw["close_time"] - raw["open_time"]).isin([pd.Timedelta(minutes=1) - o for o in _CLOSE_OFFSETS])
    if bad_close.any():
        row = raw[bad_close].iloc[0]
        raise BarDataError(
            f"{source}: close_time {row['close_time']} does not end the minute opened at {row['open_time']} "
            f"({int(bad_close.sum())} rows): these are not 1m klines; check the interval in the path"
        )
    unsorted = int((raw["open_time"].diff() < pd.Timedelta(0)).sum())
    df = pd.DataFrame(
        {
            "open_time": raw["open_time"],
            "open": raw["open"].astype("float64"),
            "high": raw["high"].astype("float64"),
            "low": raw["low"].astype("float64"),
            "close": raw["close"].astype("float64"),
            "volume": raw["volume"].astype("float64"),
            "quote_volume": raw["quote_volume"].astype("float64"),
            "trades": raw["count"].astype("int64"),
            "taker_buy_volume": raw["taker_buy_volume"].astype("float64"),
            "taker_buy_quote_volume": raw["taker_buy_quote_volume"].astype("float64"),
        }
    )
    before = len(df)
    df = df.drop_duplicates()
    duplicates = before - len(df)
    conflicting = df[df["open_time"].duplicated(keep=False)]
    if len(conflicting):
        times = sorted(conflicting["open_time"].unique())[:5]
        raise BarDataError(
            f"{source}: {conflicting['open_time'].nunique()} minutes appear with different values "
            f"(first: {', '.join(str(t) for t in times)}); the file is inconsistent: re-fetch it or report it upstream"
        )
    df = df.sort_values("open_time", kind="stable").reset_index(drop=True)
    df["is_halt"] = flag_halts(df)
    return SilverDay(
        bars=df,
        duplicates_dropped=duplicates,
        unsorted_rows=unsorted,
        missing_minutes=missing_minutes(df, day),
        halt_windows=halt_windows(df),
    )


def flag_halts(df: pd.DataFrame) -> pd.Series:
    """An exchange halt: a flat candle (open = high = low = close) with zero trades and zero volume."""
    flat = (df["open"] == df["high"]) & (df["high"] == df["low"]) & (df["low"] == df["close"])
    return flat & (df["trades"] == 0) & (df["volume"] == 0)


def missing_minutes(df: pd.DataFrame, day: dt.date) -> list[pd.Timestamp]:
    start, end = day_bounds(day)
    expected = pd.date_range(start, end, freq="1min", inclusive="left")
    return list(expected.difference(pd.DatetimeIndex(df["open_time"])))


def halt_windows(df: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Contiguous runs of halted minutes as (first open_time, last open_time) pairs."""
    halted = df.loc[df["is_halt"], "open_time"]
    if halted.empty:
        return []
    new_run = halted.diff() != MINUTE
    run_id = new_run.cumsum()
    grouped = halted.groupby(run_id.values)
    return [(g.iloc[0], g.iloc[-1]) for _, g in grouped]


def ohlc_violations(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose OHLC cannot be true: high below open/close/low, low above open/close, non-positive prices."""
    bad = (
        (df["high"] < df[["open", "close", "low"]].max(axis=1))
        | (df["low"] > df[["open", "close"]].min(axis=1))
        | (df[["open", "high", "low", "close"]] <= 0).any(axis=1)
        | (df["taker_buy_volume"] > df["volume"] * (1 + 1e-9))
    )
    return df[bad]


def resample_bars(df_1m: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Aggregate 1m bars into `interval` bars ("5m", "15m", "1h", "4h", "1d") labelled by their open time.

    `minutes` counts the 1m bars that went into each bar and `halt_minutes` the halted ones, so an incomplete bar
    (a missing minute upstream) is visible rather than passed off as complete.
    """
    rule = RESAMPLE_RULES[interval]
    if df_1m.empty:
        return pd.DataFrame(columns=[*SILVER_KLINE_COLUMNS[:-1], "minutes", "halt_minutes", "is_halt"])
    g = df_1m.set_index("open_time").resample(rule, label="left", closed="left")
    out = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
            "quote_volume": g["quote_volume"].sum(),
            "trades": g["trades"].sum().astype("int64"),
            "taker_buy_volume": g["taker_buy_volume"].sum(),
            "taker_buy_quote_volume": g["taker_buy_quote_volume"].sum(),
            "minutes": g["open"].count().astype("int64"),
            "halt_minutes": g["is_halt"].sum().astype("int64"),
        }
    )
    out = out[out["minutes"] > 0]
    out["is_halt"] = out["halt_minutes"] == out["minutes"]
    return out.reset_index()


def one_bar(df_1m: pd.DataFrame, open_time: pd.Timestamp) -> dict:
    """The `resample_bars` row of the 1m bars `df_1m` (those of one bar, opening at `open_time`), without pandas'
    resampler: the live path rebuilds a just-closed 5m/15m/1h bar this way on every bar close."""
    halt = df_1m["is_halt"].to_numpy(bool)
    return {
        "open_time": open_time, "open": float(df_1m["open"].iloc[0]), "high": float(df_1m["high"].max()),
        "low": float(df_1m["low"].min()), "close": float(df_1m["close"].iloc[-1]),
        "volume": float(df_1m["volume"].sum()), "quote_volume": float(df_1m["quote_volume"].sum()),
        "trades": int(df_1m["trades"].sum()), "taker_buy_volume": float(df_1m["taker_buy_volume"].sum()),
        "taker_buy_quote_volume": float(df_1m["taker_buy_quote_volume"].sum()), "minutes": len(df_1m),
        "halt_minutes": int(halt.sum()), "is_halt": bool(halt.all()),
    }


def expected_minutes(interval: str) -> int:
    return int(pd.Timedelta(RESAMPLE_RULES[interval]) / MINUTE)




@dataclass
class SilverMonth:
    """One month of typed bars of a monthly archive file (1h or 1d) plus what was done to get there."""

    bars: pd.DataFrame
    duplicates_dropped: int
    missing_bars: list[pd.Timestamp] = field(default_factory=list)


def month_bounds(month: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(month.replace(day=1), tz="UTC")
    return start, start + pd.offsets.MonthBegin(1)


def silver_klines_history(raw: pd.DataFrame, month: dt.date, interval: str, source: str,
                          available_from: pd.Timestamp | None = None) -> SilverMonth:
    """Type and validate one month of archive `interval` klines (monthly 1h or 1d file, as parsed with KLINES).

    Every bar must open on the interval's grid inside the month and close one interval later (its last millisecond,
    or microsecond); exact duplicates are dropped and counted, conflicting ones refused. Bars missing from the month
    are listed (from `available_from` on: the instrument's listing), never invented."""
    step = HISTORY_INTERVALS.get(interval)
    if step is None:
        raise BarDataError(f"{source}: interval {interval!r} is not read as history; use one of {list(HISTORY_INTERVALS)}")
    if raw.empty:
        raise BarDataError(f"{source}: no kline rows for {month:%Y-%m}; re-fetch the file or check the archive")
    start, end = month_bounds(month)
    outside = raw[(raw["open_time"] < start) | (raw["open_time"] >= end)]
    if len(outside):
        raise BarDataError(f"{source}: {len(outside)} rows fall outside {month:%Y-%m} (first open_time "
                           f"{outside['open_time'].iloc[0]}); the file does not belong to this partition: check the "
                           "file name and the archive path")
    off_grid = (raw["open_time"] - start) % step != pd.Timedelta(0)
    if off_grid.any():
        raise BarDataError(f"{source}: open_time {raw.loc[off_grid, 'open_time'].iloc[0]} is not on the {interval} "
                           f"grid ({int(off_grid.sum())} rows): these are not {interval} klines; check the interval "
                           "in the path")
    ends = raw["close_time"] - raw["open_time"]
    bad_close = ~ends.isin([step - o for o in _CLOSE_OFFSETS])
    if bad_close.any():
        row = raw[bad_close].iloc[0]
        raise BarDataError(f"{source}: close_time {row['close_time']} does not end the {interval} bar opened at "
                           f"{row['open_time']} ({int(bad_close.sum())} rows): these are not {interval} klines; check "
                           "the interval in the path")
    df = pd.DataFrame({
        "open_time": raw["open_time"], "open": raw["open"].astype("float64"), "high": raw["high"].astype("float64"),
        "low": raw["low"].astype("float64"), "close": raw["close"].astype("float64"),
        "volume": raw["volume"].astype("float64"), "quote_volume": raw["quote_volume"].astype("float64"),
        "trades": raw["count"].astype("int64"), "taker_buy_volume": raw["taker_buy_volume"].astype("float64"),
        "taker_buy_quote_volume": raw["taker_buy_quote_volume"].astype("float64")})
    before = len(df)
    df = df.drop_duplicates()
    conflicting = df[df["open_time"].duplicated(keep=False)]
    if len(conflicting):
        times = sorted(conflicting["open_time"].unique())[:5]
        raise BarDataError(f"{source}: {conflicting['open_time'].nunique()} {interval} bars appear with different "
                           f"values (first: {', '.join(str(t) for t in times)}); the file is inconsistent: re-fetch it "
                           "or report it upstream")
    df = df.sort_values("open_time", kind="stable").reset_index(drop=True)
    df["is_halt"] = flag_halts(df)
    first = max(start, available_from) if available_from is not None else start
    first = first.ceil(step) if step < pd.Timedelta(days=1) else first.ceil("D")
    expected = pd.date_range(first, end, freq=step, inclusive="left")
    missing = list(expected.difference(pd.DatetimeIndex(df["open_time"])))
    return SilverMonth(bars=df, duplicates_dropped=before - len(df), missing_bars=missing)


AGREEMENT_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume",
                     "taker_buy_quote_volume")
AGREEMENT_RTOL = 1e-9  # the archive's decimals against sums of the 1m file's decimals: equal but for float rounding


def disagreements(history: pd.DataFrame, built: pd.DataFrame, interval: str,
                  rtol: float = AGREEMENT_RTOL) -> pd.DataFrame:
    """Bars present in both the archive's `history` and the `interval` bars `built` from 1m (complete ones only:
    every minute there) whose values differ beyond `rtol`: one row per (open_time, column) with both values;
    `attrs["bars_compared"]` counts the bars compared."""
    complete = built[built["minutes"] == expected_minutes(interval)]
    if complete.empty:  # nothing built from 1m here (or no such table yet): nothing to compare
        out = pd.DataFrame(columns=["open_time", "column", "archive", "from_1m"])
        out.attrs["bars_compared"] = 0
        return out
    both = history.merge(complete, on="open_time", suffixes=("_archive", "_1m"))
    rows = []
    for c in AGREEMENT_COLUMNS:
        a, b = both[f"{c}_archive"].astype(float), both[f"{c}_1m"].astype(float)
        bad = ~np.isclose(a, b, rtol=rtol, atol=1e-12)
        rows += [{"open_time": t, "column": c, "archive": x, "from_1m": y}
                 for t, x, y in zip(both.loc[bad, "open_time"], a[bad], b[bad])]
    out = pd.DataFrame(rows, columns=["open_time", "column", "archive", "from_1m"])
    out.attrs["bars_compared"] = len(both)
    return out.sort_values(["open_time", "column"]).reset_index(drop=True)
