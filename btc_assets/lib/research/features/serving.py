"""Which features the live trading path can serve at decision time, and which it cannot (and why).

For a minute silver does not have yet (the archive publishes a day the next day), the live path fills only the 1m
klines (the live feed: collector recordings or REST) and builds 5m/15m/1h from them (defs/trading/market.py,
feature_inputs). Every other source -- order flow, book depth, metrics, funding, mark/index/premium, liquidations --
reaches the warehouse from the next day's archive files, so a live minute has no row of it: a feature reading it
would be null (or stale) live while training saw its value. Trading models are trained on the servable features
only (setting `features="live"`, the default of every weekly model); `features="all"` keeps every feature for
research, and the live-vs-batch feature check then names what the live path could not serve.
"""

from __future__ import annotations

from btc_assets.lib.research.features.registry import FEATURES

# Sources the live path fills for a live minute (see the module docstring). A feature reading only these (or no
# source at all: the calendar) is servable.
LIVE_SOURCES = frozenset({"klines_1m", "klines_5m", "klines_15m", "klines_1h", "klines_4h", "klines_1d"})
FEATURE_SETS = ("live", "all")


def unservable(live_sources: frozenset[str] = LIVE_SOURCES) -> dict[str, list[str]]:
    """Feature -> the sources it reads that the live path does not fill."""
    return {f.name: sorted(set(f.sources) - live_sources) for f in FEATURES if set(f.sources) - live_sources}


def servable(live_sources: frozenset[str] = LIVE_SOURCES) -> list[str]:
    """The features the live path computes exactly as batch does, in registry order."""
    left_out = unservable(live_sources)
    return [f.name for f in FEATURES if f.name not in left_out]


def feature_set(name: str) -> list[str]:
    """The feature columns a model trains on: "live" (servable live) or "all"."""
    if name == "live":
        return servable()
    if name == "all":
        return [f.name for f in FEATURES]
    raise ValueError(f"features={name!r} is unknown: use 'live' (only what the live path can serve, for a model "
                     "that trades) or 'all' (every gold feature, research only)")


def excluded_text(features: list[str]) -> str:
    """What a model leaves out, in words (model metadata and the registry)."""
    left = {n: s for n, s in unservable().items() if n not in set(features)}
    if not left:
        return "none: every gold feature (features=all; the live path cannot serve " \
               f"{len(unservable())} of them, see the live-vs-batch feature check)"
    by_source: dict[str, int] = {}
    for srcs in left.values():
        for s in srcs:
            by_source[s] = by_source.get(s, 0) + 1
    return (f"{len(left)} features the live path cannot serve at decision time (their sources arrive with the next "
            "day's archive): " + ", ".join(f"{s} ({n})" for s, n in sorted(by_source.items())))
