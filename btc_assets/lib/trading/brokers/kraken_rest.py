"""Signed REST calls to Kraken Futures (derivatives API v3) through the maintained SDK (python-kraken-sdk,
`kraken.futures` Trade / User / Market), with what a trading loop needs around them: the live opt-in check before a
client exists, strictly increasing nonces, bounded retries with backoff on `apiLimitExceeded`, nonce refusals and
5xx (only where a retry cannot send an order twice), and errors that name the call but never carry the key or the
secret.

The SDK signs every private request as Kraken documents it: headers APIKey, Nonce and
Authent = base64(HMAC-SHA512(base64decode(secret), SHA256(postData + nonce + endpointPath))), with postData the
url-encoded query string or form body and endpointPath the path without its "/derivatives" prefix
(/api/v3/sendorder). Two of its defaults are changed here, through the clients' own attributes:
- `_use_custom_exceptions = False` (the FuturesClient switch the subclasses do not forward): every call returns
  the HTTP response, so this class alone decides what an error means (the SDK would raise for some sendStatus
  values, return others, and turn a 5xx into a bare Exception);
- `get_nonce`: one strictly increasing source shared by the three clients (Kraken wants each nonce of a key above
  the last one; the SDK's is the clock, which can repeat or step back), on the SDK's scale (10 ns units of the
  epoch), so a restarted process continues above its predecessor.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from kraken.futures import Market, Trade, User

from btc_assets.lib.trading.brokers.kraken_safety import DEMO_URL, check_kraken_allowed, is_kraken_production

log = logging.getLogger(__name__)
KEY_VAR, SECRET_VAR = "KRAKEN_FUTURES_API_KEY", "KRAKEN_FUTURES_API_SECRET"
V3 = "/derivatives/api/v3"
RATE_LIMITED = {"apiLimitExceeded"}
NONCE_REFUSED = {"nonceBelowThreshold", "nonceDuplicate"}


class KrakenError(RuntimeError):
    """A Kraken call that failed for good. `code` is Kraken's answer when the exchange refused the request itself
    (an error string such as authenticationError, or a sendStatus status such as insufficientAvailableFunds); None
    when nothing was decided (network, 5xx or rate limit after the retries): then the run must fail loudly."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code, self.status = code, status


class KrakenAckUncertain(KrakenError):
    """A state-changing call (sendorder) whose reply was lost (timeout, dropped connection, 5xx): it may have taken
    effect. Look the order up by its cliOrdId before sending it again."""


