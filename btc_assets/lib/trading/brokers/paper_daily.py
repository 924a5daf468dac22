"""Paper broker of a daily strategy: a market order fills at once at the reference price the caller gives (the day's
open when its first 1m bar is known, else the previous close), moved against the order by `slippage_bps`, with
the taker fee on the fill's notional. Orders are journaled NEW, then FILLED (or REJECTED with the reason) in the
shared journal under this broker's name; every fill also goes into the strategy's own paper account
(`trading.paper_account_<strategy>`), which reconciliation compares with the journal. A client order id already
journaled sends nothing (a rerun of the day trades nothing twice)."""

from __future__ import annotations

import pandas as pd

from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.brokers.paper import PaperAccount
from btc_assets.lib.trading.journal import Journal, OrderEvent


class DailyPaperBroker(Broker):
    def __init__(self, journal: Journal, strategy: str, run_id: str, *, taker_fee: float = 0.0005,
                 slippage_bps: float = 0.0, initial_balance: float = 10_000.0):
        self.journal, self.strategy, self.run_id = journal, strategy, run_id
        self.taker_fee, self.slippage_bps = taker_fee, slippage_bps
        self.name = f"paper-{strategy}"
        self.account = PaperAccount(journal.conn, initial_balance, table=f"trading.paper_account_{strategy}")
        self.reference_price: float | None = None  # set by the caller before submit

    def submit(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float, *,
               reduce_only: bool = False, stop_distance: float = 0.0, take_profit_r: float = 0.0) -> bool:
        if side not in ("BUY", "SELL") or not qty > 0:
            raise ValueError(f"order {client_order_id}: side must be BUY/SELL and qty > 0, got {side} {qty}")
        if self.journal.has_order(client_order_id):
            return False
        px = self.reference_price
        self._event(client_order_id, "NEW", bar_time, side, qty, None, 0.0, "reduce-only" if reduce_only else "")
        if px is None or not px > 0:
            self._event(client_order_id, "REJECTED", bar_time, side, qty, None, 0.0, "no reference price to fill at")
            return True
        pos, _avg, _bal = self.account.last()
        if reduce_only and (abs(pos) < 1e-12 or (pos > 0) == (side == "BUY") or qty > abs(pos) + 1e-9):
            self._event(client_order_id, "REJECTED", bar_time, side, qty, None, 0.0,
                        f"reduce-only {side} {qty} against a position of {pos:+.6f}")
            return True
        fill = px * (1 + self.slippage_bps / 1e4 * (1 if side == "BUY" else -1))
        ev = self._event(client_order_id, "FILLED", bar_time, side, qty, fill, qty * fill * self.taker_fee,
                         f"paper fill at the reference {px:.2f} with {self.slippage_bps:g} bps slippage")
        self.account.apply(ev)
        return True

    def position(self) -> float:
        return self.account.last()[0]

    def balance(self) -> float:
        return self.account.last()[2]

    def equity(self, mark: float | None = None) -> float:
        return self.account.equity(mark)

    def cancel_all(self) -> None:  # market orders fill at once: nothing ever rests
        return None

    def _event(self, cid, event, bar_time, side, qty, price, fee, note) -> OrderEvent:
        ev = OrderEvent(cid, event, pd.Timestamp(bar_time), side, float(qty), price, float(fee), self.name,
                        self.run_id, note)
        self.journal.append(ev)
        return ev
