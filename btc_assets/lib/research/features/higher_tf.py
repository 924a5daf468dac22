"""4h and 1d bars: the last closed bar's return and range, the day-scale move and the daily realised volatility.

Computed on each timeframe's own bars (silver/klines_4h, silver/klines_1d, built from 1m) and attached to a 1m row
only once the bar has closed (Context.on_1m): a 1d value changes once a day, at 00:00 UTC, a 4h value every four
hours. Short windows only: gold warms up over 17 days of silver, and every value present must be exact.
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features.rolling import rstd, shift
from btc_assets.lib.research.features.spec import Feature, in_minutes

FAMILY = "higher_tf"


def _f(name: str, tf: str, cols: tuple[str, ...], bars: int, description: str) -> Feature:
    return Feature(name, FAMILY, tuple(f"klines_{tf}.{c}" for c in cols), in_minutes(bars, tf),
                   f"close of the last closed {tf} bar", description)


FEATURES: tuple[Feature, ...] = (
    _f("ret_4h_bar", "4h", ("open", "close"), 1, "log return of the last closed 4h bar (close / open)"),
    _f("range_4h_bar", "4h", ("high", "low", "close"), 1, "(high - low) / close of the last closed 4h bar"),
    _f("ret_4h_6", "4h", ("close",), 7, "log return over the last six closed 4h bars (24 hours)"),
    _f("ret_1d_bar", "1d", ("open", "close"), 1, "log return of the last closed UTC day (close / open)"),
    _f("range_1d_bar", "1d", ("high", "low", "close"), 1, "(high - low) / close of the last closed UTC day"),
    _f("rv_1d_10", "1d", ("close",), 11, "standard deviation of the last 10 daily log returns (closed days)"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    b4, b1 = ctx.bars.get("4h"), ctx.bars.get("1d")
    if b4 is not None:
        out["ret_4h_bar"] = ctx.on_1m("4h", np.log(b4.close / b4.open))
        out["range_4h_bar"] = ctx.on_1m("4h", (b4.high - b4.low) / b4.close)
        logc = np.log(b4.close)
        out["ret_4h_6"] = ctx.on_1m("4h", logc - shift(logc, 6))
    if b1 is not None:
        out["ret_1d_bar"] = ctx.on_1m("1d", np.log(b1.close / b1.open))
        out["range_1d_bar"] = ctx.on_1m("1d", (b1.high - b1.low) / b1.close)
        logc = np.log(b1.close)
        out["rv_1d_10"] = ctx.on_1m("1d", rstd(logc - shift(logc, 1), 10))
    return out
