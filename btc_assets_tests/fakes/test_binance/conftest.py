"""The fake exchange on 127.0.0.1 over synthetic bars, and the official USD-M client pointed at it."""

from __future__ import annotations

import time

import pytest
from binance_common.configuration import ConfigurationRestAPI
from binance_common.utils import send_request
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars

KEY, SECRET = "fake-key-0123", "fake-secret-4567"


@pytest.fixture()
def fx():
    with run_in_thread(synthetic_bars(50, drift=1.0), KEY, SECRET) as running:
        yield running


def make_client(fx, key: str = KEY, secret: str = SECRET) -> DerivativesTradingUsdsFutures:
    config = ConfigurationRestAPI(api_key=key, api_secret=secret, base_path=fx.rest_url, timeout=5000, retries=0)
    return DerivativesTradingUsdsFutures(config_rest_api=config)


@pytest.fixture()
def client(fx) -> DerivativesTradingUsdsFutures:
    return make_client(fx)


def signed(client: DerivativesTradingUsdsFutures, method: str, path: str, skew_ms: int = 0, **params):
    """A signed call through the client library's own request function, with an explicit timestamp."""
    api = client.rest_api
    params["timestamp"] = int(time.time() * 1000) + skew_ms
    return send_request(api._session, api.configuration, method, path, params, is_signed=True)
