"""The fake exchange through the official client: authentication, filters, matching, positions, headers."""

from __future__ import annotations

import pytest
from binance_common.errors import BadRequestError, UnauthorizedError

from btc_assets_tests.fakes.test_binance.conftest import make_client, signed

BUY_LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.010"}


def test_public_endpoints_and_rate_limit_headers(fx, client):
    reply = client.rest_api.check_server_time()
    assert abs(reply.data().server_time - fx.exchange.now_ms()) < 5_000
    assert {"X-MBX-USED-WEIGHT-1M", "X-MBX-ORDER-COUNT-10S", "X-MBX-ORDER-COUNT-1M"} <= set(reply.headers)
    book = client.rest_api.symbol_order_book_ticker(symbol="BTCUSDT").data().actual_instance
    assert float(book.ask_price) - float(book.bid_price) == pytest.approx(0.1)
    info = client.rest_api.exchange_information().data()
    assert info.symbols[0].symbol == "BTCUSDT"


def test_signature_key_and_timestamp_are_checked(fx, client):
    with pytest.raises(BadRequestError) as bad_sig:
        signed(make_client(fx, secret="wrong"), "GET", "/fapi/v2/balance")
    assert bad_sig.value.status_code == -1022
    with pytest.raises(UnauthorizedError) as bad_key:
        signed(make_client(fx, key="other"), "GET", "/fapi/v2/balance")
    assert bad_key.value.status_code == -2015
    with pytest.raises(BadRequestError) as skew:
        signed(client, "GET", "/fapi/v2/balance", skew_ms=-10_000)
    assert skew.value.status_code == -1021
    assert float(signed(client, "GET", "/fapi/v2/balance").data()[0]["balance"]) == 10_000.0
    # the typed SDK methods sign the same way:
    assert client.rest_api.position_information_v2(symbol="BTCUSDT").data()[0].position_amt == "0.000"


@pytest.mark.parametrize("params, code", [
    ({"quantity": "0.0105", "price": "42000.0"}, -1111),
    ({"price": "42000.05"}, -1111),
    ({"quantity": "0.001", "price": "1000.0"}, -4164),
    ({"quantity": "100.000", "price": "42000.0"}, -2019),
    ({"price": "99999.0"}, -5022),  # post-only that would take
])
def test_orders_are_refused_as_binance_refuses_them(client, params, code):
    with pytest.raises(BadRequestError) as err:
        signed(client, "POST", "/fapi/v1/order", **{**BUY_LIMIT, "price": "42000.0", **params})
    assert err.value.status_code == code


def test_resting_limit_fills_when_a_bar_trades_through_and_position_follows(fx, client):
    bid = fx.exchange.best_bid_ask()[0]
    order = signed(client, "POST", "/fapi/v1/order", **BUY_LIMIT, price=f"{bid:.1f}", newClientOrderId="t-1").data()
    assert order["status"] == "NEW" and order["clientOrderId"] == "t-1"
    with pytest.raises(BadRequestError) as dup:
        signed(client, "POST", "/fapi/v1/order", **BUY_LIMIT, price=f"{bid:.1f}", newClientOrderId="t-1")
    assert dup.value.status_code == -4116
    fx.exchange.advance()
    assert client.rest_api.query_order(symbol="BTCUSDT", orig_client_order_id="t-1").data().status == "FILLED"
    pos = client.rest_api.position_information_v2(symbol="BTCUSDT").data()[0]
    assert float(pos.position_amt) == 0.01 and float(pos.entry_price) == bid
    assert fx.exchange.account.fees_paid == pytest.approx(0.01 * bid * 0.0002)  # maker


def test_cancel_and_open_orders(fx, client):
    signed(client, "POST", "/fapi/v1/order", **BUY_LIMIT, price="41000.0", newClientOrderId="t-2")
    open_now = signed(client, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT").data()
    assert [o["clientOrderId"] for o in open_now] == ["t-2"]
    cancelled = signed(client, "DELETE", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="t-2").data()
    assert cancelled["status"] == "CANCELED"
    with pytest.raises(BadRequestError) as gone:
        signed(client, "GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="nope")
    assert gone.value.status_code == -2013


def test_stop_market_goes_through_the_algo_endpoint_and_triggers(fx, client):
    signed(client, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    with pytest.raises(BadRequestError) as old_way:
        signed(client, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="STOP_MARKET",
               quantity="0.010", stopPrice="41000.0")
    assert old_way.value.status_code == -4120
    price = fx.exchange.bar[4]
    signed(client, "POST", "/fapi/v1/algoOrder", symbol="BTCUSDT", algoType="CONDITIONAL", side="SELL",
           type="TAKE_PROFIT_MARKET", triggerPrice=f"{price + 5:.1f}", closePosition="true", clientAlgoId="tp-1")
    assert len(signed(client, "GET", "/fapi/v1/openAlgoOrders", symbol="BTCUSDT").data()) == 1
    fx.exchange.advance()  # synthetic bars swing 20 above the close: the take-profit triggers
    assert signed(client, "GET", "/fapi/v1/algoOrder", clientAlgoId="tp-1").data()["algoStatus"] == "TRIGGERED"
    assert fx.exchange.account.position("BTCUSDT").amount == 0.0
    assert fx.exchange.account.realized_pnl == pytest.approx(0.01 * (price + 5 - (price + 0.1)))


def test_leverage_and_margin_type(client):
    assert signed(client, "POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=3).data()["leverage"] == 3
    signed(client, "POST", "/fapi/v1/marginType", symbol="BTCUSDT", marginType="ISOLATED")
    with pytest.raises(BadRequestError) as same:
        signed(client, "POST", "/fapi/v1/marginType", symbol="BTCUSDT", marginType="ISOLATED")
    assert same.value.status_code == -4046
    pos = client.rest_api.position_information_v2(symbol="BTCUSDT").data()[0]
    assert (pos.leverage, pos.margin_type) == ("3", "isolated")
