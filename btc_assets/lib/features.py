"""Point-in-time features on 1m bars, with higher timeframes joined only once their bar has closed.

A 1m row with open time t is known at t + 1m, so its features may use bars whose availability time (open time +
interval) is at or before t + 1m and nothing later. Higher-timeframe bars are attached with an as-of join on
availability time, which is what makes "a 15m bar is used only after it closed" true by construction.
Standard indicators come from TA-Lib; only the plumbing is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import talib

MINUTE = pd.Timedelta(minutes=1)
INTERVALS = {"1m": MINUTE, "5m": pd.Timedelta(minutes=5), "15m": pd.Timedelta(minutes=15), "1h": pd.Timedelta(hours=1)}


@dataclass(frozen=True)
class Feature:
    name: str
    family: str
    warmup_bars_1m: int  # 1m bars of history needed before the value is exact (EMA-type: until converged)
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("ret_1", "momentum", 1, "log return of the last 1m bar"),
    Feature("ret_3", "momentum", 3, "log return over the last 3 minutes"),
    Feature("ret_5", "momentum", 5, "log return over the last 5 minutes"),
    Feature("ret_15", "momentum", 15, "log return over the last 15 minutes"),
    Feature("ret_60", "momentum", 60, "log return over the last 60 minutes"),
    Feature("rsi_14", "price_action", 14 * 20, "RSI(14) of 1m closes (Wilder smoothing, converged)"),
    Feature("macd", "price_action", 26 * 20, "MACD(12,26) line / close"),
    Feature("macd_signal", "price_action", 35 * 20, "MACD signal(9) / close"),
    Feature("macd_hist", "price_action", 35 * 20, "MACD histogram / close"),
    Feature("atr_14", "volatility", 14 * 20, "ATR(14) / close"),
    Feature("bb_position", "price_action", 20, "position of close inside Bollinger(20, 2): 0 = lower, 1 = upper"),
    Feature("bb_width", "volatility", 20, "Bollinger(20, 2) width / middle band"),
    Feature("volume_z_60", "volume", 60, "z-score of 1m volume against the last 60 minutes"),
    Feature("taker_buy_ratio", "order_flow", 1, "taker-buy volume / volume of the bar (null when no volume)"),
    Feature("taker_buy_ratio_15", "order_flow", 15, "taker-buy share of volume over the last 15 minutes"),
    Feature("trend_5m", "multi_timeframe", 5 * 12 * 20, "last closed 5m close / EMA(12) of 5m closes - 1"),
    Feature("trend_15m", "multi_timeframe", 15 * 12 * 20, "last closed 15m close / EMA(12) of 15m closes - 1"),
    Feature("rsi_15m", "multi_timeframe", 15 * 14 * 20, "RSI(14) of closed 15m bars"),
    Feature("trend_1h", "multi_timeframe", 60 * 12 * 6, "last closed 1h close / EMA(12) of 1h closes - 1"),
    Feature("hour_sin", "calendar", 0, "hour of day, sine"),
    Feature("hour_cos", "calendar", 0, "hour of day, cosine"),
)
FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
WARMUP_BARS_1M: int = max(f.warmup_bars_1m for f in FEATURES)


def compute_features(bars_1m: pd.DataFrame, higher: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Features for every 1m bar in `bars_1m` (sorted, UTC open_time), using `higher` {"5m": df, ...} bars.

    Returns open_time, available_at and one column per feature. Rows are complete only after the warm-up:
    `warmed_up` says whether WARMUP_BARS_1M bars of history preceded the row (the caller decides what to keep).
    """
    b = bars_1m.sort_values("open_time").reset_index(drop=True)
    close = b["close"].to_numpy("float64")
    high, low = b["high"].to_numpy("float64"), b["low"].to_numpy("float64")
    vol = b["volume"].to_numpy("float64")
    logc = np.log(close)
    out = pd.DataFrame({"open_time": b["open_time"], "available_at": b["open_time"] + MINUTE})
    for h in (1, 3, 5, 15, 60):
        out[f"ret_{h}"] = logc - _shift(logc, h)
    out["rsi_14"] = talib.RSI(close, timeperiod=14)
    macd, signal, hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    out["macd"], out["macd_signal"], out["macd_hist"] = macd / close, signal / close, hist / close
    out["atr_14"] = talib.ATR(high, low, close, timeperiod=14) / close
    upper, middle, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
    band = upper - lower
    out["bb_position"] = np.where(band > 0, (close - lower) / np.where(band > 0, band, 1.0), 0.5)
    out.loc[np.isnan(band), "bb_position"] = np.nan
    out["bb_width"] = band / middle
    v = pd.Series(vol)
    mean, std = v.rolling(60).mean(), v.rolling(60).std(ddof=0)
    out["volume_z_60"] = ((v - mean) / std.where(std > 0)).to_numpy()
    tb = b["taker_buy_volume"].to_numpy("float64")
    out["taker_buy_ratio"] = np.where(vol > 0, tb / np.where(vol > 0, vol, 1.0), np.nan)
    v15, tb15 = v.rolling(15).sum(), pd.Series(tb).rolling(15).sum()
    out["taker_buy_ratio_15"] = (tb15 / v15.where(v15 > 0)).to_numpy()
    for interval, cols in (("5m", ["trend_5m"]), ("15m", ["trend_15m", "rsi_15m"]), ("1h", ["trend_1h"])):
        out = _join_higher(out, higher.get(interval), interval, cols)
    hour = b["open_time"].dt.hour + b["open_time"].dt.minute / 60.0
    out["hour_sin"] = np.sin(2 * np.pi * hour / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * hour / 24.0)
    out["warmed_up"] = np.arange(len(out)) >= WARMUP_BARS_1M
    return out


def _higher_features(df: pd.DataFrame, interval: str) -> pd.DataFrame:
    d = df.sort_values("open_time").reset_index(drop=True)
    c = d["close"].to_numpy("float64")
    res = pd.DataFrame({"available_at": d["open_time"] + INTERVALS[interval]})
    res[f"trend_{interval}"] = c / talib.EMA(c, timeperiod=12) - 1.0
    if interval == "15m":
        res["rsi_15m"] = talib.RSI(c, timeperiod=14)
    return res


def _join_higher(out: pd.DataFrame, df: pd.DataFrame | None, interval: str, cols: list[str]) -> pd.DataFrame:
    if df is None or df.empty:
        for c in cols:
            out[c] = np.nan
        return out
    hf = _higher_features(df, interval)[["available_at", *cols]].rename(columns={"available_at": "_hf_at"})
    merged = pd.merge_asof(
        out.sort_values("available_at"), hf.sort_values("_hf_at"), left_on="available_at", right_on="_hf_at",
        direction="backward", allow_exact_matches=True,
    )
    return merged.drop(columns="_hf_at")


def _shift(a: np.ndarray, n: int) -> np.ndarray:
    res = np.full_like(a, np.nan)
    res[n:] = a[:-n]
    return res
