"""Paper broker: the backtest's fill model, against the live trades and book when the collector records them.

Orders are journaled NEW when sent. What fills and in which bar is what the backtest engine's fill model did at
each bar of the trading session (``trader.BarPlan``: the entry decided at a close fills in the next bar; stops,
targets and liquidations intrabar; market exits in the next bar), so paper positions and the backtest's agree by
construction. The price:
- with a recorded market (lib/live_market: the collector's aggTrade and depth20 files, the `collector` live feed),
  a market order (entry, exit, the kill switch's flatten) fills against the first recorded book update after it
  was sent, taking the book's levels; a stop or target triggers at the first recorded trade through its trigger in
  the bar the model closed the position, and fills against the book after that trade. A liquidation keeps the
  model's price (mark-price driven). Where the recordings have no book or trade for the moment (a collector gap),
  the fill model's price is used and the fill's note says why;
- without one (replay, REST feed), the fill model's price: next open plus slippage, the stop or target price, or
  the next bar's open for an unplanned order.
The taker fee is charged on the fill's notional. Every fill also goes into the paper account
(trading.paper_account: a ledger of fills with the position, average price and cash balance after each), kept
apart from the journal's order events: reconciliation compares the journal's position with this account's, as it
compares it with an exchange's. An entry the fill model refused at the fill (margin, liquidation
guard) is journaled REJECTED with that reason. Protective legs (stop and target, reduce-only) are journaled NEW when
the entry fills and FILLED/CANCELED when the model closes the position. Nothing fills at a price from before it was
sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd

from btc_assets.lib.trading import trader
from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.journal import Journal, OrderEvent
from btc_assets.lib.trading.live_market import RecordedMarket

MINUTE = pd.Timedelta(minutes=1)
SIDE = {1: "BUY", -1: "SELL"}


PAPER_ACCOUNT = "trading.paper_account"
PAPER_TYPES = {"seq": "BIGINT", "fill_time": "TIMESTAMP", "client_order_id": "VARCHAR", "side": "VARCHAR",
               "qty": "DOUBLE", "price": "DOUBLE", "fee": "DOUBLE", "position": "DOUBLE", "avg_price": "DOUBLE",
               "balance": "DOUBLE", "realized": "DOUBLE"}


class PaperAccount:
    """The paper account's own ledger: one row per fill with the position, average entry price and USDT balance
    (initial + realized P&L - fees) after it. Written fill by fill, never derived from the journal's events."""

    def __init__(self, conn, initial_balance: float, table: str = PAPER_ACCOUNT):
        from btc_assets.lib.storage.warehouse import ensure_table

        self.conn, self.initial, self.table = conn, float(initial_balance), table
        ensure_table(conn, table, PAPER_TYPES)

    def last(self) -> tuple[float, float, float]:
        """(position, average price, balance) after the last fill."""
        row = self.conn.execute(f"SELECT position, avg_price, balance FROM {self.table} ORDER BY seq DESC "
                                "LIMIT 1").fetchall()
        return (float(row[0][0]), float(row[0][1]), float(row[0][2])) if row else (0.0, 0.0, self.initial)

    def apply(self, ev: OrderEvent) -> None:
        """Book one fill (once per client order id and side: a retried settle books nothing twice)."""
        seen = self.conn.execute(f"SELECT count(*) FROM {self.table} WHERE client_order_id = ?",
                                 [ev.client_order_id]).fetchone()[0]
        if seen:
            return
        pos, avg, bal = self.last()
        signed = ev.qty if ev.side == "BUY" else -ev.qty
        realized = 0.0
        if pos and (pos > 0) != (signed > 0):  # reduces (or flips) the position: realize on the closed part
            closed = min(abs(signed), abs(pos))
            realized = closed * (ev.price - avg) * (1 if pos > 0 else -1)
        new = pos + signed
        if abs(new) < 1e-12:
            new, avg = 0.0, 0.0
        elif pos == 0 or (pos > 0) != (new > 0):
            avg = ev.price  # opened, or flipped through flat
        elif (pos > 0) == (signed > 0):
            avg = (abs(pos) * avg + abs(signed) * ev.price) / abs(new)
        bal += realized - ev.fee
        self.conn.execute(
            f"INSERT INTO {self.table} VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM {self.table}), "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [pd.Timestamp.now(tz="UTC").tz_localize(None), ev.client_order_id, ev.side, ev.qty, ev.price, ev.fee,
             new, avg, bal, realized])

    def equity(self, mark: float | None = None) -> float:
        pos, avg, bal = self.last()
        return bal + (pos * (mark - avg) if mark is not None and pos else 0.0)


