"""A client-side limiter fed by Binance's usage headers (X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S/1M) and by
429/418 replies' Retry-After: it sleeps before a request that would cross a limit, instead of earning a ban.

`headroom()` reports the share of each limit still free, for the trader's Prometheus metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

WINDOWS_S = {"X-MBX-USED-WEIGHT-1M": 60, "X-MBX-ORDER-COUNT-10S": 10, "X-MBX-ORDER-COUNT-1M": 60}
# the names Binance's exchangeInfo gives these limits (rateLimitType + interval), used as metric labels
LIMIT_NAMES = {"X-MBX-USED-WEIGHT-1M": "REQUEST_WEIGHT_1M", "X-MBX-ORDER-COUNT-10S": "ORDERS_10S",
               "X-MBX-ORDER-COUNT-1M": "ORDERS_1M"}


@dataclass(frozen=True)
class Limits:
    weight_1m: int = 2400
    orders_10s: int = 300
    orders_1m: int = 1200
    headroom: float = 0.9  # start waiting at 90 % of a limit: other processes share the IP


class RateLimiter:
    def __init__(self, limits: Limits = Limits(), clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.limits, self.clock, self.sleep = limits, clock, sleep
        self.used: dict[str, tuple[int, int]] = {}  # header -> (window index, count)
        self.blocked_until = 0.0
        self.waited_s = 0.0
        self._lock = threading.Lock()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Record the usage the exchange reported on a reply."""
        now = self.clock()
        lower = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            for name, span in WINDOWS_S.items():
                value = lower.get(name.lower())
                if value is not None and str(value).isdigit():
                    self.used[name] = (int(now // span), int(value))

    def back_off(self, retry_after_s: float | None, banned: bool) -> float:
        """Stop sending until Retry-After has passed (418 bans without a header wait 2 minutes); return the wait."""
        wait = float(retry_after_s) if retry_after_s is not None else (120.0 if banned else 1.0)
        with self._lock:
            self.blocked_until = max(self.blocked_until, self.clock() + wait)
        log.warning("Binance %s: sending nothing for %.1f s (Retry-After)", "418 IP ban" if banned else "429", wait)
        return wait

    def _count(self, name: str, now: float) -> int:
        window, count = self.used.get(name, (-1, 0))
        return count if window == int(now // WINDOWS_S[name]) else 0

    def delay_for(self, weight: int, orders: int) -> float:
        """Seconds to wait before a request of this weight / order count stays under every limit."""
        now = self.clock()
        with self._lock:
            delay = max(0.0, self.blocked_until - now)
            lim, h = self.limits, self.limits.headroom
            checks = [("X-MBX-USED-WEIGHT-1M", weight, lim.weight_1m),
                      ("X-MBX-ORDER-COUNT-10S", orders, lim.orders_10s),
                      ("X-MBX-ORDER-COUNT-1M", orders, lim.orders_1m)]
            for name, add, limit in checks:
                if add and self._count(name, now) + add > limit * h:
                    span = WINDOWS_S[name]
                    delay = max(delay, span - now % span)
            return delay

    def headroom(self) -> dict[str, float]:
        """1 - used/limit for every limit the exchange has reported usage of, by its name (REQUEST_WEIGHT_1M,
        ORDERS_10S, ORDERS_1M); {} until a reply carried usage headers (a paper broker never has any).

        Usage counts in the window it was reported in: once that window has rolled over, the limit is free again
        (1.0), as delay_for assumes too. Below 0 when the IP's usage (other processes included) exceeds the limit.
        """
        now = self.clock()
        lim = self.limits
        limit = {"X-MBX-USED-WEIGHT-1M": lim.weight_1m, "X-MBX-ORDER-COUNT-10S": lim.orders_10s,
                 "X-MBX-ORDER-COUNT-1M": lim.orders_1m}
        with self._lock:
            return {LIMIT_NAMES[name]: 1.0 - self._count(name, now) / limit[name] for name in sorted(self.used)}

    def acquire(self, weight: int = 1, orders: int = 0) -> None:
        delay = self.delay_for(weight, orders)
        if delay > 0:
            self.waited_s += delay
            self.sleep(delay)
