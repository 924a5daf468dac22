"""Run the fake exchange on 127.0.0.1 in a background thread: `with run_in_thread(bars) as fx: ...`.

The server takes a free port, is reachable at fx.rest_url / fx.ws_url, and stops (sockets closed, thread joined)
when the context exits, also when the test fails.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from btc_assets_tests.fakes.binance.auth import Credentials
from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.faults import Faults
from btc_assets_tests.fakes.binance.limits import RateLimits
from btc_assets_tests.fakes.binance.server import FakeBinanceApp

HOST = "127.0.0.1"


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
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict = {}

    async def start() -> None:
        runner = web.AppRunner(app.build(), handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = e
        started.set()
        if "error" not in box:
            loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="fake-binance", daemon=True)
    thread.start()
    if not started.wait(10) or "error" in box:
        raise RuntimeError(f"fake exchange: the server did not start on {HOST}: {box.get('error')!r}")
    running = RunningFakeExchange(ex, app.faults, app, box["port"], loop)
    try:
        yield running
    finally:
        async def stop() -> None:
            await app.drop_sockets()
            await box["runner"].cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
