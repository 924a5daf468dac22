"""Signed REST calls to Binance USD-M through the official client (binance-sdk-derivatives-trading-usds-futures),
with what a trading loop needs around them: the live opt-in check before a client exists, a header-fed limiter,
retries with backoff on timeouts and 5xx (only where a retry cannot send an order twice), 429/418 honoured,
server-time sync on -1021, and errors that name the call but never carry the key or the secret.

Signed calls go through binance_common.utils.send_request (the function every typed SDK method calls) with an
explicit `timestamp`, because the typed methods cannot carry a server-time-corrected timestamp and the SDK's own
send_signed_request is broken in 18.0.1 (it subscripts a function).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import (Error as SdkError, NetworkError, RateLimitBanError, ServerError,
                                   TooManyRequestsError)
from binance_common.utils import send_request
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets.lib.data.rest.errors import AckUncertain, BinanceError
from btc_assets.lib.data.rest.rate_limit import RateLimiter
from btc_assets.lib.trading.brokers.safety import check_trading_allowed

log = logging.getLogger(__name__)
ORDER_PATHS = {"/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v1/batchOrders"}
WEIGHTS = {"/fapi/v2/positionRisk": 5, "/fapi/v3/positionRisk": 5, "/fapi/v2/balance": 5, "/fapi/v1/allOrders": 5}


class BinanceRest:
    def __init__(self, api_key: str, api_secret: str, base_url: str, env: Mapping[str, str] | None = None,
                 timeout_ms: int = 5_000, retries: int = 3, backoff_s: float = 0.5, recv_window_ms: int = 5_000,
                 max_ban_wait_s: float = 300.0, limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.mode = check_trading_allowed(base_url, env)  # before any client exists
        # The SDK's own retries are off (retries=0): this class decides what may be retried.
        config = ConfigurationRestAPI(api_key=api_key, api_secret=api_secret, base_path=base_url.rstrip("/"),
                                      timeout=timeout_ms, retries=0, backoff=0)
        self._client = DerivativesTradingUsdsFutures(config_rest_api=config)
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff_s, self.recv_window_ms = retries, backoff_s, recv_window_ms
        self.max_ban_wait_s = max_ban_wait_s
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self.sleep = sleep
        self.time_offset_ms = 0

    def __repr__(self) -> str:  # never the key or the secret
        return f"BinanceRest(base_url={self.base_url!r}, mode={self.mode!r})"

    def sync_time(self) -> int:
        """Measure the server clock against ours (GET /fapi/v1/time); later timestamps use the offset."""
        before = time.time() * 1000
        server = int(self.call("GET", "/fapi/v1/time", signed=False)["serverTime"])
        after = time.time() * 1000
        self.time_offset_ms = int(server - (before + after) / 2)
        log.info("Binance server time offset: %+d ms", self.time_offset_ms)
        return self.time_offset_ms

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, signed: bool = True) -> Any:
        """One REST call; returns the decoded JSON reply or raises BinanceError / AckUncertain."""
        api = self._client.rest_api
        weight, orders = WEIGHTS.get(path, 1), int(method == "POST" and path in ORDER_PATHS)
        retryable = method in ("GET", "DELETE")
        synced, attempt = False, 0
        while True:
            self.limiter.acquire(weight, orders)
            payload = dict(params or {})
            if signed:
                payload["recvWindow"] = self.recv_window_ms
                payload["timestamp"] = int(time.time() * 1000) + self.time_offset_ms
            try:
                reply = send_request(api._session, api.configuration, method, path, payload, is_signed=signed)
                self.limiter.observe(reply.headers)
                return reply.data()
            except (TooManyRequestsError, RateLimitBanError) as e:
                banned = isinstance(e, RateLimitBanError)
                wait = self.limiter.back_off(e.retry_after, banned)
                if wait > self.max_ban_wait_s or attempt >= self.retries:
                    raise BinanceError(f"{method} {path}: Binance {'418 ban' if banned else '429'} "
                                       f"(Retry-After {wait:g} s); nothing more was sent. Wait, then rerun.",
                                       e.status_code, 418 if banned else 429) from None
            except (NetworkError, ServerError) as e:
                what = f"{method} {path} at {self.base_url}: {type(e).__name__} ({e.error_message})"
                if not retryable:
                    raise AckUncertain(f"{what}; the request may have taken effect: look it up before resending.",
                                       status=getattr(e, "status_code", None)) from None
                if attempt >= self.retries:
                    raise BinanceError(f"{what}; gave up after {attempt + 1} tries. Check the network and "
                                       "Binance's status, then rerun.") from None
                self.sleep(self.backoff_s * 2 ** attempt)
            except SdkError as e:
                code = getattr(e, "status_code", None)
                if code == -1021 and signed and not synced:  # our clock is off: sync and resend once
                    synced = True
                    self.sync_time()
                    continue
                raise BinanceError(f"{method} {path}: Binance error {code}: {getattr(e, 'error_message', '')}",
                                   code) from None
            attempt += 1
