"""The Binance USD-M broker (testnet or live): maker-first execution, protective orders, reconciliation.

An order is worked as: a post-only (GTX) limit at the best price on our side, cancelled and requoted after
`requote_after_s` if not filled, and after `maker_tries` quotes the remainder goes as a MARKET order. Each quote and
the market leg get ids derived from the order's client id (`<id>-m0`, `<id>-m1`, `<id>-mk`), so a retried run looks
each one up (origClientOrderId) before sending it and never trades twice; a lost acknowledgement is resolved the
same way. Protective STOP_MARKET / TAKE_PROFIT_MARKET orders are conditional (algo) orders with closePosition.
The journal gets NEW before anything is sent, an ACK per leg with its final exchange state, then FILLED (or
REJECTED with Binance's code when the exchange refuses the order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.brokers.binance_legs import DUPLICATE_ID, NO_CHANGE, UNKNOWN_ORDER, OrderLegs
from btc_assets.lib.data.rest.errors import AckUncertain, BinanceError
from btc_assets.lib.trading.brokers.binance_rest import BinanceRest
from btc_assets.lib.trading.journal import STOP_SUFFIXES, TARGET_SUFFIXES, Journal, OrderEvent, leg_id
from btc_assets.lib.trading.sizing import round_step

log = logging.getLogger(__name__)
_STARTED: dict[tuple, tuple[float, float, int]] = {}  # accounts set up by this process: filters, clock offset


def journaled_trigger(note: str) -> float:
    """The trigger price a protective leg was journaled with: "STOP_MARKET closePosition trigger 123.4" (a moved
    leg's note goes on: "... trigger 123.4 (moved to the plan's price)")."""
    return float(str(note).rsplit("trigger ", 1)[1].split()[0])


@dataclass(frozen=True)
class ExecutionConfig:
    symbol: str = "BTCUSDT"
    leverage: int = 2
    margin_type: str = "ISOLATED"
    requote_after_s: float = 2.0
    maker_tries: int = 3
    poll_s: float = 0.2
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005


@dataclass
class Reconciliation:
    position: float
    open_orders: list[dict] = field(default_factory=list)
    open_algo_orders: list[dict] = field(default_factory=list)
    expected_position: float | None = None

    @property
    def matches(self) -> bool:
        return self.expected_position is None or abs(self.position - self.expected_position) < 1e-9


