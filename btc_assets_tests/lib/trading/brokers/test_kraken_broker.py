"""The Kraken Futures broker on the maintained SDK (python-kraken-sdk) against the fake venue (testnet mode,
127.0.0.1): setup, maker-first execution (post / lmt quotes, the mkt remainder, reduce-only exits), protective
legs, idempotent client ids (also when an acknowledgement is lost, and across real process crashes), apiLimitExceeded
/ 5xx / nonce handling, named rejections, the kill switch, reconciliation, the live opt-in, PF_/PI_ contracts and
lot rounding, and the secret kept out of every log, exception and file.

Sleeps are recorded instead of waited (backoff) or move the market (a poll of a resting quote trades through it,
as time passing would), so the tests are fast and deterministic.
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import re
import shutil
import signal
import time
import traceback
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading.brokers import kraken_rest
from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.brokers.kraken import (KrakenExecution, KrakenFuturesBroker, check_symbol,
                                                   journaled_trigger)
from btc_assets.lib.trading.brokers.kraken_orders import Instrument, KrakenOrderRefused, check_cli_ord_id
from btc_assets.lib.trading.brokers.kraken_rest import KrakenError, KrakenRest, NonceSource
from btc_assets.lib.trading.brokers.kraken_safety import DEMO_URL, PRODUCTION_URL, check_kraken_allowed
from btc_assets.lib.trading.brokers.safety import CONFIRM_VALUE, TradingNotAllowed
from btc_assets.lib.trading.journal import Journal, client_order_id, leg_id
from btc_assets.lib.trading.kill_switch import stop_trading
from btc_assets.lib.trading.notify import Notifier
from btc_assets_tests.fakes.kraken import KrakenExchange, RunningFakeKraken, Spec, crash_child, run_in_thread
from btc_assets_tests.fakes.kraken.crash_child import KILLED, NOTHING_SENT

KEY = "kraken-test-key-abc"
SECRET = base64.b64encode(b"kraken-test-secret-xyz" * 3).decode()
TESTNET = {"BTC_TRADING_MODE": "testnet"}
BAR = pd.Timestamp("2024-01-01 00:05", tz="UTC")
CID = client_order_id("xgb_next3m", BAR, "entry")
SEND_PATH = "/derivatives/api/v3/sendorder"
SEND = ("POST", SEND_PATH)


@dataclass
class Session:
    kx: RunningFakeKraken
    rest: KrakenRest
    broker: KrakenFuturesBroker
    journal: Journal
    waits: list[float] = field(default_factory=list)  # what the REST layer would have slept (backoff)
    fills_on_poll: bool = True


def trade_through(ex: KrakenExchange) -> None:
    """The market trades at every resting quote: what time passing does to a quote at the touch."""
    for o in [o for o in ex.orders.values() if o.status == "open" and not o.is_trigger]:
        ex.set_price(float(o.limit_price))


def make_session(kx: RunningFakeKraken, journal: Journal | None, key: str = KEY, secret: str = SECRET,
                 timeout_s: float = 5.0, run_id: str = "run-1", config: KrakenExecution | None = None) -> Session:
    waits: list[float] = []
    rest = KrakenRest(key, secret, kx.url, env=TESTNET, timeout_s=timeout_s, backoff_s=0.01, sleep=waits.append)
    session = Session(kx, rest, None, journal, waits)  # type: ignore[arg-type]

    def poll_sleep(_: float) -> None:  # the time a quote rests: the market trades through it
        if session.fills_on_poll:
            trade_through(kx.exchange)

    session.broker = KrakenFuturesBroker(rest, journal, run_id, config or KrakenExecution(requote_after_s=2.0,
                                                                                         poll_s=1.0),
                                         sleep=poll_sleep)
    return session


@pytest.fixture()
def kraken():
    with run_in_thread(KEY, SECRET) as running:
        yield running


@pytest.fixture()
def s(kraken, journal) -> Session:
    return make_session(kraken, journal)


def exchange_orders(kx: RunningFakeKraken) -> dict[str, str]:
    return {o.cli_ord_id: o.status for o in kx.exchange.orders.values()}


def events(journal: Journal) -> list[tuple[str, str]]:
    return journal.conn.execute("SELECT event, note FROM trading.order_events ORDER BY seq").fetchall()


# -- setup, market / limit / post-only / reduce-only ---------------------------------------------------------------
def test_start_reads_the_grid_sets_the_leverage_and_reconciles(kraken, journal):
    s = make_session(kraken, journal, config=KrakenExecution(max_leverage=2))
    rec = s.broker.start(expected_position=0.0)
    assert rec.position == 0.0 and rec.matches and rec.open_orders == [] and rec.open_algo_orders == []
    inst = s.broker.instrument()
    assert (inst.contract_size, inst.tick, inst.step, inst.min_qty) == (Decimal(1), Decimal(1), Decimal("0.0001"),
                                                                        0.0001)
    assert kraken.exchange.leverage == {"PF_XBTUSD": 2.0}
    puts = kraken.faults.count("PUT", "/derivatives/api/v3/leveragepreferences")
    s.broker.start()
    assert kraken.faults.count("PUT", "/derivatives/api/v3/leveragepreferences") == puts == 1  # already 2x
    assert s.broker.account() == (10_000.0, 10_000.0)
    assert isinstance(s.broker, Broker) and Broker in KrakenFuturesBroker.__mro__


def test_a_leverage_the_venue_does_not_take_stops_start(kraken, journal):
    s = make_session(kraken, journal, config=KrakenExecution(max_leverage=80))  # PF_XBTUSD allows 50x
    with pytest.raises(KrakenError, match="invalidArgument") as err:
        s.broker.start()
    assert err.value.code == "invalidArgument" and kraken.faults.count(*SEND) == 0


def test_post_only_quote_fills_as_maker(s):
    s.broker.start()
    bid = float(s.kx.exchange.bid_ask()[0])
    assert s.broker.submit(CID, BAR, "BUY", 0.01234)  # rounded down to the 0.0001 step
    assert exchange_orders(s.kx) == {leg_id(CID, "m0"): "filled"}
    (o,) = s.kx.exchange.orders.values()
    assert (o.order_type, o.size, o.limit_price) == ("post", Decimal("0.0123"), Decimal(str(bid)))
    assert s.broker.position() == pytest.approx(0.0123)
    (row,) = s.journal.orders().itertuples()
    assert (row.event, row.qty, row.price, row.broker) == ("FILLED", pytest.approx(0.0123), bid, "kraken-demo")
    assert row.fee == pytest.approx(0.0123 * bid * 0.0002)  # maker
    assert s.broker.reconcile_journal().matches


def test_unfilled_quotes_are_requoted_then_the_rest_goes_market(s):
    s.fills_on_poll = False  # the market never trades through our quotes
    bid, ask = (float(p) for p in s.kx.exchange.bid_ask())
    assert s.broker.submit(CID, BAR, "SELL", 0.01)
    assert exchange_orders(s.kx) == {leg_id(CID, "m0"): "cancelled", leg_id(CID, "m1"): "cancelled",
                                     leg_id(CID, "m2"): "cancelled", leg_id(CID, "mk"): "filled"}
    assert {o.order_type for o in s.kx.exchange.orders.values()} == {"post", "mkt"}
    assert all(o.limit_price == Decimal(str(ask)) for o in s.kx.exchange.orders.values() if o.order_type == "post")
    assert s.broker.position() == pytest.approx(-0.01)
    ev = events(s.journal)
    assert [e for e, _ in ev] == ["NEW", "ACK", "ACK", "ACK", "ACK", "FILLED"]
    assert ev[4][1].startswith(f"leg {leg_id(CID, 'mk')}: filled")
    (row,) = s.journal.orders().itertuples()
    assert (row.qty, row.price) == (pytest.approx(0.01), bid) and row.fee == pytest.approx(0.01 * bid * 0.0005)


@pytest.mark.parametrize("quote_type, m0, fee_rate", [("post", None, 0.0002), ("lmt", "filled", 0.0005)])
def test_a_quote_priced_off_a_stale_book(kraken, journal, monkeypatch, quote_type, m0, fee_rate):
    """The touch moved between tickers and sendorder: a post-only quote is refused (postWouldExecute) and requoted;
    a plain limit takes at once, as taker."""
    s = make_session(kraken, journal, config=KrakenExecution(quote_type=quote_type, requote_after_s=2, poll_s=1))
    real, seen = kraken.exchange.tickers, []

    def stale() -> list[dict]:
        rows = real()
        seen.append(1)
        return [{**r, "bid": r["bid"] - 1000, "ask": r["ask"] - 1000} for r in rows] if len(seen) == 1 else rows
    monkeypatch.setattr(kraken.exchange, "tickers", stale)
    assert s.broker.submit(CID, BAR, "SELL", 0.01)
    legs = exchange_orders(kraken)
    assert legs.get(leg_id(CID, "m0")) == m0
    assert sum(f.size for f in kraken.exchange.fills) == Decimal("0.0100")  # traded once, whatever the legs
    assert kraken.faults.count(*SEND) == (2 if quote_type == "post" else 1)
    (row,) = journal.orders().itertuples()
    assert row.fee == pytest.approx(0.01 * row.price * fee_rate)


def test_a_reduce_only_exit_goes_market_at_once_and_cannot_open(s):
    s.broker.submit(CID, BAR, "BUY", 0.02)
    exit_id = client_order_id("xgb_next3m", BAR, "exit")
    assert s.broker.submit(exit_id, BAR, "SELL", 0.05, reduce_only=True)  # more than held: Kraken cuts it
    (mk,) = [o for o in s.kx.exchange.orders.values() if o.cli_ord_id.startswith(exit_id)]
    assert (mk.cli_ord_id, mk.order_type, mk.reduce_only, mk.filled) == (leg_id(exit_id, "mk"), "mkt", True,
                                                                        Decimal("0.0200"))
    assert s.broker.position() == 0.0
    assert s.journal.orders_by_id([exit_id])[exit_id]["qty"] == pytest.approx(0.02)  # what traded
    flat = client_order_id("xgb_next3m", BAR, "exit2")
    with pytest.raises(KrakenOrderRefused, match=r"POST /derivatives/api/v3/sendorder: .*sendStatus "
                                                 r"wouldNotReducePosition") as err:
        s.broker.submit(flat, BAR, "SELL", 0.01, reduce_only=True)
    assert err.value.code == "wouldNotReducePosition"
    assert s.journal.orders_by_id([flat])[flat]["event"] == "REJECTED"
    assert s.broker.position() == 0.0


# -- idempotency and lost acknowledgements -----------------------------------------------------------------------
@pytest.mark.parametrize("window_s", [5.0, 0.0], ids=["status-remembers", "status-forgot"])
def test_a_retried_run_sends_nothing_twice(s, kraken, tmp_path, window_s):
    s.fills_on_poll = False
    assert s.broker.submit(CID, BAR, "BUY", 0.01)
    before, sent = dict(exchange_orders(kraken)), kraken.faults.count(*SEND)
    assert not s.broker.submit(CID, BAR, "BUY", 0.01)  # same journal: already filled
    assert kraken.faults.count(*SEND) == sent
    # a run that lost its journal: every leg is looked up by cliOrdId (with status-forgot, Kraken no longer
    # answers for the closed quotes: the market leg's fills say the order is done), nothing is re-sent
    kraken.exchange.status_window_s = window_s
    fresh = make_session(kraken, Journal(duckdb.connect(str(tmp_path / "other.duckdb"))), run_id="run-2")
    fresh.fills_on_poll = False
    assert fresh.broker.submit(CID, BAR, "BUY", 0.01)
    assert exchange_orders(kraken) == before and kraken.faults.count(*SEND) == sent
    assert fresh.broker.position() == pytest.approx(0.01)
    assert fresh.journal.orders()[["event", "qty"]].values.tolist() == [["FILLED", pytest.approx(0.01)]]


@pytest.mark.parametrize("fault", ["drop", "timeout", "5xx"])
def test_a_lost_acknowledgement_is_resolved_by_lookup_not_by_resending(kraken, journal, fault):
    s = make_session(kraken, journal, timeout_s=0.3)
    inject = {"drop": lambda: kraken.faults.drop(apply_first=True, path=SEND_PATH),  # accepted, reply lost
              "timeout": lambda: kraken.faults.timeout(0.8, apply_first=True, path=SEND_PATH),
              "5xx": lambda: kraken.faults.server_error(502, apply_first=True, path=SEND_PATH)}[fault]
    inject()
    assert s.broker.submit(CID, BAR, "BUY", 0.01)
    assert exchange_orders(kraken) == {leg_id(CID, "m0"): "filled"} and kraken.faults.count(*SEND) == 1
    # lost before it reached the venue: looked up, not there, sent again (once)
    kraken.faults.drop(apply_first=False, path=SEND_PATH)
    exit_id = client_order_id("xgb_next3m", BAR, "exit")
    assert s.broker.submit(exit_id, BAR, "SELL", 0.01, reduce_only=True)
    assert kraken.faults.count(*SEND) == 3 and s.broker.position() == 0.0
    assert sorted(exchange_orders(kraken).values()) == ["filled", "filled"]


def test_an_order_lost_three_times_stops_with_a_clear_error(kraken, journal):
    s = make_session(kraken, journal)
    kraken.faults.drop(apply_first=False, path=SEND_PATH, times=3)
    with pytest.raises(KrakenError, match="no acknowledgement after 3 sends and not on the exchange") as err:
        s.broker.submit(CID, BAR, "BUY", 0.01, reduce_only=False)
    assert err.value.code is None  # not a refusal: the run fails loudly, the order stays NEW for the next run
    assert journal.orders()["event"].tolist() == ["NEW"] and kraken.exchange.fills == []
    assert s.broker.submit(CID, BAR, "BUY", 0.01)  # the next run finishes it
    assert sum(f.size for f in kraken.exchange.fills) == Decimal("0.0100")


# -- rate limits, 5xx, nonces, rejections -------------------------------------------------------------------------
@pytest.mark.parametrize("http_status", [200, 429])
def test_api_limit_and_5xx_are_retried_with_backoff(s, http_status):
    s.kx.faults.api_limit(times=2, http_status=http_status, path=SEND_PATH)  # refused before it took effect
    s.kx.faults.server_error(503, method="POST", path="/derivatives/api/v3/orders/status", times=2)
    assert s.broker.submit(CID, BAR, "BUY", 0.01)
    assert s.waits == [0.01, 0.02, 0.01, 0.02]  # backoff_s, then doubled, per call
    assert exchange_orders(s.kx) == {leg_id(CID, "m0"): "filled"}
    assert s.kx.faults.count(*SEND) == 3 and s.kx.faults.pending() == 0


def test_api_limit_beyond_the_retries_stops_with_nothing_sent(s):
    s.kx.faults.api_limit(times=10, path=SEND_PATH)
    with pytest.raises(KrakenError, match=r"POST /derivatives/api/v3/sendorder: Kraken apiLimitExceeded after 4 "
                                          r"tries; nothing more was sent") as err:
        s.broker.submit(CID, BAR, "BUY", 0.01)
    assert err.value.code is None and s.waits == [0.01, 0.02, 0.04]
    assert s.journal.orders()["event"].tolist() == ["NEW"]  # not a refusal of the order: resumed next run
    assert s.kx.exchange.fills == []
    assert s.kx.faults.clear() == 1  # the limit is over
    assert s.broker.submit(CID, BAR, "BUY", 0.01)
    assert sum(f.size for f in s.kx.exchange.fills) == Decimal("0.0100")


def test_a_5xx_on_a_read_beyond_the_retries_names_the_call(s):
    s.kx.faults.server_error(500, path="/derivatives/api/v3/openpositions", times=5)
    with pytest.raises(KrakenError, match=r"GET /derivatives/api/v3/openpositions: HTTP 500 .* gave up after 4 "
                                          r"tries") as err:
        s.broker.position()
    assert err.value.status == 500 and err.value.code is None


def test_exchange_rejections_are_journaled_with_the_call_and_the_status(s):
    with pytest.raises(KrakenOrderRefused, match=r"POST /derivatives/api/v3/sendorder: Kraken refused order "
                                                 r".*-m0 .*sendStatus insufficientAvailableFunds") as err:
        s.broker.submit(CID, BAR, "BUY", 50.0)
    assert err.value.code == "insufficientAvailableFunds"
    (row,) = s.journal.orders().itertuples()
    assert (row.client_order_id, row.event) == (CID, "REJECTED") and "insufficientAvailableFunds" in row.note
    assert "sendorder" in row.note
    sent = s.kx.faults.count(*SEND)
    assert not s.broker.submit(CID, BAR, "BUY", 50.0)  # a retried run does not send a refused order again
    assert s.kx.faults.count(*SEND) == sent


def test_an_error_reply_about_the_order_is_a_rejection_and_one_about_the_key_is_not(s):
    s.kx.faults.kraken_error("invalidArgument", path=SEND_PATH)
    with pytest.raises(KrakenOrderRefused, match="Kraken error invalidArgument"):
        s.broker.submit(CID, BAR, "BUY", 0.01)
    assert s.journal.orders()["event"].tolist() == ["REJECTED"]
    other = client_order_id("xgb_next3m", BAR, "exit")
    s.kx.faults.kraken_error("authenticationError", path=SEND_PATH)
    with pytest.raises(KrakenError, match="authenticationError") as err:
        s.broker.submit(other, BAR, "BUY", 0.01)
    assert not isinstance(err.value, KrakenOrderRefused)
    assert s.journal.orders_by_id([other])[other]["event"] == "NEW"  # fix the key, rerun: it is sent then


def test_nonces_strictly_increase_and_a_refused_nonce_is_retried(s):
    clock = iter([100.0, 100.0, 99.0, 101.0])
    source = NonceSource(lambda: next(clock))
    nonces = [int(source()) for _ in range(4)]
    assert nonces == sorted(set(nonces)) and nonces[-1] == 101 * 100_000_000
    s.kx.faults.kraken_error("nonceBelowThreshold", path="/derivatives/api/v3/openpositions")
    assert s.broker.position() == 0.0 and s.waits == [0.01]
    s.kx.credentials.last_nonce = 10 ** 30  # another client of this key went far ahead: no retry can fix it
    with pytest.raises(KrakenError, match="nonceBelowThreshold after 4 tries"):
        s.broker.position()


# -- protection, kill switch, reconciliation ------------------------------------------------------------------------
def test_a_protective_leg_that_fired_is_journaled_and_its_sibling_cancelled(s):
    s.broker.start()
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    fill = s.journal.orders_by_id([CID])[CID]["price"]
    legs = s.journal.orders().set_index("client_order_id")
    assert legs.loc[f"{CID}-sl", "event"] == "NEW" and legs.loc[f"{CID}-tp", "event"] == "NEW"
    assert journaled_trigger(legs.loc[f"{CID}-sl", "note"]) == fill - 500
    sl, tp = (s.kx.exchange.find(None, f"{CID}-{x}") for x in ("sl", "tp"))
    assert (sl.order_type, sl.side, sl.reduce_only, sl.stop_price, sl.trigger_signal) == (
        "stp", "sell", True, Decimal(str(fill - 500)), "mark")
    assert (tp.order_type, tp.stop_price, tp.size) == ("take_profit", Decimal(str(fill + 1000)), Decimal("0.0100"))
    assert len(s.broker.reconcile().open_algo_orders) == 2
    assert s.broker.settle() == []  # nothing fired yet
    s.kx.exchange.set_price(fill + 1_000)  # the target is reached
    (ev,) = s.broker.settle()
    assert (ev.client_order_id, ev.side, ev.qty, ev.price) == (f"{CID}-tp", "SELL", pytest.approx(0.01), fill + 1000)
    assert ev.fee == pytest.approx(0.01 * (fill + 1000) * 0.0005)
    states = s.journal.orders().set_index("client_order_id")["event"]
    assert states[f"{CID}-sl"] == "CANCELED" and s.broker.position() == 0.0
    assert s.journal.position("kraken-demo") == pytest.approx(0.0)
    assert s.broker.reconcile_journal().matches and s.broker.reconcile().open_algo_orders == []
    assert s.broker.settle() == []


def test_a_leg_that_fired_is_never_closed_out_as_cancelled_by_the_flat_account_cleanup(s):
    """A leg fired, so the position is flat: ensure_protection (run before settle saw the fill) leaves the leg to
    settle(), which journals its fill; closing it out as CANCELED lost the fill (and the position)."""
    s.broker.start()
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    fill = s.journal.orders_by_id([CID])[CID]["price"]
    s.kx.exchange.set_price(fill + 1_000)  # the target fires
    s.broker.ensure_protection()
    s.broker.settle()
    states = s.journal.orders().groupby("client_order_id")["event"].last()
    assert states[f"{CID}-tp"] == "FILLED", states.to_dict()
    assert s.journal.position("kraken-demo") == pytest.approx(0.0) == s.broker.position()
    assert s.broker.reconcile_journal().matches


def test_a_missing_protective_leg_is_placed_again_until_it_is_there(s):
    s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    s.kx.exchange.cancel(None, f"{CID}-sl")  # gone from the exchange (refused, or cancelled by hand)
    assert [o["clientAlgoId"] for o in s.broker.reconcile().open_algo_orders] == [f"{CID}-tp"]
    assert s.broker.ensure_protection() == [f"{CID}-sl"]
    assert len(s.broker.reconcile().open_algo_orders) == 2
    assert s.broker.ensure_protection() == []  # both there
    s.broker.submit(client_order_id("xgb_next3m", BAR, "exit"), BAR, "SELL", 0.01, reduce_only=True)
    s.broker.cancel_all()
    assert s.broker.ensure_protection() == []  # flat: the legs are closed out, not placed
    assert s.journal.open_protective_legs("kraken-demo").empty


def test_cancel_all_and_flatten_with_the_kill_switch(s):
    s.broker.start()
    s.broker.submit("open-long", BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    s.fills_on_poll = False
    s.kx.exchange.send_order({"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.0100",
                              "limitPrice": "30000", "cliOrdId": "resting"})
    assert len(s.broker.open_orders()) == 3
    report = stop_trading(s.broker, ["BTC_KILL_SWITCH=1"], strategy="s", bar_time=BAR + pd.Timedelta(minutes=1),
                          notifier=Notifier(), step=s.broker.instrument().min_qty)
    assert report.position_before == pytest.approx(0.01) and report.flatten_order
    assert s.broker.position() == 0.0 and s.broker.open_orders() == []
    flatten = s.kx.exchange.find(None, leg_id(report.flatten_order, "mk"))
    assert (flatten.order_type, flatten.reduce_only, flatten.status) == ("mkt", True, "filled")
    again = stop_trading(s.broker, ["BTC_KILL_SWITCH=1"], strategy="s", bar_time=BAR + pd.Timedelta(minutes=1),
                         notifier=Notifier(), step=s.broker.instrument().min_qty)
    assert again.flatten_order is None  # already flat: nothing more is sent


def test_open_orders_cancel_one_and_look_one_up(s):
    s.kx.exchange.send_order({"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.0100",
                              "limitPrice": "30000", "cliOrdId": "by-hand"})
    (o,) = s.broker.open_orders()
    assert (o["cliOrdId"], o["orderType"], o["limitPrice"]) == ("by-hand", "lmt", 30_000.0)
    assert [x["clientOrderId"] for x in s.broker.reconcile().open_orders] == ["by-hand"]
    assert s.broker.order_state("by-hand").status == "open"
    assert s.broker.cancel_order("by-hand") == "cancelled"
    assert s.broker.cancel_order("by-hand") == "notFound" and s.broker.open_orders() == []
    assert s.broker.order_state("by-hand").status == "cancelled"
    s.kx.exchange.status_window_s = 0.0
    assert s.broker.order_state("by-hand") is None  # closed unfilled a while ago: Kraken keeps nothing of it
    s.kx.exchange.send_order({"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.0100",
                              "cliOrdId": "traded"})
    leg = s.broker.order_state("traded")  # its fills remember it
    assert (leg.status, leg.filled, leg.avg_price) == ("closed", 0.01, 42_001.0)
    assert leg.fee == pytest.approx(0.01 * 42_001.0 * 0.0005)


def test_reconciliation_detects_a_position_the_journal_does_not_have(s, caplog):
    s.broker.submit(CID, BAR, "BUY", 0.01)
    assert s.broker.reconcile_journal().matches
    # someone trades on the account outside this journal
    s.kx.exchange.send_order({"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.0050"})
    caplog.set_level(logging.WARNING)
    rec = s.broker.reconcile_journal()
    assert not rec.matches and rec.difference == pytest.approx(0.005)
    assert (rec.position, rec.expected_position) == (pytest.approx(0.015), pytest.approx(0.01))
    assert "journal expects +0.0100" in caplog.text
    assert s.broker.reconcile_journal(tolerance=0.01).matches  # within a tolerance it is not a difference
    assert s.broker.reconcile(None).matches  # nothing expected: nothing to compare


# -- instruments, lots, client ids -----------------------------------------------------------------------------------
def test_quantities_are_rounded_to_the_lot_and_below_the_minimum_refused(s):
    with pytest.raises(ValueError, match=r"0.00009 BTC is below PF_XBTUSD's minimum order of 0.0001 BTC"):
        s.broker.submit(CID, BAR, "BUY", 0.00009)
    assert s.journal.orders().empty and s.kx.faults.count(*SEND) == 0
    with pytest.raises(ValueError, match="side must be BUY or SELL"):
        s.broker.submit(CID, BAR, "buy", 0.01)
    s.fills_on_poll = False
    assert s.broker.submit(CID, BAR, "SELL", 0.0123999)
    assert s.journal.orders_by_id([CID])[CID]["qty"] == pytest.approx(0.0123)
    assert s.kx.exchange.find(None, leg_id(CID, "mk")).size == Decimal("0.0123")


def test_contract_size_tick_and_step_from_an_instrument_row():
    """A contract of 0.001 BTC traded in whole contracts, priced on 0.5: BTC <-> contracts and the grids."""
    inst = Instrument.of({"symbol": "pf_test", "type": "flexible_futures", "contractSize": 0.001, "tickSize": 0.5,
                          "contractValueTradePrecision": 0})
    assert inst.size_of(0.0129) == Decimal(12) and inst.qty_of(12) == pytest.approx(0.012)
    assert inst.size_of(0.0009) == 0 and inst.min_qty == pytest.approx(0.001)
    assert inst.price(41_000.74) == Decimal("41000.5") and inst.price(41_000.76) == Decimal("41001.0")
    assert Instrument.of({"symbol": "X", "contractSize": 1, "tickSize": 1,
                          "contractValueTradePrecision": -1}).step == Decimal(10)


def test_client_order_ids_are_checked_against_krakens_limit():
    assert check_cli_ord_id("x" * 100) == "x" * 100
    for bad in ("x" * 101, "", "with space", "naïve"):
        with pytest.raises(ValueError, match="cliOrdId"):
            check_cli_ord_id(bad)


def test_the_inverse_pi_contract_is_refused_naming_the_setting(kraken):
    env = {**TESTNET, "KRAKEN_FUTURES_API_KEY": KEY, "KRAKEN_FUTURES_API_SECRET": SECRET,
           "KRAKEN_FUTURES_URL": kraken.url, "KRAKEN_FUTURES_SYMBOL": "PI_XBTUSD"}
    with pytest.raises(ValueError, match=r"KRAKEN_FUTURES_SYMBOL=PI_XBTUSD: inverse contracts .* Use the linear "
                                         r"PF_XBTUSD"):
        KrakenFuturesBroker.from_env(None, "r", env)
    with pytest.raises(ValueError, match="KRAKEN_FUTURES_SYMBOL=FI_XBTUSD_240628"):
        check_symbol("FI_XBTUSD_240628")
    with pytest.raises(ValueError, match="only linear multi-collateral"):
        check_symbol("XBTUSD")
    rest = KrakenRest(KEY, SECRET, kraken.url, env=TESTNET)
    with pytest.raises(ValueError, match="PI_XBTUSD"):
        KrakenFuturesBroker(rest, None, "r", KrakenExecution(symbol="PI_XBTUSD"))
    assert kraken.faults.requests == []
    broker = KrakenFuturesBroker.from_env(None, "r", {**env, "KRAKEN_FUTURES_SYMBOL": "pf_xbtusd"})
    assert broker.config.symbol == "PF_XBTUSD" and broker.instrument().type == "flexible_futures"


def test_an_instrument_that_is_not_linear_is_refused_at_start_whatever_its_name(journal):
    inverse_named_pf = Spec("PF_XBTUSD", "futures_inverse", Decimal("0.5"), Decimal("1"), 0)
    with run_in_thread(KEY, SECRET, KrakenExchange(specs=(inverse_named_pf,))) as kx:
        s = make_session(kx, journal)
        with pytest.raises(KrakenError, match="futures_inverse instrument .* only flexible_futures"):
            s.broker.start()
        with pytest.raises(KrakenError, match="only flexible_futures"):
            s.broker.submit(CID, BAR, "BUY", 1.0)
        assert kx.faults.count(*SEND) == 0 and journal.orders().empty
    with run_in_thread(KEY, SECRET, KrakenExchange(specs=(Spec("PF_ETHUSD", "flexible_futures", Decimal("0.1"),
                                                               Decimal("1"), 3),))) as kx:
        with pytest.raises(KrakenError, match="does not list PF_XBTUSD"):
            make_session(kx, journal).broker.start()


# -- the live opt-in -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env, url", [
    ({}, DEMO_URL),
    ({"BTC_TRADING_MODE": "paper"}, "http://127.0.0.1:1"),
    ({"BTC_TRADING_MODE": "testnet"}, PRODUCTION_URL),
    ({"BTC_TRADING_MODE": "testnet"}, "https://futures.example.org"),  # unknown hosts count as production
    ({"BTC_TRADING_MODE": "testnet"}, "https://testnet.binancefuture.com"),  # another venue's testnet
    ({"BTC_TRADING_MODE": "live"}, PRODUCTION_URL),
    ({"BTC_TRADING_MODE": "live", "BTC_LIVE_CONFIRM": "yes"}, PRODUCTION_URL),
    ({"BTC_TRADING_MODE": "demo"}, DEMO_URL),  # not a mode: testnet is Kraken's demo
    ({"BTC_TRADING_MODE": "testnet"}, f"{DEMO_URL}/derivatives/api/v3"),  # a path would be dropped by the SDK
])
def test_refused(env, url):
    with pytest.raises(TradingNotAllowed):
        check_kraken_allowed(url, env)


@pytest.mark.parametrize("env, url, mode", [
    ({"BTC_TRADING_MODE": "testnet"}, DEMO_URL, "testnet"),
    ({"BTC_TRADING_MODE": "testnet"}, "http://127.0.0.1:8080", "testnet"),
    ({"BTC_TRADING_MODE": "testnet"}, "http://localhost:8080/", "testnet"),
    ({"BTC_TRADING_MODE": "live"}, DEMO_URL, "live"),  # not production: no second opt-in needed
    ({"BTC_TRADING_MODE": "live", "BTC_LIVE_CONFIRM": CONFIRM_VALUE}, PRODUCTION_URL, "live"),
])
def test_allowed(env, url, mode):
    assert check_kraken_allowed(url, env) == mode


def test_no_client_is_built_without_the_opt_ins(monkeypatch, kraken):
    def no_client(*a, **k):
        raise AssertionError("an SDK client was built")
    monkeypatch.setattr(kraken_rest, "Trade", no_client)
    keys = {"KRAKEN_FUTURES_API_KEY": KEY, "KRAKEN_FUTURES_API_SECRET": SECRET}
    monkeypatch.delenv("BTC_TRADING_MODE", raising=False)
    monkeypatch.setenv("KRAKEN_FUTURES_URL", kraken.url)
    with pytest.raises(TradingNotAllowed, match="paper"):
        KrakenFuturesBroker.from_env(None, "r")  # the process environment: paper by default
    with pytest.raises(TradingNotAllowed, match="paper"):
        KrakenFuturesBroker.from_env(None, "r", {**keys, "KRAKEN_FUTURES_URL": kraken.url})
    with pytest.raises(TradingNotAllowed, match="BTC_LIVE_CONFIRM"):
        KrakenFuturesBroker.from_env(None, "r", {**keys, "BTC_TRADING_MODE": "live",
                                                  "KRAKEN_FUTURES_URL": PRODUCTION_URL})
    with pytest.raises(TradingNotAllowed, match="demo"):  # testnet never reaches production
        KrakenFuturesBroker.from_env(None, "r", {**keys, **TESTNET, "KRAKEN_FUTURES_URL": PRODUCTION_URL})
    assert kraken.faults.requests == []


def test_from_env_defaults_to_the_demo_and_names_the_book(monkeypatch):
    keys = {"KRAKEN_FUTURES_API_KEY": KEY, "KRAKEN_FUTURES_API_SECRET": SECRET}
    demo = KrakenFuturesBroker.from_env(None, "r", {**keys, **TESTNET})  # no request is made to build it
    assert (demo.rest.base_url, demo.name, demo.config.symbol) == (DEMO_URL, "kraken-demo", "PF_XBTUSD")
    with pytest.raises(ValueError, match="KRAKEN_FUTURES_SYMBOL=PI_XBTUSD"):  # a config's symbol is checked too
        KrakenFuturesBroker.from_env(None, "r", {**keys, **TESTNET}, KrakenExecution(symbol="PI_XBTUSD"))
    live = KrakenFuturesBroker.from_env(None, "r", {**keys, "BTC_TRADING_MODE": "live",
                                                    "BTC_LIVE_CONFIRM": CONFIRM_VALUE,
                                                    "KRAKEN_FUTURES_URL": PRODUCTION_URL})
    assert (live.rest.base_url, live.name, live.rest.mode) == (PRODUCTION_URL, "kraken-live", "live")
    with pytest.raises(KrakenError, match="KRAKEN_FUTURES_API_KEY and KRAKEN_FUTURES_API_SECRET"):
        KrakenFuturesBroker.from_env(None, "r", {**TESTNET, "KRAKEN_FUTURES_API_KEY": KEY})
    with pytest.raises(KrakenError, match="KRAKEN_FUTURES_API_SECRET is not base64") as err:
        KrakenFuturesBroker.from_env(None, "r", {**TESTNET, **keys, "KRAKEN_FUTURES_API_SECRET": "not base64!"})
    assert "not base64!" not in str(err.value).replace("is not base64", "")


# -- the secret appears nowhere ---------------------------------------------------------------------------------------
CANARY_KEY = "CANARY-KRAKEN-KEY-7f3a9c1e5b2d4f60"
CANARY_SECRET = base64.b64encode(b"CANARY-KRAKEN-SECRET-d41d8cd98f00b204e9800998ecf8427e").decode()


def test_the_secret_appears_nowhere(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's, requests' and urllib3's included
    handler = logging.FileHandler(tmp_path / "session.log")
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    texts: list[str] = []
    entry = client_order_id("canary", BAR, "entry")
    try:
        with run_in_thread(CANARY_KEY, CANARY_SECRET) as kx:
            conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
            s = make_session(kx, Journal(conn), key=CANARY_KEY, secret=CANARY_SECRET, timeout_s=0.3)
            texts += [repr(s.rest), repr(s.broker), str(vars(s.broker)), str(vars(s.rest))]
            s.broker.start()
            kx.faults.drop(apply_first=True, path=SEND_PATH)  # a lost ack
            kx.faults.api_limit(times=1, path="/derivatives/api/v3/tickers")
            assert s.broker.submit(entry, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
            for leg, fault in (("exit", lambda: None), ("exit2", lambda: kx.faults.api_limit(times=4))):
                fault()
                with pytest.raises(KrakenError) as err:
                    s.broker.submit(client_order_id("canary", BAR, leg), BAR, "BUY", 50.0)
                texts += [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value))]
            for wrong in (make_session(kx, Journal(conn), key=CANARY_KEY, secret=CANARY_SECRET[:-4] + "AAA="),
                          make_session(kx, Journal(conn), key=CANARY_KEY + "x", secret=CANARY_SECRET)):
                with pytest.raises(KrakenError, match="authenticationError") as bad:
                    wrong.broker.position()
                texts += [str(bad.value), "".join(traceback.format_exception(bad.value))]
            for env in ({**TESTNET, "KRAKEN_FUTURES_API_KEY": CANARY_KEY,
                         "KRAKEN_FUTURES_API_SECRET": CANARY_SECRET + "!"},
                        {"KRAKEN_FUTURES_API_KEY": CANARY_KEY, "KRAKEN_FUTURES_API_SECRET": CANARY_SECRET}):
                with pytest.raises((KrakenError, TradingNotAllowed)) as refused:
                    KrakenFuturesBroker.from_env(None, "r", env)
                texts += [str(refused.value), "".join(traceback.format_exception(refused.value))]
            conn.close()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"warehouse.duckdb", "session.log"}
    assert caplog.records, "the session should have logged something to scan"
    assert any("apiLimitExceeded" in t for t in texts) and any("authenticationError" in t for t in texts)
    for secret in (CANARY_SECRET, CANARY_KEY, base64.b64decode(CANARY_SECRET).decode()):
        for text in texts:
            assert secret not in text
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret[:13]}… found in {path.name}"


# -- a trading process killed mid-order, restarted with the same decision ------------------------------------------
PROCESSES = multiprocessing.get_context("forkserver")
# One forkserver serves the whole test session: keep the Binance crash tests' child preloaded as well.
PROCESSES.set_forkserver_preload(["btc_assets_tests.lib.trading.brokers.crash_child", crash_child.__name__])
QTY = 0.01


class Venue:
    """The fake venue whose market trades through a resting quote whenever its status is polled, if `fills`."""

    def __init__(self, kx: RunningFakeKraken):
        self.kx, self.fills = kx, True
        status, private = kx.app.routes[("POST", "/orders/status")]

        def status_while_time_passes(ex, p):
            if self.fills:
                for cid in p.get("cliOrdIds", []):
                    o = ex.find(None, cid)
                    if o is not None and o.status == "open" and not o.is_trigger:
                        ex.set_price(float(o.limit_price))
            return status(ex, p)
        kx.app.routes[("POST", "/orders/status")] = (status_while_time_passes, private)

    def legs(self) -> dict[str, tuple[str, float]]:
        return {o.cli_ord_id: (o.status, float(o.filled)) for o in self.kx.exchange.orders.values()}


@pytest.fixture()
def venue():
    with run_in_thread(crash_child.KEY, crash_child.SECRET) as kx:
        yield Venue(kx)


def start(venue: Venue, journal: Path, run_id: str, side: str = "BUY", kill: dict | None = None,
          timeout_s: float = 5.0):
    spec = {"url": venue.kx.url, "journal": str(journal), "log": str(journal.with_suffix(".log")), "run_id": run_id,
            "cid": CID, "bar": BAR.isoformat(), "side": side, "qty": QTY, "kill": kill, "timeout_s": timeout_s}
    child = PROCESSES.Process(target=crash_child.run, args=(spec,), name=f"kraken-trader-{run_id}")
    child.start()
    return child


def finished(child) -> int:
    child.join(timeout=60)
    if child.exitcode is None:
        child.kill()
        pytest.fail(f"{child.name} still running after 60 s (killed)")
    return child.exitcode


def output(journal: Path) -> str:
    log = journal.with_suffix(".log")
    return log.read_text() if log.exists() else ""


def crash(venue: Venue, journal: Path, kill: dict, side: str = "BUY") -> None:
    code = finished(start(venue, journal, "run-1", side, kill))
    assert code == KILLED, f"the child did not reach its kill point {kill} (exit {code}):\n{output(journal)}"


def restart(venue: Venue, journal: Path, side: str = "BUY", run_id: str = "run-2") -> bool:
    code = finished(start(venue, journal, run_id, side))
    assert code in (0, NOTHING_SENT), f"the restarted run failed (exit {code}):\n{output(journal)}"
    return code == 0


def read_events(journal: Path) -> pd.DataFrame:
    """The journal's order events as a reader sees them after the crash (WAL replayed, not checkpointed)."""
    with duckdb.connect(str(journal), read_only=True) as conn:
        return conn.execute("SELECT * FROM trading.order_events ORDER BY seq").df()


