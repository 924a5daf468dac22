"""One order leg on Binance USD-M, found before it is sent: a post-only quote given its time to fill then cancelled,
a placement that survives a lost acknowledgement (the client id is looked up before anything is sent again), and
the lookups by client id. BinanceBroker works an order as a sequence of these legs."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from btc_assets.lib.data.rest.errors import AckUncertain, BinanceError
from btc_assets.lib.trading.brokers.binance_rest import BinanceRest

log = logging.getLogger(__name__)
UNKNOWN_ORDER, DUPLICATE_ID, POST_ONLY_REJECTED, NO_CHANGE = -2013, -4116, -5022, -4046


class OrderLegs:
    def __init__(self, rest: BinanceRest, symbol: str, requote_after_s: float, poll_s: float,
                 sleep: Callable[[float], None] = time.sleep):
        self.rest, self.symbol, self.requote_after_s, self.poll_s, self.sleep = (
            rest, symbol, requote_after_s, poll_s, sleep)

    def quote(self, cid: str, side: str, qty: float, order: dict | None, may_place: bool) -> dict | None:
        """One post-only quote: placed (or found), given requote_after_s to fill, then cancelled; the final state."""
        if order is None:
            if not may_place:
                return None
            book = self.rest.call("GET", "/fapi/v1/ticker/bookTicker", {"symbol": self.symbol}, signed=False)
            price = book["bidPrice"] if side == "BUY" else book["askPrice"]
            try:
                order = self.place(cid, {"side": side, "type": "LIMIT", "timeInForce": "GTX",
                                          "quantity": f"{qty:.3f}", "price": price})
            except BinanceError as e:
                if e.code == POST_ONLY_REJECTED:  # the book moved through our price: requote
                    return None
                raise
        polls = max(1, math.ceil(self.requote_after_s / self.poll_s))  # counted, not timed: testable
        while order["status"] in ("NEW", "PARTIALLY_FILLED") and polls > 0:
            self.sleep(self.poll_s)
            order, polls = self.query(cid), polls - 1
        if order["status"] in ("NEW", "PARTIALLY_FILLED"):
            try:
                order = self.rest.call("DELETE", "/fapi/v1/order", {"symbol": self.symbol,
                                                                      "origClientOrderId": cid})
            except BinanceError as e:
                if e.code != UNKNOWN_ORDER:  # filled between our look and the cancel
                    raise
                order = self.query(cid)
        return order

    def place(self, cid: str, params: dict, tries: int = 3) -> dict:
        try:
            return self.rest.call("POST", "/fapi/v1/order", {"symbol": self.symbol, "newClientOrderId": cid,
                                                             "newOrderRespType": "RESULT", **params})
        except AckUncertain:
            found = self.existing(cid)  # the exchange may have accepted it: never send it twice
            if found is not None:
                log.info("order %s: acknowledgement lost, found it on the exchange (%s)", cid, found["status"])
                return found
            if tries <= 1:
                raise BinanceError(f"order {cid}: no acknowledgement after 3 sends and not on the exchange; "
                                   f"check connectivity to {self.rest.base_url}, then rerun (the id makes it "
                                   "safe).") from None
            return self.place(cid, params, tries - 1)
        except BinanceError as e:
            if e.code == DUPLICATE_ID:
                return self.query(cid)
            raise

    def query(self, cid: str) -> dict:
        return self.rest.call("GET", "/fapi/v1/order", {"symbol": self.symbol, "origClientOrderId": cid})

    def existing(self, cid: str) -> dict | None:
        try:
            return self.query(cid)
        except BinanceError as e:
            if e.code == UNKNOWN_ORDER:
                return None
            raise
