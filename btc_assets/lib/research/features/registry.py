"""The feature registry: every family module, every feature once, and the warm-up lengths derived from them.

Nothing else lists features: computation, the gold pandera schema, the gold checks and docs/FEATURES.md all read
FEATURES. Import-time validation makes a typo in a declaration fail loudly instead of producing a silent null.
"""

from __future__ import annotations

from types import ModuleType

from btc_assets.lib.research.features import (
    calendar,
    higher_tf,
    momentum,
    order_book,
    perpetual,
    pit,
    price_action,
    structure,
    volatility,
    volume,
)
from btc_assets.lib.research.features.spec import Feature

FAMILIES: dict[str, ModuleType] = {m.FAMILY: m for m in (
    price_action, momentum, volatility, volume, order_book, structure, perpetual, calendar, higher_tf)}
FEATURES: tuple[Feature, ...] = tuple(f for m in FAMILIES.values() for f in m.FEATURES)
FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# What gold reads before a partition: the slowest feature's warm-up (1h ADX), in 1m bars.
WARMUP_BARS_1M: int = max(f.warmup_bars_1m for f in FEATURES)
# `warmed_up` marks rows with three days of history: every 1m/5m feature is exact by then; slower 15m/1h ones
# are null until their own warm-up has passed (only at the very start of the stored history).
ROW_WARMUP_BARS_1M: int = 3 * 1440


HIGHER_KLINES = frozenset({"klines_5m", "klines_15m", "klines_1h", "klines_4h", "klines_1d"})
# Sources whose features are computed on the source's own rows and only then taken as of each 1m row (funding: the
# mean of the last settlements; metrics: changes over metrics rows): their warm-up is history of that source, which
# the caller loads by `windows`, not 1m bars on the grid.
OWN_ROW_SOURCES = frozenset({"funding_rates", "metrics"})


def grid_need(family: str) -> int:
    """1m bars of history a row of `family` needs on the 1m grid: the longest warm-up of its features made of 1m-grid
    sources (higher-timeframe bars and other sources keep the history their caller loaded, so a feature mixing
    1m bars with them needs only its 1m part's warm-up, an indicator of the same kind; a feature reading only
    OWN_ROW_SOURCES needs none on the grid), plus the bar itself. The point-in-time audit's sampled cut-off
    recomputes every family on this grid and must match the stored values exactly: a need set too short fails it."""
    return 1 + max([f.warmup_bars_1m for f in FEATURES if f.family == family and not set(f.sources) & HIGHER_KLINES
                    and not set(f.sources) <= OWN_ROW_SOURCES] or [0])


# Computing a few rows (the live decision, the point-in-time audit's sampled cut-off), the families run in two
# groups: those needing at most SHORT_GRID 1m bars (price action, the book, the calendar, higher timeframes) on a
# grid as long as they need, the others on the long grid. A family's cost grows with its grid; each run costs a
# fixed part too, hence two runs and not one per family.
SHORT_GRID = 400
GRID_RUNS: tuple[tuple[int, tuple[str, ...]], ...] = tuple(
    (max(grid_need(f) for f in fams), fams) for fams in (
        tuple(f for f in FAMILIES if grid_need(f) <= SHORT_GRID),
        tuple(f for f in FAMILIES if grid_need(f) > SHORT_GRID)) if fams)


def _validate() -> None:
    if len(BY_NAME) != len(FEATURES):
        dupes = sorted({n for n in FEATURE_NAMES if FEATURE_NAMES.count(n) > 1})
        raise ValueError(f"feature registry: duplicate names {dupes}; rename one of them in its family module")
    for f in FEATURES:
        for inp in f.inputs:
            src, _, col = inp.partition(".")
            s = pit.SOURCES.get(src)
            if s is None or col not in (*s.columns, s.time_column):
                raise ValueError(f"feature {f.name} ({f.family}): input {inp!r} is not a declared source column; "
                                 f"declare it in btc_assets/lib/research/features/pit.py SOURCES")
        if f.warmup_bars_1m < 0:
            raise ValueError(f"feature {f.name}: negative warm-up {f.warmup_bars_1m}")


_validate()


def families_of(names: list[str]) -> dict[str, list[str]]:
    """Feature names grouped by family, in registry order."""
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(BY_NAME[n].family, []).append(n)
    return out


def reading(source: str) -> list[str]:
    """Names of the features that read `source`."""
    return [f.name for f in FEATURES if source in f.sources]
