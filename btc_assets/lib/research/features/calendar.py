"""Calendar: hour of day and day of week, cyclically encoded (known in advance, so no availability delay)."""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features.spec import Feature

FAMILY = "calendar"
_AT = "open of the 1m bar (known in advance)"
FEATURES: tuple[Feature, ...] = (
    Feature("hour_sin", FAMILY, ("klines_1m.open_time",), 0, _AT, "hour of day (with minutes), sine"),
    Feature("hour_cos", FAMILY, ("klines_1m.open_time",), 0, _AT, "hour of day (with minutes), cosine"),
    Feature("weekday_sin", FAMILY, ("klines_1m.open_time",), 0, _AT, "day of week (with hours), sine"),
    Feature("weekday_cos", FAMILY, ("klines_1m.open_time",), 0, _AT, "day of week (with hours), cosine"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    open_ns = ctx.at_ns - 60 * 10**9
    hours = (open_ns % (86_400 * 10**9)) / 3_600e9
    # 1970-01-01 was a Thursday: shift by 3 days so that Monday 00:00 is 0.
    week = ((open_ns // 10**9 + 3 * 86_400) % (7 * 86_400)) / 86_400.0
    return {"hour_sin": np.sin(2 * np.pi * hours / 24.0), "hour_cos": np.cos(2 * np.pi * hours / 24.0),
            "weekday_sin": np.sin(2 * np.pi * week / 7.0), "weekday_cos": np.cos(2 * np.pi * week / 7.0)}
