"""The fake Kraken Futures venue through the maintained SDK: Kraken's signature and nonce rules, instruments and
tickers, market / limit / post-only / reduce-only / trigger orders, cancels, order status, fills, the flex account."""

from __future__ import annotations

import base64

import pytest
import requests
from kraken.exceptions import KrakenAuthenticationError, KrakenInsufficientAvailableFundsError

from btc_assets_tests.fakes.kraken import auth
from btc_assets_tests.fakes.test_kraken.conftest import KEY, SECRET, Clients, order


def raw_get(fx, path: str, nonce: str, sign_path: str | None = None, secret: str = SECRET, key: str = KEY,
            query: str = "") -> dict:
    """A private GET signed by hand (auth.authent) over `sign_path`: to probe what the venue checks."""
    headers = {"APIKey": key, "Nonce": nonce,
               "Authent": auth.authent(secret, query, nonce, sign_path or path)}
    url = f"{fx.url}{path}" + (f"?{query}" if query else "")
    return requests.get(url, headers=headers, timeout=5).json()


def test_the_sdks_signed_requests_are_accepted_and_a_wrong_secret_or_key_refused(fx, sdk):
    assert sdk.user.get_wallets()["accounts"]["flex"]["availableMargin"] == 10_000.0
    assert sdk.user.get_open_positions()["openPositions"] == []
    wrong = Clients(fx.url, secret=base64.b64encode(b"another secret").decode())
    with pytest.raises(KrakenAuthenticationError, match="authenticationError"):
        wrong.user.get_wallets()
    with pytest.raises(KrakenAuthenticationError):
        Clients(fx.url, key="someone-else").user.get_open_orders()
    # the reply is Kraken's error shape
    reply = raw_get(fx, "/derivatives/api/v3/accounts", "1", secret=base64.b64encode(b"x").decode())
    assert reply["result"] == "error" and reply["error"] == "authenticationError" and "serverTime" in reply


def test_the_signature_covers_the_endpoint_without_derivatives_and_the_query(fx):
    path = "/derivatives/api/v3/openorders"
    assert raw_get(fx, path, "10", sign_path="/api/v3/openorders")["result"] == "success"  # "/derivatives" stripped
    assert raw_get(fx, path, "11")["result"] == "success"  # authent() strips it itself
    assert raw_get(fx, path, "12", sign_path="/api/v3/openpositions")["error"] == "authenticationError"
    fills = "/derivatives/api/v3/fills"
    q = "lastFillTime=2030-01-01T00%3A00%3A00.000Z"
    headers = {"APIKey": KEY, "Nonce": "13", "Authent": auth.authent(SECRET, "", "13", fills)}  # query not signed
    assert requests.get(f"{fx.url}{fills}?{q}", headers=headers, timeout=5).json()["error"] == "authenticationError"
    assert raw_get(fx, fills, "14", query=q)["result"] == "success"
    assert requests.get(f"{fx.url}{fills}", timeout=5).json()["error"] == "authenticationError"  # no headers


def test_nonces_must_increase(fx):
    path = "/derivatives/api/v3/accounts"
    assert raw_get(fx, path, "1000")["result"] == "success"
    assert raw_get(fx, path, "1000")["error"] == "nonceDuplicate"
    assert raw_get(fx, path, "999")["error"] == "nonceBelowThreshold"
    assert raw_get(fx, path, "1001")["result"] == "success"
    assert raw_get(fx, path, "5000", secret=base64.b64encode(b"x").decode())["error"] == "authenticationError"
    assert raw_get(fx, path, "1002")["result"] == "success"  # a refused request does not move the nonce


def test_instruments_and_tickers_follow_the_set_price(fx, sdk):
    rows = {r["symbol"]: r for r in sdk.market.get_instruments()["instruments"]}
    pf, pi = rows["PF_XBTUSD"], rows["PI_XBTUSD"]
    assert (pf["type"], pf["contractSize"], pf["tickSize"], pf["contractValueTradePrecision"]) == (
        "flexible_futures", 1.0, 1.0, 4)
    assert (pi["type"], pi["contractSize"], pi["tickSize"], pi["contractValueTradePrecision"]) == (
        "futures_inverse", 1.0, 0.5, 0)
    fx.exchange.set_price(43_210.0)
    t = next(t for t in sdk.market.get_tickers()["tickers"] if t["symbol"] == "PF_XBTUSD")
    assert (t["bid"], t["ask"], t["markPrice"], t["last"]) == (43_210.0, 43_211.0, 43_210.0, 43_210.0)