def assert_traded_once(venue: Venue, journal: Path, side: str = "BUY", requoted: bool = False) -> None:
    """The venue traded QTY once, one sendorder per order it holds and (unless `requoted`) one order per leg id,
    every leg journaled with its final state, one FILLED at the end with the venue's average price."""
    ex = venue.kx.exchange
    assert all(o.cli_ord_id.startswith(CID) for o in ex.orders.values()), venue.legs()
    if not requoted:
        assert len({o.cli_ord_id for o in ex.orders.values()}) == len(ex.orders), "a leg was sent twice"
    assert float(sum(f.size for f in ex.fills)) == pytest.approx(QTY), venue.legs()
    assert venue.kx.faults.count(*SEND) == len(ex.orders)  # nothing was sent twice
    rest = KrakenRest(crash_child.KEY, crash_child.SECRET, venue.kx.url, env=TESTNET)
    (pos,) = rest.open_positions()
    assert (pos["side"], pos["size"]) == ("long" if side == "BUY" else "short", pytest.approx(QTY))
    ev = read_events(journal)
    assert (ev["client_order_id"] == CID).all()
    assert (ev["event"] == "NEW").sum() == 1 and ev["event"].iloc[0] == "NEW"
    assert (ev["event"] == "FILLED").sum() == 1 and ev["event"].iloc[-1] == "FILLED", ev["event"].tolist()
    filled = ev.iloc[-1]
    notional = float(sum(f.size * f.price for f in ex.fills))
    assert (filled["side"], filled["qty"]) == (side, pytest.approx(QTY))
    assert filled["price"] == pytest.approx(notional / QTY) and filled["broker"] == "kraken-demo"
    acks = {}  # leg -> its last journaled state: a retried run may restate a leg, never contradict it
    for note, qty in ev.loc[ev["event"] == "ACK", ["note", "qty"]].itertuples(index=False):
        leg, status = re.match(r"leg (\S+): (\w+) ", note).groups()
        acks[leg] = ("filled" if status == "closed" else status, pytest.approx(qty))
    assert acks == {leg: (status, pytest.approx(q)) for leg, (status, q) in venue.legs().items()}


