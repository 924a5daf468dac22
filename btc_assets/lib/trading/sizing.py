"""Order-size arithmetic shared by the brokers (the strategy itself is the risk rules of lib/risk.py, run by the
backtest engine for both the backtest and the live trader: lib/trader.py)."""

from __future__ import annotations

import numpy as np



def round_step(qty: float, step: float) -> float:
    """Round a quantity toward zero to the exchange's step size (never more than intended)."""
    # The epsilon absorbs binary noise (0.03 / 0.001 = 29.999…) without ever rounding a real shortfall up.
    units = np.trunc(qty / step + np.copysign(1e-9, qty))
    return round(float(units * step), 12)
