"""The fake Kraken Futures venue's state and matching: instruments, one flex (multi-collateral, USD) account, net
positions, open orders, fills, and a settable price per symbol.

The market is one price per symbol (`set_price`): last = mark = index = the price, bid = the price, ask = bid plus
one tick. A market order (`mkt`) fills at once at the ask (buy) or the bid (sell), as taker. A limit order (`lmt`)
that crosses the book at placement fills at once as taker; otherwise it rests (as a post-only `post` must: one that
would cross is refused with postWouldExecute) and fills at its limit, as maker, when a price set afterwards is at or
through it (buy: price <= limit, sell: price >= limit). Trigger orders (`stp`, `take_profit`) trigger when a price
set afterwards reaches their stopPrice (stp sell: price <= stop, take_profit sell: price >= stop, buys mirrored)
and fill at the stop price as taker, keeping their order_id and cliOrdId. Every fill charges the fee (maker 0.02 %,
taker 0.05 % of the notional by default) to the flex balance and realises P&L into it.

reduceOnly is enforced: an order that cannot reduce the position is refused (wouldNotReducePosition); one larger
than the position is cut to it when it fills (Kraken's reducedQuantity); a resting one with nothing left to reduce
is cancelled. Margin: an order's opening part needs notional x initial margin (2 %, or 1 / the symbol's
maxLeverage preference) of available margin, else insufficientAvailableFunds.

Only the linear PF_ contracts trade against the USD flex account; the inverse PI_XBTUSD is listed (instruments,
tickers) but, as on an account whose BTC margin account for inverse contracts is unfunded, its orders are refused
with insufficientAvailableFunds.

`orders/status` answers for open orders and for orders closed within `status_window_s` (5 s, as Kraken documents)
on `clock`; after that only `fills` remember a closed order.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from btc_assets_tests.fakes.kraken.errors import KrakenApiError

ORDER_TYPES = {"mkt", "lmt", "post", "ioc", "stp", "take_profit"}


@dataclass(frozen=True)
class Spec:
    symbol: str
    type: str
    tick: Decimal
    contract_size: Decimal
    precision: int  # contractValueTradePrecision: size step 10^-precision
    initial_margin: float = 0.02
    maintenance_margin: float = 0.01
    max_position: float = 1_000_000.0
    tradeable: bool = True

    @property
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.precision)

    def row(self) -> dict:
        """The instruments endpoint's row for this contract."""
        base = {"symbol": self.symbol, "type": self.type, "tradeable": self.tradeable, "tickSize": float(self.tick),
                "contractSize": float(self.contract_size), "impactMidSize": 1.0, "maxPositionSize": self.max_position,
                "openingDate": "2022-01-01T00:00:00.000Z", "contractValueTradePrecision": self.precision,
                "marginLevels": [{"numNonContractUnits": 0, "initialMargin": self.initial_margin,
                                  "maintenanceMargin": self.maintenance_margin}],
                "fundingRateCoefficient": 8, "maxRelativeFundingRate": 0.001, "postOnly": False,
                "feeScheduleUid": "5b755fea-c5b0-4307-a66e-b392cd5bd931", "mtf": False, "pair": "XBT:USD",
                "base": "XBT", "quote": "USD", "category": "Layer 1", "tags": [], "tradfi": False}
        if self.type != "flexible_futures":
            base["underlying"] = "rr_xbtusd"
            base["isin"] = "GB00J62YGL67"
        return base


PF_XBTUSD = Spec("PF_XBTUSD", "flexible_futures", Decimal("1"), Decimal("1"), 4)
PI_XBTUSD = Spec("PI_XBTUSD", "futures_inverse", Decimal("0.5"), Decimal("1"), 0)


@dataclass
class Order:
    order_id: str
    cli_ord_id: str | None
    symbol: str
    side: str  # buy / sell
    order_type: str
    size: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    trigger_signal: str | None
    reduce_only: bool
    received_ms: int
    filled: Decimal = Decimal(0)
    status: str = "open"  # open, filled, cancelled
    closed_at: float | None = None  # the exchange clock when it stopped being open
    updated_ms: int = 0

    @property
    def is_trigger(self) -> bool:
        return self.order_type in ("stp", "take_profit")


@dataclass
class Fill:
    fill_id: str
    symbol: str
    side: str
    order_id: str
    cli_ord_id: str | None
    size: Decimal
    price: Decimal
    time_ms: int
    fill_type: str  # maker / taker


