"""The feature window: which silver tables the features read, how far back they warm up, and the features computed
from only what was known at a cut-off. Gold and the live trading path both compute their features here."""

from __future__ import annotations

import math

import pandas as pd

from btc_assets.lib.research.features import WARMUP_BARS_1M, checks, compute_features, pit
from btc_assets.lib.research.features.compute import compute_rows
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
    # 5m/15m/1h are required; 4h/1d (newer tables) are read where they exist, else their features are null and
    # null_reasons says why
    higher = {i: read_window(conn, f"silver.klines_{i}", "open_time", start, end)
              for i in ("5m", "15m", "1h", *[t for t in ("4h", "1d") if table_exists(conn, f"silver.klines_{t}")])
              } if higher_timeframes else {}
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


_HIGHER = {"klines_5m", "klines_15m", "klines_1h", "klines_4h", "klines_1d"}
_PERIOD = {"klines_5m": 5, "klines_15m": 15, "klines_1h": 60, "klines_4h": 240, "klines_1d": 1440, "metrics": 5}


def _history() -> dict[str, pd.Timedelta]:
    """How far back each source must reach before a row for that row to equal the full computation: the longest
    warm-up of the features reading it plus two of its periods (a day for funding, settled every 8 hours). A
    feature mixing 1m bars with a higher timeframe counts its warm-up on the higher timeframe (its 1m part is an
    indicator of the same kind as the 1m-only ones), so the 1m grid reaches back the longest 1m-only warm-up."""
    from btc_assets.lib.research.features import FEATURES

    out: dict[str, int] = {}
    for f in FEATURES:
        for src in f.sources:
            if src == "klines_1m" and set(f.sources) & _HIGHER:
                continue
            margin = 1440 if src == "funding_rates" else 2 * _PERIOD.get(src, 1)
            out[src] = max(out.get(src, 0), f.warmup_bars_1m + margin)
    return {k: pd.Timedelta(minutes=v) for k, v in out.items()}


HISTORY = _history()
RECENT_SPAN = max(HISTORY.values())  # the nominal history of a recent_features computation


def recent_features(one: pd.DataFrame, higher: dict[str, pd.DataFrame], first: pd.Timestamp,
                    cutoff: pd.Timestamp, history_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """The feature rows of the 1m bars opening in [first, cutoff), computed from the shortest history they need
    (HISTORY: about a day of 1m bars instead of the whole warm-up, and each family only the 1m bars it needs:
    compute_rows) -- what the live path does for a new bar, a few ms instead of recomputing the window. Only inputs available by `cutoff` are used; the rows equal those of
    features_until over the full window (tested, and checked live by live_features_match_batch). The inputs must
    reach back HISTORY[source] before `first`. `history_start`: the first 1m bar there is at or after
    first - RECENT_SPAN (warm-up counts from it, as in the full computation; None: a full RECENT_SPAN exists)."""
    grid_from = first - HISTORY["klines_1m"]
    frames = pit.cut_to(checks.frames_of(one, higher, None), cutoff)
    known = frames.pop("klines_1m")
    i0 = int(known["open_time"].searchsorted(grid_from))
    return compute_rows(known.iloc[i0:], {k.removeprefix("klines_"): v for k, v in frames.items()}, first,
                        history_start=max(first - RECENT_SPAN, history_start) if history_start is not None
                        else first - RECENT_SPAN)
