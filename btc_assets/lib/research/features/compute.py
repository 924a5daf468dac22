"""compute_features: runs every family on the input frames and assembles one row per 1m bar.

Each family module declares FEATURES and a compute(ctx) that returns arrays aligned to the 1m bars. Features of
a family whose source frame is absent are null, and `null_reasons` says why; values before a feature's own
warm-up are null too (never an unconverged number), so any value present is exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.registry import FAMILIES, FEATURES, GRID_RUNS, ROW_WARMUP_BARS_1M

MINUTE = pd.Timedelta(minutes=1)


@dataclass
class Bars:
    """One timeframe's OHLCV as float64 arrays, with each bar's availability time (ns)."""

    tf: str
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    taker_buy_volume: np.ndarray
    avail_ns: np.ndarray

    @classmethod
    def from_frame(cls, df: pd.DataFrame, tf: str) -> Bars:
        d = _sorted(df, "open_time")
        src = pit.SOURCES[f"klines_{tf}"]
        cols = {c: pit.column(d, c, "float64") for c in src.columns}
        return cls(tf=tf, avail_ns=src.available_ns(d), **cols)


@dataclass
class Context:
    """What a family's compute() sees: the 1m bars, the higher bars and the extra sources, all sorted."""

    one: Bars  # the 1m grid (a bar's open time is its availability less a minute)
    bars: dict[str, Bars]
    sources: dict[str, pd.DataFrame]
    cache: dict = field(default_factory=dict)
    # (source, column, dtype) -> that column of sources[source] as an array; (source, "@ns", "int64") is the time
    # column in UTC nanoseconds. Filled on first use, from `column_source` when given (a caller that already holds
    # the arrays, the point-in-time audit: it returns them, or None to read the frame).
    columns: dict = field(default_factory=dict)
    column_source: Callable[[str, str, str | None], np.ndarray | None] | None = None

    @property
    def at_ns(self) -> np.ndarray:
        return self.one.avail_ns

    @property
    def n(self) -> int:
        return len(self.one.close)

    def on_1m(self, tf: str, values: np.ndarray) -> np.ndarray:
        """Values of timeframe tf attached to each 1m row as of its availability (the last closed tf bar)."""
        if tf == "1m":
            return values
        if ("asof", tf) not in self.cache:
            idx = pit.asof_index(self.at_ns, self.bars[tf].avail_ns)
            none = idx < 0
            self.cache[("asof", tf)] = (np.maximum(idx, 0), none if none.any() else None)
        rows, none = self.cache[("asof", tf)]
        if len(values) == 0:
            return np.full(len(rows), np.nan)
        out = np.asarray(values, dtype="float64")[rows]  # pit.take, with its row index and gaps worked out once
        if none is not None:
            out[none] = np.nan
        return out

    def source(self, name: str) -> pd.DataFrame | None:
        return self.sources.get(name)

    def column(self, name: str, col: str, dtype: str | None = "float64") -> np.ndarray:
        """Column `col` of source `name` as an array (float64 unless dtype says otherwise; None keeps its own)."""
        key = (name, col, dtype)
        if key not in self.columns:
            got = self.column_source(name, col, dtype) if self.column_source is not None else None
            if got is None:
                got = pit.column(self.sources[name], col, dtype)
            self.columns[key] = got
        return self.columns[key]

    def time_ns(self, name: str) -> np.ndarray:
        """The time column of source `name` in UTC nanoseconds."""
        key = (name, "@ns", "int64")
        if key not in self.columns:
            got = self.column_source(name, "@ns", "int64") if self.column_source is not None else None
            self.columns[key] = got if got is not None else pit.column_ns(self.sources[name],
                                                                           pit.SOURCES[name].time_column)
        return self.columns[key]

    def available_ns(self, name: str) -> np.ndarray:
        """When each row of source `name` is available by its declaration (pit.SOURCES), in UTC nanoseconds."""
        return self.time_ns(name) + pit.SOURCES[name].delay.value


