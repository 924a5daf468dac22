"""The Binance broker on the official client against the fake exchange: setup, maker-first execution, protective
orders, idempotent client ids (also when an acknowledgement is lost), clock sync, 429/418/5xx handling."""

from __future__ import annotations

import pandas as pd
import pytest

from btc_assets.lib.trading.brokers import binance

from btc_assets.lib.trading.brokers.binance import leg_id
from btc_assets.lib.data.rest.errors import BinanceError
from btc_assets.lib.trading.journal import client_order_id
from btc_assets_tests.lib.trading.brokers.conftest import make_session

BAR = pd.Timestamp("2024-01-01 00:05", tz="UTC")
CID = client_order_id("xgb_next3m", BAR, "entry")


def exchange_orders(fx) -> dict[str, str]:
    return {o.client_order_id: o.status for o in fx.exchange.orders.values()}


def test_start_sets_leverage_and_isolated_margin_and_reconciles(session):
    rec = session.broker.start(expected_position=0.0)
    pos = session.fx.exchange.account.position("BTCUSDT")
    assert (pos.leverage, pos.margin_type) == (2, "ISOLATED")
    assert rec.position == 0.0 and rec.matches and rec.open_orders == [] and rec.open_algo_orders == []
    calls = len(session.fx.faults.requests)
    assert session.broker.start() is None  # this process set the account up already: nothing is set again,
    assert session.fx.faults.requests[calls:] == [("GET", "/fapi/v2/positionRisk")]  # only verified
    binance._STARTED.clear()  # a new process: margin type already isolated (-4046) is fine
    assert session.broker.start().matches


def test_post_only_quote_fills_as_maker(session):
    session.broker.start()
    bid = session.fx.exchange.best_bid_ask()[0]
    assert session.broker.submit(CID, BAR, "BUY", 0.0104)  # rounded down to the 0.001 step
    assert exchange_orders(session.fx) == {leg_id(CID, "m0"): "FILLED"}
    assert session.broker.position() == pytest.approx(0.01)
    (row,) = session.journal.orders().itertuples()
    assert (row.event, row.qty, row.price) == ("FILLED", 0.01, bid)
    assert row.fee == pytest.approx(0.01 * bid * 0.0002)
    assert session.broker.reconcile(expected_position=session.journal.position()).matches


def test_unfilled_quotes_are_requoted_then_the_rest_goes_market(session):
    session.fills_on_poll = False  # the market never trades through our quotes
    assert session.broker.submit(CID, BAR, "SELL", 0.01)
    assert exchange_orders(session.fx) == {leg_id(CID, "m0"): "CANCELED", leg_id(CID, "m1"): "CANCELED",
                                           leg_id(CID, "m2"): "CANCELED", leg_id(CID, "mk"): "FILLED"}
    assert session.broker.position() == pytest.approx(-0.01)
    events = session.journal.conn.execute("SELECT event, note FROM trading.order_events ORDER BY rowid").fetchall()
    assert [e for e, _ in events] == ["NEW", "ACK", "ACK", "ACK", "ACK", "FILLED"]
    assert events[4][1].startswith(f"leg {leg_id(CID, 'mk')}: FILLED")


def test_a_retried_run_sends_nothing_twice(session, fx, tmp_path):
    session.fills_on_poll = False
    assert session.broker.submit(CID, BAR, "BUY", 0.01)
    before = dict(exchange_orders(fx))
    assert not session.broker.submit(CID, BAR, "BUY", 0.01)  # same journal: already filled
    # a run that lost its journal: every leg is looked up by origClientOrderId, nothing is re-sent
    import duckdb

    from btc_assets.lib.trading.journal import Journal
    fresh = make_session(fx, Journal(duckdb.connect(str(tmp_path / "other.duckdb"))), run_id="run-2")
    fresh.fills_on_poll = False
    assert fresh.broker.submit(CID, BAR, "BUY", 0.01)
    assert exchange_orders(fx) == before and fresh.broker.position() == pytest.approx(0.01)
    assert fresh.journal.orders()["qty"].tolist() == [0.01]


def test_lost_acknowledgement_is_resolved_by_lookup_not_by_resending(fx, journal):
    s = make_session(fx, journal, timeout_ms=300)
    fx.faults.timeout(0.8, apply_first=True, method="POST", path="/fapi/v1/order")  # accepted, reply lost
    assert s.broker.submit(CID, BAR, "BUY", 0.01)
    assert exchange_orders(fx) == {leg_id(CID, "m0"): "FILLED"}
    fx.faults.drop(apply_first=False, method="POST", path="/fapi/v1/order")  # never reached the exchange
    assert s.broker.submit(client_order_id("xgb_next3m", BAR, "exit"), BAR, "SELL", 0.01)
    assert sorted(exchange_orders(fx).values()) == ["FILLED", "FILLED"] and s.broker.position() == 0.0


