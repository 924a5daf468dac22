"""Market structure: distance to rolling highs and lows, position in the UTC day's range so far."""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.research.features.rolling import ratio, rmax, rmin
from btc_assets.lib.research.features.spec import Feature

FAMILY = "structure"
WINDOWS = (60, 240, 1440)
_HLC = ("klines_1m.high", "klines_1m.low", "klines_1m.close")
_AT = "close of the 1m bar"
DAY = 1440

FEATURES: tuple[Feature, ...] = (
    *(Feature(f"dist_high_{n}", FAMILY, _HLC, n - 1, _AT, f"close / highest high of the last {n} minutes - 1")
      for n in WINDOWS),
    *(Feature(f"dist_low_{n}", FAMILY, _HLC, n - 1, _AT, f"close / lowest low of the last {n} minutes - 1")
      for n in WINDOWS),
    # The day's range needs the day's first bar in the window: at most 1439 bars back.
    Feature("day_range_position", FAMILY, _HLC, DAY - 1, _AT,
            "position of close in the UTC day's high-low range so far: 0 = low, 1 = high", "flat day so far"),
    Feature("day_open_distance", FAMILY, ("klines_1m.open", "klines_1m.close"), DAY - 1, _AT,
            "close / the UTC day's first open - 1"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    b = ctx.one
    out = {}
    for n in WINDOWS:
        out[f"dist_high_{n}"] = b.close / rmax(b.high, n) - 1.0
        out[f"dist_low_{n}"] = b.close / rmin(b.low, n) - 1.0
    # at_ns is the bar's close; the bar opening at 23:59 belongs to the day that started before it.
    day = (ctx.at_ns - 60 * 10**9) // (86_400 * 10**9)
    g = pd.DataFrame({"d": day, "h": b.high, "l": b.low, "o": b.open}).groupby("d", sort=False)
    hi, lo = g["h"].cummax().to_numpy(), g["l"].cummin().to_numpy()
    out["day_range_position"] = ratio(b.close - lo, hi - lo)
    out["day_open_distance"] = b.close / g["o"].transform("first").to_numpy() - 1.0
    return out
