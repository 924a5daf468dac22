"""Paper broker: orders fill at the open of the bar after the decision, plus the taker fee.

The decision at a bar's close can only trade at the next available price, which is the next bar's open. If that
bar is not known yet the order stays NEW and fills when a later call sees it; it never fills at a price from
before it was sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from btc_assets.lib.brokers.base import Broker
from btc_assets.lib.journal import Journal, OrderEvent

MINUTE = pd.Timedelta(minutes=1)


class PaperBroker(Broker):
    name = "paper"

    def __init__(self, journal: Journal, taker_fee: float, run_id: str):
        self.journal = journal
        self.taker_fee = taker_fee
        self.run_id = run_id

    def submit(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float) -> bool:
        """Journal a market order as NEW; returns False (and sends nothing) if this id was already journaled."""
        if side not in ("BUY", "SELL") or qty <= 0:
            raise ValueError(f"order {client_order_id}: side must be BUY/SELL and qty > 0, got {side} {qty}")
        if self.journal.has_order(client_order_id):
            return False
        self.journal.append(OrderEvent(client_order_id, "NEW", bar_time, side, qty, None, 0.0, self.name, self.run_id))
        return True

    def fill_pending(self, open_price_at: Callable[[pd.Timestamp], float | None]) -> list[OrderEvent]:
        """Fill every NEW order whose next bar's open is now known; returns the fills."""
        fills = []
        pending = self.journal.orders()
        pending = pending[pending["event"] == "NEW"] if len(pending) else pending
        for row in pending.itertuples():
            price = open_price_at(row.bar_time + MINUTE)
            if price is None:
                continue
            fee = row.qty * price * self.taker_fee
            ev = OrderEvent(row.client_order_id, "FILLED", row.bar_time, row.side, row.qty, price, fee, self.name,
                            self.run_id)
            self.journal.append(ev)
            fills.append(ev)
        return fills

    def position(self) -> float:
        """Net filled position in base units, from the journal."""
        return self.journal.position()

    def cancel_all(self) -> None:
        """Journal CANCELED for every order still NEW: it will never fill."""
        open_orders = self.journal.orders()
        for row in open_orders[open_orders["event"] == "NEW"].itertuples() if len(open_orders) else []:
            self.journal.append(OrderEvent(row.client_order_id, "CANCELED", row.bar_time, row.side, row.qty, None,
                                           0.0, self.name, self.run_id, note="cancelled by the kill switch"))
