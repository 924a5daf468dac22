"""The collector against the fake exchange on 127.0.0.1, through the official client's WebSocket streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from btc_assets.lib.data.collector import Collector, CollectorConfig
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.market_streams import publish_round
from btc_assets_tests.fakes.binance.replay import synthetic_bars


@pytest.fixture()
def fx():
    with run_in_thread(synthetic_bars(100), "k", "s") as running:
        yield running


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


KINDS = ("aggTrade", "depth20", "markPrice", "kline_1m", "forceOrder")


async def until_recording(fx, col: Collector, n: int = 0) -> int:
    """Publish rounds until the collector records every stream (all subscriptions done); return the next round."""
    before = dict(col.stats.by_kind)
    for i in range(250):
        publish_round(fx.exchange, n + i)
        await asyncio.sleep(0.02)
        if all(col.stats.by_kind.get(k, 0) > before.get(k, 0) for k in KINDS):
            return n + i + 1
    raise AssertionError(f"the collector did not receive every stream: {col.stats}")


def run_collector(fx, tmp_path, body: Callable[[Collector], Awaitable[None]], clock: Callable[[], float] = time.time,
                  **cfg) -> Collector:
    """Run a collector against fx while `body(collector)` drives the fake; stop it and return it."""
    config = CollectorConfig(root=str(tmp_path / "streams"), ws_url=fx.ws_url, backoff_s=0.05,
                             flush_interval_s=0.2, **cfg)
    col = Collector(config, clock=clock)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(col.run(stop))
        try:
            await body(col)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    return col