class PaperBroker(Broker):
    name = "paper"

    def __init__(self, journal: Journal, taker_fee: float, run_id: str, strategy: str = "",
                 market: RecordedMarket | None = None, initial_balance: float = 10_000.0):
        self.journal, self.taker_fee, self.run_id, self.strategy = journal, taker_fee, run_id, strategy
        self.market = market
        self.ledger = PaperAccount(journal.conn, initial_balance)

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
            price, note = self._market_price(entry, side, o.qty, plan.bar_time, o.price, "next open + slippage")
            fills.append(self._event(entry, "FILLED", decided_at, side, o.qty, price, o.qty * price * self.taker_fee,
                                     note))
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
            model_price = sum(c.qty * c.price for c in market_exits) / qty
            side = self.journal.orders_by_id([exit_order])[exit_order]["side"]
            price, note = self._market_price(exit_order, side, qty, plan.bar_time, model_price,
                                             "market exit at the open")
            fills.append(self._event(exit_order, "FILLED", decided_at, side, qty, price, qty * price * self.taker_fee,
                                     note))
        for c in plan.closed:
            entry_c = trader.entry_of(self.strategy, c.entry_time)
            if c.reason in trader.PROTECTIVE:
                leg = trader.protective_id(entry_c, c.reason)
                if state.get(leg) in (None, "NEW"):
                    side = "SELL" if self._side_of(entry_c) == "BUY" else "BUY"
                    price, note = self._protective_price(entry_c, c, side, plan.bar_time)
                    fills.append(self._event(leg, "FILLED", pd.Timestamp(c.entry_time) - MINUTE, side, c.qty,
                                             price, c.qty * price * self.taker_fee, note))
            self.cancel_protection(entry_c, plan.bar_time)
        return fills

    def fill_unplanned(self, open_price_at: Callable[[pd.Timestamp], float | None]) -> list[OrderEvent]:
        """Fill the NEW orders the rules did not plan (the kill switch's flatten) at the next bar's open."""
        fills = []
        o = self.journal.orders()
        pending = o[(o["event"] == "NEW") & o["client_order_id"].str.endswith("-kill")] if len(o) else o
        for row in pending.itertuples():
            price, note = open_price_at(row.bar_time + MINUTE), "fill model: next open + taker fee"
            if self.market is not None:
                fill = self.market.market_fill(row.side, row.qty, row.event_time, pd.Timestamp.now(tz="UTC"))
                if fill is not None:
                    price, note = fill.price, _book_note(fill)
            if price is not None:
                fills.append(self._event(row.client_order_id, "FILLED", row.bar_time, row.side, row.qty, price,
                                         row.qty * price * self.taker_fee, note))
        return fills

    def _market_price(self, cid: str, side: str, qty: float, bar_time: pd.Timestamp, model_price: float,
                      model_note: str) -> tuple[float, str]:
        """A market order's price: the recorded book after it was sent (within the bar the model fills it in)."""
        if self.market is None:
            return model_price, f"fill model: {model_note}"
        sent = self.journal.sent_at(cid) or bar_time
        fill = self.market.market_fill(side, qty, max(sent, bar_time), bar_time + MINUTE)
        if fill is None:
            return model_price, (f"fill model: {model_note} (no recorded book between {sent} and "
                                 f"{bar_time + MINUTE})")
        return fill.price, _book_note(fill)

    def _protective_price(self, entry_cid: str, c: trader.Closed, side: str,
                          bar_time: pd.Timestamp) -> tuple[float, str]:
        """A stop or target leg: triggered by the first recorded trade through it in the bar, filled at the book."""
        model = f"fill model: {c.reason} intrabar at {bar_time}"
        if self.market is None or c.reason not in ("stop", "take_profit"):
            return c.price, model
        opened = self.journal.conn.execute("SELECT opened FROM trading.decisions WHERE bar_time = ?",
                                           [pd.Timestamp(c.entry_time).tz_localize(None)]).fetchall()
        if not opened or opened[0][0] is None:
            return c.price, f"{model} (no trigger price journaled for {entry_cid})"
        o = trader.Opened(**json.loads(opened[0][0]))
        trigger = o.stop if c.reason == "stop" else o.target
        falling = (o.side == 1) == (c.reason == "stop")  # a long's stop and a short's target are below
        start = max(bar_time, self.journal.sent_at(entry_cid) or bar_time)  # not before the entry itself
        hit = self.market.first_trade_through(trigger, falling, start, bar_time + MINUTE)
        if hit is None:
            return c.price, f"{model} (no recorded trade through {trigger:.1f} in the bar)"
        fill = self.market.market_fill(side, c.qty, hit, bar_time + 2 * MINUTE)
        if fill is None:
            return c.price, f"{model} (no recorded book after the trigger at {hit})"
        return fill.price, f"{c.reason} triggered by the trade at {hit:%H:%M:%S.%f}"[:-3] + "; " + _book_note(fill)

    def cancel_protection(self, entry_order_id: str, bar_time: pd.Timestamp) -> None:
        legs = [trader.protective_id(entry_order_id, r) for r in ("stop", "take_profit")]
        for cid, row in self.journal.orders_by_id(legs).items():
            if row["event"] == "NEW":
                self._event(cid, "CANCELED", row["bar_time"], row["side"], row["qty"], None, 0.0,
                            f"position closed at {bar_time}")

    def position(self) -> float:
        """Net position in base units, from the paper account's own ledger (not from the journal)."""
        return self.ledger.last()[0]

    def account(self, mark: float | None = None) -> tuple[float, float]:
        """(equity, available) of the paper account: its balance plus unrealized P&L at `mark`."""
        e = self.ledger.equity(mark)
        return e, e

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
        if event == "FILLED":
            self.ledger.apply(ev)
        return ev


def _book_note(fill) -> str:
    note = f"live book at {fill.time:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f", {fill.levels} level(s)"
    return f"{note}; {fill.note}" if fill.note else note
