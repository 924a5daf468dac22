"""Kraken Futures error replies as the fake venue gives them: {"result": "error", "serverTime": ..., "error": <one
of Kraken's error strings>}, e.g. authenticationError, nonceBelowThreshold, nonceDuplicate, apiLimitExceeded,
requiredArgumentMissing, invalidArgument. Kraken answers most of them with HTTP 200; the status is a parameter so
that a test can also give e.g. 429 with apiLimitExceeded."""

from __future__ import annotations


class KrakenApiError(Exception):
    def __init__(self, error: str, http_status: int = 200):
        super().__init__(error)
        self.error, self.http_status = error, http_status

    def body(self, server_time: str) -> dict:
        return {"result": "error", "serverTime": server_time, "error": self.error}
