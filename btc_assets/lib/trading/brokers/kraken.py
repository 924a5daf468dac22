"""The Kraken Futures broker (demo or live) behind the Broker interface: maker-first execution, protective legs,
reconciliation, on the maintained SDK (python-kraken-sdk, kraken.futures; kraken_rest.py).

Building it: `KrakenFuturesBroker.from_env(journal, run_id)` reads only the environment —
KRAKEN_FUTURES_API_KEY / KRAKEN_FUTURES_API_SECRET (never logged, never in an exception, the journal or a repr),
KRAKEN_FUTURES_URL (default the demo, https://demo-futures.kraken.com), KRAKEN_FUTURES_SYMBOL (default
PF_XBTUSD) — and the opt-in of kraken_safety.py: BTC_TRADING_MODE=paper (the default) refuses to build any client,
`testnet` allows Kraken's demo and loopback only (Kraken's demo is this platform's testnet), and production
(https://futures.kraken.com) needs BTC_TRADING_MODE=live and BTC_LIVE_CONFIRM=I-ACCEPT-REAL-ORDERS. The broker is
named `kraken-demo` (demo or loopback) or `kraken-live`: the journal's `broker` column, so each book reconciles
on its own.

Instruments: the linear multi-collateral PF_XBTUSD (contractSize 1 BTC, margined and settled in USD from the flex
account) is the default and the only kind supported. Its contract size, tick size and size step
(10^-contractValueTradePrecision contracts, which is also Kraken's smallest order) are read from `instruments`;
quantities are rounded toward zero onto the step, prices onto the tick, and a quantity below one step is refused
before anything is journaled. The inverse PI_XBTUSD (and FI_ inverse futures) is refused, naming
KRAKEN_FUTURES_SYMBOL: its contract is 1 USD and it is margined and settled in BTC, so a position's size in BTC
moves with the price and its P&L and fees are in BTC, while every part of this platform (the rules' sizing, the
journal, reconciliation in BTC with a tolerance, the USD account breakers) assumes a fixed BTC position with USD
P&L; converting at one price would make reconciliation drift with the market. An instrument whose `type` is not
`flexible_futures` is refused at start() for the same reason, whatever its name.

Execution (mirrors the Binance broker): an order is worked as up to `maker_tries` limit quotes at the touch —
post-only (`post`) by default, plain `lmt` with quote_type="lmt" — each left `requote_after_s` then cancelled, and
the remainder as a market order (`mkt`); an exit (`reduce_only`) goes `mkt` with reduceOnly at once. Each leg's
cliOrdId is derived from the order's client id (`<id>-m0`, `<id>-m1`, `<id>-mk`; Kraken allows 100 characters),
so a retried run looks every leg up (orders/status, openorders, fills; the journal's ACKs for legs closed long
ago) before sending it, resumes after the furthest leg the exchange has, and never trades twice; a lost
acknowledgement is resolved the same way. With a stop distance the filled entry gets reduce-only `stp` and
`take_profit` legs (`-sl` / `-tp`, triggered on the mark price) sized to the fill. The journal gets NEW before
anything is sent, an ACK per leg with its final state, then FILLED with the average price and the fee (estimated
from each fill's maker/taker type and the configured rates: Kraken's fills carry no fee) — or REJECTED naming the
call and the sendStatus when Kraken refuses the order. apiLimitExceeded and 5xx are retried with backoff (a lost
sendorder reply is looked up, never resent blindly), nonces are strictly increasing.

As with the Binance broker, an order the journal has SKIPPED is never sent (as FILLED / REJECTED / CANCELED).
Differences from it: there is no align_protection (the trading step skips it when a broker lacks it); a leg's fills are
looked up among the account's latest 100 (what Kraken's fills endpoint returns), so a leg is found by its fills
only while fewer than 100 newer fills exist.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pandas as pd

from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.brokers.kraken_orders import (TRIGGER_TYPES, Instrument, KrakenLegs, KrakenOrderRefused,
                                                          Leg, check_cli_ord_id)
from btc_assets.lib.trading.brokers.kraken_rest import V3, KrakenError, KrakenRest
from btc_assets.lib.trading.brokers.kraken_safety import DEMO_URL, URL_VAR
from btc_assets.lib.trading.journal import (ORDER_EVENTS, STOP_SUFFIXES, TARGET_SUFFIXES, Journal, OrderEvent,
                                            leg_id)

log = logging.getLogger(__name__)
SYMBOL_VAR = "KRAKEN_FUTURES_SYMBOL"
DEFAULT_SYMBOL = "PF_XBTUSD"
LINEAR_TYPE = "flexible_futures"


def check_symbol(symbol: str) -> str:
    """The symbol if this broker trades it (linear multi-collateral PF_ contracts); ValueError naming the setting."""
    sym = symbol.strip().upper()
    if sym.startswith(("PI_", "FI_")):
        raise ValueError(f"{SYMBOL_VAR}={symbol}: inverse contracts (1 USD each, margined and settled in BTC) are "
                         f"not supported: this platform sizes, journals and reconciles a fixed BTC position with "
                         f"USD P&L. Use the linear {DEFAULT_SYMBOL} (1 BTC contracts, USD-margined).")
    if not sym.startswith("PF_"):
        raise ValueError(f"{SYMBOL_VAR}={symbol}: only linear multi-collateral perpetuals (PF_…, e.g. "
                         f"{DEFAULT_SYMBOL}) are supported")
    return sym


def journaled_trigger(note: str) -> float:
    """The trigger price a protective leg was journaled with ("stp reduceOnly trigger 41500.0 ...")."""
    return float(str(note).rsplit("trigger ", 1)[1].split()[0])


@dataclass(frozen=True)
class KrakenExecution:
    symbol: str = DEFAULT_SYMBOL
    quote_type: str = "post"  # the maker quotes: post (post-only) or lmt (a plain limit at the touch)
    maker_tries: int = 3
    requote_after_s: float = 2.0
    poll_s: float = 0.2
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    max_leverage: float | None = None  # set as the symbol's leverage preference (isolated margin) at start()
    trigger_signal: str = "mark"  # what the protective legs trigger on: mark or last


@dataclass
class KrakenReconciliation:
    """The exchange's position (BTC) and open orders against the journal's. Open orders carry Kraken's fields plus
    `clientOrderId` (plain orders) / `clientAlgoId` (trigger orders: the protective legs), the keys the trading
    step (defs/trading/orders.py) compares with the journal, as it does for Binance."""

    position: float
    open_orders: list[dict] = field(default_factory=list)
    open_algo_orders: list[dict] = field(default_factory=list)
    expected_position: float | None = None
    tolerance: float = 1e-9

    @property
    def difference(self) -> float:
        """Exchange minus journal, in BTC (0 when nothing was expected)."""
        return 0.0 if self.expected_position is None else self.position - self.expected_position

    @property
    def matches(self) -> bool:
        return abs(self.difference) <= self.tolerance


class KrakenFuturesBroker(Broker):
    def __init__(self, rest: KrakenRest, journal: Journal | None, run_id: str,
                 config: KrakenExecution = KrakenExecution(), sleep: Callable[[float], None] = time.sleep):
        check_symbol(config.symbol)
        if config.quote_type not in ("post", "lmt") or config.trigger_signal not in ("mark", "last"):
            raise ValueError(f"quote_type {config.quote_type!r} / trigger_signal {config.trigger_signal!r}: use "
                             "post or lmt, and mark or last")
        self.rest, self.journal, self.run_id, self.config, self.sleep = rest, journal, run_id, config, sleep
        self.name = "kraken-live" if rest.production else "kraken-demo"
        self._instrument: Instrument | None = None
        self.legs = KrakenLegs(rest, self.instrument, config.maker_fee, config.taker_fee, config.requote_after_s,
                               config.poll_s, sleep)

    @classmethod
    def from_env(cls, journal: Journal | None, run_id: str, env: Mapping[str, str] | None = None,
                 config: KrakenExecution | None = None, *, sleep: Callable[[float], None] = time.sleep,
                 timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 0.5) -> KrakenFuturesBroker:
        """The broker from the environment alone (see the module docstring); TradingNotAllowed / ValueError /
        KrakenError before any request when a setting does not allow trading."""
        env = os.environ if env is None else env
        config = config or KrakenExecution()
        symbol = check_symbol(env.get(SYMBOL_VAR, "") or config.symbol)  # the environment's, else the config's
        rest = KrakenRest(env.get("KRAKEN_FUTURES_API_KEY", ""), env.get("KRAKEN_FUTURES_API_SECRET", ""),
                          env.get(URL_VAR, "") or DEMO_URL, env, timeout_s=timeout_s, retries=retries,
                          backoff_s=backoff_s, sleep=sleep)
        return cls(rest, journal, run_id, replace(config, symbol=symbol), sleep=sleep)

    def __repr__(self) -> str:
        return f"KrakenFuturesBroker({self.rest!r}, symbol={self.config.symbol!r}, name={self.name!r})"

    # -- session ----------------------------------------------------------------------------------------------
    def instrument(self) -> Instrument:
        """The symbol's grid from `instruments` (read once per broker); refuses anything but a tradeable linear
        multi-collateral contract."""
        if self._instrument is None:
            sym = self.config.symbol
            row = next((r for r in self.rest.instruments() if str(r.get("symbol", "")).upper() == sym), None)
            if row is None:
                raise KrakenError(f"GET {V3}/instruments at {self.rest.base_url} does not list {sym}: check "
                                  f"{SYMBOL_VAR}")
            inst = Instrument.of(row)
            if inst.type != LINEAR_TYPE:
                raise KrakenError(f"{sym} is a {inst.type or 'untyped'} instrument on {self.rest.base_url}: only "
                                  f"{LINEAR_TYPE} (linear, USD-margined) contracts are supported; set {SYMBOL_VAR} "
                                  f"to one, e.g. {DEFAULT_SYMBOL}")
            if not row.get("tradeable", True):
                raise KrakenError(f"{sym} is not tradeable on {self.rest.base_url} now; nothing was sent")
            self._instrument = inst
        return self._instrument

    def start(self, expected_position: float | None = None) -> KrakenReconciliation:
        """Read the instrument, check the flex account, set the leverage preference if configured, reconcile."""
        self.instrument()
        self.account()
        lev = self.config.max_leverage
        if lev is not None:
            current = {str(p.get("symbol", "")).upper(): p.get("maxLeverage") for p in self.rest.leverage_preferences()}
            if current.get(self.config.symbol) is None or float(current[self.config.symbol]) != float(lev):
                self.rest.set_leverage(self.config.symbol, lev)
                now = {str(p.get("symbol", "")).upper(): p.get("maxLeverage")
                       for p in self.rest.leverage_preferences()}
                if now.get(self.config.symbol) is None or float(now[self.config.symbol]) != float(lev):
                    raise KrakenError(f"{self.config.symbol} on {self.rest.base_url}: max leverage {lev} was set but "
                                      f"Kraken reports {now.get(self.config.symbol)}; nothing was sent")
        return self.reconcile(expected_position)

    def account(self) -> tuple[float, float]:
        """(equity, available margin) of the flex (multi-collateral) account in USD, as Kraken reports them."""
        flex = self.rest.accounts().get("flex")
        if not flex:
            raise KrakenError(f"no flex (multi-collateral) account on {self.rest.base_url}: {self.config.symbol} is "
                              "margined from it; fund it before trading")
        return float(flex.get("marginEquity", 0.0)), float(flex.get("availableMargin", 0.0))

    def position(self) -> float:
        """Signed net position in BTC from openpositions (long +, short -)."""
        total = 0.0
        for p in self.rest.open_positions():
            if str(p.get("symbol", "")).upper() == self.config.symbol:
                sign = 1.0 if str(p.get("side")).lower() == "long" else -1.0
                total += sign * self.instrument().qty_of(float(p["size"]))
        return round(total, 12)

    def open_orders(self) -> list[dict]:
        return [o for o in self.rest.open_orders() if str(o.get("symbol", "")).upper() == self.config.symbol]

    def reconcile(self, expected_position: float | None = None, tolerance: float = 1e-9) -> KrakenReconciliation:
        """The exchange's position and open orders (call at start and every bar) against `expected_position` (the
        journal's: reconcile_journal); logs a difference."""
        orders = self.open_orders()
        plain = [{**o, "clientOrderId": o.get("cliOrdId")} for o in orders if o.get("orderType") not in TRIGGER_TYPES]
        triggers = [{**o, "clientAlgoId": o.get("cliOrdId")} for o in orders if o.get("orderType") in TRIGGER_TYPES]
        rec = KrakenReconciliation(self.position(), plain, triggers, expected_position, tolerance)
        if not rec.matches:
            log.warning("reconcile %s on %s: exchange position %+.4f BTC, journal expects %+.4f (difference %+.4f)",
                        self.config.symbol, self.name, rec.position, expected_position, rec.difference)
        return rec

    def reconcile_journal(self, tolerance: float = 1e-9) -> KrakenReconciliation:
        """reconcile() against this broker's filled position in the journal."""
        expected = self.journal.position(self.name) if self.journal is not None else None
        return self.reconcile(expected, tolerance)

    def cancel_all(self) -> None:
        """Cancel every open order of the symbol, the protective legs included (the kill switch's first step)."""
        self.rest.cancel_all(self.config.symbol)

    def cancel_order(self, cid: str) -> str:
        """Cancel one order by its cliOrdId; Kraken's answer: cancelled, filled (too late) or notFound."""
        return str(self.rest.cancel_order(check_cli_ord_id(cid)).get("status"))

    def order_state(self, cid: str) -> Leg | None:
        """What the exchange knows of one cliOrdId (None: nothing)."""
        return self.legs.find([cid])[cid]

    # -- orders -----------------------------------------------------------------------------------------------
    def submit(self, client_order_id: str, bar_time: pd.Timestamp, side: str, qty: float, *,
               reduce_only: bool = False, stop_distance: float = 0.0, take_profit_r: float = 0.0) -> bool:
        """Work the order maker-first (an exit, ``reduce_only``, goes to market at once); False (nothing sent) if
        the journal already has it filled, rejected or cancelled. With a ``stop_distance`` the filled entry gets
        its protective legs: a stop that far from the average fill and a target ``take_profit_r`` times as far."""
        inst = self.instrument()
        size = inst.size_of(qty)
        if side not in ("BUY", "SELL"):
            raise ValueError(f"order {client_order_id}: side must be BUY or SELL, got {side!r}")
        if size < inst.step:
            asked = Decimal(repr(float(qty)))
            raise ValueError(f"order {client_order_id}: {asked:f} BTC is below {inst.symbol}'s minimum order of "
                             f"{inst.min_qty:g} BTC ({inst.step} contracts of {inst.contract_size} BTC); nothing "
                             "was sent")
        check_cli_ord_id(leg_id(client_order_id, "mk"))
        qty = inst.qty_of(size)
        if self.journal is not None:
            known = self.journal.orders_by_id([client_order_id]).get(client_order_id)
            if known is not None and known["event"] in ("FILLED", "REJECTED", "CANCELED", "SKIPPED"):
                return False  # refused or done: never sent again
            if known is None:
                self._journal(client_order_id, "NEW", bar_time, side, qty, None, 0.0)
        try:
            avg, filled = self._work(client_order_id, bar_time, side, size, reduce_only)
        except KrakenOrderRefused as e:  # Kraken refused it: journal why, then stop
            self._journal(client_order_id, "REJECTED", bar_time, side, qty, None, 0.0, note=str(e)[:200])
            raise
        if stop_distance > 0:
            sign = 1.0 if side == "BUY" else -1.0
            try:
                self.protect(client_order_id, "LONG" if sign > 0 else "SHORT", avg - sign * stop_distance,
                             avg + sign * stop_distance * take_profit_r, bar_time=bar_time, qty=filled)
            except KrakenError as e:  # the legs are journaled NEW with their triggers: ensure_protection retries
                log.error("order %s filled but its protection was not placed (%s); retried every run until placed "
                          "or the position is closed", client_order_id, str(e)[:200])
        return True

    def _work(self, cid: str, bar_time: pd.Timestamp, side: str, size: Decimal,
              reduce_only: bool) -> tuple[float, float]:
        """Quotes then the market remainder; journals each leg's ACK and the order's FILLED. (avg price, BTC)."""
        c, inst = self.config, self.instrument()
        quotes = [leg_id(cid, f"m{i}") for i in range(0 if reduce_only else c.maker_tries)]
        mk = leg_id(cid, "mk")
        acked = self._acked_legs(cid)  # legs a previous run finished (Kraken forgets closed orders within seconds)
        found = self.legs.find([x for x in [*quotes, mk] if x not in acked])
        known: dict[str, Leg | None] = {**found, **acked}
        # A retried run resumes after the furthest leg the exchange (or the journal) has: an earlier quote it does
        # not know was refused post-only or closed unfilled, and placing it now would trade on top of later fills.
        resume_at = max((i for i, x in enumerate([*quotes, mk]) if known.get(x) is not None), default=0)
        filled = notional = fee = 0.0

        def book(leg: Leg) -> None:
            nonlocal filled, notional, fee
            filled, notional, fee = filled + leg.filled, notional + leg.notional, fee + leg.fee

        def remaining() -> Decimal:
            return inst.size_of(inst.qty_of(size) - inst.qty_of(filled))

        for i, q in enumerate(quotes):
            if q in acked:
                book(acked[q])
            else:
                leg = self.legs.quote(q, side, remaining(), known.get(q), i >= resume_at, c.quote_type)
                if leg is not None:
                    self._journal_leg(cid, bar_time, side, leg)
                    book(leg)
            if remaining() <= 0:
                break
        rest = remaining()
        if rest > 0:
            if mk in acked:
                book(acked[mk])
            else:
                params = {"orderType": "mkt", "symbol": inst.symbol, "side": side.lower(), "size": str(rest)}
                if reduce_only:
                    params["reduceOnly"] = "true"
                leg = known.get(mk) or self.legs.place(mk, params)
                if leg is None:
                    raise KrakenError(f"order {mk}: Kraken placed nothing for the market leg; rerun")
                leg = leg if leg.done else self.legs.final(mk, leg)
                self._journal_leg(cid, bar_time, side, leg)
                book(leg)
        if filled <= 0:
            raise KrakenError(f"order {cid}: nothing filled on {self.rest.base_url} after the quotes and the market "
                              "order; check the orders of this id on the exchange.")
        qty = inst.qty_of(filled)
        self._journal(cid, "FILLED", bar_time, side, qty, notional / qty, fee,
                      note="fee estimated from each fill's maker/taker type")
        return notional / qty, qty

    def _acked_legs(self, cid: str) -> dict[str, Leg]:
        """The legs of `cid` the journal has an ACK for (their final state), by leg id."""
        if self.journal is None:
            return {}
        rows = self.journal.conn.execute(
            f"SELECT note, qty, price, fee FROM {ORDER_EVENTS} WHERE client_order_id = ? AND event = 'ACK' "
            "AND broker = ? ORDER BY seq", [cid, self.name]).fetchall()
        inst, out = self.instrument(), {}
        for note, qty, price, fee in rows:
            if not str(note).startswith("leg "):
                continue
            leg, status = str(note)[4:].split(": ", 1)
            size = float(inst.size_of(qty or 0.0))
            out[leg] = Leg(leg, None, status.split()[0], size, size, float(qty or 0.0) * float(price or 0.0),
                           float(fee or 0.0))
        return out

    # -- protection -------------------------------------------------------------------------------------------
    def protect(self, client_order_id: str, position_side: str, stop_price: float, take_profit_price: float,
                bar_time: pd.Timestamp | None = None, qty: float = 0.0) -> None:
        """Place reduce-only `stp` and `take_profit` legs (-sl / -tp) of `qty` BTC (the position's size when 0) for
        a LONG or SHORT position; journaled NEW per leg when ``bar_time`` is given (settle() journals the one that
        fires). Legs the exchange already has are not sent again."""
        close_side = "SELL" if position_side == "LONG" else "BUY"
        qty = qty or abs(self.position())
        inst = self.instrument()
        legs = (("sl", "stp", stop_price), ("tp", "take_profit", take_profit_price))
        for suffix, otype, price in legs:  # both journaled (with their triggers) before either is sent
            cid = leg_id(client_order_id, suffix)
            if bar_time is not None and self.journal is not None and not self.journal.has_order(cid):
                trigger = float(inst.price(price))
                self._journal(cid, "NEW", bar_time, close_side, qty, None, 0.0,
                              note=f"{otype} reduceOnly trigger {trigger:.1f} ({self.config.trigger_signal})")
        there = self.legs.find([leg_id(client_order_id, s) for s, _, _ in legs])
        failed: KrakenError | None = None
        for suffix, otype, price in legs:  # one refused leg does not keep the other off the exchange
            cid = leg_id(client_order_id, suffix)
            if there.get(cid) is not None:
                continue
            try:
                self._place_leg(cid, close_side, otype, price, qty)
            except KrakenError as e:
                failed = failed or e
        if failed is not None:
            raise failed

    def _place_leg(self, cid: str, close_side: str, otype: str, price: float, qty: float) -> None:
        inst = self.instrument()
        self.legs.place(cid, {"orderType": otype, "symbol": inst.symbol, "side": close_side.lower(),
                              "size": str(inst.size_of(qty)), "stopPrice": str(inst.price(price)),
                              "triggerSignal": self.config.trigger_signal, "reduceOnly": "true"})

    def ensure_protection(self) -> list[str]:
        """Place again every journaled protective leg (NEW) the exchange does not have while a position is open;
        close out (CANCELED) the legs of a flat account. Returns the legs re-placed."""
        if self.journal is None:
            return []
        legs = self.journal.open_protective_legs(self.name)
        if legs.empty:
            return []
        position = self.position()
        on_exchange = {o.get("cliOrdId") for o in self.open_orders()}
        placed = []
        for row in legs.itertuples():
            cid = row.client_order_id
            if cid in on_exchange:
                continue
            state = self.legs.find([cid])[cid]
            if state is not None and state.filled > 0:
                continue  # it fired: settle()'s (its fill may be why the position is flat), never closed out here
            if abs(position) < self.instrument().min_qty / 2:
                self._journal(cid, "CANCELED", row.bar_time, row.side, row.qty, None, 0.0,
                              note="position flat: protection no longer needed")
                continue
            otype = "stp" if cid[-2:] in STOP_SUFFIXES else "take_profit"
            self._place_leg(cid, row.side, otype, journaled_trigger(row.note), row.qty)
            placed.append(cid)
        return placed

    def settle(self, plan=None) -> list[OrderEvent]:
        """Journal the protective legs that fired on the exchange since the last look (and cancel their sibling).

        ``plan`` (the rules' view of the bar) is not used: on a real exchange only the exchange knows what filled."""
        if self.journal is None:
            return []
        legs = self.journal.open_protective_legs(self.name)
        if legs.empty:
            return []
        states = self.legs.find(list(legs["client_order_id"]))
        fills = []
        for row in legs.itertuples():
            leg = states.get(row.client_order_id)
            if leg is None or not leg.done or leg.filled <= 0:
                continue
            q = self.instrument().qty_of(leg.filled)
            ev = OrderEvent(row.client_order_id, "FILLED", row.bar_time, row.side, q, leg.notional / q, leg.fee,
                            self.name, self.run_id, f"{str(row.note).split()[0]} triggered on the exchange "
                            f"(order_id {leg.order_id})")
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
            status = self.rest.cancel_order(cid).get("status")
            if status != "cancelled":  # filled (settle's), or not open on the exchange: left for settle/ensure
                continue
            self._journal(cid, "CANCELED", row["bar_time"], row["side"], row["qty"], None, 0.0,
                          note=f"position closed at {bar_time}")

    # -- journal ----------------------------------------------------------------------------------------------
    def _journal_leg(self, cid: str, bar_time: pd.Timestamp, side: str, leg: Leg) -> None:
        """An ACK event per leg (quote or market) with its final state on the exchange (qty in BTC)."""
        qty = self.instrument().qty_of(leg.filled)
        self._journal(cid, "ACK", bar_time, side, qty, leg.avg_price if leg.filled else None, leg.fee,
                      note=f"leg {leg.cid}: {leg.status} (order_id {leg.order_id}, {leg.filled:g} of {leg.size:g} "
                      "contracts)")

    def _journal(self, cid: str, event: str, bar_time: pd.Timestamp, side: str, qty: float, price: float | None,
                 fee: float, note: str = "") -> None:
        if self.journal is not None:
            self.journal.append(OrderEvent(cid, event, bar_time, side, qty, price, fee, self.name, self.run_id, note))
