"""The fake Kraken Futures venue on 127.0.0.1, and the maintained SDK's clients (python-kraken-sdk) pointed at it."""

from __future__ import annotations

import base64

import pytest
from kraken.futures import Market, Trade, User

from btc_assets_tests.fakes.kraken import run_in_thread

KEY = "fake-kraken-key-0123"
SECRET = base64.b64encode(b"fake-kraken-secret-4567" * 3).decode()


@pytest.fixture()
def fx():
    with run_in_thread(KEY, SECRET) as running:
        yield running


class Clients:
    def __init__(self, url: str, key: str = KEY, secret: str = SECRET):
        self.trade = Trade(key=key, secret=secret, url=url)
        self.user = User(key=key, secret=secret, url=url)
        self.market = Market(key=key, secret=secret, url=url)
        self.raw = Trade(key=key, secret=secret, url=url)  # replies as they are (the broker's setting)
        self.raw._use_custom_exceptions = False


@pytest.fixture()
def sdk(fx) -> Clients:
    return Clients(fx.url)


def order(sdk: Clients, **params) -> dict:
    """sendorder through the SDK (its own exceptions off: it raises for some refusals); the sendStatus object."""
    base = {"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.0100"}
    reply = sdk.raw.create_order(**{**base, **params})
    assert reply.status_code == 200
    return reply.json()["sendStatus"]
