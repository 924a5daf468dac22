"""Order book (silver.book_depth snapshots): imbalance at each depth level, depth slope, notional within 1 %.

A snapshot row gives the cumulative depth/notional from the mid to `percentage` % (negative = bids, positive =
asks). A 1m row uses the last snapshot taken at or before its availability time, and none older than
pit.MAX_AGE["book_depth"] (a stale book is null, not carried forward).
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.rolling import ratio
from btc_assets.lib.research.features.spec import Feature

FAMILY = "order_book"
LEVELS = (1, 2, 3, 4, 5)
_IN = ("book_depth.percentage", "book_depth.notional")
_AT = "snapshot time (at most 5 minutes old)"
_W = 5  # the snapshot used may be up to 5 minutes old: a window must reach back that far
_STALE = "no snapshot in the last 5 minutes"

FEATURES: tuple[Feature, ...] = (
    *(Feature(f"book_imbalance_{k}pct", FAMILY, _IN, _W, _AT,
              f"(bid - ask) / (bid + ask) of cumulative notional within {k} % of mid", _STALE) for k in LEVELS),
    Feature("book_slope_bid", FAMILY, _IN, _W, _AT,
            "least-squares slope of cumulative bid notional over 1..5 % / notional within 5 %", _STALE),
    Feature("book_slope_ask", FAMILY, _IN, _W, _AT,
            "least-squares slope of cumulative ask notional over 1..5 % / notional within 5 %", _STALE),
    Feature("book_notional_1pct", FAMILY, _IN, _W, _AT, "log10 of bid + ask notional within 1 % of mid", _STALE),
)


def wide_book(ctx) -> tuple[np.ndarray, np.ndarray]:
    """Snapshot times (ns, sorted) and their cumulative notional at levels -5..-1, 1..5 (missing levels NaN)."""
    t = ctx.time_ns("book_depth")
    if len(t) and np.all(t[1:] >= t[:-1]):  # sorted (as silver is read): run starts, without np.unique's sort
        new = np.concatenate([[True], t[1:] != t[:-1]])
        times, row = t[new], np.cumsum(new) - 1
    else:
        times, row = np.unique(t, return_inverse=True)
    pct = np.rint(ctx.column("book_depth", "percentage")).astype("int64")
    col = np.where(pct < 0, pct + 5, pct + 4)
    ok = (np.abs(pct) >= 1) & (np.abs(pct) <= 5)
    wide = np.full((len(times), 10), np.nan)
    wide[row[ok], col[ok]] = ctx.column("book_depth", "notional")[ok]  # duplicates: the last row wins
    return times, wide


def _slope(levels: np.ndarray) -> np.ndarray:
    x = np.array(LEVELS, dtype="float64")
    xc = x - x.mean()
    return (levels - levels.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)


def compute(ctx) -> dict[str, np.ndarray]:
    if ctx.source("book_depth") is None:
        return {}
    times, wide = wide_book(ctx)
    idx = pit.asof_index(ctx.at_ns, times, max_age=pit.MAX_AGE["book_depth"])
    bid = np.column_stack([pit.take(wide[:, 5 - k], idx) for k in LEVELS])
    ask = np.column_stack([pit.take(wide[:, 4 + k], idx) for k in LEVELS])
    out = {f"book_imbalance_{k}pct": ratio(bid[:, i] - ask[:, i], bid[:, i] + ask[:, i]) for i, k in enumerate(LEVELS)}
    out["book_slope_bid"] = ratio(_slope(bid), bid[:, -1])
    out["book_slope_ask"] = ratio(_slope(ask), ask[:, -1])
    total = bid[:, 0] + ask[:, 0]
    out["book_notional_1pct"] = np.log10(np.where(total > 0, total, np.nan))
    return out
