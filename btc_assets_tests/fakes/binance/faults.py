"""Error injection for the fake exchange: a control object tests hold to make the next matching request fail.

Each fault matches a method and path (None matches any) and fires `times` times, in the order injected:
- `error(code)`: a Binance error reply ({"code", "msg"}), e.g. -1021, -2019, -1111, -4164;
- `rate_limited(retry_after)`: HTTP 429 with Retry-After and the weight headers; `banned(retry_after)`: HTTP 418;
- `server_error(status)`: 5xx with an empty body, as Binance's gateways do;
- `timeout(delay_s, apply_first)`: the reply comes after delay_s; with apply_first the request takes effect first,
  so the client times out on an order the exchange accepted (the lost-acknowledgement case);
- `drop(apply_first)`: the connection is closed without a reply.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from btc_assets_tests.fakes.binance.errors import ApiError, banned, too_many_requests


@dataclass
class Fault:
    kind: str  # error, timeout, drop
    method: str | None
    path: str | None
    times: int = 1
    error: ApiError | None = None
    delay_s: float = 0.0
    apply_first: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path == path)


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # every (method, path) served, for assertions

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def error(self, code: int, msg: str = "injected error", http_status: int = 400, method: str | None = None,
              path: str | None = None, times: int = 1) -> None:
        self._add(Fault("error", method, path, times, ApiError(code, msg, http_status)))

    def rate_limited(self, retry_after: int = 1, method: str | None = None, path: str | None = None,
                     times: int = 1) -> None:
        self._add(Fault("error", method, path, times, too_many_requests(retry_after)))

    def banned(self, retry_after: int = 2, method: str | None = None, path: str | None = None,
               times: int = 1) -> None:
        self._add(Fault("error", method, path, times, banned(retry_after)))

    def server_error(self, status: int = 503, method: str | None = None, path: str | None = None,
                     times: int = 1) -> None:
        self._add(Fault("error", method, path, times, ApiError(0, "", status)))

    def timeout(self, delay_s: float, apply_first: bool = True, method: str | None = None, path: str | None = None,
                times: int = 1) -> None:
        self._add(Fault("timeout", method, path, times, delay_s=delay_s, apply_first=apply_first))

    def drop(self, apply_first: bool = False, method: str | None = None, path: str | None = None,
             times: int = 1) -> None:
        self._add(Fault("drop", method, path, times, apply_first=apply_first))

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request (consuming one of its firings), or None."""
        with self._lock:
            self.requests.append((method, path))
            for f in self._faults:
                if f.matches(method, path):
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f
        return None

    def clear(self) -> int:
        """Drop the faults no request has met yet (a soak's fault lasts one bar); how many were dropped."""
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
        return n
