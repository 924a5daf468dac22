"""Binance USD-M BTCUSDT exchange rules as dated snapshots: maintenance-margin tiers, liquidation fee, filters.

Tiers and filters change over time, so every snapshot carries the date it was captured and a backtest names the
snapshot it used (``ExchangeRules.version``). ``rules_for(day)`` picks the latest snapshot at or before a day;
a day before the oldest snapshot is refused rather than silently priced with rules that did not exist yet.

The numbers (from ../shared/data/README.md, one captured exchangeInfo and the Oct 2024 leverage brackets):
notional USDT -> maintenance margin rate, max leverage, maintenance amount ("cum")
    0-50k 0.40 % 125x 0 | 50k-600k 0.50 % 100x 50 | 600k-3M 0.65 % 75x 950 | 3M-12M 1.0 % 50x 11,450
liquidation (clearance) fee 1.2 %; tick 0.10, step 0.001, minimum notional 10 USDT; VIP0 maker 0.02 %, taker 0.05 %.

Liquidation price of an isolated one-way position (Binance's published formula with no cross-margin terms):
    long:  LP = (Q * EP - M - cum) / (Q * (1 - mmr))      short: LP = (Q * EP + M + cum) / (Q * (1 + mmr))
where Q is the quantity, EP the entry price, M the isolated margin and mmr/cum the tier of the notional.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from numba import njit


@dataclass(frozen=True)
class ExchangeRules:
    """One dated snapshot of the rules the engine applies to every order and position."""

    version: str  # e.g. "binance-um-BTCUSDT-2024-10-01"
    valid_from: dt.date
    tier_floor: tuple[float, ...]  # notional at which each tier starts (USDT)
    tier_cap: tuple[float, ...]  # notional at which each tier ends
    tier_mmr: tuple[float, ...]  # maintenance margin rate
    tier_max_leverage: tuple[float, ...]
    tier_cum: tuple[float, ...]  # maintenance amount, makes the margin continuous across tiers
    liquidation_fee: float = 0.012
    tick_size: float = 0.10
    step_size: float = 0.001
    min_notional: float = 10.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    funding_interval_hours: float = 8.0
    source: str = field(default="", compare=False)

    def tiers_array(self) -> np.ndarray:
        """(n_tiers, 5) float array: floor, cap, mmr, max leverage, cum, for the numba engine."""
        return np.column_stack([self.tier_floor, self.tier_cap, self.tier_mmr, self.tier_max_leverage,
                                self.tier_cum]).astype(np.float64)


BTCUSDT_2024_10 = ExchangeRules(
    version="binance-um-BTCUSDT-2024-10-01", valid_from=dt.date(2019, 9, 8),
    tier_floor=(0.0, 50_000.0, 600_000.0, 3_000_000.0),
    tier_cap=(50_000.0, 600_000.0, 3_000_000.0, 12_000_000.0),
    tier_mmr=(0.004, 0.005, 0.0065, 0.010),
    tier_max_leverage=(125.0, 100.0, 75.0, 50.0),
    tier_cum=(0.0, 50.0, 950.0, 11_450.0),
    source="shared/data/README.md: Oct 2024 leverage brackets and one captured exchangeInfo",
)
# Ordered by valid_from. Add a snapshot when Binance changes a bracket; never edit one that was used.
SNAPSHOTS: tuple[ExchangeRules, ...] = (BTCUSDT_2024_10,)


def rules_for(day: dt.date | None = None) -> ExchangeRules:
    """The latest snapshot valid at ``day`` (None: the newest)."""
    if day is None:
        return SNAPSHOTS[-1]
    valid = [s for s in SNAPSHOTS if s.valid_from <= day]
    if not valid:
        raise ValueError(f"no BTCUSDT exchange-rules snapshot is valid on {day} (oldest starts "
                         f"{SNAPSHOTS[0].valid_from}); add one to btc_assets/lib/research/backtest/exchange.py")
    return valid[-1]


@njit(cache=True)
def tier_of(tiers: np.ndarray, notional: float) -> int:
    """Row of ``tiers`` whose bracket contains ``notional``; -1 beyond the last bracket (refuse the order)."""
    for i in range(tiers.shape[0]):
        if notional < tiers[i, 1]:
            return i
    return -1


@njit(cache=True)
def liquidation_price(tiers: np.ndarray, side: float, qty: float, entry: float, margin: float) -> float:
    """Isolated one-way liquidation price (see module docstring); 0 for a long that cannot be liquidated."""
    k = tier_of(tiers, qty * entry)
    if k < 0:
        k = tiers.shape[0] - 1
    mmr, cum = tiers[k, 2], tiers[k, 4]
    if side > 0:
        return max((qty * entry - margin - cum) / (qty * (1.0 - mmr)), 0.0)
    return (qty * entry + margin + cum) / (qty * (1.0 + mmr))


@njit(cache=True)
def round_qty(qty: float, step: float) -> float:
    """Round a quantity toward zero to the step size; the epsilon absorbs binary noise (0.03/0.001 = 29.999…)."""
    return np.trunc(qty / step + 1e-9) * step


@njit(cache=True)
def round_price(price: float, tick: float, side: float) -> float:
    """Round a price to the tick, against the trader (a buy pays up, a sell receives less)."""
    units = price / tick
    if side > 0:
        return np.ceil(units - 1e-9) * tick
    return np.floor(units + 1e-9) * tick
