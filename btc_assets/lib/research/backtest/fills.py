"""The fill model shared by the backtest engine and the paper/live path: order types, slippage and fees.

* Market orders fill at the reference price (the open of the bar after the decision, or the stop level) moved
  against the trader by ``slippage_bps`` plus ``slippage_vol_mult`` x the realised 1m return volatility, rounded
  to the tick against the trader, and pay the taker fee.
* Post-only limit orders rest at ``limit_offset_bps`` inside the decision bar's close for ``limit_ttl_bars`` bars.
  They fill only when the price trades THROUGH them (a buy needs low < limit; touching is not enough, the queue
  ahead of us is unknown), at the limit price, and pay the maker fee. An unfilled order is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from btc_assets.lib.research.backtest.exchange import round_price

ORDER_TYPES = {"market": 0, "limit": 1}


@dataclass(frozen=True)
class Costs:
    """Order type, fees and slippage applied to every fill (defaults: Binance VIP0, market orders)."""

    taker_fee: float = 0.0005
    maker_fee: float = 0.0002
    slippage_bps: float = 1.0  # fixed part, on every market fill
    slippage_vol_mult: float = 0.1  # times the rolling std of 1m returns (a fraction of price)
    order_type: str = "market"  # entries: "market" or "limit" (post-only); exits are always market
    limit_offset_bps: float = 2.0
    limit_ttl_bars: int = 1

    def to_array(self) -> np.ndarray:
        """[taker, maker, fixed slippage (fraction), vol multiplier, order type, limit offset (fraction), ttl]."""
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"Costs.order_type={self.order_type!r} is unknown; use 'market' or 'limit'")
        if min(self.taker_fee, self.maker_fee, self.slippage_bps, self.slippage_vol_mult, self.limit_offset_bps) < 0:
            raise ValueError(f"Costs must be non-negative (rebates are not modelled), got {self}")
        if self.limit_ttl_bars < 1:
            raise ValueError(f"Costs.limit_ttl_bars must be >= 1, got {self.limit_ttl_bars}")
        return np.array([self.taker_fee, self.maker_fee, self.slippage_bps / 1e4, self.slippage_vol_mult,
                         ORDER_TYPES[self.order_type], self.limit_offset_bps / 1e4, self.limit_ttl_bars], np.float64)


C_TAKER, C_MAKER, C_SLIP, C_SLIP_VOL, C_ORDER_TYPE, C_LIMIT_OFFSET, C_LIMIT_TTL = range(7)


@njit(cache=True)
def market_price(c: np.ndarray, side: float, reference: float, vol_per_bar: float, tick: float) -> float:
    """Fill price of a market order of ``side`` (+1 buy, -1 sell) at ``reference``."""
    slip = c[C_SLIP] + c[C_SLIP_VOL] * (vol_per_bar if np.isfinite(vol_per_bar) else 0.0)
    return round_price(reference * (1.0 + side * slip), tick, side)


@njit(cache=True)
def limit_price(c: np.ndarray, side: float, close: float, tick: float) -> float:
    """Post-only limit price: ``limit_offset_bps`` inside the close, rounded to the tick away from the market."""
    return round_price(close * (1.0 - side * c[C_LIMIT_OFFSET]), tick, -side)


@njit(cache=True)
def limit_fills(side: float, limit: float, low: float, high: float) -> bool:
    """A resting limit fills only if the bar traded through it."""
    return low < limit if side > 0 else high > limit


@njit(cache=True)
def fee(rate: float, qty: float, price: float) -> float:
    return rate * abs(qty) * price
