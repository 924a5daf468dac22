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


class ExchangeProcess:
    """The fake exchange in its own process (`run_in_process`), as a venue is another machine: its server threads
    take no share of the client's interpreter lock, so a latency measurement of the client is not inflated by them.
    Controlled over a pipe: advance() moves the market one bar, orders() lists (client order id, accepted wall time)."""

    def __init__(self, conn, port: int):
        self._conn, self.port = conn, port

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _ask(self, *msg):
        self._conn.send(msg)
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"fake exchange process: {value}")
        return value

    def advance(self) -> int:
        """One bar on; returns the new bar's open time (ms)."""
        return self._ask("advance")

    def orders(self) -> list[tuple[str, float]]:
        return self._ask("orders")


def _serve_process(conn, bars, api_key: str, api_secret: str, market_clock: bool) -> None:
    with run_in_thread(bars, api_key, api_secret, exchange=Exchange(bars, market_clock=market_clock)) as fx:
        conn.send((True, fx.port))
        while True:
            cmd, *_ = conn.recv()
            try:
                if cmd == "stop":
                    conn.send((True, None))
                    return
                if cmd == "advance":
                    fx.exchange.advance()
                    conn.send((True, int(fx.exchange.bar[0])))
                elif cmd == "orders":
                    with fx.exchange.lock:
                        conn.send((True, [(o.client_order_id, o.accepted_wall) for o in fx.exchange.orders.values()]))
                else:
                    conn.send((False, f"unknown command {cmd!r}"))
            except Exception as e:  # noqa: BLE001 - reported to the caller, which raises it
                conn.send((False, repr(e)))


@contextmanager
def run_in_process(bars: Sequence[Sequence[float]], api_key: str, api_secret: str,
                   market_clock: bool = True) -> Iterator[ExchangeProcess]:
    """The fake exchange over `bars` in a child process (spawned: a clean interpreter); stopped on exit."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_process, args=(child, [tuple(b) for b in bars], api_key, api_secret,
                                                     market_clock), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("fake exchange process did not start within 60 s")
        ok, port = parent.recv()
        yield ExchangeProcess(parent, port)
    finally:
        try:
            parent.send(("stop",))
            parent.poll(10) and parent.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        proc.join(10)
        if proc.is_alive():
            proc.kill()
