"""Bars the fake exchange replays: from a silver klines_1m frame (real data), or synthetic ones for unit tests
(named so: they are not market data)."""

from __future__ import annotations

import pandas as pd

BarRow = tuple[float, float, float, float, float, float]  # open_time_ms, open, high, low, close, volume


def bars_from_frame(df: pd.DataFrame) -> list[BarRow]:
    """silver/klines_1m rows (open_time UTC, open, high, low, close, volume) as replay bars, oldest first."""
    missing = {"open_time", "open", "high", "low", "close", "volume"} - set(df.columns)
    if missing:
        raise ValueError(f"bars_from_frame: the frame lacks columns {sorted(missing)}; pass silver klines_1m rows")
    ts = pd.to_datetime(df["open_time"], utc=True).astype("int64") // 1_000_000
    cols = [df[c].astype(float) for c in ("open", "high", "low", "close", "volume")]
    return sorted(zip(ts.astype(float), *cols))


def synthetic_bars(n: int, start: float = 42_000.0, drift: float = 0.0, swing: float = 20.0,
                   t0_ms: int = 1_704_067_200_000) -> list[BarRow]:
    """SYNTHETIC bars (not market data): a straight line with `drift` per bar and `swing` above/below each close."""
    rows = []
    for i in range(n):
        close = round(start + drift * (i + 1), 1)
        open_ = round(start + drift * i, 1)
        high, low = max(open_, close) + swing, min(open_, close) - swing
        rows.append((float(t0_ms + 60_000 * i), open_, high, low, close, 5.0))
    return rows