def _sorted(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """df in time order (the frame itself when it already is, the usual case for silver reads; every reader takes
    its rows by position, never by index label)."""
    t = pit.column_ns(df, column)
    if len(t) < 2 or (t[1:] >= t[:-1]).all():
        return df
    return df.sort_values(column, kind="stable").reset_index(drop=True)


def _split_inputs(higher: dict | None, sources: dict | None) -> tuple[dict, dict]:
    """Non-empty higher bars by timeframe and extra sources by name, their columns verified.

    `higher` may also carry extra sources by name (gold's load_bars does, so that callers that only pass
    `higher`, like the live trading path, compute the very same features as gold).
    """
    bars_by_tf, extra = {}, {}
    for key, df in {**(higher or {}), **(sources or {})}.items():
        name = key if key in pit.SOURCES else f"klines_{key}"
        src = pit.SOURCES.get(name)
        if src is None:
            raise KeyError(f"compute_features: unknown input {key!r}; declared sources are {sorted(pit.SOURCES)} "
                           "(declare new ones in btc_assets/lib/research/features/pit.py)")
        if df is None or df.empty:
            continue
        missing = [c for c in (src.time_column, *src.columns) if c not in df.columns]
        if missing:
            raise ValueError(f"compute_features: input {name} (table {src.table}) lacks columns {missing}; "
                             "fix the silver table or the declaration in btc_assets/lib/research/features/pit.py")
        if name.startswith("klines_"):
            bars_by_tf[name.removeprefix("klines_")] = df
        else:
            extra[name] = df
    return bars_by_tf, extra


def null_reasons(higher: dict[str, pd.DataFrame] | None, sources: dict[str, pd.DataFrame] | None) -> dict[str, str]:
    """Source name -> why it is absent (the features reading it are null). Empty when every source is present."""
    bars_by_tf, extra = _split_inputs(higher, sources)
    have = {f"klines_{k}" for k in bars_by_tf} | set(extra)
    reasons = {}
    for name, src in pit.SOURCES.items():
        if name != "klines_1m" and name not in have:
            why = "live data only (no archive)" if src.live_only else f"table {src.table} absent or empty here"
            reasons[name] = f"{why}: features reading {name} are null"
    return reasons


def compute_features(bars_1m: pd.DataFrame, higher: dict[str, pd.DataFrame] | None = None,
                     sources: dict[str, pd.DataFrame] | None = None,
                     timings: dict[str, float] | None = None,
                     history_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Features for every 1m bar of `bars_1m` (UTC open_time), with `higher` {"5m": df, ...} bars and `sources`.

    sources: extra frames by pit.SOURCES name (order_flow_1m, book_depth, metrics, funding_rates, mark_price_1m,
    index_price_1m, premium_index_1m, liquidations); absent ones give null features (see null_reasons).
    Returns open_time, available_at, one column per feature and `warmed_up` (ROW_WARMUP_BARS_1M bars of history
    preceded the row; slower features are null until their own warm-up). timings, if given, gets seconds per family.
    history_start: when the inputs' history begins, if earlier than the first 1m bar (window.recent_features: the
    higher timeframes and sources reach back as far as their features need, the 1m grid only as far as its own);
    warm-up is counted from it.
    """
    bars_by_tf, extra = _split_inputs(higher, sources)
    b = _sorted(bars_1m, "open_time")
    one = Bars.from_frame(b, "1m")
    ctx = Context(one=one,
                  bars={"1m": one} | {k: Bars.from_frame(v, k) for k, v in bars_by_tf.items()},
                  sources={k: _sorted(v, pit.SOURCES[k].time_column) for k, v in extra.items()})
    have = {f"klines_{k}" for k in ctx.bars} | set(ctx.sources)
    values: dict[str, np.ndarray] = {}
    for family, module in FAMILIES.items():
        t0 = time.perf_counter()
        values.update(module.compute(ctx))
        if timings is not None:
            timings[family] = timings.get(family, 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    out = _assemble(values, have, ctx.at_ns, _origin(ctx.at_ns, history_start), b["open_time"])
    if timings is not None:
        timings["assembly"] = timings.get("assembly", 0.0) + time.perf_counter() - t0
    return out


def _origin(at_ns: np.ndarray, history_start: pd.Timestamp | None) -> int:
    """The close of the first bar of history (warm-up counts from it): the first 1m bar's, or history_start's."""
    origin = int(at_ns[0]) if len(at_ns) else 0
    if history_start is not None and len(at_ns):
        origin = min(origin, int(pd.Timestamp(history_start).value) + MINUTE.value)  # a bar's at_ns is its close
    return origin


def _assemble(values: dict[str, np.ndarray], have: set[str], at_ns: np.ndarray, origin: int,
              open_time: pd.Series) -> pd.DataFrame:
    """The feature frame of the rows closing at at_ns: a feature whose source is absent is null, and so is every value
    before the feature's own warm-up counted from `origin`."""
    history = (at_ns - origin) // MINUTE.value if len(at_ns) else np.zeros(0, dtype="int64")
    # One (features x rows) block, handed to pandas transposed: the frame is built without copying 100+ columns.
    block = np.empty((len(FEATURES), len(at_ns)))
    for i, f in enumerate(FEATURES):
        v = values.get(f.name)
        if v is None or not set(f.sources) <= have:
            block[i] = np.nan
            continue
        block[i] = v
        # Rows are in time order, so "before the warm-up" is a prefix: null it (never an unconverged value).
        block[i, : np.searchsorted(history, f.warmup_bars_1m)] = np.nan
    out = pd.DataFrame(block.T, columns=[f.name for f in FEATURES], copy=False)
    # the column's own array (aligned by position), not .to_numpy(): a tz-aware column would go through an object
    # array of Timestamps
    open_time = open_time.array
    out.insert(0, "open_time", open_time)
    out.insert(1, "available_at", open_time + MINUTE)
    out["warmed_up"] = history >= ROW_WARMUP_BARS_1M
    return out


def compute_rows(bars_1m: pd.DataFrame, higher: dict[str, pd.DataFrame] | None, first: pd.Timestamp,
                 history_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """compute_features' rows for the 1m bars opening at or after `first` (a few: the live decision's new bars),
    each family computed only on the 1m bars those rows need (registry.GRID_RUNS: its features' longest 1m
    warm-up before `first`, in two runs) instead of the whole 1m input. Higher timeframes and extra sources (in
    `higher`, by name, as gold's load_bars passes them) are used whole: the caller bounds them. The values equal the
    full computation's within the warm-up's convergence (spec.CONVERGENCE; tested). `history_start` as in
    compute_features."""
    bars_by_tf, extra = _split_inputs(higher, None)
    b = _sorted(bars_1m, "open_time")
    one = Bars.from_frame(b, "1m")
    i_first = int(np.searchsorted(one.avail_ns, int(pd.Timestamp(first).value) + MINUTE.value))
    higher_bars = {k: Bars.from_frame(v, k) for k, v in bars_by_tf.items()}
    sorted_sources = {k: _sorted(v, pit.SOURCES[k].time_column) for k, v in extra.items()}
    columns: dict = {}  # the sources' columns, converted once for both runs
    values: dict[str, np.ndarray] = {}
    have: set[str] = set()
    for grid, families in GRID_RUNS:
        lo = max(0, i_first - grid + 1)
        part = Bars(tf="1m", **{c: getattr(one, c)[lo:] for c in (*pit.SOURCES["klines_1m"].columns, "avail_ns")})
        ctx = Context(one=part, bars={"1m": part} | higher_bars, sources=sorted_sources, columns=columns)
        have = {f"klines_{k}" for k in ctx.bars} | set(ctx.sources)
        for family in families:
            values.update({n: np.asarray(v, dtype="float64")[i_first - lo:]
                           for n, v in FAMILIES[family].compute(ctx).items()})
    return _assemble(values, have, one.avail_ns[i_first:], _origin(one.avail_ns, history_start),
                     b["open_time"].iloc[i_first:])