class BinanceBroker(Broker):
    name = "binance"

    def __init__(self, rest: BinanceRest, journal: Journal | None, run_id: str,
                 config: ExecutionConfig = ExecutionConfig(), sleep: Callable[[float], None] = time.sleep):
        self.rest, self.journal, self.run_id, self.config, self.sleep = rest, journal, run_id, config, sleep
        self.legs = OrderLegs(rest, config.symbol, config.requote_after_s, config.poll_s, sleep)
        self.step, self.tick = 0.001, 0.1

    def __repr__(self) -> str:
        return f"BinanceBroker({self.rest!r}, symbol={self.config.symbol!r})"

    # -- session ----------------------------------------------------------------------------------------------
    def start(self, expected_position: float | None = None) -> Reconciliation | None:
        """Sync the clock, read the symbol's filters, set leverage and margin type, reconcile with the exchange.

        Done once per process and exchange account (a long-lived trader starts each bar's broker warm: the filters,
        the clock offset and the account settings are kept); returns None when it was already done here."""
        c = self.config
        key = (self.rest.base_url, c.symbol, c.leverage, c.margin_type)
        if key in _STARTED:
            self.step, self.tick, self.rest.time_offset_ms = _STARTED[key]
            self.verify_account()  # every run: a person or another process may have changed them since
            return None
        self.rest.sync_time()
        info = self.rest.call("GET", "/fapi/v1/exchangeInfo", signed=False)
        sym = next((s for s in info["symbols"] if s["symbol"] == c.symbol), None)
        if sym is None:
            raise BinanceError(f"exchangeInfo at {self.rest.base_url} does not list {c.symbol}: check the symbol.")
        filters = {f["filterType"]: f for f in sym["filters"]}
        self.step, self.tick = float(filters["LOT_SIZE"]["stepSize"]), float(filters["PRICE_FILTER"]["tickSize"])
        try:
            self.rest.call("POST", "/fapi/v1/marginType", {"symbol": c.symbol, "marginType": c.margin_type})
        except BinanceError as e:
            if e.code != NO_CHANGE:
                raise
        self.rest.call("POST", "/fapi/v1/leverage", {"symbol": c.symbol, "leverage": c.leverage})
        self.verify_account()
        rec = self.reconcile(expected_position)
        _STARTED[key] = (self.step, self.tick, self.rest.time_offset_ms)
        return rec

    def verify_account(self) -> None:
        """The exchange's leverage and margin mode for the symbol must be the settings' (the rules size and guard
        liquidation with them); BinanceError naming both otherwise, before any order."""
        c = self.config
        rows = [r for r in self.rest.call("GET", "/fapi/v2/positionRisk", {"symbol": c.symbol})
                if r["symbol"] == c.symbol]
        for r in rows:
            lev, margin = int(float(r["leverage"])), {"CROSS": "CROSSED"}.get(str(r["marginType"]).upper(),
                                                                               str(r["marginType"]).upper())
            if lev != c.leverage or margin != c.margin_type.upper():
                raise BinanceError(
                    f"{c.symbol} on {self.rest.base_url} trades at leverage {lev} with {margin} margin, but the "
                    f"trading settings size for leverage {c.leverage} with {c.margin_type} margin: nothing was sent. "
                    "Set the trading resource's leverage/margin_mode to the account's, or change the account "
                    "(open positions keep their leverage until closed).")

    def reconcile(self, expected_position: float | None = None) -> Reconciliation:
        """The exchange's position and open orders (call at start and every bar); logs a mismatch."""
        sym = {"symbol": self.config.symbol}
        rec = Reconciliation(self.position(), self.rest.call("GET", "/fapi/v1/openOrders", sym),
                             self.rest.call("GET", "/fapi/v1/openAlgoOrders", sym), expected_position)
        if not rec.matches:
            log.warning("reconcile %s: exchange position %.3f, journal expects %.3f", self.config.symbol,
                        rec.position, expected_position)
        return rec

    def account(self) -> tuple[float, float]:
        """(equity, available balance) of the USDT account in USDT: wallet + unrealized P&L, and what is free for
        new margin, as the exchange reports them."""
        rows = [r for r in self.rest.call("GET", "/fapi/v2/balance", {}) if r["asset"] == "USDT"]
        if not rows:
            raise BinanceError(f"no USDT balance on {self.rest.base_url}: fund the futures account before trading")
        r = rows[0]
        return float(r["crossWalletBalance"]) + float(r["crossUnPnl"]), float(r["availableBalance"])

    def position(self) -> float:
        rows = self.rest.call("GET", "/fapi/v2/positionRisk", {"symbol": self.config.symbol})
        return sum(float(r["positionAmt"]) for r in rows if r["symbol"] == self.config.symbol)

    def cancel_all(self) -> None:
        sym = {"symbol": self.config.symbol}
        self.rest.call("DELETE", "/fapi/v1/allOpenOrders", sym)
        self.rest.call("DELETE", "/fapi/v1/algoOpenOrders", sym)

    # -- orders -----------------------------------------------------------------------------------------------
    def submit(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float, *,
               reduce_only: bool = False, stop_distance: float = 0.0, take_profit_r: float = 0.0) -> bool:
        """Work the order maker-first (an exit, ``reduce_only``, goes to market at once); False (nothing sent) if
        the journal already has it filled, rejected, cancelled or skipped. With a ``stop_distance`` the filled entry gets its
        protective legs:
        a stop that far from the average fill price and a target ``take_profit_r`` times as far on the other side.
        """
        qty = round_step(qty, self.step)
        if side not in ("BUY", "SELL") or qty <= 0:
            raise ValueError(f"order {client_order_id}: side must be BUY/SELL and qty >= one step ({self.step}), "
                             f"got {side} {qty}")
        if self.journal is not None:
            known = self.journal.orders_by_id([client_order_id]).get(client_order_id)
            if known is not None and known["event"] in ("FILLED", "REJECTED", "CANCELED", "SKIPPED"):
                return False  # refused, done or skipped: never sent (again)
            if known is None:
                self._journal(client_order_id, "NEW", bar_time, side, qty, None, 0.0)
        try:
            avg = self._work(client_order_id, bar_time, side, qty, reduce_only)
        except BinanceError as e:
            if e.code is not None:  # the exchange refused it (e.g. -2019): journal why, then stop
                self._journal(client_order_id, "REJECTED", bar_time, side, qty, None, 0.0, note=str(e)[:200])
            raise
        if stop_distance > 0:
            sign = 1.0 if side == "BUY" else -1.0
            try:
                self.protect(client_order_id, "LONG" if sign > 0 else "SHORT", avg - sign * stop_distance,
                             avg + sign * stop_distance * take_profit_r, bar_time=bar_time, qty=qty)
            except BinanceError as e:  # the legs are journaled NEW with their triggers: ensure_protection retries
                log.error("order %s filled but its protection was not placed (%s); retried every run until placed "
                          "or the position is closed", client_order_id, str(e)[:200])
        return True

    def ensure_protection(self) -> list[str]:
        """Place again every journaled protective leg (NEW) the exchange does not have while a position is open;
        close out (CANCELED) the legs of a flat account. Returns the legs re-placed. Called every run, so a leg
        that failed is retried until placed or the position is closed."""
        if self.journal is None:
            return []
        legs = self.journal.open_protective_legs(self.name)
        if legs.empty:
            return []
        position = self.position()
        on_exchange = {a["clientAlgoId"] for a in self.rest.call(
            "GET", "/fapi/v1/openAlgoOrders", {"symbol": self.config.symbol})}
        placed = []
        for row in legs.itertuples():
            cid = row.client_order_id
            if cid in on_exchange:
                continue
            if self._fired(cid):  # settle()'s: its fill is journaled there (it may be why the position is flat)
                continue
            if abs(position) < self.step / 2:
                self._journal(cid, "CANCELED", row.bar_time, row.side, row.qty, None, 0.0,
                              note="position flat: protection no longer needed")
                continue
            trigger = journaled_trigger(row.note)
            kind = "STOP_MARKET" if cid[-2:] in STOP_SUFFIXES else "TAKE_PROFIT_MARKET"
            self._place_leg(cid, row.side, kind, trigger)
            placed.append(cid)
        return placed

    def _work(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float,
              reduce_only: bool = False) -> float:
        filled, notional, fee = 0.0, 0.0, 0.0
        quotes = [leg_id(client_order_id, f"m{i}") for i in range(0 if reduce_only else self.config.maker_tries)]
        mk = leg_id(client_order_id, "mk")
        # A retried run resumes after the furthest leg the exchange already has: an earlier quote it does not know
        # was refused post-only, and placing it now would trade on top of the later legs' fills.
        known = {cid: self.legs.existing(cid) for cid in [*quotes, mk]}
        resume_at = max((i for i, cid in enumerate([*quotes, mk]) if known[cid] is not None), default=0)
        for i, cid in enumerate(quotes):
            order = self.legs.quote(cid, side, round_step(qty - filled, self.step), known[cid], i >= resume_at)
            if order is not None:
                self._journal_leg(client_order_id, bar_time, order)
                q = float(order["executedQty"])
                filled, notional = filled + q, notional + q * float(order["avgPrice"])
                fee += q * float(order["avgPrice"]) * self.config.maker_fee
            if round_step(qty - filled, self.step) <= 0:
                break
        rest_qty = round_step(qty - filled, self.step)
        if rest_qty > 0:
            params = {"side": side, "type": "MARKET", "quantity": f"{rest_qty:.3f}"}
            if reduce_only:
                params["reduceOnly"] = "true"
            order = known[mk] or self.legs.place(mk, params)
            for _ in range(10):  # an ACK-style reply (status NEW) turns FILLED within moments
                if order["status"] == "FILLED":
                    break
                self.sleep(self.config.poll_s)
                order = self.legs.query(mk)
            self._journal_leg(client_order_id, bar_time, order)
            q = float(order["executedQty"])
            filled, notional = filled + q, notional + q * float(order["avgPrice"])
            fee += q * float(order["avgPrice"]) * self.config.taker_fee
        if filled <= 0:
            raise BinanceError(f"order {client_order_id}: nothing filled on {self.rest.base_url} after the maker "
                               "quotes and the market order; check the orders of this id on the exchange.")
        self._journal(client_order_id, "FILLED", bar_time, side, filled, notional / filled, fee,
                      note="fee estimated from maker/taker rates")
        return notional / filled

    def protect(self, client_order_id: str, position_side: str, stop_price: float, take_profit_price: float,
                bar_time: pd.Timestamp | None = None, qty: float = 0.0) -> None:
        """Place reduce-only STOP_MARKET and TAKE_PROFIT_MARKET (closePosition) for a LONG or SHORT position;
        journaled NEW per leg when ``bar_time`` is given (settle() later journals the one that fires)."""
        close_side = "SELL" if position_side == "LONG" else "BUY"
        legs = (("sl", "STOP_MARKET", stop_price), ("tp", "TAKE_PROFIT_MARKET", take_profit_price))
        for suffix, otype, price in legs:  # both journaled (with their triggers) before either is sent
            cid = leg_id(client_order_id, suffix)
            if bar_time is not None and self.journal is not None and not self.journal.has_order(cid):
                self._journal(cid, "NEW", bar_time, close_side, qty, None, 0.0,
                              note=f"{otype} closePosition trigger {price:.1f}")
        failed: BinanceError | None = None
        for suffix, otype, price in legs:  # one refused leg does not keep the other off the exchange
            try:
                self._place_leg(leg_id(client_order_id, suffix), close_side, otype, price)
            except BinanceError as e:
                failed = failed or e
        if failed is not None:
            raise failed

    def align_protection(self, entry_order_id: str, bar_time: pd.Timestamp, stop: float, target: float) -> str:
        """Move the entry's stop and target to the plan's prices when they differ by a tick or more (the exchange's
        legs were placed around the real fill, the plan's around its fill model's): the new legs (-s<n>/-t<n>,
        journaled with their triggers first) go on before the old ones are cancelled, so the position is never
        without a stop. Returns what was done ("" when the legs already are the plan's)."""
        if self.journal is None:
            return ""
        ids = {s: leg_id(entry_order_id, s) for s in (*STOP_SUFFIXES, *TARGET_SUFFIXES)}
        known = self.journal.orders_by_id(list(ids.values()))
        live = {cid: r for cid, r in known.items() if r["event"] == "NEW"}
        def gen(cid: str) -> int:
            return 0 if cid[-2:] in ("sl", "tp") else int(cid[-1])

        stops = sorted((c for c in live if c[-2:] in STOP_SUFFIXES), key=gen)
        targets = sorted((c for c in live if c[-2:] in TARGET_SUFFIXES), key=gen)
        if not stops or not targets:  # fired, cancelled, or never placed: settle/ensure_protection's business
            return ""

        def trigger(cid: str) -> float:
            return journaled_trigger(live[cid]["note"])

        def on_tick(p: float) -> float:
            return round(p / self.tick) * self.tick

        fired: list[str] = []

        def cancel(cids, why: str) -> None:
            for cid in cids:
                try:
                    self.rest.call("DELETE", "/fapi/v1/algoOrder", {"symbol": self.config.symbol, "clientAlgoId": cid})
                except BinanceError as e:
                    if e.code != UNKNOWN_ORDER:
                        raise
                    if self._fired(cid):  # it fired since the run looked: not cancelled, its fill is settle()'s
                        fired.append(cid)
                        continue
                self._journal(cid, "CANCELED", bar_time, live[cid]["side"], live[cid]["qty"], None, 0.0, note=why)

        def settled() -> str:
            """The legs that fired meanwhile: their fills journaled and what is left of the entry's legs cancelled."""
            self.settle()
            return (f"{entry_order_id}: {', '.join(fired)} fired on the exchange before the protection moved "
                    "(fill journaled, the other legs cancelled)")

        stop_now, target_now = stops[-1], targets[-1]
        if (abs(trigger(stop_now) - on_tick(stop)) < self.tick / 2
                and abs(trigger(target_now) - on_tick(target)) < self.tick / 2):
            cancel([*stops[:-1], *targets[:-1]], f"replaced by the plan's protection ({stop_now})")
            return settled() if fired else ""
        n = max(gen(c) for c in known if c[-2:] in (*STOP_SUFFIXES, *TARGET_SUFFIXES)) + 1
        if n > 9:
            return f"{entry_order_id}: protection moved 9 times already; left at {trigger(stop_now):.1f}"
        close_side = live[stop_now]["side"]
        qty = float(live[stop_now]["qty"])
        new = (("s", "STOP_MARKET", stop), ("t", "TAKE_PROFIT_MARKET", target))
        for prefix, otype, price in new:
            self._journal(leg_id(entry_order_id, f"{prefix}{n}"), "NEW", bar_time, close_side, qty, None, 0.0,
                          note=f"{otype} closePosition trigger {on_tick(price):.1f} (moved to the plan's price)")
        for prefix, otype, price in new:
            self._place_leg(leg_id(entry_order_id, f"{prefix}{n}"), close_side, otype, price)
        cancel([*stops, *targets], f"replaced by the plan's protection ({leg_id(entry_order_id, f's{n}')})")
        if fired:
            return settled()
        return (f"{entry_order_id}: stop {trigger(stop_now):.1f} -> {on_tick(stop):.1f}, target "
                f"{trigger(target_now):.1f} -> {on_tick(target):.1f} (the plan's)")

    def _fired(self, cid: str) -> bool:
        """Whether the exchange says the protective leg fired (its fill is settle()'s to journal); False for a leg it
        never saw."""
        try:
            status = self.rest.call("GET", "/fapi/v1/algoOrder", {"clientAlgoId": cid}).get("algoStatus")
        except BinanceError as e:
            if e.code != UNKNOWN_ORDER:
                raise
            return False
        return status in ("TRIGGERED", "FINISHED")

    def _place_leg(self, cid: str, close_side: str, otype: str, price: float) -> None:
        params = {"symbol": self.config.symbol, "algoType": "CONDITIONAL", "side": close_side, "type": otype,
                  "triggerPrice": f"{round(price / self.tick) * self.tick:.2f}", "closePosition": "true",
                  "workingType": "CONTRACT_PRICE", "clientAlgoId": cid}
        try:
            self.rest.call("POST", "/fapi/v1/algoOrder", params)
        except AckUncertain:
            self.rest.call("GET", "/fapi/v1/algoOrder", {"clientAlgoId": cid})  # raises if it was not placed
        except BinanceError as e:
            if e.code != DUPLICATE_ID:
                raise

    def settle(self, plan=None) -> list[OrderEvent]:
        """Journal the protective legs that fired on the exchange since the last look (and cancel their sibling).

        ``plan`` (the rules' view of the bar) is not used: on a real exchange only the exchange knows what filled."""
        if self.journal is None:
            return []
        legs = self.journal.open_protective_legs(self.name)
        fills = []
        for row in legs.itertuples():
            algo = self.rest.call("GET", "/fapi/v1/algoOrder", {"clientAlgoId": row.client_order_id})
            if algo["algoStatus"] not in ("TRIGGERED", "FINISHED") or not algo.get("actualOrderId"):
                continue
            # the trigger placed a market order in the matching engine: its fills are the leg's
            order = self.rest.call("GET", "/fapi/v1/order", {"symbol": self.config.symbol,
                                                             "orderId": algo["actualOrderId"]})
            q, px = float(order["executedQty"]), float(order["avgPrice"])
            ev = OrderEvent(row.client_order_id, "FILLED", row.bar_time, row.side, q, px, q * px * self.config.taker_fee,
                            self.name, self.run_id, f"{algo['orderType']} triggered on the exchange")
            self.journal.append(ev)
            fills.append(ev)
            self.cancel_protection(row.client_order_id[:-3], row.bar_time)
        return fills

    def cancel_protection(self, entry_order_id: str, bar_time: pd.Timestamp) -> None:
        """Cancel the entry's protective legs still open on the exchange (journaled CANCELED)."""
        if self.journal is None:
            return
        legs = [leg_id(entry_order_id, s) for s in (*STOP_SUFFIXES, *TARGET_SUFFIXES)]
        for cid, row in self.journal.orders_by_id(legs).items():
            if row["event"] != "NEW":
                continue
            try:
                self.rest.call("DELETE", "/fapi/v1/algoOrder", {"symbol": self.config.symbol, "clientAlgoId": cid})
            except BinanceError as e:
                if e.code != UNKNOWN_ORDER:  # already triggered or gone: settle() will see it
                    raise
                continue
            self._journal(cid, "CANCELED", row["bar_time"], row["side"], row["qty"], None, 0.0,
                          note=f"position closed at {bar_time}")

    def _journal_leg(self, cid: str, bar_time: pd.Timestamp, order: dict) -> None:
        """An ACK event per leg (quote or market) with its final state on the exchange."""
        self._journal(cid, "ACK", bar_time, order["side"], float(order["executedQty"]), float(order["avgPrice"]),
                      0.0, note=f"leg {order['clientOrderId']}: {order['status']} (orderId {order['orderId']})")

    def _journal(self, cid: str, event: str, bar_time: pd.Timestamp, side: str, qty: float, price: float | None,
                 fee: float, note: str = "") -> None:
        if self.journal is not None:
            self.journal.append(OrderEvent(cid, event, bar_time, side, qty, price, fee, self.name, self.run_id, note))
