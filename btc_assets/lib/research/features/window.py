"""The feature window: which silver tables the features read, how far back they warm up, and the features computed
from only what was known at a cut-off. Gold and the live trading path both compute their features here."""

from __future__ import annotations

import math

import pandas as pd

from btc_assets.lib.research.features import WARMUP_BARS_1M, checks, compute_features, pit
from btc_assets.lib.storage.warehouse import read_window, table_exists

# Days of silver read before a day to warm its indicators up: the slowest feature's warm-up (1h MACD signal and
# ADX, ~13.3 days), rounded up to whole days.
WARMUP_DAYS = math.ceil(WARMUP_BARS_1M / 1440)
WARMUP = pd.Timedelta(days=WARMUP_DAYS)
# Tables beyond the klines (order flow, book, metrics, funding, mark/index/premium, live book and liquidations).
EXTRA_SOURCES = [s for s in pit.SOURCES.values() if not s.name.startswith("klines_")]


def load_bars(conn, start: pd.Timestamp, end: pd.Timestamp,
              higher_timeframes: bool = True) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """1m bars and, in the second value, the 5m/15m/1h bars and every extra source table that exists, in [start, end).

    Extra sources are keyed by their pit.SOURCES name; compute_features accepts them there, so every caller of
    load_bars (gold and the live trading path) computes the very same features. Without `higher_timeframes` the
    caller builds 5m/15m/1h itself (the live path, from 1m bars silver does not have yet).
    """
    one = read_window(conn, "silver.klines_1m", "open_time", start, end)
    higher = {i: read_window(conn, f"silver.klines_{i}", "open_time", start, end)
              for i in ("5m", "15m", "1h")} if higher_timeframes else {}
    for src in EXTRA_SOURCES:
        if table_exists(conn, src.table):
            # A source row is read from its own time column; the as-of join decides when a row may be used.
            higher[src.name] = read_window(conn, src.table, src.time_column, start - src.delay, end)
    return one, higher


def features_until(one: pd.DataFrame, higher: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> pd.DataFrame:
    """Features computed only from inputs available by `cutoff` (a bar is known at its close)."""
    frames = pit.cut_to(checks.frames_of(one, higher, None), cutoff)
    known = frames.pop("klines_1m")
    return compute_features(known, {k.removeprefix("klines_"): v for k, v in frames.items()})
