"""Momentum: log returns and rate of change over several horizons, and trend alignment across timeframes."""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features.rolling import shift
from btc_assets.lib.research.features.spec import Feature, ema_bars, in_minutes
from btc_assets.lib.research.features.ta import talib

FAMILY = "momentum"
RETURN_HORIZONS = (1, 3, 5, 15, 60, 240, 1440)
ROC_HORIZONS = (10, 30, 120)
ALIGN_TFS = ("1m", "5m", "15m", "1h")

FEATURES: tuple[Feature, ...] = (
    *(Feature(f"ret_{h}", FAMILY, ("klines_1m.close",), h, "close of the 1m bar",
              f"log return over the last {h} minutes") for h in RETURN_HORIZONS),
    *(Feature(f"roc_{h}", FAMILY, ("klines_1m.close",), h, "close of the 1m bar",
              f"TA-Lib ROCP({h}): close / close {h} bars ago - 1") for h in ROC_HORIZONS),
    Feature("trend_alignment", FAMILY, tuple(f"klines_{tf}.close" for tf in ALIGN_TFS),
            in_minutes(ema_bars(12), "1h"), "close of the last closed bar of each timeframe",
            "mean over 1m/5m/15m/1h of sign(close - EMA(12)): +1 all up, -1 all down"),
    Feature("return_alignment", FAMILY, tuple(f"klines_{tf}.close" for tf in ALIGN_TFS[1:]),
            in_minutes(1, "1h"), "close of the last closed bar of each timeframe",
            "mean over 5m/15m/1h of the sign of the last closed bar's return"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    c = ctx.one.close
    logc = np.log(c)
    out = {f"ret_{h}": logc - shift(logc, h) for h in RETURN_HORIZONS}
    out |= {f"roc_{h}": talib.ROCP(c, timeperiod=h) for h in ROC_HORIZONS}
    if all(tf in ctx.bars for tf in ALIGN_TFS):
        signs = [ctx.on_1m(tf, np.sign(ctx.bars[tf].close - talib.EMA(ctx.bars[tf].close, 12))) for tf in ALIGN_TFS]
        out["trend_alignment"] = np.mean(signs, axis=0)
        rets = [ctx.on_1m(tf, np.sign(ctx.bars[tf].close - ctx.bars[tf].open)) for tf in ALIGN_TFS[1:]]
        out["return_alignment"] = np.mean(rets, axis=0)
    return out
