"""The point-in-time audit: features recomputed from silver cut by the data's own timestamps, not by pit.SOURCES.

The features join every source by the availability rules declared in pit.SOURCES. A wrong declaration (a 15m bar
declared known at its open) would pass any check that cuts the data with the same declarations, so this module
never reads them to decide what was known when. What a timestamp *means* is stated here once per table (it is a
property of the Binance dataset, see docs/DATA.md), and every number is measured from the rows themselves:

- a bar or 1m aggregate keyed by its period start (klines, order flow, mark/index/premium) exists only after
  open_time + its period, the period being the table's own spacing of open_time;
- a book snapshot, a funding settlement or a liquidation exists at its own time;
- a 5-minute metrics row exists once the 5 minutes its taker long/short volume ratio describes have passed: that
  window is found by matching the ratio with the taker volumes of the 1m klines (stamp = end or start of the
  window); when the match is not conclusive the later of the two is assumed and the audit says so.

Two checks are built on these observed availabilities:

- `declaration_leaks`: every row of every source, observed availability against the declared one; a source
  declared available before its data says it can be is a leak of that many minutes, named with the features
  that read it;
- `recompute_mismatches`: at cut-offs, features recomputed from only the rows observed available at the cut-off
  (physically cut, so a family that bypassed the declared join is caught too) against the stored ones. Cut-offs
  are every 5m close of the partition, just before (the bar ending there must not be visible yet) and just after
  (it must be used), for the features reading the sources that gain a row there (5m/15m/1h klines, metrics), plus
  a sampled cut-off per UTC day where every feature of every family is recomputed from the physically cut data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from btc_assets.lib.research.features import pit, registry
from btc_assets.lib.research.features.compute import Bars, Context
from btc_assets.lib.research.features.registry import BY_NAME, FAMILIES, FEATURES, HIGHER_KLINES

MINUTE = pd.Timedelta(minutes=1)
FIVE = pd.Timedelta(minutes=5)
# What each silver table's time column means: "period" = start of the period the row summarises,
# "instant" = the moment the row describes, "metrics" = a 5-minute metrics stamp (see measure_metrics_delay).
MEANING: dict[str, tuple[str, str]] = {
    "klines_1m": ("open_time", "period"), "klines_5m": ("open_time", "period"),
    "klines_15m": ("open_time", "period"), "klines_1h": ("open_time", "period"),
    "klines_4h": ("open_time", "period"), "klines_1d": ("open_time", "period"),
    "order_flow_1m": ("open_time", "period"), "mark_price_1m": ("open_time", "period"),
    "index_price_1m": ("open_time", "period"), "premium_index_1m": ("open_time", "period"),
    "book_depth": ("snapshot_time", "instant"), "funding_rates": ("funding_time", "instant"),
    "liquidations": ("time", "instant"), "metrics": ("create_time", "metrics"),
}
# The sources whose new rows arrive on the 5-minute grid: the boundary cut-offs recompute the features reading them.
BOUNDARY_SOURCES = ("klines_5m", "klines_15m", "klines_1h", "klines_4h", "klines_1d", "metrics")
MEASURE_ROWS = 576  # metrics rows (two days of 5-minute stamps) the measured publication delay is decided on
METRICS_MATCH = 0.02  # median relative error below which the taker-ratio match decides the metrics window
_HIGHER_KLINES = HIGHER_KLINES
SHORT_GRID = registry.SHORT_GRID
# The sampled cut-off recomputes every family in registry.GRID_RUNS' two runs (short and long 1m grid).
SAMPLED_RUNS = registry.GRID_RUNS
SAMPLED_HISTORY_1M = max(grid for grid, _ in SAMPLED_RUNS)
# The boundary cut-offs are recomputed in one batched run where a row just before a close sees the boundary sources
# SHIFT later and a row just after SHIFT earlier: for a row whose cut-off has no boundary-source row becoming
# available within SHIFT of it (checked), that is exactly the data physically cut at its cut-off.
SHIFT = pd.Timedelta(seconds=30)


_array = pit.column
_time_ns = pit.column_ns
_ns = pit.ns


@njit(cache=True)
def _nondecreasing(t: np.ndarray) -> bool:
    for i in range(1, len(t)):
        if t[i] < t[i - 1]:
            return False
    return True


@njit(cache=True)
def _differs(stored: np.ndarray, recomputed: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Where a stored value is a number and the recomputed one is not within tolerance of it (np.isclose's rule,
    |stored - recomputed| <= atol + rtol * |recomputed|; a recomputed NaN or infinity differs), in one pass."""
    out = np.zeros(stored.shape, np.bool_)
    for i in range(stored.shape[0]):
        for j in range(stored.shape[1]):
            x, y = stored[i, j], recomputed[i, j]
            if np.isfinite(x):
                out[i, j] = not (np.isfinite(y) and abs(x - y) <= atol + rtol * abs(y))
    return out


