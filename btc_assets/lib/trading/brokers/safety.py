"""The live opt-in: which trading mode may reach which Binance endpoint.

- `BTC_TRADING_MODE` unset or `paper`: no network broker can be built at all.
- `testnet`: the USD-M testnet or demo URL, or a server on this machine (the fake exchange) — never production.
- `live`: any URL, but production (any host that is not the testnet, the demo or loopback) also needs the second,
  explicit confirmation `BTC_LIVE_CONFIRM=I-ACCEPT-REAL-ORDERS`. Nothing else can send a real order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

MODE_VAR = "BTC_TRADING_MODE"
CONFIRM_VAR = "BTC_LIVE_CONFIRM"
CONFIRM_VALUE = "I-ACCEPT-REAL-ORDERS"
NON_PRODUCTION_HOSTS = {"testnet.binancefuture.com", "demo-fapi.binance.com", "fstream.binancefuture.com",
                        "127.0.0.1", "localhost", "::1"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class TradingNotAllowed(RuntimeError):
    """Raised before any network client exists when the environment does not allow trading at that URL."""


def is_production(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return host not in NON_PRODUCTION_HOSTS


def env_mode(env: Mapping[str, str] | None = None) -> str:
    """The trading mode BTC_TRADING_MODE asks for (paper when unset), as written: checked by the callers."""
    env = os.environ if env is None else env
    return env.get(MODE_VAR, "paper").strip().lower() or "paper"


def check_trading_allowed(base_url: str, env: Mapping[str, str] | None = None) -> str:
    """Return the trading mode if a broker may send orders to base_url; raise TradingNotAllowed otherwise."""
    env = os.environ if env is None else env
    mode = env_mode(env)
    host = urlparse(base_url).hostname or base_url
    if mode not in ("paper", "testnet", "live"):
        raise TradingNotAllowed(f"{MODE_VAR}={mode!r} is not a trading mode: set it to paper, testnet or live.")
    if mode == "paper":
        raise TradingNotAllowed(f"{MODE_VAR} is paper (the default): no order goes to {host}. Use the paper "
                                f"broker, or set {MODE_VAR}=testnet to trade on the Binance testnet.")
    production = is_production(base_url)
    if mode == "testnet" and production:
        raise TradingNotAllowed(f"{MODE_VAR}=testnet but {host} is Binance production: point the broker at the "
                                "testnet (https://testnet.binancefuture.com), or opt in to live trading.")
    if mode == "live" and production and env.get(CONFIRM_VAR, "") != CONFIRM_VALUE:
        raise TradingNotAllowed(f"{MODE_VAR}=live sends real orders to {host}: it also needs "
                                f"{CONFIRM_VAR}={CONFIRM_VALUE}. Nothing was sent.")
    return mode
