"""The strategy that turns signals into target positions, shared by the backtest and the live path.

At a bar's close the position targeted is the direction of the most recent BUY/SELL signal among the last
`hold_bars` bars (found by time, so a missing minute does not extend a hold), flat otherwise. It depends only on
the last `hold_bars` signals, so the live path computes for one bar exactly what the backtest computes for all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.labels import BUY, SELL


def target_positions(signals: pd.Series, hold_bars: int = 3) -> pd.Series:
    """Target position (+1 long, -1 short, 0 flat) per signal time; `signals` are class ids indexed by open_time."""
    if hold_bars < 1:
        raise ValueError(f"hold_bars must be at least 1, got {hold_bars}")
    if signals.empty:
        return pd.Series(dtype="float64", index=signals.index)
    s = signals.sort_index()
    direction = pd.Series(np.where(s == BUY, 1.0, np.where(s == SELL, -1.0, np.nan)), index=s.index)
    grid = pd.date_range(s.index[0], s.index[-1], freq="1min")
    held = direction.reindex(grid).ffill(limit=hold_bars - 1).fillna(0.0)
    return held.reindex(s.index)


def round_step(qty: float, step: float) -> float:
    """Round a quantity toward zero to the exchange's step size (never more than intended)."""
    # The epsilon absorbs binary noise (0.03 / 0.001 = 29.999…) without ever rounding a real shortfall up.
    units = np.trunc(qty / step + np.copysign(1e-9, qty))
    return round(float(units * step), 12)