def _ascending(t: np.ndarray) -> bool:
    if len(t) > 4096:  # numpy's vectorised compare is ~4x the compiled loop's speed on a long column (the book)
        return not bool((t[1:] < t[:-1]).any())
    return bool(len(t) < 2 or _nondecreasing(np.ascontiguousarray(t, dtype=np.int64)))


@njit(cache=True)
def _step_summary(t: np.ndarray) -> tuple[int, int, bool]:
    """(smallest step, how many steps equal it, whether any step is negative) of times t, in one pass."""
    if len(t) < 2:
        return 0, 0, False
    lo, count, negative = t[1] - t[0], 0, False
    for i in range(1, len(t)):
        d = t[i] - t[i - 1]
        if d < 0:
            negative = True
        if d < lo:
            lo, count = d, 1
        elif d == lo:
            count += 1
    return lo, count, negative


@njit(cache=True)
def _bucket_ratios(t1: np.ndarray, volume: np.ndarray, taker: np.ndarray, five: int):
    """Taker-buy / taker-sell volume of each 5-minute bucket of the time-ordered 1m bars (start ns, ratio), the
    buckets with a positive sell volume and a finite ratio only (summed in row order, as np.bincount does)."""
    n = len(t1)
    starts, ratio = np.empty(n, np.int64), np.empty(n)
    k, i = 0, 0
    while i < n:
        b = t1[i] // five
        buy, sell = 0.0, 0.0
        while i < n and t1[i] // five == b:
            buy += taker[i]
            sell += volume[i] - taker[i]
            i += 1
        if sell > 0:
            r = buy / sell
            if np.isfinite(r):
                starts[k], ratio[k] = b * five, r
                k += 1
    return starts[:k], ratio[:k]


@njit(cache=True)
def _median_error(stamp: np.ndarray, value: np.ndarray, starts: np.ndarray, ratio: np.ndarray,
                  shift: int) -> tuple[float, int]:
    """Median |value / ratio - 1| over the stamps whose window (starting at stamp + shift) is a bucket, and how
    many stamps matched."""
    errs = np.empty(len(stamp))
    k = 0
    for j in range(len(stamp)):
        s = stamp[j] + shift
        i = np.searchsorted(starts, s)
        if i < len(starts) and starts[i] == s:
            errs[k] = abs(value[j] / ratio[i] - 1.0)
            k += 1
    if k == 0:
        return np.nan, 0
    return np.median(errs[:k]), k


