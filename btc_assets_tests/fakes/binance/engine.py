"""The fake exchange's matching engine over replayed 1m bars (synthetic book: bid = close, ask = close + one tick).

The cursor is the last closed bar: prices, the book and the mark come from it; nothing is known of later bars.

`advance()` moves to the next bar and matches resting orders against its range: a resting limit order fills at
its price (maker) only if the bar traded through it (low < buy price, high > sell price), conditional STOP_MARKET
and TAKE_PROFIT_MARKET orders trigger on the bar's high/low and fill at the trigger price (taker). MARKET orders
fill at once at the touch (taker). Every change is published to listeners as Binance user-data / market events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from btc_assets_tests.fakes.binance import errors
from btc_assets_tests.fakes.binance.account import Account
from btc_assets_tests.fakes.binance.orders import AlgoOrder, Order

Listener = Callable[[str, dict], None]  # (channel "market" or "user", event payload)


class Exchange:
    def __init__(self, bars: Sequence[Sequence[float]], symbol: str = "BTCUSDT", tick: str = "0.10",
                 step: str = "0.001", min_notional: float = 10.0, account: Account | None = None,
                 market_clock: bool = False):
        if not bars:
            raise ValueError("fake exchange: give at least one bar (open_time_ms, open, high, low, close, volume)")
        self.bars = [tuple(float(x) for x in b) for b in bars]
        self.symbol, self.tick, self.step, self.min_notional = symbol, Decimal(tick), Decimal(step), min_notional
        self.account = account or Account()
        self.cursor = 0
        self.clock_skew_ms = 0  # server clock = local clock + skew (inject -1021 by moving it)
        # market_clock: the server's clock follows its market, as a real venue's does: just after the current
        # bar's close (historical bars replayed "now"); otherwise the local clock
        self.market_clock, self.market_offset_ms = market_clock, 0
        self.orders: dict[int, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.algo_orders: dict[int, AlgoOrder] = {}
        self.listeners: list[Listener] = []
        self.lock = threading.RLock()
        self._next_id = 1_000_000
        self._follow_market()

    # -- market -----------------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.market_offset_ms + self.clock_skew_ms

    def _follow_market(self) -> None:
        if self.market_clock:  # 0.5 s after the current bar's close
            self.market_offset_ms = int(self.bars[self.cursor][0]) + 60_500 - int(time.time() * 1000)

    @property
    def bar(self) -> tuple:
        return self.bars[self.cursor]

    def best_bid_ask(self) -> tuple[float, float]:
        close = self.bar[4]
        return close, float(Decimal(str(close)) + self.tick)

    def mark(self) -> dict[str, float]:
        return {self.symbol: self.bar[4]}

    def advance(self, n: int = 1) -> None:
        """Move n bars on, matching resting and conditional orders against each new bar."""
        for _ in range(n):
            with self.lock:
                if self.cursor + 1 >= len(self.bars):
                    raise IndexError(f"fake exchange: replay ended at bar {self.cursor}; give more bars")
                self.cursor += 1
                self._follow_market()
                self._match_bar()
                self._publish("market", self._kline_event(closed=True))
                bid, ask = self.best_bid_ask()
                self._publish("market", {"e": "bookTicker", "u": self.cursor, "s": self.symbol,
                                         "b": f"{bid:.2f}", "B": "10.000", "a": f"{ask:.2f}", "A": "10.000",
                                         "T": self.now_ms(), "E": self.now_ms()})

    def _kline_event(self, closed: bool) -> dict:
        t, o, h, lo, c, v = self.bar
        return {"e": "kline", "E": self.now_ms(), "s": self.symbol, "k": {
            "t": int(t), "T": int(t) + 59_999, "s": self.symbol, "i": "1m", "f": 0, "L": 0, "o": f"{o:.2f}",
            "c": f"{c:.2f}", "h": f"{h:.2f}", "l": f"{lo:.2f}", "v": f"{v:.3f}", "n": 0, "x": closed, "q": "0",
            "V": "0", "Q": "0", "B": "0"}}

    def _match_bar(self) -> None:
        _, _, high, low, _, _ = self.bar
        for o in [o for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]:
            if (o.side == "BUY" and low < o.price) or (o.side == "SELL" and high > o.price):
                self._fill(o, o.price, maker=True)
        for a in [a for a in self.algo_orders.values() if a.status == "NEW"]:
            down = a.side == "SELL"
            hit = (low <= a.trigger_price) if (a.order_type == "STOP_MARKET") == down else (high >= a.trigger_price)
            if hit:
                self._trigger(a)

    # -- orders -----------------------------------------------------------------------------------------------
    def check_filters(self, qty: Decimal, price: Decimal | None, reduce_only: bool, ref_price: float) -> None:
        if qty <= 0 or qty % self.step != 0:
            raise errors.bad_precision("quantity")
        if price is not None and (price <= 0 or price % self.tick != 0):
            raise errors.bad_precision("price")
        if not reduce_only and float(qty) * float(price or ref_price) < self.min_notional:
            raise errors.notional_too_small(self.min_notional)

    def new_order(self, p: dict[str, str]) -> Order:
        with self.lock:
            cid = p.get("newClientOrderId") or f"fake-{self._next_id}"
            if cid in self.by_client_id:
                raise errors.duplicate_client_id()
            otype, side = p["type"], p["side"]
            if otype in ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"):
                raise errors.use_algo_endpoint()
            if otype not in ("LIMIT", "MARKET") or side not in ("BUY", "SELL"):
                raise errors.bad_value("type/side", f"{otype}/{side}")
            qty = Decimal(p["quantity"])
            price = Decimal(p["price"]) if otype == "LIMIT" else None
            reduce_only = p.get("reduceOnly", "false").lower() == "true"
            bid, ask = self.best_bid_ask()
            self.check_filters(qty, price, reduce_only, ask if side == "BUY" else bid)
            if reduce_only and self.account.opening_qty(self.symbol, side, float(qty)) > 0:
                raise errors.reduce_only_rejected()
            opening = self.account.opening_qty(self.symbol, side, float(qty))
            lev = self.account.position(self.symbol).leverage
            if opening * float(price or ask) / lev > self.account.available(self.mark()):
                raise errors.margin_insufficient()
            tif = p.get("timeInForce", "GTC")
            crosses = price is not None and ((side == "BUY" and price >= Decimal(str(ask)))
                                             or (side == "SELL" and price <= Decimal(str(bid))))
            if tif == "GTX" and crosses:
                raise errors.post_only_rejected()
            self._next_id += 1
            o = Order(self._next_id, cid, self.symbol, side, otype, tif, float(qty), float(price or 0), reduce_only,
                      self.now_ms(), accepted_wall=time.time())
            self.orders[o.order_id] = o
            self.by_client_id[cid] = o
            self._publish_order(o, "NEW")
            if otype == "MARKET":
                self._fill(o, ask if side == "BUY" else bid, maker=False)
            elif crosses:
                self._fill(o, ask if side == "BUY" else bid, maker=False)
            return o

    def find(self, order_id: str | None, client_id: str | None) -> Order:
        with self.lock:
            o = self.orders.get(int(order_id)) if order_id else self.by_client_id.get(client_id or "")
            if o is None:
                raise errors.unknown_order()
            return o

    def cancel(self, o: Order) -> Order:
        with self.lock:
            if o.status not in ("NEW", "PARTIALLY_FILLED"):
                raise errors.unknown_order()
            o.status, o.update_time = "CANCELED", self.now_ms()
            self._publish_order(o, "CANCELED")
            return o

    def new_algo_order(self, p: dict[str, str]) -> AlgoOrder:
        with self.lock:
            if p.get("algoType") != "CONDITIONAL":
                raise errors.bad_value("algoType", p.get("algoType", ""))
            if p["type"] not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise errors.bad_value("type", p["type"])
            trigger = Decimal(p["triggerPrice"])
            close_position = p.get("closePosition", "false").lower() == "true"
            qty = Decimal(p.get("quantity", "0"))
            if trigger % self.tick != 0:
                raise errors.bad_precision("triggerPrice")
            if not close_position and (qty <= 0 or qty % self.step != 0):
                raise errors.bad_precision("quantity")
            self._next_id += 1
            cid = p.get("clientAlgoId") or f"fake-algo-{self._next_id}"
            if any(a.client_algo_id == cid for a in self.algo_orders.values()):
                raise errors.duplicate_client_id()
            a = AlgoOrder(self._next_id, cid, self.symbol, p["side"], p["type"], float(qty), float(trigger),
                          p.get("reduceOnly", "false").lower() == "true", close_position, self.now_ms())
            self.algo_orders[a.algo_id] = a
            return a

    def _trigger(self, a: AlgoOrder) -> None:
        pos = self.account.position(self.symbol).amount
        qty = abs(pos) if a.close_position else a.quantity
        if a.reduce_only or a.close_position:
            closing = pos < 0 if a.side == "BUY" else pos > 0
            qty = min(qty, abs(pos)) if closing else 0.0
        a.status, a.update_time = ("TRIGGERED" if qty > 0 else "EXPIRED"), self.now_ms()
        if qty > 0:
            self._next_id += 1
            o = Order(self._next_id, f"{a.client_algo_id}"[:36], self.symbol, a.side, "MARKET", "GTC",
                      round(qty, 8), 0.0, True, self.now_ms(), orig_type=a.order_type, stop_price=a.trigger_price)
            self.orders[o.order_id] = o
            a.actual_order_id = o.order_id
            self._fill(o, a.trigger_price, maker=False)

    def _fill(self, o: Order, price: float, maker: bool) -> None:
        qty = round(o.orig_qty - o.executed_qty, 8)
        fee, realized = self.account.apply_fill(self.symbol, o.side, qty, price, maker, self.now_ms())
        o.cum_quote += qty * price
        o.executed_qty = o.orig_qty
        o.avg_price = o.cum_quote / o.executed_qty
        o.status, o.update_time = "FILLED", self.now_ms()
        self._publish_order(o, "TRADE", last_qty=qty, last_price=price, fee=fee, maker=maker, realized=realized)
        self._publish("user", self._account_update())

    # -- events -----------------------------------------------------------------------------------------------
    def _publish(self, channel: str, event: dict) -> None:
        for listener in list(self.listeners):
            listener(channel, event)

    def _publish_order(self, o: Order, exec_type: str, **fill) -> None:
        self._publish("user", {"e": "ORDER_TRADE_UPDATE", "E": self.now_ms(), "T": self.now_ms(),
                               "o": o.user_update(exec_type, **fill)})

    def _account_update(self) -> dict:
        p = self.account.position(self.symbol)
        return {"e": "ACCOUNT_UPDATE", "E": self.now_ms(), "T": self.now_ms(), "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": f"{self.account.wallet:.8f}", "cw": f"{self.account.wallet:.8f}",
                                 "bc": "0"}],
            "P": [{"s": self.symbol, "pa": f"{p.amount:.3f}", "ep": f"{p.entry_price:.8f}", "bep": "0",
                   "cr": f"{self.account.realized_pnl:.8f}", "up": "0", "iw": "0",
                   "mt": "isolated" if p.margin_type == "ISOLATED" else "cross",
                   "ps": "BOTH"}]}}
