"""The live opt-in for Kraken Futures: which trading mode may reach which Kraken host (safety.py's rules, Kraken's
hosts; safety.py itself stays Binance's).

- `BTC_TRADING_MODE` unset or `paper`: no Kraken client can be built at all.
- `testnet`: the Kraken Futures demo environment (https://demo-futures.kraken.com, Kraken's testnet) or a server on
  this machine (the fake exchange) — never production. `testnet` is the mode's name for "not real money" on every
  venue, so it covers Kraken's demo: there is no separate `demo` mode.
- `live`: any URL, but production (https://futures.kraken.com, and any host that is not the demo or loopback) also
  needs `BTC_LIVE_CONFIRM=I-ACCEPT-REAL-ORDERS`. Nothing else can send a real order.

The URL is an origin only (scheme, host, port): the SDK joins the API paths (/derivatives/api/v3/...) to it, so a
path in the URL would be dropped silently; it is refused instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from btc_assets.lib.trading.brokers.safety import (CONFIRM_VALUE, CONFIRM_VAR, LOOPBACK_HOSTS, MODE_VAR,
                                                   TradingNotAllowed, env_mode)

URL_VAR = "KRAKEN_FUTURES_URL"
DEMO_URL = "https://demo-futures.kraken.com"
PRODUCTION_URL = "https://futures.kraken.com"
NON_PRODUCTION_HOSTS = {"demo-futures.kraken.com", *LOOPBACK_HOSTS}


def is_kraken_production(url: str) -> bool:
    """Every host but Kraken's demo and loopback counts as production (an unknown host is never assumed safe)."""
    return (urlparse(url).hostname or "").lower() not in NON_PRODUCTION_HOSTS


def check_kraken_allowed(base_url: str, env: Mapping[str, str] | None = None) -> str:
    """Return the trading mode if a Kraken broker may send orders to base_url; raise TradingNotAllowed otherwise
    (before any client exists)."""
    env = os.environ if env is None else env
    mode = env_mode(env)
    parsed = urlparse(base_url)
    host = parsed.hostname or base_url
    if mode not in ("paper", "testnet", "live"):
        raise TradingNotAllowed(f"{MODE_VAR}={mode!r} is not a trading mode: set it to paper, testnet or live.")
    if mode == "paper":
        raise TradingNotAllowed(f"{MODE_VAR} is paper (the default): no order goes to {host}. Use the paper "
                                f"broker, or set {MODE_VAR}=testnet to trade on the Kraken Futures demo "
                                f"({DEMO_URL}).")
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/") \
            or parsed.query:
        raise TradingNotAllowed(f"{URL_VAR}={base_url!r}: give the origin only, e.g. {DEMO_URL} (the API paths "
                                "are added by the client). Nothing was sent.")
    production = is_kraken_production(base_url)
    if mode == "testnet" and production:
        raise TradingNotAllowed(f"{MODE_VAR}=testnet but {host} is Kraken Futures production (or an unknown "
                                f"host): point {URL_VAR} at the demo ({DEMO_URL}), or opt in to live trading.")
    if mode == "live" and production and env.get(CONFIRM_VAR, "") != CONFIRM_VALUE:
        raise TradingNotAllowed(f"{MODE_VAR}=live sends real orders to {host}: it also needs "
                                f"{CONFIRM_VAR}={CONFIRM_VALUE}. Nothing was sent.")
    return mode
