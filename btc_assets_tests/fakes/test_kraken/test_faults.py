"""Fault injection of the fake Kraken Futures venue: apiLimitExceeded, 5xx, a dropped or late reply, before or
after the request took effect."""

from __future__ import annotations

import pytest
import requests
from kraken.futures import Trade

from btc_assets_tests.fakes.test_kraken.conftest import KEY, SECRET, order

SEND = ("POST", "/derivatives/api/v3/sendorder")


def test_api_limit_then_success(fx, sdk):
    fx.faults.api_limit(times=2, path=SEND[1])
    for _ in range(2):
        reply = sdk.raw.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="0.01")
        assert reply.status_code == 200 and reply.json()["error"] == "apiLimitExceeded"
        assert reply.json()["result"] == "error"
    assert fx.exchange.fills == []  # refused before it took effect
    assert order(sdk)["status"] == "placed"
    assert fx.faults.count(*SEND) == 3 and fx.faults.pending() == 0
    fx.faults.api_limit(http_status=429)
    reply = sdk.raw.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="0.01")
    assert reply.status_code == 429 and reply.json()["error"] == "apiLimitExceeded"


@pytest.mark.parametrize("apply_first, fills", [(False, 0), (True, 1)])
def test_server_error_before_or_after_the_order_took_effect(fx, sdk, apply_first, fills):
    fx.faults.server_error(502, apply_first=apply_first, method="POST", path=SEND[1])
    reply = sdk.raw.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="0.01", cliOrdId="e-1")
    assert reply.status_code == 502 and "html" in reply.headers["Content-Type"]
    assert len(fx.exchange.fills) == fills


@pytest.mark.parametrize("apply_first, fills", [(False, 0), (True, 1)])
def test_a_dropped_reply_may_hide_an_accepted_order(fx, apply_first, fills):
    fx.faults.drop(apply_first=apply_first, path=SEND[1])
    trade = Trade(key=KEY, secret=SECRET, url=fx.url)
    with pytest.raises(requests.ConnectionError):
        trade.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="0.01", cliOrdId="d-1")
    assert len(fx.exchange.fills) == fills
    assert [o["order"]["cliOrdId"] for o in trade.get_orders_status(cliOrdIds=["d-1"])["orders"]] == ["d-1"] * fills


def test_a_late_reply_times_the_client_out_after_the_order_took_effect(fx):
    fx.faults.timeout(0.5, apply_first=True, path=SEND[1])
    trade = Trade(key=KEY, secret=SECRET, url=fx.url)
    trade.TIMEOUT = 0.2
    with pytest.raises(requests.Timeout):
        trade.create_order(orderType="mkt", symbol="PF_XBTUSD", side="buy", size="0.01", cliOrdId="t-1")
    assert [f.cli_ord_id for f in fx.exchange.fills] == ["t-1"]
