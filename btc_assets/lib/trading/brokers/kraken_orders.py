"""Kraken Futures order legs, found before they are sent: the instrument's contract arithmetic (sizes and prices on
its grid), a placement that survives a lost acknowledgement (the cliOrdId is looked up before anything is sent
again), a limit quote given its time to fill then cancelled, and the lookups by cliOrdId.

A leg's state is read from three places, because Kraken keeps no order history behind one call:
`orders/status` (open orders, and orders closed within the last few seconds), `openorders`, and `fills` (every
fill names its order_id and cliOrdId: the quantity, price and maker/taker type of what traded). A leg none of them
knows was never placed, or was closed unfilled a while ago; the broker's journal (its ACK per leg) covers the
latter. KrakenFuturesBroker works an order as a sequence of these legs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from btc_assets.lib.trading.brokers.kraken_rest import V3, KrakenAckUncertain, KrakenError, KrakenRest

log = logging.getLogger(__name__)
CLI_ORD_ID_MAX = 100  # Kraken's limit for cliOrdId
SUCCESS = {"placed", "partiallyFilled", "filled"}
NOT_ORDER_REFUSALS = {"authenticationError", "accountInactive", "apiLimitExceeded", "nonceBelowThreshold",
                      "nonceDuplicate"}  # about the key or the moment, not this order: nothing is journaled REJECTED
STATUS = {"ENTERED_BOOK": "open", "TRIGGER_PLACED": "open", "FULLY_EXECUTED": "filled", "CANCELLED": "cancelled",
          "REJECTED": "rejected", "TRIGGER_ACTIVATION_FAILURE": "rejected"}
TRIGGER_TYPES = {"stp", "stop", "take_profit", "trailing_stop"}


class KrakenOrderRefused(KrakenError):
    """Kraken refused this order (a sendStatus other than placed, or an error about the order): journaled
    REJECTED with the call and the status, and never sent again."""


def check_cli_ord_id(cid: str) -> str:
    if not cid or len(cid) > CLI_ORD_ID_MAX or not cid.isascii() or not cid.isprintable() or " " in cid:
        raise ValueError(f"cliOrdId {cid[:120]!r}: Kraken takes 1 to {CLI_ORD_ID_MAX} printable ASCII characters "
                         "without spaces")
    return cid


@dataclass(frozen=True)
class Instrument:
    """A linear contract's grid, from `instruments`: size in contracts of `contract_size` BTC, on `step` (10^-
    contractValueTradePrecision contracts, also the smallest order), prices on `tick` (USD)."""

    symbol: str
    type: str
    contract_size: Decimal
    tick: Decimal
    step: Decimal

    @classmethod
    def of(cls, row: dict) -> Instrument:
        precision = int(row.get("contractValueTradePrecision", 0))
        return cls(str(row["symbol"]).upper(), str(row.get("type", "")), Decimal(str(row["contractSize"])),
                   Decimal(str(row["tickSize"])), Decimal(1).scaleb(-precision))

    @property
    def min_qty(self) -> float:
        """The smallest order in BTC."""
        return float(self.step * self.contract_size)

    def size_of(self, qty_btc: float) -> Decimal:
        """Contracts for a quantity in BTC, rounded toward zero to the size step (never more than intended)."""
        units = Decimal(repr(float(qty_btc))) / self.contract_size
        return (units / self.step + Decimal("1e-9")).to_integral_value(ROUND_DOWN) * self.step

    def qty_of(self, size: float | Decimal) -> float:
        """BTC of `size` contracts."""
        return float(Decimal(repr(float(size))) * self.contract_size)

    def price(self, p: float) -> Decimal:
        """A price on the tick grid (nearest tick)."""
        return (Decimal(repr(float(p))) / self.tick).to_integral_value(ROUND_HALF_UP) * self.tick


@dataclass
class Leg:
    """One leg's state on the exchange. Sizes in contracts; notional and fee in USD (fee estimated from each
    fill's maker/taker type: Kraken's fills carry no fee)."""

    cid: str
    order_id: str | None
    status: str  # open, filled, cancelled, rejected, closed (not open any more; its fills are all that is known)
    size: float = 0.0
    filled: float = 0.0
    notional: float = 0.0
    fee: float = 0.0

    @property
    def done(self) -> bool:
        return self.status != "open"

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled > 0 else 0.0


class KrakenLegs:
    def __init__(self, rest: KrakenRest, instrument: Callable[[], Instrument], maker_fee: float, taker_fee: float,
                 requote_after_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep):
        self.rest, self.instrument = rest, instrument
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.requote_after_s, self.poll_s, self.sleep = requote_after_s, poll_s, sleep

    # -- lookups ------------------------------------------------------------------------------------------------
    def find(self, cids: list[str]) -> dict[str, Leg | None]:
        """The state of each leg the exchange knows (None for the others): orders/status, openorders, fills."""
        if not cids:
            return {}
        wanted = set(cids)
        found: dict[str, Leg] = {}
        for row in self.rest.order_status(list(cids)):
            o = row.get("order") or {}
            cid = o.get("cliOrdId")
            if cid in wanted:
                found[cid] = Leg(cid, o.get("orderId"), STATUS.get(row.get("status"), "closed"),
                                 float(o.get("quantity") or 0.0))
        if len(found) < len(wanted):
            for o in self.rest.open_orders():
                cid = o.get("cliOrdId")
                if cid in wanted and cid not in found:
                    found[cid] = Leg(cid, o.get("order_id"), "open",
                                     float(o.get("unfilledSize") or 0) + float(o.get("filledSize") or 0))
        ids = {leg.order_id: cid for cid, leg in found.items() if leg.order_id}
        cs = float(self.instrument().contract_size)
        for f in self.rest.fills():
            cid = f.get("cliOrdId") if f.get("cliOrdId") in wanted else ids.get(f.get("order_id"))
            if cid is None:
                continue
            leg = found.setdefault(cid, Leg(cid, f.get("order_id"), "closed"))
            size, price = float(f["size"]), float(f["price"])
            rate = self.maker_fee if f.get("fillType") == "maker" else self.taker_fee
            leg.filled += size
            leg.notional += size * price * cs
            leg.fee += size * price * cs * rate
        return {cid: found.get(cid) for cid in cids}

    def poll(self, cid: str) -> Leg | None:
        """One look at a live leg: orders/status alone while it is open, everything once it is not."""
        rows = [r for r in self.rest.order_status([cid]) if (r.get("order") or {}).get("cliOrdId") == cid]
        if rows and STATUS.get(rows[0].get("status")) == "open":
            o = rows[0]["order"]
            return Leg(cid, o.get("orderId"), "open", float(o.get("quantity") or 0.0))
        return self.find([cid])[cid]

    # -- placing ------------------------------------------------------------------------------------------------
    def place(self, cid: str, params: dict, tries: int = 3) -> Leg | None:
        """Send one order with cliOrdId `cid`; its state (found instead when the acknowledgement was lost), or
        None when a post-only order would have taken (postWouldExecute: the book moved, requote)."""
        try:
            reply = self.rest.send_order(cliOrdId=check_cli_ord_id(cid), **params)
        except KrakenAckUncertain:
            found = self.find([cid])[cid]  # the exchange may have accepted it: never send it twice
            if found is not None:
                log.info("order %s: acknowledgement lost, found it on the exchange (%s)", cid, found.status)
                return found
            if tries <= 1:
                raise KrakenError(f"order {cid}: no acknowledgement after 3 sends and not on the exchange; check "
                                  f"connectivity to {self.rest.base_url}, then rerun (the id makes it safe).") \
                    from None
            return self.place(cid, params, tries - 1)
        except KrakenError as e:
            if e.code is None or e.code in NOT_ORDER_REFUSALS:
                raise
            raise KrakenOrderRefused(f"{e} (order {cid})", e.code, e.status) from None
        send = reply.get("sendStatus") or {}
        status = send.get("status")
        if status in SUCCESS:
            if any(ev.get("type") == "EXECUTION" for ev in send.get("orderEvents") or []):
                return self.find([cid])[cid] or Leg(cid, send.get("order_id"), "open", float(params["size"]))
            return Leg(cid, send.get("order_id"), "open", float(params["size"]))
        if status == "postWouldExecute":
            return None
        if status == "clientOrderIdAlreadyExist":
            found = self.find([cid])[cid]
            if found is not None:
                return found
        raise KrakenOrderRefused(f"POST {V3}/sendorder: Kraken refused order {cid} ({params.get('orderType')} "
                                 f"{params.get('side')} {params.get('size')} {params.get('symbol')}): sendStatus "
                                 f"{status}", status or "unknown")

    def touch(self) -> tuple[Decimal, Decimal]:
        """(bid, ask) of the instrument, from tickers."""
        sym = self.instrument().symbol
        row = next((t for t in self.rest.tickers() if str(t.get("symbol", "")).upper() == sym), None)
        if row is None or row.get("bid") is None or row.get("ask") is None:
            raise KrakenError(f"GET {V3}/tickers at {self.rest.base_url} has no bid/ask for {sym}")
        inst = self.instrument()
        return inst.price(float(row["bid"])), inst.price(float(row["ask"]))

    def quote(self, cid: str, side: str, size: Decimal, leg: Leg | None, may_place: bool,
              order_type: str = "post") -> Leg | None:
        """One limit quote at the touch (post-only `post`, or a plain `lmt`): placed (or found), given
        requote_after_s to fill, then cancelled; its final state (None if it was never placed)."""
        if leg is None:
            if not may_place:
                return None
            bid, ask = self.touch()
            leg = self.place(cid, {"orderType": order_type, "symbol": self.instrument().symbol, "side": side.lower(),
                                   "size": str(size), "limitPrice": str(bid if side == "BUY" else ask)})
            if leg is None:
                return None
        polls = max(1, math.ceil(self.requote_after_s / self.poll_s))  # counted, not timed: testable
        while not leg.done and polls > 0:
            self.sleep(self.poll_s)
            leg, polls = self.poll(cid) or leg, polls - 1
        if not leg.done:
            self.rest.cancel_order(cid)  # cancelled, or filled between our look and the cancel: read it again
            leg = self.final(cid, leg)
        return leg

    def final(self, cid: str, last: Leg, polls: int = 10) -> Leg:
        """The leg once it is not open any more (a cancel or a market order settles within moments)."""
        for _ in range(polls):
            leg = self.find([cid])[cid]
            if leg is None:  # closed and forgotten already, nothing filled
                return Leg(cid, last.order_id, "cancelled", last.size)
            if leg.done and not (leg.status == "filled" and leg.filled <= 0):  # its fills may trail the status
                return leg
            self.sleep(self.poll_s)
        return leg