@dataclass
class Position:
    size: Decimal = Decimal(0)  # signed contracts
    entry: float = 0.0
    fill_ms: int = 0


def iso(ms: int) -> str:
    t = time.gmtime(ms / 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


class KrakenExchange:
    def __init__(self, price: float = 42_000.0, balance_usd: float = 10_000.0, maker_fee: float = 0.0002,
                 taker_fee: float = 0.0005, specs: tuple[Spec, ...] = (PF_XBTUSD, PI_XBTUSD),
                 clock: Callable[[], float] = time.time, status_window_s: float = 5.0):
        self.specs = {s.symbol: s for s in specs}
        self.prices = {s.symbol: Decimal(str(price)) for s in specs}
        self.balance = float(balance_usd)
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.clock, self.status_window_s = clock, status_window_s
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.leverage: dict[str, float] = {}
        self.fees_paid = 0.0
        self.realized = 0.0
        self.lock = threading.RLock()
        self._ids = 0

    # -- ids and time -------------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _uuid(self) -> str:
        self._ids += 1
        return str(uuid.UUID(int=(0x4B52414B << 96) | self._ids))

    # -- market -------------------------------------------------------------------------------------------------
    def spec(self, symbol: str) -> Spec:
        s = self.specs.get(str(symbol).upper())
        if s is None:
            raise KrakenApiError("invalidArgument")
        return s

    def bid_ask(self, symbol: str = "PF_XBTUSD") -> tuple[Decimal, Decimal]:
        sym = self.spec(symbol).symbol
        return self.prices[sym], self.prices[sym] + self.specs[sym].tick

    def set_price(self, price: float, symbol: str = "PF_XBTUSD") -> None:
        """Move the market (last = mark = price): resting limits and trigger orders it reaches fill."""
        with self.lock:
            sym = self.spec(symbol).symbol
            p = Decimal(str(price))
            self.prices[sym] = p
            for o in [o for o in self.orders.values() if o.status == "open" and o.symbol == sym]:
                if o.is_trigger:
                    below = (o.order_type == "stp") == (o.side == "sell")  # triggers on the way down
                    if (p <= o.stop_price) if below else (p >= o.stop_price):
                        self._fill(o, o.stop_price, "taker")
                elif (o.side == "buy" and p <= o.limit_price) or (o.side == "sell" and p >= o.limit_price):
                    self._fill(o, o.limit_price, "maker")

    def position(self, symbol: str = "PF_XBTUSD") -> Position:
        return self.positions.setdefault(str(symbol).upper(), Position())

    # -- account ------------------------------------------------------------------------------------------------
    def _im_rate(self, symbol: str) -> float:
        lev = self.leverage.get(symbol)
        return 1.0 / lev if lev else self.specs[symbol].initial_margin

    def unrealized(self) -> float:
        return sum(float(p.size * self.specs[s].contract_size) * (float(self.prices[s]) - p.entry)
                   for s, p in self.positions.items() if p.size)

    def initial_margin(self, with_orders: bool = False) -> float:
        im = sum(abs(float(p.size * self.specs[s].contract_size)) * float(self.prices[s]) * self._im_rate(s)
                 for s, p in self.positions.items() if p.size)
        if with_orders:
            im += sum(self._opening(o.symbol, o.side, o.size - o.filled) * float(o.limit_price or self.prices[o.symbol])
                      * float(self.specs[o.symbol].contract_size) * self._im_rate(o.symbol)
                      for o in self.orders.values() if o.status == "open" and not o.reduce_only and not o.is_trigger)
        return im

    def available_margin(self) -> float:
        return self.balance + self.unrealized() - self.initial_margin(with_orders=True)

    def accounts(self) -> dict:
        upnl, im = self.unrealized(), self.initial_margin()
        equity = self.balance + upnl
        return {
            "cash": {"type": "cashAccount", "balances": {"usd": 0.0, "xbt": 0.0}},
            "fi_xbtusd": {"type": "marginAccount", "currency": "xbt", "balances": {"xbt": 0.0},
                          "auxiliary": {"usd": 0, "pv": 0.0, "pnl": 0.0, "af": 0.0, "funding": 0.0},
                          "marginRequirements": {"im": 0.0, "mm": 0.0, "lt": 0.0, "tt": 0.0},
                          "triggerEstimates": {"im": 0, "mm": 0, "lt": 0, "tt": 0}},
            "flex": {"type": "multiCollateralMarginAccount",
                     "currencies": {"USD": {"quantity": self.balance, "value": self.balance,
                                            "collateral": self.balance, "available": self.available_margin()}},
                     "initialMargin": im, "initialMarginWithOrders": self.initial_margin(with_orders=True),
                     "maintenanceMargin": im / 2, "balanceValue": self.balance, "portfolioValue": equity,
                     "collateralValue": self.balance, "pnl": upnl, "unrealizedFunding": 0.0,
                     "totalUnrealized": upnl, "totalUnrealizedAsMargin": upnl,
                     "availableMargin": self.available_margin(), "marginEquity": equity},
        }

    # -- orders -------------------------------------------------------------------------------------------------
    def _opening(self, symbol: str, side: str, size: Decimal) -> float:
        """The part of `size` that would open or grow the position (the rest reduces it)."""
        pos = self.position(symbol).size
        signed = size if side == "buy" else -size
        if pos == 0 or (pos > 0) == (signed > 0):
            return float(size)
        return float(max(abs(signed) - abs(pos), Decimal(0)))

    def _reducible(self, symbol: str, side: str) -> Decimal:
        pos = self.position(symbol).size
        return abs(pos) if (pos > 0 and side == "sell") or (pos < 0 and side == "buy") else Decimal(0)

    def send_order(self, p: dict[str, str]) -> dict:
        """sendorder: the sendStatus object (status placed, or the reason it was refused)."""
        with self.lock:
            now = self.now_ms()
            refused = {"receivedTime": iso(now)}
            cid = p.get("cliOrdId")
            if cid is not None:
                if len(cid) > 100:
                    return {**refused, "status": "clientOrderIdTooLong"}
                if any(o.cli_ord_id == cid and o.status == "open" for o in self.orders.values()):
                    return {**refused, "status": "clientOrderIdAlreadyExist"}
            for name in ("orderType", "symbol", "side", "size"):
                if not p.get(name):
                    raise KrakenApiError("requiredArgumentMissing")
            otype, side = p["orderType"], p["side"]
            if otype not in ORDER_TYPES:
                return {**refused, "status": "invalidOrderType"}
            if side not in ("buy", "sell"):
                raise KrakenApiError("invalidArgument")
            spec = self.spec(p["symbol"])
            if not spec.tradeable:
                return {**refused, "status": "marketSuspended"}
            try:
                size = Decimal(p["size"])
                limit = Decimal(p["limitPrice"]) if p.get("limitPrice") else None
                stop = Decimal(p["stopPrice"]) if p.get("stopPrice") else None
            except InvalidOperation:
                raise KrakenApiError("invalidArgument") from None
            if size <= 0 or size % spec.step != 0:
                return {**refused, "status": "invalidSize"}
            if otype in ("lmt", "post", "ioc") and limit is None or otype in ("stp", "take_profit") and stop is None:
                raise KrakenApiError("requiredArgumentMissing")
            for price in (limit, stop):
                if price is not None and (price <= 0 or price % spec.tick != 0):
                    return {**refused, "status": "invalidPrice"}
            reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
            if reduce_only and self._reducible(spec.symbol, side) == 0:
                return {**refused, "status": "wouldNotReducePosition"}
            bid, ask = self.bid_ask(spec.symbol)
            crosses = limit is not None and ((side == "buy" and limit >= ask) or (side == "sell" and limit <= bid))
            if otype == "post" and crosses:
                return {**refused, "status": "postWouldExecute"}
            if otype == "ioc" and not crosses:
                return {**refused, "status": "iocWouldNotExecute"}
            ref = limit or stop or (ask if side == "buy" else bid)
            if spec.type != "flexible_futures":  # inverse: BTC margin account, unfunded here
                return {**refused, "status": "insufficientAvailableFunds"}
            opening = 0.0 if reduce_only else self._opening(spec.symbol, side, size)
            need = opening * float(ref) * float(spec.contract_size) * self._im_rate(spec.symbol)
            if not (otype in ("stp", "take_profit")) and need > self.available_margin():
                return {**refused, "status": "insufficientAvailableFunds"}
            o = Order(self._uuid(), cid, spec.symbol, side, otype, size, limit, stop, p.get("triggerSignal"),
                      reduce_only, now, updated_ms=now)
            self.orders[o.order_id] = o
            events: list[dict] = []
            if otype == "mkt" or (otype in ("lmt", "ioc") and crosses):
                fill = self._fill(o, ask if side == "buy" else bid, "taker")
                if fill is not None:
                    events.append({"type": "EXECUTION", "executionId": fill.fill_id, "price": float(fill.price),
                                   "amount": float(fill.size), "orderPriorExecution": self.order_json(o),
                                   "takerReducedQuantity": None})
            else:
                events.append({"type": "PLACE", "order" if not o.is_trigger else "orderTrigger": self.order_json(o),
                               "reducedQuantity": None})
            return {"order_id": o.order_id, "cliOrdId": cid, "status": "placed", "receivedTime": iso(now),
                    "orderEvents": events}

    def _fill(self, o: Order, price: Decimal, fill_type: str) -> Fill | None:
        size = o.size - o.filled
        if o.reduce_only:
            size = min(size, self._reducible(o.symbol, o.side))
            if size <= 0:  # nothing left to reduce: the order goes away
                self._close(o, "cancelled")
                return None
            o.size = o.filled + size
        spec = self.specs[o.symbol]
        pos = self.position(o.symbol)
        signed = size if o.side == "buy" else -size
        cs = float(spec.contract_size)
        notional = float(size) * float(price) * cs
        fee = notional * (self.maker_fee if fill_type == "maker" else self.taker_fee)
        realized = 0.0
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            new = pos.size + signed
            pos.entry = (float(abs(pos.size)) * pos.entry + float(size) * float(price)) / float(abs(new))
            pos.size = new
        else:
            closing = min(abs(signed), abs(pos.size))
            realized = float(closing) * cs * (float(price) - pos.entry) * (1 if pos.size > 0 else -1)
            new = pos.size + signed
            if new == 0:
                pos.entry = 0.0
            elif (new > 0) != (pos.size > 0):
                pos.entry = float(price)
            pos.size = new
        pos.fill_ms = self.now_ms()
        self.balance += realized - fee
        self.realized += realized
        self.fees_paid += fee
        o.filled += size
        fill = Fill(self._uuid(), o.symbol, o.side, o.order_id, o.cli_ord_id, size, price, self.now_ms(), fill_type)
        self.fills.append(fill)
        self._close(o, "filled")
        return fill

    def _close(self, o: Order, status: str) -> None:
        o.status, o.closed_at, o.updated_ms = status, self.clock(), self.now_ms()

    def find(self, order_id: str | None = None, cli_ord_id: str | None = None) -> Order | None:
        """The open order with this id, else the latest order with it."""
        if order_id:
            return self.orders.get(order_id)
        matches = [o for o in self.orders.values() if o.cli_ord_id == cli_ord_id]
        return next((o for o in matches if o.status == "open"), matches[-1] if matches else None)

    def cancel(self, order_id: str | None, cli_ord_id: str | None) -> dict:
        with self.lock:
            now = self.now_ms()
            o = self.find(order_id, cli_ord_id)
            if o is None or o.status == "cancelled":
                return {"status": "notFound", "receivedTime": iso(now)}
            if o.status == "filled":
                return {"status": "filled", "receivedTime": iso(now), "order_id": o.order_id}
            self._close(o, "cancelled")
            return {"status": "cancelled", "order_id": o.order_id, "cliOrdId": o.cli_ord_id, "receivedTime": iso(now),
                    "orderEvents": [{"uid": o.order_id, "order": self.order_json(o), "type": "CANCEL"}]}

    def cancel_all(self, symbol: str | None) -> dict:
        with self.lock:
            now = self.now_ms()
            gone = [o for o in self.orders.values()
                    if o.status == "open" and (symbol is None or o.symbol == str(symbol).upper())]
            for o in gone:
                self._close(o, "cancelled")
            return {"receivedTime": iso(now), "cancelOnly": str(symbol).lower() if symbol else "all",
                    "status": "cancelled" if gone else "noOrdersToCancel",
                    "cancelledOrders": [{"order_id": o.order_id, "cliOrdId": o.cli_ord_id} for o in gone],
                    "orderEvents": []}

    # -- renderings ---------------------------------------------------------------------------------------------
    def order_json(self, o: Order) -> dict:
        return {"orderId": o.order_id, "cliOrdId": o.cli_ord_id, "type": o.order_type, "symbol": o.symbol.lower(),
                "side": o.side, "quantity": float(o.size), "filled": float(o.filled),
                "limitPrice": float(o.limit_price) if o.limit_price is not None else None,
                "stopPrice": float(o.stop_price) if o.stop_price is not None else None,
                "reduceOnly": o.reduce_only, "timestamp": iso(o.received_ms), "lastUpdateTimestamp": iso(o.updated_ms)}

    def open_orders(self) -> list[dict]:
        return [{"order_id": o.order_id, "cliOrdId": o.cli_ord_id, "symbol": o.symbol.lower(), "side": o.side,
                 "orderType": o.order_type,
                 **({"limitPrice": float(o.limit_price)} if o.limit_price is not None else {}),
                 **({"stopPrice": float(o.stop_price), "triggerSignal": o.trigger_signal or "mark"}
                    if o.stop_price is not None else {}),
                 "unfilledSize": float(o.size - o.filled), "filledSize": float(o.filled),
                 "receivedTime": iso(o.received_ms), "status": "untouched" if o.filled == 0 else "partiallyFilled",
                 "reduceOnly": o.reduce_only, "lastUpdateTime": iso(o.updated_ms)}
                for o in self.orders.values() if o.status == "open"]

    def open_positions(self) -> list[dict]:
        return [{"side": "long" if p.size > 0 else "short", "symbol": s.lower(), "price": p.entry,
                 "fillTime": iso(p.fill_ms), "size": float(abs(p.size)), "unrealizedFunding": 0.0,
                 "pnlCurrency": "USD", "maxFixedLeverage": self.leverage.get(s)}
                for s, p in self.positions.items() if p.size != 0]

    def order_statuses(self, order_ids: list[str], cli_ord_ids: list[str]) -> list[dict]:
        """orders/status rows: open orders, and orders closed within status_window_s."""
        out = []
        for o in self.orders.values():
            if o.order_id not in order_ids and o.cli_ord_id not in cli_ord_ids:
                continue
            if o.status != "open" and self.clock() - (o.closed_at or 0.0) > self.status_window_s:
                continue
            status = ("TRIGGER_PLACED" if o.is_trigger else "ENTERED_BOOK") if o.status == "open" else {
                "filled": "FULLY_EXECUTED", "cancelled": "CANCELLED"}[o.status]
            order = {**self.order_json(o), "type": "TRIGGER_ORDER" if o.is_trigger and o.status == "open" else "ORDER",
                     "priceTriggerOptions": ({"triggerPrice": float(o.stop_price), "triggerSide":
                                              "TRIGGER_BELOW" if (o.order_type == "stp") == (o.side == "sell")
                                              else "TRIGGER_ABOVE", "triggerSignal": (o.trigger_signal or "mark")
                                              .upper() + "_PRICE"} if o.is_trigger else None)}
            out.append({"order": order, "status": status, "updateReason": None, "error": None})
        return out

    def fills_json(self, last_fill_time: str | None = None) -> list[dict]:
        """The account's latest fills, newest first (at most 100, as Kraken returns)."""
        rows = [f for f in reversed(self.fills) if last_fill_time is None or iso(f.time_ms) < last_fill_time]
        return [{"fill_id": f.fill_id, "symbol": f.symbol.lower(), "side": f.side, "order_id": f.order_id,
                 **({"cliOrdId": f.cli_ord_id} if f.cli_ord_id else {}), "size": float(f.size),
                 "price": float(f.price), "fillTime": iso(f.time_ms), "fillType": f.fill_type}
                for f in rows[:100]]

    def tickers(self) -> list[dict]:
        now = self.now_ms()
        out = []
        for s, spec in self.specs.items():
            bid, ask = self.bid_ask(s)
            out.append({"tag": "perpetual", "pair": "XBT:USD", "symbol": s, "markPrice": float(bid),
                        "bid": float(bid), "bidSize": 10.0, "ask": float(ask), "askSize": 10.0, "vol24h": 1000.0,
                        "volumeQuote": 1000.0 * float(bid), "openInterest": 500.0, "open24h": float(bid),
                        "indexPrice": float(bid), "last": float(bid), "lastTime": iso(now), "lastSize": 0.01,
                        "suspended": not spec.tradeable, "fundingRate": 0.0, "fundingRatePrediction": 0.0,
                        "postOnly": False})
        return out

