"""Fault injection for the fake Kraken Futures venue: a control object tests hold to make the next matching requests
misbehave. Each fault matches a method and path (None matches any; paths as requested, /derivatives/api/v3/...)
and fires `times` times, in the order injected:
- `kraken_error(error)`: a Kraken error reply ({"result": "error", "error": ...}), before the request takes effect;
- `api_limit(times, http_status)`: apiLimitExceeded (HTTP 200 as Kraken answers it by default, or e.g. 429);
- `server_error(status, apply_first)`: a 5xx with an HTML body; with apply_first the request takes effect first;
- `drop(apply_first)`: the connection is closed without a reply; with apply_first the request took effect (the
  "accepted the order but the reply was lost" case);
- `timeout(delay_s, apply_first)`: the reply comes after delay_s (the client times out; the request took effect
  when apply_first).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    kind: str  # error, server_error, drop, timeout
    method: str | None
    path: str | None
    times: int = 1
    error: str = ""
    http_status: int = 200
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

    def kraken_error(self, error: str, http_status: int = 200, method: str | None = None, path: str | None = None,
                     times: int = 1) -> None:
        self._add(Fault("error", method, path, times, error=error, http_status=http_status))

    def api_limit(self, times: int = 1, http_status: int = 200, method: str | None = None,
                  path: str | None = None) -> None:
        self.kraken_error("apiLimitExceeded", http_status, method, path, times)

    def server_error(self, status: int = 503, apply_first: bool = False, method: str | None = None,
                     path: str | None = None, times: int = 1) -> None:
        self._add(Fault("server_error", method, path, times, http_status=status, apply_first=apply_first))

    def drop(self, apply_first: bool = False, method: str | None = None, path: str | None = None,
             times: int = 1) -> None:
        self._add(Fault("drop", method, path, times, apply_first=apply_first))

    def timeout(self, delay_s: float, apply_first: bool = True, method: str | None = None, path: str | None = None,
                times: int = 1) -> None:
        self._add(Fault("timeout", method, path, times, delay_s=delay_s, apply_first=apply_first))

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

    def count(self, method: str, path: str) -> int:
        """How many such requests were served (faulted ones included)."""
        with self._lock:
            return self.requests.count((method, path))

    def clear(self) -> int:
        """Drop the faults no request has met yet; how many were dropped."""
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
        return n

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)