def test_clock_skew_is_fixed_by_server_time_sync(session):
    session.fx.exchange.clock_skew_ms = 30_000  # the exchange is 30 s ahead of us: -1021 until we sync
    assert session.broker.submit(CID, BAR, "BUY", 0.01)
    assert session.rest.time_offset_ms == pytest.approx(30_000, abs=1_000)


def test_429_is_honoured_and_5xx_retried_with_backoff(session):
    fx = session.fx
    fx.faults.rate_limited(retry_after=2, path="/fapi/v1/ticker/bookTicker")
    fx.faults.server_error(503, method="GET", path="/fapi/v1/order", times=2)
    assert session.broker.submit(CID, BAR, "BUY", 0.01)
    limiter_wait = session.rest.limiter.waited_s  # Retry-After 2 s, measured from the 429's arrival
    assert 1.5 < limiter_wait <= 2.0
    assert [w for w in session.waits if w in (0.5, 1.0)] == [0.5, 1.0]  # 5xx backoff: 0.5 s, then 1 s
    assert exchange_orders(fx) == {leg_id(CID, "m0"): "FILLED"}


def test_418_longer_than_allowed_stops_with_a_clear_error(session):
    session.fx.faults.banned(retry_after=600, path="/fapi/v1/ticker/bookTicker")
    with pytest.raises(BinanceError, match="418") as err:
        session.broker.submit(CID, BAR, "BUY", 0.01)
    assert err.value.status == 418
    assert ("POST", "/fapi/v1/order") not in session.fx.faults.requests


def test_exchange_rejections_name_the_call(session):
    with pytest.raises(BinanceError, match=r"POST /fapi/v1/order: Binance error -2019") as err:
        session.broker.submit(CID, BAR, "BUY", 50.0)
    assert err.value.code == -2019
    assert session.journal.orders()[["event", "client_order_id"]].values.tolist() == [["REJECTED", CID]]
    sent = len(session.fx.exchange.orders)
    assert not session.broker.submit(CID, BAR, "BUY", 50.0)  # a retried run does not send a refused order again
    assert len(session.fx.exchange.orders) == sent


def test_a_protective_leg_that_fired_is_journaled_and_its_sibling_cancelled(session):
    session.broker.start()
    price = session.fx.exchange.bar[4]
    assert session.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=0.001)
    legs = session.journal.orders().set_index("client_order_id")
    assert legs.loc[f"{CID}-sl", "event"] == "NEW" and legs.loc[f"{CID}-tp", "event"] == "NEW"
    session.fx.exchange.advance()  # the target (0.5 above the fill) is reached: the exchange closes the position
    (fill,) = session.broker.settle()
    assert fill.client_order_id == f"{CID}-tp" and fill.side == "SELL" and fill.qty == pytest.approx(0.01)
    states = session.journal.orders().set_index("client_order_id")["event"]
    assert states[f"{CID}-sl"] == "CANCELED" and session.broker.position() == 0.0
    assert session.journal.position("binance") == pytest.approx(0.0)
    assert session.broker.reconcile().open_algo_orders == [] and abs(price) > 0
    assert session.broker.settle() == []  # nothing new fired


def test_protective_orders_close_the_position(session):
    session.broker.start()
    assert session.broker.submit(CID, BAR, "BUY", 0.01)
    price = session.fx.exchange.bar[4]
    session.broker.protect(CID, "LONG", stop_price=price - 500, take_profit_price=price + 5)
    session.broker.protect(CID, "LONG", stop_price=price - 500, take_profit_price=price + 5)  # idempotent
    assert len(session.broker.reconcile().open_algo_orders) == 2
    session.fx.exchange.advance()
    assert session.broker.position() == 0.0
    session.broker.cancel_all()
    assert session.broker.reconcile().open_algo_orders == []


def test_limiter_fed_by_the_exchange_headers_waits_before_the_limit(session):
    fx = session.fx
    fx.app.limits.charge(fx.exchange.now_ms(), weight=2_200, orders=0)  # another process used most of the minute
    session.rest.call("GET", "/fapi/v1/time", signed=False)  # the reply's X-MBX-USED-WEIGHT-1M says so
    session.rest.call("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})  # weight 5: over 90 % of 2,400
    assert session.rest.limiter.waited_s > 0  # it waited for the next minute instead of earning a 429