def finish_and_check(venue: Venue, journal: Path, side: str = "BUY", requoted: bool = False) -> None:
    assert Path(f"{journal}.wal").exists()  # the crash left the log unapplied: the restart has to recover it
    assert restart(venue, journal, side)
    assert_traded_once(venue, journal, side, requoted)


# (a) killed after NEW is journaled, before the order request is sent
@pytest.mark.parametrize("kill", [{"at": "append", "event": "NEW"},
                                  {"at": "before", "method": "POST", "path": SEND_PATH}],
                         ids=["right-after-NEW", "just-before-sendorder"])
def test_killed_after_new_before_the_order_is_sent(venue, tmp_path, kill):
    journal = tmp_path / "journal.duckdb"
    crash(venue, journal, kill)
    assert read_events(journal)["event"].tolist() == ["NEW"] and venue.legs() == {}
    finish_and_check(venue, journal)
    assert not restart(venue, journal, run_id="run-3")  # a third run: filled in the journal, nothing sent
    assert venue.kx.faults.count(*SEND) == 1


# (b) killed after the venue accepted the order, before its reply is read
@pytest.mark.parametrize(("fills", "nth", "side", "window_s", "on_venue", "journaled"), [
    (True, 1, "BUY", 5.0, {"m0": "open"}, ["NEW"]),  # a quote resting on the book
    (False, 4, "SELL", 5.0, {"m0": "cancelled", "m1": "cancelled", "m2": "cancelled", "mk": "filled"},
     ["NEW", "ACK", "ACK", "ACK"]),  # the market remainder, already traded
    (False, 4, "SELL", 0.0, {"m0": "cancelled", "m1": "cancelled", "m2": "cancelled", "mk": "filled"},
     ["NEW", "ACK", "ACK", "ACK"]),  # ... and Kraken no longer answers for the closed orders: fills and ACKs
], ids=["maker-quote", "market-remainder", "market-remainder-status-forgotten"])
def test_killed_after_the_venue_accepted_before_the_reply_is_read(venue, tmp_path, fills, nth, side, window_s,
                                                                  on_venue, journaled):
    journal = tmp_path / "journal.duckdb"
    venue.fills = fills
    crash(venue, journal, {"at": "after", "method": "POST", "path": SEND_PATH, "nth": nth}, side)
    assert {c: st for c, (st, _) in venue.legs().items()} == {leg_id(CID, k): st for k, st in on_venue.items()}
    assert read_events(journal)["event"].tolist() == journaled
    venue.kx.exchange.status_window_s = window_s
    finish_and_check(venue, journal, side)