def test_a_market_order_fills_at_the_touch_with_the_taker_fee(fx, sdk):
    status = order(sdk, cliOrdId="m-1")
    assert status["status"] == "placed" and status["cliOrdId"] == "m-1"
    (ev,) = status["orderEvents"]
    assert (ev["type"], ev["price"], ev["amount"]) == ("EXECUTION", 42_001.0, 0.01)
    (pos,) = sdk.user.get_open_positions()["openPositions"]
    assert (pos["side"], pos["size"], pos["price"]) == ("long", 0.01, 42_001.0)
    (fill,) = sdk.trade.get_fills()["fills"]
    assert (fill["cliOrdId"], fill["fillType"], fill["size"], fill["price"]) == ("m-1", "taker", 0.01, 42_001.0)
    flex = sdk.user.get_wallets()["accounts"]["flex"]
    assert flex["balanceValue"] == pytest.approx(10_000.0 - 0.01 * 42_001.0 * 0.0005)
    (st,) = sdk.trade.get_orders_status(cliOrdIds=["m-1"])["orders"]
    assert st["status"] == "FULLY_EXECUTED" and st["order"]["filled"] == 0.01


def test_a_limit_order_rests_until_the_price_crosses_then_fills_as_maker(fx, sdk):
    assert order(sdk, orderType="lmt", limitPrice="41900", cliOrdId="l-1")["status"] == "placed"
    (o,) = sdk.user.get_open_orders()["openOrders"]
    assert (o["cliOrdId"], o["orderType"], o["limitPrice"], o["unfilledSize"]) == ("l-1", "lmt", 41_900.0, 0.01)
    fx.exchange.set_price(41_950.0)  # not through it yet
    assert len(sdk.user.get_open_orders()["openOrders"]) == 1
    fx.exchange.set_price(41_900.0)
    assert sdk.user.get_open_orders()["openOrders"] == []
    (fill,) = sdk.trade.get_fills()["fills"]
    assert (fill["fillType"], fill["price"]) == ("maker", 41_900.0)
    # a limit through the book takes at once
    assert order(sdk, orderType="lmt", side="sell", limitPrice="41000", cliOrdId="l-2")["orderEvents"][0][
        "type"] == "EXECUTION"
    assert sdk.user.get_open_positions()["openPositions"] == []


def test_post_only_is_refused_when_it_would_take(fx, sdk):
    assert order(sdk, orderType="post", limitPrice="42001")["status"] == "postWouldExecute"  # at the ask
    assert order(sdk, orderType="post", limitPrice="42000")["status"] == "placed"  # at the bid: rests
    assert order(sdk, orderType="post", side="sell", limitPrice="42000")["status"] == "postWouldExecute"


def test_reduce_only_cannot_open_and_is_cut_to_the_position(fx, sdk):
    assert order(sdk, side="sell", reduceOnly="true")["status"] == "wouldNotReducePosition"  # flat
    order(sdk, size="0.0100")
    assert order(sdk, side="buy", reduceOnly="true")["status"] == "wouldNotReducePosition"  # same side
    assert order(sdk, side="sell", size="0.0500", reduceOnly="true")["status"] == "placed"
    assert sdk.user.get_open_positions()["openPositions"] == []  # closed, not flipped short
    assert [f["size"] for f in sdk.trade.get_fills()["fills"]] == [0.01, 0.01]


@pytest.mark.parametrize("params, status", [
    ({"size": "0.00005"}, "invalidSize"),  # below the 0.0001 step
    ({"size": "0.01005"}, "invalidSize"),
    ({"orderType": "lmt", "limitPrice": "41900.5"}, "invalidPrice"),  # the tick is 1
    ({"size": "100"}, "insufficientAvailableFunds"),  # 4.2 M notional at 2 % margin on 10 k
    ({"orderType": "iceberg"}, "invalidOrderType"),
    ({"symbol": "PI_XBTUSD", "size": "100"}, "insufficientAvailableFunds"),  # no BTC margin account funded
    ({"cliOrdId": "x" * 101}, "clientOrderIdTooLong"),
])
def test_orders_are_refused_with_kraken_send_statuses(sdk, params, status):
    assert order(sdk, **params)["status"] == status
    assert sdk.user.get_open_positions()["openPositions"] == []


def test_the_sdk_raises_for_some_send_statuses_and_returns_others(sdk):
    """Why the broker turns the SDK's own exceptions off and reads every reply itself."""
    with pytest.raises(KrakenInsufficientAvailableFundsError):
        sdk.trade.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="100")
    assert sdk.trade.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="0.00001")[
        "sendStatus"]["status"] == "invalidSize"


