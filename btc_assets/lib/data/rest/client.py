"""An unsigned client of Binance's public USD-M REST API, through the official connector.

`PublicRest` sends unsigned GETs with binance_common's `send_request` (the function every typed SDK method calls,
which also returns the reply headers) and the broker's header-fed `RateLimiter`: it waits before a request that
would cross the weight limit, backs off on 429 (Retry-After), stops at once on 418 (an IP ban: retrying extends
it), and retries timeouts, dropped connections and 5xx with exponential backoff. Public market data needs no
key and no trading opt-in, so this does not go through the broker's BinanceRest (which refuses without one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import (BadRequestError, NetworkError, RateLimitBanError, ServerError,
                                   TooManyRequestsError)
from binance_common.utils import send_request
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets.lib.data.archive.files import ArchiveFile
from btc_assets.lib.data.rest.errors import BinanceError
from btc_assets.lib.data.rest.rate_limit import RateLimiter

log = logging.getLogger(__name__)
DEFAULT_REST_URL = "https://fapi.binance.com"


def kline_weight(limit: int) -> int:
    """Binance's weight of a klines request by its limit ([1,100) 1, [100,500) 2, [500,1000] 5, > 1000 10)."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class RestRefused(BinanceError):
    """Binance answered 400 to the parameters (`msg` is its message): retrying cannot help."""

    def __init__(self, message: str, code: int | None, msg: str):
        super().__init__(message, code, 400)
        self.msg = msg


class RestUnsupported(BinanceError):
    """The REST API cannot rebuild this archive dataset (e.g. bookDepth): wait for the archive to publish it."""


@dataclass
class RestStats:
    requests: int = 0
    retries: int = 0
    waited_s: float = 0.0
    max_used_weight: int = 0


class PublicRest:
    def __init__(self, base_url: str = DEFAULT_REST_URL, timeout_ms: int = 10_000, retries: int = 4,
                 backoff_s: float = 0.5, limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        # The SDK's defaults (1 s timeout, 3 silent retries) are replaced: this class decides what to retry.
        config = ConfigurationRestAPI(base_path=base_url.rstrip("/"), timeout=timeout_ms, retries=0, backoff=0)
        self._api = DerivativesTradingUsdsFutures(config_rest_api=config).rest_api
        self.base_url, self.retries, self.backoff_s, self.sleep = base_url.rstrip("/"), retries, backoff_s, sleep
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self.stats = RestStats()

    def __repr__(self) -> str:
        return f"PublicRest(base_url={self.base_url!r})"

    def get(self, path: str, params: dict[str, Any], weight: int = 1) -> Any:
        """One public GET; returns the decoded JSON or raises BinanceError naming the call and what to do."""
        attempt = 0
        while True:
            before = self.limiter.waited_s
            self.limiter.acquire(weight)
            self.stats.waited_s += self.limiter.waited_s - before
            self.stats.requests += 1
            try:
                reply = send_request(self._api._session, self._api.configuration, "GET", path, dict(params),
                                     is_signed=False)
                self.limiter.observe(reply.headers)
                used = {k.lower(): v for k, v in reply.headers.items()}.get("x-mbx-used-weight-1m", "0")
                self.stats.max_used_weight = max(self.stats.max_used_weight, int(used) if used.isdigit() else 0)
                return reply.data()
            except RateLimitBanError as e:
                self.limiter.back_off(e.retry_after, banned=True)
                raise BinanceError(f"GET {path} {params}: Binance answered 418 (IP banned, Retry-After "
                                   f"{e.retry_after} s). Stopped: nothing more is sent. Wait out the ban, check that "
                                   "no other process shares the IP's weight, then rerun.", 418, 418) from None
            except BadRequestError as e:  # Binance refused the parameters: retrying cannot help
                raise RestRefused(f"GET {path} {params}: Binance refused the request ({e.status_code}: "
                                  f"{e.error_message}); check the parameters.", e.status_code,
                                  e.error_message) from None
            except TooManyRequestsError as e:
                wait = self.limiter.back_off(e.retry_after, banned=False)
                if attempt >= self.retries:
                    raise BinanceError(f"GET {path}: still 429 after {attempt + 1} tries (Retry-After {wait:g} s); "
                                       "rerun later.", 429, 429) from None
                self.stats.waited_s += wait
                self.sleep(wait)
            except (NetworkError, ServerError) as e:
                if attempt >= self.retries:
                    raise BinanceError(f"GET {path} at {self.base_url}: {type(e).__name__} ({e.error_message}); "
                                       f"gave up after {attempt + 1} tries. Check the network and Binance's status, "
                                       "then rerun.") from None
                self.sleep(self.backoff_s * 2 ** attempt)
            attempt += 1
            self.stats.retries += 1


def period_ms(f: ArchiveFile) -> tuple[int, int]:
    """[start, end) of an archive file's day or month, in epoch ms (UTC)."""
    start = pd.Timestamp(f.day, tz="UTC")
    end = start + (pd.DateOffset(months=1) if f.period == "monthly" else pd.Timedelta(days=1))
    return int(start.value // 1_000_000), int(end.value // 1_000_000)
