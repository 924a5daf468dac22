"""Price action on 1m, 5m, 15m and 1h bars, all from TA-Lib: RSI, MACD, Bollinger, ATR, ADX, MA ratios, stochastic.

Each timeframe's indicators are computed on that timeframe's own bars and attached to a 1m row only once the
bar has closed (Context.on_1m). Price-scaled outputs (MACD, ATR) are divided by the close so that they compare
across years.
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features.spec import Feature, converge, ema_bars, in_minutes, wilder_bars
from btc_assets.lib.research.features.ta import talib

FAMILY = "price_action"
TIMEFRAMES = ("1m", "5m", "15m", "1h")
# Own-timeframe bars needed by each indicator (see spec for the convergence rule).
_WARMUP = {
    "rsi_14": wilder_bars(14),
    "macd": ema_bars(26),
    "macd_signal": ema_bars(26) + ema_bars(9),
    "macd_hist": ema_bars(26) + ema_bars(9),
    "bb_position": 20,
    "bb_width": 20,
    "atr_14": wilder_bars(14),
    # ADX smooths a DX built from Wilder sums: the second stage carries the first one's error with a polynomial
    # factor, so it needs another 1e-2 of decay (measured: 1e-9 relative on real bars, 4e-7 without it).
    "adx_14": wilder_bars(14) + converge(1.0 / 14, 1e-2),
    "ema_ratio_12": ema_bars(12),
    "ema_ratio_26": ema_bars(26),
    "sma_ratio_20": 20,
    "sma_ratio_50": 50,
    # TA-Lib aligns %K and %D: both start after fastk + slowk + slowd - 3 bars.
    "stoch_k": 14 + 3 + 3,
    "stoch_d": 14 + 3 + 3,
}
_DESC = {
    "rsi_14": "RSI(14), 0-100",
    "macd": "MACD(12,26) line / close",
    "macd_signal": "MACD signal(9) / close",
    "macd_hist": "MACD histogram / close",
    "bb_position": "close inside Bollinger(20, 2): 0 = lower band, 1 = upper band",
    "bb_width": "Bollinger(20, 2) width / middle band",
    "atr_14": "ATR(14) / close",
    "adx_14": "ADX(14), 0-100",
    "ema_ratio_12": "close / EMA(12) - 1",
    "ema_ratio_26": "close / EMA(26) - 1",
    "sma_ratio_20": "close / SMA(20) - 1",
    "sma_ratio_50": "close / SMA(50) - 1",
    "stoch_k": "slow stochastic %K(14, 3)",
    "stoch_d": "slow stochastic %D(3)",
}
_INPUTS = {"atr_14": ("high", "low", "close"), "adx_14": ("high", "low", "close"), "stoch_k": ("high", "low", "close"),
           "stoch_d": ("high", "low", "close")}

FEATURES: tuple[Feature, ...] = tuple(
    Feature(
        name=f"{ind}_{tf}", family=FAMILY,
        inputs=tuple(f"klines_{tf}.{c}" for c in _INPUTS.get(ind, ("close",))),
        warmup_bars_1m=in_minutes(_WARMUP[ind], tf),
        available=f"close of the {tf} bar", description=f"{_DESC[ind]} of {tf} bars",
        nullable="flat window (no Bollinger band, e.g. a halt)" if ind == "bb_position" else "",
    )
    for tf in TIMEFRAMES for ind in _WARMUP
)


def indicators(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    """Every indicator of this family for one timeframe's bars, keyed by indicator name (no timeframe suffix)."""
    res: dict[str, np.ndarray] = {"rsi_14": talib.RSI(close, timeperiod=14)}
    macd, signal, hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    res["macd"], res["macd_signal"], res["macd_hist"] = macd / close, signal / close, hist / close
    upper, middle, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
    band = upper - lower
    # A flat window has no band: the position is undefined, not 0.5.
    res["bb_position"] = np.where(band > 1e-12 * close, (close - lower) / np.where(band > 0, band, 1.0), np.nan)
    res["bb_width"] = band / middle
    res["atr_14"] = talib.ATR(high, low, close, timeperiod=14) / close
    res["adx_14"] = talib.ADX(high, low, close, timeperiod=14)
    res["ema_ratio_12"] = close / talib.EMA(close, timeperiod=12) - 1.0
    res["ema_ratio_26"] = close / talib.EMA(close, timeperiod=26) - 1.0
    res["sma_ratio_20"] = close / talib.SMA(close, timeperiod=20) - 1.0
    res["sma_ratio_50"] = close / talib.SMA(close, timeperiod=50) - 1.0
    res["stoch_k"], res["stoch_d"] = talib.STOCH(high, low, close, fastk_period=14, slowk_period=3, slowd_period=3)
    return res


def compute(ctx) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for tf in TIMEFRAMES:
        bars = ctx.bars.get(tf)
        if bars is None:
            continue
        res = indicators(bars.high, bars.low, bars.close)
        for ind, v in res.items():
            out[f"{ind}_{tf}"] = ctx.on_1m(tf, v)
    return out
