"""Run the fake Kraken Futures venue on 127.0.0.1 in a background thread: `with run_in_thread(key, secret) as fx`.

The server takes a free port, is reachable at fx.url (give it to the SDK as `url=`), and stops (thread joined)
when the context exits, also when the test fails.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from btc_assets_tests.fakes.kraken.auth import Credentials
from btc_assets_tests.fakes.kraken.engine import KrakenExchange
from btc_assets_tests.fakes.kraken.faults import Faults
from btc_assets_tests.fakes.kraken.server import FakeKrakenApp

HOST = "127.0.0.1"


@dataclass
class RunningFakeKraken:
    exchange: KrakenExchange
    faults: Faults
    app: FakeKrakenApp
    credentials: Credentials
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextmanager
def run_in_thread(api_key: str, api_secret: str, exchange: KrakenExchange | None = None) -> Iterator[RunningFakeKraken]:
    """Start the fake venue for one (api_key, base64 api_secret) account; stop it on exit."""
    ex = exchange or KrakenExchange()
    creds = Credentials(api_key, api_secret)
    app = FakeKrakenApp(ex, creds, Faults())
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict = {}

    async def start() -> None:
        runner = web.AppRunner(app.build(), handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        box["runner"], box["port"] = runner, runner.addresses[0][1]

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

    thread = threading.Thread(target=serve, name="fake-kraken", daemon=True)
    thread.start()
    if not started.wait(10) or "error" in box:
        raise RuntimeError(f"fake Kraken: the server did not start on {HOST}: {box.get('error')!r}")
    try:
        yield RunningFakeKraken(ex, app.faults, app, creds, box["port"])
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
