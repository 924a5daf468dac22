"""Paper broker: the backtest's fill model applied to the live bars.

Orders are journaled NEW when sent. What fills, when and at what price is what the backtest engine's fill model
did at each bar of the trading session (``trader.BarPlan``: the entry decided at a close fills at the next open
with slippage; stops, targets and liquidations intrabar; market exits at the next open), so paper trading and the
backtest agree by construction. An entry the fill model refused at the fill (margin, liquidation guard) is
journaled REJECTED with that reason. Protective legs (stop and target, reduce-only) are journaled NEW when the
entry fills and FILLED/CANCELED when the model closes the position. An order the rules did not plan (the kill
switch's flatten) fills at the next bar's open plus the taker fee. Nothing fills at a price from before it was sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from btc_assets.lib import trader
from btc_assets.lib.brokers.base import Broker
from btc_assets.lib.journal import Journal, OrderEvent

MINUTE = pd.Timedelta(minutes=1)
SIDE = {1: "BUY", -1: "SELL"}


class PaperBroker(Broker):
    name = "paper"

    def __init__(self, journal: Journal, taker_fee: float, run_id: str, strategy: str = ""):
        self.journal, self.taker_fee, self.run_id, self.strategy = journal, taker_fee, run_id, strategy

    def submit(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float, *,
               reduce_only: bool = False, stop_distance: float = 0.0, take_profit_r: float = 0.0) -> bool:
        """Journal a market order as NEW; returns False (and sends nothing) if this id was already journaled."""
        if side not in ("BUY", "SELL") or qty <= 0:
            raise ValueError(f"order {client_order_id}: side must be BUY/SELL and qty > 0, got {side} {qty}")
        if self.journal.has_order(client_order_id):
            return False
        note = "reduce-only" if reduce_only else ""
        self._event(client_order_id, "NEW", bar_time, side, qty, None, 0.0, note)
        return True

    def settle(self, plan: trader.BarPlan) -> list[OrderEvent]:
        """Journal what the fill model did during the plan's bar; returns the fills. Safe to call again."""
        state = self._state()
        fills: list[OrderEvent] = []
        decided_at = plan.bar_time - MINUTE
        entry = trader.entry_id(self.strategy, decided_at)
        if plan.opened is not None and state.get(entry) == "NEW":
            o = plan.opened
            side, close_side = SIDE[o.side], SIDE[-o.side]
            fills.append(self._event(entry, "FILLED", decided_at, side, o.qty, o.price,
                                     o.qty * o.price * self.taker_fee, "fill model: next open + slippage"))
            for reason, price in (("stop", o.stop), ("take_profit", o.target)):
                self._event(trader.protective_id(entry, reason), "NEW", decided_at, close_side, o.qty, None, 0.0,
                            f"{'STOP_MARKET' if reason == 'stop' else 'TAKE_PROFIT_MARKET'} reduce-only "
                            f"trigger {price:.1f}")
        elif plan.opened is None and state.get(entry) == "NEW":
            new = self.journal.orders_by_id([entry])[entry]
            self._event(entry, "REJECTED", decided_at, new["side"], new["qty"], None, 0.0,
                        "refused by the fill model at the fill (margin or liquidation guard at the fill price)")
        market_exits = [c for c in plan.closed if c.reason in ("time", "signal")]
        exit_order = trader.exit_id(self.strategy, decided_at)
        if market_exits and state.get(exit_order) == "NEW":
            qty = sum(c.qty for c in market_exits)
            price = sum(c.qty * c.price for c in market_exits) / qty
            side = self.journal.orders_by_id([exit_order])[exit_order]["side"]
            fills.append(self._event(exit_order, "FILLED", decided_at, side, qty, price, qty * price * self.taker_fee,
                                     "fill model: market exit at the open"))
        for c in plan.closed:
            entry_c = trader.entry_of(self.strategy, c.entry_time)
            if c.reason in trader.PROTECTIVE:
                leg = trader.protective_id(entry_c, c.reason)
                if state.get(leg) in (None, "NEW"):
                    side = "SELL" if self._side_of(entry_c) == "BUY" else "BUY"
                    fee = c.qty * c.price * self.taker_fee
                    fills.append(self._event(leg, "FILLED", pd.Timestamp(c.entry_time) - MINUTE, side, c.qty,
                                             c.price, fee, f"fill model: {c.reason} intrabar at {plan.bar_time}"))
            self.cancel_protection(entry_c, plan.bar_time)
        return fills

    def fill_unplanned(self, open_price_at: Callable[[pd.Timestamp], float | None]) -> list[OrderEvent]:
        """Fill the NEW orders the rules did not plan (the kill switch's flatten) at the next bar's open."""
        fills = []
        o = self.journal.orders()
        pending = o[(o["event"] == "NEW") & o["client_order_id"].str.endswith("-kill")] if len(o) else o
        for row in pending.itertuples():
            price = open_price_at(row.bar_time + MINUTE)
            if price is not None:
                fills.append(self._event(row.client_order_id, "FILLED", row.bar_time, row.side, row.qty, price,
                                         row.qty * price * self.taker_fee, "next open + taker fee"))
        return fills

    def cancel_protection(self, entry_order_id: str, bar_time: pd.Timestamp) -> None:
        legs = [trader.protective_id(entry_order_id, r) for r in ("stop", "take_profit")]
        for cid, row in self.journal.orders_by_id(legs).items():
            if row["event"] == "NEW":
                self._event(cid, "CANCELED", row["bar_time"], row["side"], row["qty"], None, 0.0,
                            f"position closed at {bar_time}")

    def position(self) -> float:
        """Net filled position in base units, from the journal."""
        return self.journal.position(self.name)

    def cancel_all(self) -> None:
        """Journal CANCELED for every order still NEW: it will never fill."""
        open_orders = self.journal.orders()
        for row in open_orders[open_orders["event"] == "NEW"].itertuples() if len(open_orders) else []:
            self._event(row.client_order_id, "CANCELED", row.bar_time, row.side, row.qty, None, 0.0,
                        "cancelled by the kill switch")

    def _state(self) -> dict[str, str]:
        o = self.journal.orders()
        return dict(zip(o["client_order_id"], o["event"])) if len(o) else {}

    def _side_of(self, cid: str) -> str:
        row = self.journal.orders_by_id([cid]).get(cid)
        return row["side"] if row is not None else "BUY"

    def _event(self, cid, event, bar_time, side, qty, price, fee, note="") -> OrderEvent:
        ev = OrderEvent(cid, event, bar_time, side, qty, price, fee, self.name, self.run_id, note)
        self.journal.append(ev)
        return ev