class NonceSource:
    """Strictly increasing nonces on the SDK's scale (epoch in 10 ns units), even when the clock repeats or steps
    back; shared by every client of one key."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock, self.last = clock, 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.last = max(int(self.clock() * 100_000_000), self.last + 1)
            return str(self.last)


class KrakenRest:
    def __init__(self, api_key: str, api_secret: str, base_url: str = DEMO_URL, env: Mapping[str, str] | None = None,
                 timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        self.mode = check_kraken_allowed(base_url, env)  # before any client exists
        if not api_key or not api_secret:
            raise KrakenError(f"Kraken Futures needs {KEY_VAR} and {SECRET_VAR}; nothing was sent")
        try:
            base64.b64decode(api_secret, validate=True)
        except (binascii.Error, ValueError):
            raise KrakenError(f"{SECRET_VAR} is not base64 (Kraken's API secrets are): copy it again from the "
                              "API key page; nothing was sent") from None
        self.base_url = base_url.rstrip("/")
        self.production = is_kraken_production(self.base_url)
        self.retries, self.backoff_s, self.sleep = retries, backoff_s, sleep
        self.nonce = NonceSource(clock)
        self.trade = Trade(key=api_key, secret=api_secret, url=self.base_url)
        self.user = User(key=api_key, secret=api_secret, url=self.base_url)
        self.market = Market(key=api_key, secret=api_secret, url=self.base_url)
        for client in (self.trade, self.user, self.market):
            client._use_custom_exceptions = False  # responses come back as they are: decoded below
            client.TIMEOUT = timeout_s
            client.get_nonce = self.nonce

    def __repr__(self) -> str:  # never the key or the secret
        return f"KrakenRest(base_url={self.base_url!r}, mode={self.mode!r})"

    # -- the one request path -------------------------------------------------------------------------------------
    def call(self, method: str, path: str, send: Callable[[], requests.Response], *, idempotent: bool) -> dict:
        """One REST call (`send` makes it through the SDK); the decoded JSON body of a success, else KrakenError.

        Retried with backoff (backoff_s, 2x, 4x ..., at most `retries` times): apiLimitExceeded, a refused nonce
        (the request was refused before it took effect), and — when `idempotent` — timeouts, dropped connections
        and 5xx. A non-idempotent call (sendorder) whose reply is lost raises KrakenAckUncertain instead."""
        attempt = 0
        while True:
            what = f"{method} {path}"
            try:
                reply = send()
            except requests.RequestException as e:  # timeout, refused or dropped connection, truncated reply
                reason = f"{type(e).__name__} at {self.base_url}"
                self._uncertain_or_retry(what, reason, attempt, idempotent, None)
                attempt += 1
                continue
            status = reply.status_code
            if status >= 500:
                self._uncertain_or_retry(what, f"HTTP {status} from {self.base_url}", attempt, idempotent, status)
                attempt += 1
                continue
            try:
                body = reply.json()
            except ValueError:
                body = None
            error = _error_of(body)
            if status == 429 or error in RATE_LIMITED or error in NONCE_REFUSED:
                answer = error or f"HTTP {status}"
                if attempt >= self.retries:
                    raise KrakenError(f"{what}: Kraken {answer} after {attempt + 1} tries; nothing more was sent. "
                                      "Wait, then rerun (the order ids make it safe).", None, status)
                log.warning("%s: Kraken %s, retrying in %.2f s", what, answer, self._wait(attempt))
                self.sleep(self._wait(attempt))
                attempt += 1
                continue
            if error is not None:
                raise KrakenError(f"{what}: Kraken error {error}", error, status)
            if status != 200 or not isinstance(body, dict):
                text = (reply.text or "")[:200]
                raise KrakenError(f"{what}: HTTP {status} from {self.base_url}, not a Kraken reply: {text!r}",
                                  None, status)
            return body

    def _wait(self, attempt: int) -> float:
        return self.backoff_s * 2 ** attempt

    def _uncertain_or_retry(self, what: str, reason: str, attempt: int, idempotent: bool, status: int | None):
        if not idempotent:
            raise KrakenAckUncertain(f"{what}: {reason}; the request may have taken effect: look it up before "
                                     "resending.", None, status) from None
        if attempt >= self.retries:
            raise KrakenError(f"{what}: {reason}; gave up after {attempt + 1} tries. Check the network and "
                              "Kraken's status page, then rerun.", None, status) from None
        log.warning("%s: %s, retrying in %.2f s", what, reason, self._wait(attempt))
        self.sleep(self._wait(attempt))

    # -- endpoints --------------------------------------------------------------------------------------------
    def instruments(self) -> list[dict]:
        return self.call("GET", f"{V3}/instruments", self.market.get_instruments, idempotent=True)["instruments"]

    def tickers(self) -> list[dict]:
        return self.call("GET", f"{V3}/tickers", self.market.get_tickers, idempotent=True)["tickers"]

    def accounts(self) -> dict:
        return self.call("GET", f"{V3}/accounts", self.user.get_wallets, idempotent=True)["accounts"]

    def open_positions(self) -> list[dict]:
        return self.call("GET", f"{V3}/openpositions", self.user.get_open_positions,
                         idempotent=True).get("openPositions", [])

    def open_orders(self) -> list[dict]:
        return self.call("GET", f"{V3}/openorders", self.user.get_open_orders, idempotent=True).get("openOrders", [])

    def fills(self) -> list[dict]:
        return self.call("GET", f"{V3}/fills", self.trade.get_fills, idempotent=True).get("fills", [])

    def order_status(self, cli_ord_ids: list[str]) -> list[dict]:
        """Kraken's orders/status for these client ids: orders open, or closed within the last seconds."""
        if not cli_ord_ids:
            return []
        return self.call("POST", f"{V3}/orders/status", lambda: self.trade.get_orders_status(cliOrdIds=cli_ord_ids),
                         idempotent=True).get("orders", [])  # read-only: safe to retry

    def send_order(self, **params: Any) -> dict:
        """sendorder: never retried blindly (KrakenAckUncertain when the reply is lost); the whole reply."""
        return self.call("POST", f"{V3}/sendorder", lambda: self.trade.create_order(**params), idempotent=False)

    def cancel_order(self, cli_ord_id: str) -> dict:
        return self.call("POST", f"{V3}/cancelorder", lambda: self.trade.cancel_order(cliOrdId=cli_ord_id),
                         idempotent=True)["cancelStatus"]  # cancelling twice is harmless

    def cancel_all(self, symbol: str) -> dict:
        return self.call("POST", f"{V3}/cancelallorders", lambda: self.trade.cancel_all_orders(symbol=symbol),
                         idempotent=True)["cancelStatus"]

    def leverage_preferences(self) -> list[dict]:
        return self.call("GET", f"{V3}/leveragepreferences", self.market.get_leverage_preference,
                         idempotent=True).get("leveragePreferences", [])

    def set_leverage(self, symbol: str, max_leverage: float) -> None:
        self.call("PUT", f"{V3}/leveragepreferences",
                  lambda: self.market.set_leverage_preference(symbol=symbol, maxLeverage=max_leverage),
                  idempotent=True)


def _error_of(body: Any) -> str | None:
    """Kraken's error string of a reply ({"result": "error", "error": "apiLimitExceeded"}), None for a success."""
    if not isinstance(body, dict):
        return None
    if body.get("result") == "error" or ("error" in body and body.get("result") != "success"):
        err = body.get("error") or body.get("errors") or "unknown error"
        return err if isinstance(err, str) else json.dumps(err)[:200]
    return None
