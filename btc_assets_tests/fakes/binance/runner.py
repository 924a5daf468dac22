"""Run the fake exchange on 127.0.0.1 in a background thread: `with run_in_thread(bars) as fx: ...`.

The server takes a free port, is reachable at fx.rest_url / fx.ws_url, and stops (sockets closed, thread joined)
when the context exits, also when the test fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from btc_assets_tests.fakes.binance.auth import Credentials
from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.faults import Faults
from btc_assets_tests.fakes.binance.limits import RateLimits
from btc_assets_tests.fakes.binance.server import FakeBinanceApp
from btc_assets_tests.fakes.serving import HOST, serve_in_thread


@dataclass
class RunningFakeExchange:
    exchange: Exchange
    faults: Faults
    app: FakeBinanceApp
    port: int
    loop: asyncio.AbstractEventLoop

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def drop_websockets(self) -> None:
        asyncio.run_coroutine_threadsafe(self.app.drop_sockets(), self.loop).result(timeout=5)


@contextmanager
def run_in_thread(bars: Sequence[Sequence[float]], api_key: str, api_secret: str, exchange: Exchange | None = None,
                  limits: RateLimits | None = None) -> Iterator[RunningFakeExchange]:
    """Start the fake exchange over `bars` for one (api_key, api_secret) account; stop it on exit."""
    ex = exchange or Exchange(bars)
    app = FakeBinanceApp(ex, Credentials(api_key, api_secret), Faults(), limits)
    with serve_in_thread(app.build(), "fake-binance", on_stop=app.drop_sockets) as (port, loop):
        yield RunningFakeExchange(ex, app.faults, app, port, loop)