def _in_time_order(df: pd.DataFrame, t: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """df and its times t (int64 ns) in time order, stable; the frame as it is when it already is (the usual case)."""
    if _ascending(t):
        return df, t
    order = np.argsort(t, kind="stable")
    return df.iloc[order], t[order]


def minutes(td: pd.Timedelta) -> str:
    """A duration as people write it: '15 min', '1 h', '0 min', '1.5 s'."""
    sec = td.total_seconds()
    if sec % 3600 == 0 and sec:
        return f"{sec / 3600:g} h"
    return f"{sec / 60:g} min" if sec % 60 == 0 else f"{sec:g} s"


def measured_period(times) -> pd.Timedelta | None:
    """The table's own spacing: the median step between consecutive distinct keys (None below 2 keys). On a grid
    with gaps (missing bars) the median is still the grid's step; it is never smaller than the grid's.
    `times`: the sorted times, or their int64 nanoseconds."""
    t = np.ascontiguousarray(times if isinstance(times, np.ndarray) else _ns(times), dtype=np.int64)
    return _period(t, *_step_summary(t)[:2])


def _period(t: np.ndarray, lo: int, count: int) -> pd.Timedelta | None:
    """measured_period of sorted times t whose smallest step is lo, taken `count` times (_step_summary)."""
    if lo > 0 and 2 * count > len(t) - 1:
        return pd.Timedelta(int(lo), unit="ns")  # most steps are the smallest one (the usual grid): the median
    d = np.diff(t)
    d = d[d > 0]
    if len(d) == 0:
        return None
    return pd.Timedelta(int(np.median(d)), unit="ns")


def measure_metrics_delay(metrics: pd.DataFrame, one: pd.DataFrame,
                          sorted_ns: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[pd.Timedelta, str]:
    """How long after create_time a metrics row's information is complete, measured against the 1m klines.

    The row's taker long/short volume ratio is taker-buy / taker-sell volume over 5 minutes; the candidates are the
    5 minutes ending at the stamp (delay 0) and the 5 minutes starting at it (delay 5 minutes). `sorted_ns`: both
    frames are in time order already, and these are their create_time and open_time in ns (observe has them).
    """
    if metrics is None or metrics.empty or one is None or one.empty:
        return FIVE, "not measurable (no metrics or no 1m klines): assumed 5 minutes (the later convention)"
    five = FIVE.value
    # the last MEASURE_ROWS metrics rows decide (two days: plenty for a median, and the check stays cheap)
    if sorted_ns is None:
        metrics, mt = _in_time_order(metrics, _time_ns(metrics, "create_time"))
        one, t1 = _in_time_order(one, _time_ns(one, "open_time"))
    else:
        mt, t1 = sorted_ns
    mt = mt[-MEASURE_ROWS:]
    lo = int(np.searchsorted(t1, mt[0] - 2 * five))
    # each 5-minute bucket of the 1m bars (in time order: one run each) and its taker buy/sell ratio
    starts, ratio = _bucket_ratios(np.ascontiguousarray(t1[lo:]), _array(one, "volume", "float64")[lo:],
                                   _array(one, "taker_buy_volume", "float64")[lo:], five)
    # one ratio per stamp (the last row of a repeated stamp), positive ones only
    last = np.append(mt[1:] != mt[:-1], True)
    value = _array(metrics, "sum_taker_long_short_vol_ratio", "float64")[-MEASURE_ROWS:][last]
    stamp = mt[last]
    stamp, value = stamp[value > 0], value[value > 0]
    errors = {}
    for delay in (pd.Timedelta(0), FIVE):
        # the window the ratio would describe starts at stamp + delay - 5 minutes
        err, matched = _median_error(np.ascontiguousarray(stamp), value, starts, ratio, delay.value - five)
        if matched >= 12:
            errors[delay] = float(err)
    if not errors:
        return FIVE, "not measurable (metrics and klines do not overlap): assumed 5 minutes (the later convention)"
    best = min(errors, key=errors.get)
    if errors[best] > METRICS_MATCH:
        return FIVE, (f"not conclusive (best median error {errors[best]:.1%} > {METRICS_MATCH:.0%}): "
                      "assumed 5 minutes (the later convention)")
    return best, (f"measured: the taker ratio describes the 5 minutes "
                  f"{'ending' if best == pd.Timedelta(0) else 'starting'} at create_time "
                  f"(median error {errors[best]:.2%})")


@dataclass
class Observed:
    """Each source's observed availability (ns, aligned with the frame sorted by its time column)."""

    frames: dict[str, pd.DataFrame]  # sorted by time column (read by position, never by index label)
    avail_ns: dict[str, np.ndarray]
    rules: dict[str, str]
    times: dict[str, np.ndarray] = field(default_factory=dict)  # each frame's time column, int64 ns

    _arrays: dict = field(default_factory=dict)
    _columns: dict = field(default_factory=dict)

    def time_ns(self, name: str) -> np.ndarray:
        if name not in self.times:
            self.times[name] = _time_ns(self.frames[name], MEANING[name][0])
        return self.times[name]

    def column_source(self, bounds: dict[str, tuple[int, int]]):
        """A Context.column_source serving rows lo:hi (bounds by source) of the sorted frames' columns: each column
        converted once per source, then sliced (a view) for every recomputation."""
        def get(name: str, col: str, dtype: str | None) -> np.ndarray | None:
            if name not in bounds:
                return None
            key = (name, col, dtype)
            if key not in self._columns:
                if col == "@ns":
                    if MEANING[name][0] != pit.SOURCES[name].time_column:
                        return None
                    self._columns[key] = self.time_ns(name)
                else:
                    self._columns[key] = _array(self.frames[name], col, dtype)
            lo, hi = bounds[name]
            return self._columns[key][lo:hi]
        return get

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The kline columns of a klines_* frame as float64 arrays (built once)."""
        if name not in self._arrays:
            self._arrays[name] = {c: _array(self.frames[name], c, "float64") for c in _KLINE_COLS}
        return self._arrays[name]


def observe(frames: dict[str, pd.DataFrame]) -> Observed:
    """The observed availability of every non-empty source frame (klines_1m included)."""
    sorted_frames, avail, rules, times = {}, {}, {}, {}
    # klines_1m first: the metrics delay is measured against it
    for name, df in sorted(frames.items(), key=lambda kv: kv[0] != "klines_1m"):
        if df is None or df.empty:
            continue
        if name not in MEANING:
            raise KeyError(f"point-in-time audit: no stated meaning for the time column of {name!r}; add it to "
                           "MEANING in btc_assets/lib/research/features/audit.py")
        col, kind = MEANING[name]
        t = _time_ns(df, col)
        if kind == "period":
            lo, count, negative = _step_summary(np.ascontiguousarray(t, dtype=np.int64))  # one pass over the steps
            if negative:  # not in time order: sorted first (stable)
                df, t = _in_time_order(df, t)
                lo, count, negative = _step_summary(t)
            d, period = df, _period(t, lo, count)
        else:
            d, t = _in_time_order(df, t)
        times[name] = t
        if kind == "period":
            if period is None:  # a single row: its period cannot be measured; the name's interval is the only hint
                period = pd.Timedelta(name.split("_")[-1].replace("m", "min"))
            avail[name], rules[name] = t + period.value, f"{col} + {minutes(period)} (the table's own spacing)"
        elif kind == "metrics":
            if "klines_1m" in sorted_frames:
                delay, why = measure_metrics_delay(d, sorted_frames["klines_1m"], (t, times["klines_1m"]))
            else:
                delay, why = measure_metrics_delay(d, None)
            avail[name], rules[name] = t + delay.value, f"create_time + {minutes(delay)}: {why}"
        else:
            avail[name], rules[name] = t, f"{col} (the row's own time)"
        sorted_frames[name] = d
    return Observed(sorted_frames, avail, rules, times)


def declaration_leaks(frames: dict[str, pd.DataFrame], observed: Observed, declared: dict) -> list[str]:
    """Sources declared available before their data says they can be: source, lead, rows and features reading it.

    `declared` is pit.SOURCES (passed in so that this module never consults it for the cut-offs).
    """
    out = []
    for name, df in observed.frames.items():
        src = declared.get(name)
        if src is None or df.empty:
            continue
        if src.time_column == MEANING[name][0]:
            # both are the same column plus a constant: one subtraction decides every row
            lead_ns = int(observed.avail_ns[name][0] - observed.time_ns(name)[0] - src.delay.value)
            n = len(df) if lead_ns > 0 else 0
            early_max = lead_ns
        else:
            early = observed.avail_ns[name] - src.available_ns(df)
            n, early_max = int((early > 0).sum()), int(early.max())
        if n:
            lead = pd.Timedelta(early_max, unit="ns")
            readers = [f.name for f in FEATURES if name in f.sources]
            out.append(f"{name}: declared available \"{src.rule}\" but its data says {observed.rules[name]}; "
                       f"{n:,} rows usable up to {minutes(lead)} early by {len(readers)} features "
                       f"({', '.join(readers[:6])}{' ...' if len(readers) > 6 else ''}); fix the declaration in "
                       "btc_assets/lib/research/features/pit.py SOURCES")
    return out


_KLINE_COLS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume")
_SOURCES_OF = {f.name: frozenset(f.sources) for f in FEATURES}
_NAMES_OF = {fams: [f.name for f in FEATURES if f.family in fams] for _, fams in SAMPLED_RUNS}
# the features the boundary cut-offs recompute: those reading boundary sources only, and their families
_BOUNDARY_NAMES = [f.name for f in FEATURES if _SOURCES_OF[f.name] & set(BOUNDARY_SOURCES)
                   and not _SOURCES_OF[f.name] - set(BOUNDARY_SOURCES)]
_BOUNDARY_FAMILIES = list(dict.fromkeys(BY_NAME[n].family for n in _BOUNDARY_NAMES))


_PERIOD_MINUTES = {"klines_5m": 5, "klines_15m": 15, "klines_1h": 60, "klines_4h": 240, "klines_1d": 1440,
                   "metrics": 5}


def _period_minutes(name: str) -> int:
    return _PERIOD_MINUTES.get(name, 1)


def windows(names: list[str]) -> dict[str, int]:
    """Minutes of each source's history a recomputation of `names` needs: their longest warm-up plus two periods
    (a day for funding, settled every 8 hours). The same few name lists come back on every partition: each is
    worked out once (a copy is returned, so a caller may change it)."""
    return dict(_windows(tuple(names)))


@functools.lru_cache(maxsize=64)
def _windows(names: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names:
        for src in _SOURCES_OF[n]:
            margin = 1440 if src == "funding_rates" else 2 * _period_minutes(src)
            out[src] = max(out.get(src, 0), BY_NAME[n].warmup_bars_1m + margin)
    return out


class _Rows:
    """Rows lo:hi of a sorted source frame, sliced only if a family reads a column the audit's column source does not
    serve (families read sources through Context.column, which the audit serves from arrays it converted once)."""

    def __init__(self, frame: pd.DataFrame, lo: int, hi: int):
        self.frame, self.lo, self.hi = frame, lo, hi

    def __getitem__(self, col: str) -> pd.Series:
        return self.frame[col].iloc[self.lo:self.hi]

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def empty(self) -> bool:
        return self.hi <= self.lo


def recompute_row(observed: Observed, t: pd.Timestamp, grid_bars: int, families: list[str],
                  names: list[str]) -> dict[str, float]:
    """`names` (of the given families) for the 1m bar opening at t, from only the rows observed available at its
    close and within the history those features need (`windows`); the 1m grid holds grid_bars bars.

    No warm-up nulling: compare only where the stored value is not null.
    """
    close_ns = int((t + MINUTE).value)
    need = windows(names)
    bars: dict[str, Bars] = {}
    sources: dict[str, pd.DataFrame] = {}
    bounds: dict[str, tuple[int, int]] = {}
    last_open = None
    for name, df in observed.frames.items():
        if name != "klines_1m" and name not in need:
            continue  # a source none of the compared features reads: not needed for them
        avail = observed.avail_ns[name]
        hi = int(np.searchsorted(avail, close_ns, side="right"))
        if name == "klines_1m":
            lo = max(0, hi - grid_bars)
        else:
            lo = int(np.searchsorted(avail, close_ns - need[name] * MINUTE.value))
        if hi <= lo:
            continue
        if name.startswith("klines_"):
            arrays = observed.arrays(name)
            tf = name.removeprefix("klines_")
            bars[tf] = Bars(tf=tf, avail_ns=avail[lo:hi], **{c: arrays[c][lo:hi] for c in _KLINE_COLS})
            if tf == "1m":
                last_open = int(observed.time_ns(name)[hi - 1])
        else:
            sources[name] = _Rows(df, lo, hi)
            bounds[name] = (lo, hi)
    if last_open != close_ns - MINUTE.value:
        raise LookupError(f"no 1m bar opening at {t} among the rows observed available at its close: is "
                          "silver.klines_1m complete there?")
    ctx = Context(one=bars["1m"], bars=bars, sources=sources,
                  column_source=observed.column_source(bounds))
    have = {f"klines_{k}" for k in bars} | set(sources)
    wanted = set(names)
    values: dict[str, float] = {}
    for fam in families:
        for name, v in FAMILIES[fam].compute(ctx).items():
            if name in wanted and _SOURCES_OF[name] <= have:
                values[name] = float(v[-1]) if isinstance(v, np.ndarray) else float(np.asarray(v, dtype="float64")[-1])
    return values


def boundary_cutoffs(start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Open times (int64 ns, in time order) of the 1m bars just before and just after every 5m close in [start, end):
    the bar known one minute before the close and the bar known at the close (`cutoff_label` names them).

    The sources gaining a row at a close are the label's timeframes (5m, plus 15m and 1h at their closes) and the
    metrics stamp of that close."""
    lo, hi, five, minute = int(start.value), int(end.value), FIVE.value, MINUTE.value
    first = -(-(lo + five) // five) * five  # the first 5m close after start
    closes = np.arange(first, hi + 1, five, dtype=np.int64)
    t = np.column_stack([closes - 2 * minute, closes - minute]).ravel()
    return t[(t >= lo) & (t < hi)]


def _just_before(t_ns: np.ndarray) -> np.ndarray:
    """Which boundary cut-offs are the bar just before a close (the others are just after)."""
    return (t_ns + 2 * MINUTE.value) % FIVE.value == 0


def cutoff_label(t_ns: int) -> str:
    """'just before the 5m/15m close at 10:15' for a boundary cut-off's open time."""
    when = "before" if _just_before(np.array([t_ns]))[0] else "after"
    close = t_ns + (2 if when == "before" else 1) * MINUTE.value
    m = (close // MINUTE.value) % 60
    tag = "5m/15m/1h" if m == 0 else "5m/15m" if m % 15 == 0 else "5m"
    return f"just {when} the {tag} close at {(close // (60 * MINUTE.value)) % 24:02d}:{m:02d}"


def compare(stored: dict[str, float], values: dict[str, float], label: str, tolerance: dict) -> list[str]:
    """'name (family) at label: stored vs recomputed' for every recomputed feature whose stored value is not null
    (null = before its warm-up or source absent) and differs beyond tolerance."""
    names = [n for n in values if n in stored]
    a = np.array([stored[n] for n in names], dtype="float64")
    b = np.array([values[n] for n in names], dtype="float64")
    bad = np.isfinite(a) & ~np.isclose(a, b, equal_nan=True, **tolerance)
    return [f"{n} ({BY_NAME[n].family}) at {label}: stored {a[i]!r}, recomputed {b[i]!r}"
            for i, n in enumerate(names) if bad[i]]


def _grid_context(observed: Observed, rows_ns: np.ndarray, late_ns: np.ndarray, names: list[str]) -> Context:
    """A Context whose 1m grid is only the rows opening at rows_ns, each row's times (open and close) moved late_ns
    earlier: every join compares a row's time with a source row's, so each row sees the sources as if every one of
    their rows arrived late_ns later (earlier where negative). The sources are the history `names` need."""
    t1 = observed.time_ns("klines_1m")
    idx = np.searchsorted(t1, rows_ns)
    arrays = observed.arrays("klines_1m")
    one = Bars(tf="1m", avail_ns=observed.avail_ns["klines_1m"][idx] - late_ns,
               **{c: arrays[c][idx] for c in _KLINE_COLS})
    bars, sources, bounds = {"1m": one}, {}, {}
    first_ns = int(one.avail_ns.min()) if len(idx) else 0
    for name, minutes in windows(names).items():
        if name not in observed.frames:
            continue
        # only the history the compared features need before the first grid row (their warm-up, `windows`)
        lo = int(np.searchsorted(observed.avail_ns[name], first_ns - minutes * MINUTE.value))
        if name.startswith("klines_"):
            arr = {c: v[lo:] for c, v in observed.arrays(name).items()}
            bars[name.removeprefix("klines_")] = Bars(tf=name.removeprefix("klines_"),
                                                      avail_ns=observed.avail_ns[name][lo:], **arr)
        else:
            sources[name] = _Rows(observed.frames[name], lo, len(observed.frames[name]))
            bounds[name] = (lo, len(observed.frames[name]))
    return Context(one=one, bars=bars, sources=sources,
                   column_source=observed.column_source(bounds))


def _clear_of(observed: Observed, cutoffs_ns: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Cut-offs with no boundary-source row becoming available in (cutoff + lo, cutoff + hi]."""
    ok = np.ones(len(cutoffs_ns), bool)
    for name in BOUNDARY_SOURCES:
        if name in observed.avail_ns:
            a = observed.avail_ns[name]
            ok &= np.searchsorted(a, cutoffs_ns + hi, side="right") == np.searchsorted(a, cutoffs_ns + lo, side="right")
    return ok


def boundary_mismatches(stored: "StoredRows", observed: Observed, boundary: np.ndarray, tolerance: dict) -> list[str]:
    """Every boundary cut-off in one batched recomputation: a row just before a close sees the boundary sources as
    if they arrived SHIFT later, a row just after as if SHIFT earlier, so that a source row becoming available at the
    close is out of the first and in the second whatever the join's own comparison (the join is what is audited: a
    join reading a bar one minute early must not see it just before the close either). For a row with no
    boundary-source row becoming available within SHIFT of its close (checked per row) that is exactly the data
    physically cut at its close; a row where one does is recomputed from the physically cut data instead."""
    names, fams = _BOUNDARY_NAMES, _BOUNDARY_FAMILIES
    out: list[str] = []
    before = _just_before(boundary)
    cut = boundary + MINUTE.value
    exact = np.where(before, _clear_of(observed, cut, -SHIFT.value, 0), _clear_of(observed, cut, 0, SHIFT.value))
    grid = boundary[exact]
    if len(grid):
        ctx = _grid_context(observed, grid, np.where(before[exact], SHIFT.value, -SHIFT.value), names)
        have = {f"klines_{k}" for k in ctx.bars} | set(ctx.sources)
        values: dict[str, np.ndarray] = {}
        for fam in fams:
            values |= {n: np.asarray(v, float) for n, v in FAMILIES[fam].compute(ctx).items()
                       if n in names and _SOURCES_OF[n] <= have}
        cols = list(values)
        a = stored.block(grid, cols)
        b = np.column_stack([values[c] for c in cols]) if cols else np.zeros((len(grid), 0))
        bad = (_differs(a, b, tolerance.get("rtol", 1e-5), tolerance.get("atol", 1e-8)) if a.size
               else np.zeros(a.shape, bool))
        for i, j in zip(*np.nonzero(bad)):
            t = int(grid[i])
            out.append(f"{cols[j]} ({BY_NAME[cols[j]].family}) at {pd.Timestamp(t, tz='UTC')} "
                       f"({cutoff_label(t)}): stored {a[i, j]!r}, recomputed {b[i, j]!r}")
    for t in boundary[~exact]:  # an irregular stamp near this cut-off: the physically cut data, row by row
        ts = pd.Timestamp(int(t), tz="UTC")
        out += compare(stored.at(int(t)), recompute_row(observed, ts, 2, fams, names),
                       f"{ts} ({cutoff_label(int(t))})", tolerance)
    return out


class StoredRows:
    """The stored feature rows opening at the given times (int64 ns, in time order; those not stored are left out),
    as float arrays: each feature column is read only when asked for (the boundary cut-offs compare the boundary
    features at a few hundred rows, the sampled cut-offs every feature at a row or two)."""

    def __init__(self, stored: pd.DataFrame, t_ns: np.ndarray):
        every = _time_ns(stored, "open_time")
        order = None if _ascending(every) else np.argsort(every, kind="stable")
        if order is not None:
            every = every[order]
        i = np.minimum(np.searchsorted(every, t_ns), max(len(every) - 1, 0))
        found = (every[i] == t_ns) if len(every) else np.zeros(len(t_ns), bool)
        self.t_ns, i = t_ns[found], i[found]
        if order is not None:
            i = order[i]
        self.stored, self.positions = stored, i  # the frame's row of each of self.t_ns
        self.cols = [f.name for f in FEATURES]
        self._column: dict[str, np.ndarray] = {}
        self._block = _float_block(stored, self.cols)

    def column(self, name: str) -> np.ndarray:
        """Feature `name` at every row of self.t_ns (read from the frame's block once)."""
        if name not in self._column:
            self._column[name] = _array(self.stored, name, "float64")[self.positions]
        return self._column[name]

    def rows(self, t_ns: np.ndarray) -> np.ndarray:
        """The row of each time, -1 where there is none."""
        i = np.searchsorted(self.t_ns, t_ns)
        found = i < len(self.t_ns)
        found[found] = self.t_ns[i[found]] == t_ns[found]
        return np.where(found, i, -1)

    def __contains__(self, t) -> bool:
        return bool(self.rows(np.array([_ts_ns(t)]))[0] >= 0)

    def at(self, t) -> dict[str, float]:
        k = int(self.rows(np.array([_ts_ns(t)]))[0])
        row = int(self.positions[k])
        if self._block is not None:
            values, where = self._block
            return dict(zip(self.cols, values[where, row].tolist()))
        return {c: float(_array(self.stored, c)[row]) for c in self.cols}

    def block(self, t_ns: np.ndarray, cols: list[str]) -> np.ndarray:
        """Features `cols` at the rows opening at t_ns, one row per time and one column per feature."""
        r = self.rows(t_ns)
        if self._block is not None:
            values, where = self._block
            at = dict(zip(self.cols, where))
            return values[np.ix_([at[c] for c in cols], self.positions[r])].T
        out = np.empty((len(r), len(cols)))
        for j, c in enumerate(cols):
            out[:, j] = self.column(c)[r]
        return out


@functools.lru_cache(maxsize=16)
def _positions(columns: tuple, cols: tuple) -> np.ndarray | None:
    """Position of each of `cols` among a frame's `columns` (None if one is missing or a name repeats); the same
    few column lists come back on every partition."""
    pos = {c: i for i, c in enumerate(columns)}
    if len(pos) != len(columns) or any(c not in pos for c in cols):
        return None
    return np.array([pos[c] for c in cols], dtype=np.int64)


def _float_block(df: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(the 2-D float64 values holding every column of `cols`, each column's row in it) when the frame keeps them all
    in one block, as compute_features assembles them: a row or a few hundred rows of a hundred features are then one
    indexing operation instead of a column read each. None otherwise (a frame read back from a table, a pandas
    without the block manager): the caller reads column by column, the same values."""
    try:
        blocks = df._mgr.blocks
        at = _positions(tuple(df.columns), tuple(cols))
        if at is None:
            return None
        for blk in blocks:
            if blk.dtype != np.float64 or not isinstance(blk.values, np.ndarray) or blk.values.ndim != 2:
                continue
            locs = blk.mgr_locs.as_array
            if len(locs) < len(cols):
                continue
            inverse = np.full(len(df.columns), -1, dtype=np.int64)
            inverse[locs] = np.arange(len(locs))
            where = inverse[at]
            if (where >= 0).all():
                return blk.values, where
    except (AttributeError, TypeError, ValueError):
        return None
    return None


def _ts_ns(t) -> int:
    return int(t) if isinstance(t, (int, np.integer)) else int(pd.Timestamp(t).value)


def recompute_mismatches(stored: pd.DataFrame, observed: Observed, start: pd.Timestamp, end: pd.Timestamp,
                         sampled: list[pd.Timestamp], tolerance: dict) -> tuple[list[str], dict]:
    """Mismatches at every boundary cut-off of [start, end) and at the sampled cut-offs, and what was covered."""
    boundary = boundary_cutoffs(start, end)
    sampled_ns = np.array(sorted({_ts_ns(t) for t in sampled}), dtype=np.int64)
    rows = StoredRows(stored, np.union1d(boundary, sampled_ns))
    boundary = boundary[rows.rows(boundary) >= 0]
    out = boundary_mismatches(rows, observed, boundary, tolerance)
    sampled = [t for t in sampled if t in rows]
    for t in sampled:
        values: dict[str, float] = {}
        for grid, fams in SAMPLED_RUNS:
            values |= recompute_row(observed, t, grid, list(fams), _NAMES_OF[fams])
        out += compare(rows.at(t), values, f"{t} (sampled, every family)", tolerance)
    covered = {"boundary_cutoffs": len(boundary), "sampled_cutoffs": len(sampled), "families": len(FAMILIES)}
    return out, covered
