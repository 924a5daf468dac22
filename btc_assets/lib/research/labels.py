"""Labels: the only place allowed to look into the future, and only by the stated horizon.

Default label: the return from a bar's close to the close `horizon` minutes later, classed as BUY above
+threshold, SELL below -threshold, HOLD otherwise. The future close is found by time (open_time + horizon), not
by row offset, so a missing minute can never stretch the horizon; where the future bar is absent the label is
null, never guessed.

Option (`LabelConfig(kind="triple_barrier")`): the triple-barrier label. From a bar's close, a take-profit barrier
`take_profit` ATRs above and a stop `stop_loss` ATRs below (ATR-14 of 1m bars known at that close); BUY if the
high reaches the take-profit first, SELL if the low reaches the stop first, HOLD if neither within `horizon`
minutes (or both inside the same bar: ambiguous). fwd_return is the close-to-close return at the time limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SELL, HOLD, BUY = 0, 1, 2
CLASS_NAMES = {SELL: "SELL", HOLD: "HOLD", BUY: "BUY"}


def next_return_labels(
    bars_1m: pd.DataFrame, horizon: int = 3, threshold: float | np.ndarray = 0.001
) -> pd.DataFrame:
    """open_time, fwd_return and label (Int8: 0 SELL, 1 HOLD, 2 BUY, <NA> where the future is unknown)."""
    if horizon < 1:
        raise ValueError(f"label horizon must be at least 1 minute, got {horizon}")
    b = bars_1m[["open_time", "close"]].sort_values("open_time")
    future = b.set_index("open_time")["close"]
    target_times = b["open_time"] + pd.Timedelta(minutes=horizon)
    fut_close = future.reindex(target_times.to_numpy()).to_numpy()
    fwd = fut_close / b["close"].to_numpy() - 1.0
    label = np.where(fwd > threshold, BUY, np.where(fwd < -threshold, SELL, HOLD))
    out = pd.DataFrame({"open_time": b["open_time"].to_numpy(), "fwd_return": fwd})
    out["label"] = pd.array(np.where(np.isnan(fwd), 0, label), dtype="Int8")
    out.loc[np.isnan(fwd), "label"] = pd.NA
    out["open_time"] = pd.to_datetime(out["open_time"], utc=True)
    return out


def class_balance(labels: pd.Series) -> dict[str, float]:
    counts = labels.dropna().astype(int).value_counts()
    total = int(counts.sum())
    return {CLASS_NAMES[k]: (int(counts.get(k, 0)) / total if total else float("nan")) for k in (SELL, HOLD, BUY)}


DEFAULT_HORIZON = 3  # minutes of look-ahead of the default label
DEFAULT_THRESHOLD = 0.001  # ±0.1 %


@dataclass(frozen=True)
class LabelConfig:
    kind: str = "next_return"  # or "triple_barrier"
    horizon: int = DEFAULT_HORIZON  # minutes: the look-ahead, and the least purge any split must use
    threshold: float | np.ndarray = DEFAULT_THRESHOLD  # next_return (a scalar or one per bar, in time order)
    take_profit: float = 2.0  # triple_barrier: ATR multiples
    stop_loss: float = 2.0
    atr_period: int = 14

    def make(self, bars_1m: pd.DataFrame) -> pd.DataFrame:
        if self.kind == "next_return":
            return next_return_labels(bars_1m, self.horizon, self.threshold)
        if self.kind == "triple_barrier":
            return triple_barrier_labels(bars_1m, self.horizon, self.take_profit, self.stop_loss, self.atr_period)
        raise ValueError(f"unknown label kind {self.kind!r}: use 'next_return' or 'triple_barrier'")


def _atr(b: pd.DataFrame, period: int) -> np.ndarray:
    prev = b["close"].shift(1)
    tr = pd.concat([b["high"] - b["low"], (b["high"] - prev).abs(), (b["low"] - prev).abs()], axis=1).max(axis=1)
    return tr.ewm(alpha=1 / period, adjust=False, min_periods=period).mean().to_numpy()


def triple_barrier_labels(bars_1m: pd.DataFrame, horizon: int = 30, take_profit: float = 2.0,
                          stop_loss: float = 2.0, atr_period: int = 14) -> pd.DataFrame:
    """open_time, fwd_return and label by the first barrier touched within `horizon` minutes (see module doc)."""
    if horizon < 1 or take_profit <= 0 or stop_loss <= 0:
        raise ValueError(f"triple barrier needs horizon >= 1 and positive barriers, got {horizon}, "
                         f"{take_profit}, {stop_loss}")
    b = bars_1m[["open_time", "high", "low", "close"]].sort_values("open_time").reset_index(drop=True)
    close = b["close"].to_numpy(dtype=float)
    atr = _atr(b, atr_period)
    upper, lower = close + take_profit * atr, close - stop_loss * atr
    by_time = b.set_index("open_time")
    label = np.full(len(b), HOLD, dtype=float)
    done = np.isnan(atr)  # no ATR yet: unknown
    unknown = done.copy()
    for k in range(1, horizon + 1):
        fut = by_time.reindex((b["open_time"] + pd.Timedelta(minutes=k)).to_numpy())
        hi, lo = fut["high"].to_numpy(), fut["low"].to_numpy()
        missing = np.isnan(hi) & ~done
        unknown |= missing  # a gap before any touch: the path is not known, so neither is the label
        done |= missing
        up, down = (hi >= upper) & ~done, (lo <= lower) & ~done
        label[up & ~down] = BUY
        label[down & ~up] = SELL
        done |= up | down  # both in one bar: HOLD (which came first is unknowable from 1m bars)
    end_close = by_time["close"].reindex((b["open_time"] + pd.Timedelta(minutes=horizon)).to_numpy()).to_numpy()
    out = pd.DataFrame({"open_time": pd.to_datetime(b["open_time"], utc=True), "fwd_return": end_close / close - 1})
    out["label"] = pd.array(np.where(unknown, 0, label).astype(int), dtype="Int8")
    out.loc[unknown, "label"] = pd.NA
    return out


def balance_by_partition(labels: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Class shares per period of open_time (a row per partition: SELL, HOLD, BUY, n)."""
    g = labels.dropna(subset=["label"]).groupby(labels["open_time"].dt.floor(freq))["label"]
    out = g.apply(lambda s: pd.Series(class_balance(s))).unstack()
    out["n"] = g.size()
    return out