def test_sigkilled_while_the_acknowledgement_is_in_flight(venue, tmp_path):
    journal = tmp_path / "journal.duckdb"
    venue.kx.faults.timeout(1.0, apply_first=True, path=SEND_PATH)  # accepted, the reply comes late
    child = start(venue, journal, "run-1")
    deadline = time.monotonic() + 30
    while not venue.kx.exchange.orders:
        assert child.is_alive() and time.monotonic() < deadline, f"no quote was placed:\n{output(journal)}"
        time.sleep(0.01)
    child.kill()  # SIGKILL while it waits for the reply
    assert finished(child) == -signal.SIGKILL
    assert read_events(journal)["event"].tolist() == ["NEW"]
    finish_and_check(venue, journal)


# (c) killed after a leg is journaled (ACK), before FILLED; and between quotes. The restart comes after Kraken's
# few seconds of memory of closed orders (status window 0) unless said otherwise: fills and the journal's ACKs tell.
CANCEL = {"at": "after", "method": "POST", "path": "/derivatives/api/v3/cancelorder", "nth": 1}


@pytest.mark.parametrize(("fills", "kill", "journaled", "window_s", "requoted"), [
    (True, {"at": "append", "event": "ACK", "nth": 1}, ["NEW", "ACK"], 0.0, False),  # the quote filled
    (False, {"at": "append", "event": "ACK", "nth": 4}, ["NEW", "ACK", "ACK", "ACK", "ACK"], 0.0, False),  # mk filled
    (False, {"at": "append", "event": "ACK", "nth": 1}, ["NEW", "ACK"], 0.0, False),  # quote 0 cancelled, 1 not sent
    (False, CANCEL, ["NEW"], 5.0, False),  # quote 0 cancelled, not journaled: Kraken still knows it
    # ... and once Kraken has forgotten it, nothing says quote 0 ever was: it is quoted again (it never traded)
    (False, CANCEL, ["NEW"], 0.0, True),
], ids=["ack-of-filled-quote", "ack-of-market-leg", "ack-of-cancelled-quote", "right-after-cancel",
        "right-after-cancel-forgotten"])
def test_killed_between_legs_or_before_filled(venue, tmp_path, fills, kill, journaled, window_s, requoted):
    journal = tmp_path / "journal.duckdb"
    venue.fills = fills
    crash(venue, journal, kill)
    assert read_events(journal)["event"].tolist() == journaled
    venue.kx.exchange.status_window_s = window_s
    finish_and_check(venue, journal, requoted=requoted)


def test_an_order_killed_after_its_first_leg_still_counts_in_the_journaled_position(venue, tmp_path):
    """Until the restart finishes it, the crashed order is open (NEW, its full quantity) for the next bar's sizing."""
    journal = tmp_path / "journal.duckdb"
    venue.fills = False
    crash(venue, journal, {"at": "append", "event": "ACK", "nth": 1})  # quote 0 cancelled unfilled
    copy = tmp_path / "copy.duckdb"  # a writable copy, this one left for the restart's WAL
    shutil.copy(journal, copy)
    shutil.copy(f"{journal}.wal", f"{copy}.wal")
    with duckdb.connect(str(copy)) as conn:
        assert Journal(conn).orders()[["client_order_id", "event", "qty"]].values.tolist() == [[CID, "NEW", QTY]]
    finish_and_check(venue, journal)
