"""Synthetic bookDepth, metrics and mark/index/premium klines for one day, derived from that day's real klines.

Each is a seeded random process anchored on the real 1m closes, so that prices agree with the real market:
mark = last x (1 + e) with |e| of a few bp, index = last x (1 - premium), the premium index an AR(1) around
1 bp; depth snapshots once a minute around the real close; metrics every 5 minutes with open-interest value
= open interest x real close and the taker long/short ratio computed from the real taker-buy volumes.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                "taker_buy_quote_volume,ignore")
DEPTH_LEVELS = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)
METRICS_INVERSIONS = 3  # adjacent rows swapped per day: real metrics files are not time-sorted (FORMATS.md)


def _ar1(rng: np.random.Generator, n: int, mean: float, phi: float, sd: float) -> np.ndarray:
    x = np.empty(n)
    prev = mean
    shocks = rng.normal(0, sd, n)
    for i in range(n):  # 1,440 steps a day: a plain loop is fine
        prev = mean + phi * (prev - mean) + shocks[i]
        x[i] = prev
    return x


def _kline_csv(open_ms: np.ndarray, ohlc: np.ndarray, decimals: int, samples: int) -> str:
    fmt = f"%.{decimals}f"
    lines = [KLINE_HEADER]
    for t, (o, h, l, c) in zip(open_ms, ohlc):
        lines.append(f"{t},{fmt % o},{fmt % h},{fmt % l},{fmt % c},0,{t + 59_999},0,{samples},0,0,0")
    return "\n".join(lines) + "\n"


def price_klines(klines: pd.DataFrame, seed: int) -> dict[str, str]:
    """CSV texts of markPriceKlines, indexPriceKlines, premiumIndexKlines (1m) for the real klines' minutes."""
    rng = np.random.default_rng(seed)
    n = len(klines)
    last = klines[["open", "high", "low", "close"]].to_numpy(dtype=float)
    open_ms = klines["open_time"].astype("int64").to_numpy() // 10**6
    basis = _ar1(rng, n, 0.0, 0.9, 0.00005)  # mark vs last: a few bp
    premium = _ar1(rng, n, 0.0001, 0.95, 0.00004)
    mark = last * (1 + basis)[:, None]
    index = last * (1 - premium)[:, None]
    p_open = np.r_[premium[0], premium[:-1]]
    wiggle = np.abs(rng.normal(0, 0.00002, (n, 2)))
    prem = np.stack([p_open, np.maximum(p_open, premium) + wiggle[:, 0],
                     np.minimum(p_open, premium) - wiggle[:, 1], premium], axis=1)
    return {"markPriceKlines": _kline_csv(open_ms, mark, 2, 60),
            "indexPriceKlines": _kline_csv(open_ms, index, 8, 60),
            "premiumIndexKlines": _kline_csv(open_ms, prem, 8, 60)}


def book_depth(klines: pd.DataFrame, seed: int) -> str:
    """One snapshot a minute (at a seeded second), levels -5..-1, 1..5 % from mid, cumulative depth and notional."""
    rng = np.random.default_rng(seed)
    n = len(klines)
    mid = klines["close"].to_numpy(dtype=float)
    when = klines["open_time"].dt.tz_convert(None) + pd.to_timedelta(rng.integers(0, 60, n), unit="s")
    stamps = when.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()
    lines = ["timestamp,percentage,depth,notional"]
    increments = 1500 * rng.lognormal(0, 0.25, (n, 2, 5))  # BTC per 1 % band, bid and ask sides
    for i in range(n):
        bid, ask = np.cumsum(increments[i, 0]), np.cumsum(increments[i, 1])
        for p in DEPTH_LEVELS:
            depth = bid[-p - 1] if p < 0 else ask[p - 1]
            notional = depth * mid[i] * (1 + p / 200)  # average price of the band, roughly
            lines.append(f"{stamps[i]},{p},{depth:.2f},{notional:.2f}")
    return "\n".join(lines) + "\n"


def metrics(klines: pd.DataFrame, day: dt.date, symbol: str, seed: int) -> str:
    """288 rows on the 5-minute grid; a few adjacent rows swapped as in real files."""
    rng = np.random.default_rng(seed)
    k = klines.set_index("open_time")
    grid = pd.date_range(pd.Timestamp(day, tz="UTC"), periods=288, freq="5min")
    close = k["close"].reindex(grid).ffill().bfill().to_numpy()
    five = k[["volume", "taker_buy_volume"]].resample("5min").sum().reindex(grid).fillna(0)
    sell = (five["volume"] - five["taker_buy_volume"]).to_numpy()
    taker_ratio = np.where(sell > 0, five["taker_buy_volume"].to_numpy() / np.where(sell > 0, sell, 1), 1.0)
    oi = 80_000 * np.exp(np.cumsum(rng.normal(0, 0.002, 288)) + (day.toordinal() % 97) * 0.001)
    top_acc, top_pos, glob = (_ar1(rng, 288, m, 0.98, 0.01) for m in (1.2, 1.1, 1.3))
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{symbol},{oi[i]:.4f},{oi[i] * close[i]:.8f},{top_acc[i]:.4f},"
            f"{top_pos[i]:.4f},{glob[i]:.4f},{taker_ratio[i]:.4f}" for i, t in enumerate(grid)]
    for i in sorted(rng.choice(np.arange(1, 286), METRICS_INVERSIONS, replace=False)):
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    header = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
              "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
    return "\n".join([header, *rows]) + "\n"