def test_a_client_id_of_an_open_order_cannot_be_reused(fx, sdk):
    assert order(sdk, orderType="lmt", limitPrice="41000", cliOrdId="dup")["status"] == "placed"
    assert order(sdk, orderType="lmt", limitPrice="41000", cliOrdId="dup")["status"] == "clientOrderIdAlreadyExist"
    assert len(sdk.user.get_open_orders()["openOrders"]) == 1
    assert order(sdk, cliOrdId="x" * 100)["status"] == "placed"  # 100 characters is Kraken's limit


def test_cancel_one_cancel_all_and_order_status_window(fx, sdk):
    now = [1_000.0]
    fx.exchange.clock = lambda: now[0]
    for i in range(3):
        order(sdk, orderType="lmt", limitPrice=str(41_000 - i), cliOrdId=f"c-{i}")
    assert sdk.trade.cancel_order(cliOrdId="c-0")["cancelStatus"]["status"] == "cancelled"
    assert sdk.trade.cancel_order(cliOrdId="c-0")["cancelStatus"]["status"] == "notFound"
    order(sdk, cliOrdId="c-mkt")
    assert sdk.trade.cancel_order(cliOrdId="c-mkt")["cancelStatus"]["status"] == "filled"
    done = sdk.trade.cancel_all_orders(symbol="PF_XBTUSD")["cancelStatus"]
    assert done["status"] == "cancelled" and {o["cliOrdId"] for o in done["cancelledOrders"]} == {"c-1", "c-2"}
    assert sdk.trade.cancel_all_orders(symbol="PF_XBTUSD")["cancelStatus"]["status"] == "noOrdersToCancel"
    statuses = {o["order"]["cliOrdId"]: o["status"]
                for o in sdk.trade.get_orders_status(cliOrdIds=["c-0", "c-1", "c-mkt", "nope"])["orders"]}
    assert statuses == {"c-0": "CANCELLED", "c-1": "CANCELLED", "c-mkt": "FULLY_EXECUTED"}
    now[0] += 6  # Kraken answers for closed orders for 5 s only; fills remember the traded ones
    assert sdk.trade.get_orders_status(cliOrdIds=["c-0", "c-mkt"])["orders"] == []
    assert [f["cliOrdId"] for f in sdk.trade.get_fills()["fills"]] == ["c-mkt"]


def test_stop_and_take_profit_trigger_on_the_price_and_stay_reduce_only(fx, sdk):
    order(sdk, size="0.0200")
    legs = {"side": "sell", "size": "0.0200", "reduceOnly": "true", "triggerSignal": "mark"}
    assert order(sdk, orderType="stp", stopPrice="41500", cliOrdId="sl", **legs)["status"] == "placed"
    assert order(sdk, orderType="take_profit", stopPrice="43000", cliOrdId="tp", **legs)["status"] == "placed"
    (st,) = sdk.trade.get_orders_status(cliOrdIds=["sl"])["orders"]
    assert st["status"] == "TRIGGER_PLACED" and st["order"]["priceTriggerOptions"]["triggerSide"] == "TRIGGER_BELOW"
    fx.exchange.set_price(42_500.0)
    assert len(sdk.user.get_open_orders()["openOrders"]) == 2
    fx.exchange.set_price(43_100.0)  # the target is reached: it fills at its trigger price
    fill = sdk.trade.get_fills()["fills"][0]
    assert (fill["cliOrdId"], fill["price"], fill["size"], fill["fillType"]) == ("tp", 43_000.0, 0.02, "taker")
    assert sdk.user.get_open_positions()["openPositions"] == []
    fx.exchange.set_price(41_000.0)  # the stop triggers with nothing left to reduce: it goes away unfilled
    assert sdk.user.get_open_orders()["openOrders"] == []
    assert len(sdk.trade.get_fills()["fills"]) == 2
    assert fx.exchange.realized == pytest.approx(0.02 * (43_000.0 - 42_001.0))


def test_margin_counts_positions_orders_and_the_leverage_preference(fx, sdk):
    sdk.market.set_leverage_preference(symbol="PF_XBTUSD", maxLeverage=2)
    assert sdk.market.get_leverage_preference()["leveragePreferences"] == [{"symbol": "PF_XBTUSD",
                                                                            "maxLeverage": 2.0}]
    assert order(sdk, size="0.5")["status"] == "insufficientAvailableFunds"  # 21 k notional at 2x on 10 k
    assert order(sdk, size="0.4")["status"] == "placed"
    flex = sdk.user.get_wallets()["accounts"]["flex"]
    assert flex["initialMargin"] == pytest.approx(0.4 * 42_000.0 / 2)
    assert flex["availableMargin"] == pytest.approx(flex["marginEquity"] - 0.4 * 42_000.0 / 2)
    assert order(sdk, side="sell", size="0.4", reduceOnly="true")["status"] == "placed"  # reducing needs none

