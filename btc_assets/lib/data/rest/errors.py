"""Errors of Binance's REST API, public (market data) and signed (the broker) alike."""

from __future__ import annotations


class BinanceError(RuntimeError):
    """A Binance call that failed for good; `code` is Binance's error code (e.g. -2019) when it sent one."""

    def __init__(self, message: str, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.code, self.status = code, status


class AckUncertain(BinanceError):
    """A state-changing call whose reply was lost (timeout, dropped connection, 5xx): it may have taken effect.
    Look the order up by its client id before sending it again."""
