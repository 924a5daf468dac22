"""Volatility of 1m bars: realised, Parkinson, Garman-Klass (per-bar, not annualised) and ATR percentile."""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features.rolling import rank_pct, ratio, rmean, rsum, shift
from btc_assets.lib.research.features.spec import Feature, wilder_bars
from btc_assets.lib.research.features.ta import talib

FAMILY = "volatility"
_HL = ("klines_1m.high", "klines_1m.low")
_AT = "close of the 1m bar"

FEATURES: tuple[Feature, ...] = (
    *(Feature(f"rv_{n}", FAMILY, ("klines_1m.close",), n, _AT,
              f"realised volatility: sqrt of the sum of squared 1m log returns over {n} minutes")
      for n in (15, 60, 240)),
    *(Feature(f"parkinson_{n}", FAMILY, _HL, n - 1, _AT, f"Parkinson per-bar volatility over {n} minutes")
      for n in (15, 60)),
    *(Feature(f"garman_klass_{n}", FAMILY, ("klines_1m.open", *_HL, "klines_1m.close"), n - 1, _AT,
              f"Garman-Klass per-bar volatility over {n} minutes") for n in (15, 60)),
    Feature("atr_percentile_1440", FAMILY, (*_HL, "klines_1m.close"), wilder_bars(14) + 1440, _AT,
            "percentile of ATR(14)/close among the last 1440 minutes (1 = highest)"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    b = ctx.one
    logc = np.log(b.close)
    r2 = (logc - shift(logc, 1)) ** 2
    out = {f"rv_{n}": np.sqrt(rsum(r2, n)) for n in (15, 60, 240)}
    hl2 = np.log(b.high / b.low) ** 2
    co2 = np.log(b.close / b.open) ** 2
    for n in (15, 60):
        out[f"parkinson_{n}"] = np.sqrt(rmean(hl2, n) / (4.0 * np.log(2.0)))
        out[f"garman_klass_{n}"] = np.sqrt(np.maximum(rmean(0.5 * hl2 - (2.0 * np.log(2.0) - 1.0) * co2, n), 0.0))
    atr = ratio(talib.ATR(b.high, b.low, b.close, timeperiod=14), b.close)
    out["atr_percentile_1440"] = rank_pct(atr, 1440)
    return out
