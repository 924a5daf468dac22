"""An aiohttp application served on 127.0.0.1 from a background thread, for the fake venues' runners.

`with serve_in_thread(web_app, "fake-x") as (port, loop)`: a free port, the thread's event loop (to run coroutines
on it from the test's thread); on exit `on_stop` (a coroutine function, e.g. dropping open WebSockets) is awaited,
the server cleaned up and the thread joined.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

HOST = "127.0.0.1"


@contextmanager
def serve_in_thread(web_app: web.Application, name: str,
                    on_stop: Callable[[], Awaitable[None]] | None = None) -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict = {}

    async def start() -> None:
        runner = web.AppRunner(web_app, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
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

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    if not started.wait(10) or "error" in box:
        raise RuntimeError(f"{name}: the server did not start on {HOST}: {box.get('error')!r}")
    try:
        yield box["port"], loop
    finally:
        async def stop() -> None:
            if on_stop is not None:
                await on_stop()
            await box["runner"].cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
