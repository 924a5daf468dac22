"""The live opt-in (paper by default, testnet never production, live needs a second confirmation) and the
header-fed rate limiter."""

from __future__ import annotations

import pytest

from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.brokers.binance import BinanceBroker
from btc_assets.lib.trading.brokers.binance_rest import BinanceRest
from btc_assets.lib.trading.brokers.paper import PaperBroker
from btc_assets.lib.data.rest.rate_limit import Limits, RateLimiter
from btc_assets.lib.trading.brokers.safety import CONFIRM_VALUE, TradingNotAllowed, check_trading_allowed

PROD = "https://fapi.binance.com"
TESTNET = "https://testnet.binancefuture.com"


@pytest.mark.parametrize("env, url", [
    ({}, TESTNET),
    ({"BTC_TRADING_MODE": "paper"}, "http://127.0.0.1:1"),
    ({"BTC_TRADING_MODE": "testnet"}, PROD),
    ({"BTC_TRADING_MODE": "testnet"}, "https://fapi.example.org"),  # unknown hosts count as production
    ({"BTC_TRADING_MODE": "live"}, PROD),
    ({"BTC_TRADING_MODE": "live", "BTC_LIVE_CONFIRM": "yes"}, PROD),
    ({"BTC_TRADING_MODE": "yolo"}, TESTNET),
])
def test_refused(env, url):
    with pytest.raises(TradingNotAllowed):
        check_trading_allowed(url, env)


@pytest.mark.parametrize("env, url, mode", [
    ({"BTC_TRADING_MODE": "testnet"}, TESTNET, "testnet"),
    ({"BTC_TRADING_MODE": "testnet"}, "http://127.0.0.1:8080", "testnet"),
    ({"BTC_TRADING_MODE": "live", "BTC_LIVE_CONFIRM": CONFIRM_VALUE}, PROD, "live"),
])
def test_allowed(env, url, mode):
    assert check_trading_allowed(url, env) == mode


def test_no_client_is_built_against_production_without_both_opt_ins(monkeypatch):
    monkeypatch.delenv("BTC_TRADING_MODE", raising=False)
    with pytest.raises(TradingNotAllowed, match="paper"):
        BinanceRest("k", "s", PROD)  # reads the process environment when none is given
    with pytest.raises(TradingNotAllowed, match="BTC_LIVE_CONFIRM"):
        BinanceRest("k", "s", PROD, env={"BTC_TRADING_MODE": "live"})


def test_both_brokers_declare_the_interface():
    assert Broker in PaperBroker.__mro__ and Broker in BinanceBroker.__mro__


def test_limiter_waits_for_the_window_when_headers_say_it_is_nearly_used():
    now = [120.0]
    sleeps: list[float] = []
    limiter = RateLimiter(Limits(weight_1m=100, orders_10s=10), clock=lambda: now[0], sleep=sleeps.append)
    limiter.observe({"x-mbx-used-weight-1m": "50", "X-MBX-ORDER-COUNT-10S": "9"})
    limiter.acquire(weight=1)
    assert sleeps == []
    now[0] = 125.0
    limiter.acquire(weight=1, orders=1)  # 10 > 90 % of 10: wait for the 10 s window to roll
    assert sleeps == [5.0]
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "95"})
    limiter.acquire(weight=1)
    assert sleeps[-1] == pytest.approx(55.0)


def test_limiter_honours_retry_after():
    now = [0.0]
    sleeps: list[float] = []
    limiter = RateLimiter(clock=lambda: now[0], sleep=sleeps.append)
    assert limiter.back_off(7, banned=True) == 7
    limiter.acquire()
    assert sleeps == [7.0]
    assert limiter.back_off(None, banned=True) == 120.0  # a ban without Retry-After: two minutes


def test_headroom_is_what_the_headers_left_and_nothing_before_them():
    now = [120.0]
    limiter = RateLimiter(Limits(weight_1m=2400, orders_10s=300, orders_1m=1200), clock=lambda: now[0])
    assert limiter.headroom() == {}  # no reply yet (or a paper broker): unknown, not "all free"
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "600", "x-mbx-order-count-10s": "30"})
    assert limiter.headroom() == {"ORDERS_10S": pytest.approx(0.9), "REQUEST_WEIGHT_1M": pytest.approx(0.75)}
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "2640", "X-MBX-ORDER-COUNT-1M": "300"})  # others on the IP: over
    assert limiter.headroom()["REQUEST_WEIGHT_1M"] == pytest.approx(-0.1)
    assert limiter.headroom()["ORDERS_1M"] == pytest.approx(0.75)
    now[0] = 131.0  # the 10 s window has rolled over, the minute has not
    assert limiter.headroom() == {"ORDERS_10S": 1.0, "ORDERS_1M": pytest.approx(0.75),
                                  "REQUEST_WEIGHT_1M": pytest.approx(-0.1)}


def test_headroom_follows_the_exchange_reply_headers(session):
    fx = session.fx
    fx.app.limits.charge(fx.exchange.now_ms(), weight=1_199, orders=0)  # another process used half the minute
    assert session.rest.limiter.headroom() == {}
    session.rest.call("GET", "/fapi/v1/time", signed=False)  # weight 1: 1,200 of 2,400 used
    headroom = session.rest.limiter.headroom()
    assert set(headroom) == {"REQUEST_WEIGHT_1M", "ORDERS_10S", "ORDERS_1M"}
    assert headroom["REQUEST_WEIGHT_1M"] == pytest.approx(0.5)
    assert headroom["ORDERS_10S"] == headroom["ORDERS_1M"] == 1.0
