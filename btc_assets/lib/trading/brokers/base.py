"""The interface every broker implements (paper, Binance testnet, Binance live).

A broker takes market orders keyed by a deterministic client order id (journal.client_order_id): submitting an id
that was already sent sends nothing and returns False, so a retried run never trades twice. How an order is worked
(paper: next bar's open; Binance: post-only maker quotes, then market) is the broker's business.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class Broker(Protocol):
    name: str

    def submit(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float, *,
               reduce_only: bool = False, stop_distance: float = 0.0, take_profit_r: float = 0.0) -> bool:
        """Send (or resume) the order; False when this id was already fully handled before. reduce_only: only
        reduces the position (market at once on an exchange); stop_distance: protective legs after the fill."""
        ...

    def position(self) -> float:
        """Net position in base units (BTC), as the broker knows it."""
        ...

    def cancel_all(self) -> None:
        """Cancel every open order of the symbol (the kill switch's first step)."""
        ...
