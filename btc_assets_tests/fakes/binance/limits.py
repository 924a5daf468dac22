"""Rate-limit accounting of the fake exchange: request weight per minute and order counts per 10 s and per minute,
reported in X-MBX-USED-WEIGHT-1M / X-MBX-ORDER-COUNT-10S / X-MBX-ORDER-COUNT-1M. Going over the weight limit gives
HTTP 429 with Retry-After; a request sent while told to wait gives HTTP 418 (an IP ban), as Binance does."""

from __future__ import annotations

import threading

from btc_assets_tests.fakes.binance import errors


class RateLimits:
    def __init__(self, weight_limit: int = 2400, orders_10s: int = 300, orders_1m: int = 1200, ban_s: int = 2):
        self.weight_limit, self.orders_10s_limit, self.orders_1m_limit, self.ban_s = (
            weight_limit, orders_10s, orders_1m, ban_s)
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # name -> (window index, count)
        self.blocked_until_ms = 0

    def _bump(self, name: str, span_ms: int, now_ms: int, add: int) -> int:
        idx = now_ms // span_ms
        w, count = self._windows.get(name, (idx, 0))
        count = (count if w == idx else 0) + add
        self._windows[name] = (idx, count)
        return count

    def charge(self, now_ms: int, weight: int, orders: int) -> dict[str, str]:
        """Count one request; raise the 429/418 ApiError if it is over a limit; return the usage headers."""
        with self._lock:
            if now_ms < self.blocked_until_ms:  # told to back off and did not: ban
                wait = self.ban_s
                self.blocked_until_ms = now_ms + wait * 1000
                raise errors.banned(wait)
            used = self._bump("w1m", 60_000, now_ms, weight)
            o10 = self._bump("o10s", 10_000, now_ms, orders)
            o1m = self._bump("o1m", 60_000, now_ms, orders)
            headers = self.headers(used, o10, o1m)
            if used > self.weight_limit or o10 > self.orders_10s_limit or o1m > self.orders_1m_limit:
                wait = max(1, (60_000 - now_ms % 60_000) // 1000) if used > self.weight_limit else 1
                self.blocked_until_ms = now_ms + wait * 1000
                err = errors.too_many_requests(wait)
                err.headers.update(headers)
                raise err
            return headers

    def current(self, now_ms: int) -> dict[str, str]:
        with self._lock:
            return self.headers(*(self._bump(n, s, now_ms, 0) for n, s in
                                  (("w1m", 60_000), ("o10s", 10_000), ("o1m", 60_000))))

    @staticmethod
    def headers(used: int, o10: int, o1m: int) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(used), "X-MBX-ORDER-COUNT-10S": str(o10),
                "X-MBX-ORDER-COUNT-1M": str(o1m)}
