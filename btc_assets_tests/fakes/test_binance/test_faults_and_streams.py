"""Error injection (Binance codes, 429/418 with headers, 5xx, timeouts, dropped connections), the exchange's own
429/418 rate limiting, and the market / user-data WebSocket streams through the official client."""

from __future__ import annotations

import asyncio

import pytest
from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketStreams
from binance_common.errors import (BadRequestError, NetworkError, RateLimitBanError, ServerError,
                                   TooManyRequestsError)
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.limits import RateLimits
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets_tests.fakes.test_binance.conftest import KEY, SECRET, make_client, signed

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}


@pytest.mark.parametrize("code", [-1021, -2019, -1111, -4164])
def test_injected_binance_errors(fx, client, code):
    fx.faults.error(code, method="POST", path="/fapi/v1/order")
    with pytest.raises(BadRequestError) as err:
        signed(client, "POST", "/fapi/v1/order", **ORDER)
    assert err.value.status_code == code
    assert signed(client, "POST", "/fapi/v1/order", **ORDER).data()["status"] == "FILLED"  # fired once


def test_injected_429_418_and_5xx(fx, client):
    fx.faults.rate_limited(retry_after=3, path="/fapi/v1/time")
    with pytest.raises(TooManyRequestsError) as limited:
        client.rest_api.check_server_time()
    assert limited.value.retry_after == 3
    fx.faults.banned(retry_after=7, path="/fapi/v1/time")
    with pytest.raises(RateLimitBanError) as ban:
        client.rest_api.check_server_time()
    assert ban.value.retry_after == 7
    fx.faults.server_error(502, path="/fapi/v1/time")
    with pytest.raises(ServerError):
        client.rest_api.check_server_time()


def test_timeout_after_the_order_was_accepted_and_dropped_connection(fx):
    client = DerivativesTradingUsdsFutures(config_rest_api=ConfigurationRestAPI(
        api_key=KEY, api_secret=SECRET, base_path=fx.rest_url, timeout=200, retries=0))
    fx.faults.timeout(0.6, apply_first=True, method="POST", path="/fapi/v1/order")
    with pytest.raises(NetworkError):
        signed(client, "POST", "/fapi/v1/order", **ORDER, newClientOrderId="lost-ack")
    # the client never saw the reply, but the order exists and filled
    assert client.rest_api.query_order(symbol="BTCUSDT", orig_client_order_id="lost-ack").data().status == "FILLED"
    fx.faults.drop(path="/fapi/v1/time")
    with pytest.raises(NetworkError):
        client.rest_api.check_server_time()


def test_exchange_limits_weight_then_bans_a_client_that_does_not_wait():
    with run_in_thread(synthetic_bars(5), KEY, SECRET, limits=RateLimits(weight_limit=3)) as fx:
        client = make_client(fx)
        for _ in range(3):
            client.rest_api.check_server_time()
        with pytest.raises(TooManyRequestsError) as limited:
            client.rest_api.check_server_time()
        assert limited.value.retry_after >= 1
        with pytest.raises(RateLimitBanError):
            client.rest_api.check_server_time()


def test_market_and_user_data_streams_through_the_sdk(fx, client):
    listen_key = client.rest_api.start_user_data_stream().data().listen_key
    received: list = []

    async def session() -> None:
        sdk = DerivativesTradingUsdsFutures(config_ws_streams=ConfigurationWebSocketStreams(stream_url=fx.ws_url))
        conn = await sdk.websocket_streams.create_connection()
        try:
            klines = await conn.kline_candlestick_streams(symbol="btcusdt", interval="1m")
            klines.on("message", received.append)
            user = await conn.user_data(listen_key)
            user.on("message", received.append)
            await asyncio.sleep(0.2)
            signed(client, "POST", "/fapi/v1/order", **ORDER)
            fx.exchange.advance()
            for _ in range(50):
                if len(received) >= 4:
                    break
                await asyncio.sleep(0.05)
        finally:
            await conn.close_connection(close_session=True)

    asyncio.run(session())
    kinds = {type(m).__name__ for m in received}
    assert "KlineCandlestickStreamsResponse" in kinds and "UserDataStreamEventsResponse" in kinds
    kline = next(m for m in received if type(m).__name__ == "KlineCandlestickStreamsResponse")
    assert kline.k.x is True and kline.k.t == int(fx.exchange.bar[0])
    account = [m.actual_instance for m in received if type(m).__name__ == "UserDataStreamEventsResponse"
               and type(m.actual_instance).__name__ == "AccountUpdate"]
    assert account and account[0].a.P[0].pa == "0.010"


def test_a_dropped_stream_is_reported_and_a_new_connection_resumes(fx):
    """The SDK (binance-common 4.6.0) does not reconnect a dropped stream by itself: it emits `close`, and the
    caller reconnects. The fake cuts the TCP connection without a close frame."""
    received: list = []

    async def session() -> None:
        sdk = DerivativesTradingUsdsFutures(config_ws_streams=ConfigurationWebSocketStreams(stream_url=fx.ws_url))
        conn = await sdk.websocket_streams.create_connection()
        closed = asyncio.Event()
        conn.on_connection("close", lambda *_: closed.set())
        await conn.kline_candlestick_streams(symbol="btcusdt", interval="1m")
        await asyncio.sleep(0.1)
        fx.drop_websockets()
        await asyncio.wait_for(closed.wait(), 5)
        await conn.close_connection(close_session=True)
        again = DerivativesTradingUsdsFutures(config_ws_streams=ConfigurationWebSocketStreams(stream_url=fx.ws_url))
        conn = await again.websocket_streams.create_connection()
        try:
            stream = await conn.kline_candlestick_streams(symbol="btcusdt", interval="1m")
            stream.on("message", received.append)
            await asyncio.sleep(0.1)
            fx.exchange.advance()
            for _ in range(50):
                if received:
                    break
                await asyncio.sleep(0.05)
        finally:
            await conn.close_connection(close_session=True)

    asyncio.run(session())
    assert received and received[-1].k.x is True
