"""The collector's WebSocket session on the official USD-M client (binance-sdk-derivatives-trading-usds-futures),
with what the client does not do: reconnect and resubscribe after a drop, a staleness watchdog, gap records and
dead letters.

Streams are subscribed without a response model, so the client hands over each combined-stream envelope as the
decoded JSON it received: the collector keeps it as received and checks it itself (records.py). Two client quirks
are handled here:
- the client only emits `close` when a connection drops (binance-common 4.6.0 never reconnects streams): the
  session ends, a gap is opened at the last message received and closed by the first message after reconnecting;
- a frame that is not JSON kills the client's receive task (json.loads outside any try) without a `close` event:
  the loop's exception handler catches that task's JSONDecodeError, keeps the frame's text as a dead letter and
  reconnects; the staleness watchdog (no message for `stale_after_s`) is the backstop for any other silent stall.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from binance_common.configuration import ConfigurationWebSocketStreams
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets.lib.data.collector.records import MalformedMessage, parse_message
from btc_assets.lib.data.collector.writer import HourlyWriter

log = logging.getLogger(__name__)
DEFAULT_WS_URL = "wss://fstream.binance.com"


@dataclass
class CollectorConfig:
    root: str
    ws_url: str = DEFAULT_WS_URL
    symbol: str = "BTCUSDT"
    depth_levels: int = 20
    stale_after_s: float = 10.0  # markPrice@1s alone guarantees a message a second
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    flush_interval_s: float = 5.0
    flush_every: int = 5_000
    connect_timeout_s: float = 10.0

    def streams(self) -> dict[str, list[str]]:
        """URL path ('public' for the book, 'market' for the rest, as the client routes them) -> streams."""
        s = self.symbol.lower()
        return {"public": [f"{s}@depth{self.depth_levels}@100ms"],
                "market": [f"{s}@kline_1m", f"{s}@aggTrade", f"{s}@markPrice@1s", f"{s}@forceOrder"]}


@dataclass
class CollectorStats:
    messages: int = 0
    dead_letters: int = 0
    sessions: int = 0
    reconnects: int = 0
    gaps: int = 0
    gap_ms: int = 0
    client_errors: int = 0  # `error` events of the client (logged with their cause)
    by_kind: dict[str, int] = field(default_factory=dict)


class Collector:
    def __init__(self, config: CollectorConfig, clock: Callable[[], float] = time.time):
        self.config, self.clock = config, clock
        self.writer = HourlyWriter(config.root, flush_every=config.flush_every)
        self.stats = CollectorStats()
        self.last_msg_ms: int | None = None
        self._gap: tuple[int, str] | None = None
        self._broken: asyncio.Event | None = None
        self.fatal: OSError | None = None  # the files cannot be written: stop, loudly

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def on_message(self, envelope: Any) -> None:
        """The client's message callback: close an open gap, then record the message or dead-letter it."""
        recv = self.now_ms()
        if self._gap is not None:
            start, reason = self._gap
            self.writer.gap(start, recv, reason, symbol=self.config.symbol)
            self.stats.gaps += 1
            self.stats.gap_ms += recv - start
            self._gap = None
        self.last_msg_ms = recv
        try:
            stream, kind, data = parse_message(envelope)
        except MalformedMessage as e:
            stream = envelope.get("stream") if isinstance(envelope, dict) else None
            self.dead_letter(stream, envelope, e.reason, recv)
            return
        try:
            self.writer.record(kind, stream, data, recv)
        except OSError as e:  # the client would swallow it (an `error` event): stop the collector instead
            self.fatal = e
            if self._broken is not None:
                self._broken.set()
            return
        self.stats.messages += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1

    def dead_letter(self, stream: str | None, raw: Any, reason: str, recv_ms: int | None = None) -> None:
        log.warning("collector: dead letter (%s): %s", stream, reason)
        self.writer.dead_letter(stream, raw, reason, recv_ms or self.now_ms())
        self.stats.dead_letters += 1

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, json.JSONDecodeError):
            self.dead_letter(None, exc.doc, f"frame is not JSON ({exc.msg} at char {exc.pos}); the client's "
                             "receive task died on it: reconnecting")
        else:
            log.error("collector: unhandled error in the event loop: %s", context.get("message"), exc_info=exc)
            if exc is not None:
                self.dead_letter(None, repr(exc), f"client receive task failed: {exc!r}; reconnecting")
        if self._broken is not None:
            self._broken.set()

    def _client_error(self, *args: Any) -> None:
        self.stats.client_errors += 1
        log.warning("collector: client error event: %r", args[-1] if args else None)

    async def run(self, stop: asyncio.Event) -> CollectorStats:
        """Record until `stop` is set; reconnect with exponential backoff on every drop; flush all on exit."""
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        backoff = self.config.backoff_s
        try:
            while not stop.is_set():
                before = self.stats.messages + self.stats.dead_letters
                reason = await self._session(stop)
                if stop.is_set() or self.fatal is not None:
                    break
                if self.stats.messages + self.stats.dead_letters > before:
                    backoff = self.config.backoff_s  # the last session worked: start the backoff over
                if self._gap is None:
                    self._gap = (self.last_msg_ms or self.now_ms(), reason)
                self.stats.reconnects += 1
                log.warning("collector: %s; reconnecting in %.1f s", reason, backoff)
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, self.config.max_backoff_s)
        finally:
            loop.set_exception_handler(previous)
            if self._gap is not None:  # stopped while disconnected: the gap runs to the stop
                start, reason = self._gap
                self.writer.gap(start, self.now_ms(), f"{reason}; stopped before a reconnect succeeded",
                                symbol=self.config.symbol)
                self.stats.gaps += 1
            try:
                self.writer.close()
            except OSError as e:
                self.fatal = self.fatal or e
        if self.fatal is not None:
            raise RuntimeError(f"collector: cannot write under {self.config.root}: {self.fatal}; "
                               f"{self.writer.buffered} received records could not be written. Free space or fix "
                               "permissions, then restart `make collect`; the time until then is a gap.")
        return self.stats

    async def _session(self, stop: asyncio.Event) -> str:
        """One connection: subscribe, flush periodically, watch for staleness; return why it ended."""
        cfg = self.config
        self._broken = broken = asyncio.Event()
        client = DerivativesTradingUsdsFutures(config_ws_streams=ConfigurationWebSocketStreams(stream_url=cfg.ws_url))
        ws = client.websocket_streams
        try:
            conn = await asyncio.wait_for(ws.create_connection(), cfg.connect_timeout_s)
            if conn is None or not conn.connections:
                return f"could not connect to {cfg.ws_url}"
            conn.on_connection("close", lambda *_: broken.set())
            conn.on_connection("error", self._client_error)
            for url_path, streams in cfg.streams().items():
                await conn.subscribe(streams, stream_url=url_path)
                for s in streams:
                    conn.on("message", self.on_message, s)
            self.stats.sessions += 1
            started = self.now_ms()
            while not stop.is_set() and not broken.is_set():
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(broken.wait())]
                await asyncio.wait(waiters, timeout=min(cfg.flush_interval_s, cfg.stale_after_s / 2),
                                   return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                try:
                    self.writer.flush()
                except OSError as e:
                    self.fatal = e
                    return f"cannot write the files: {e}"
                if self.fatal is not None:
                    return f"cannot write the files: {self.fatal}"
                quiet_ms = self.now_ms() - max(started, self.last_msg_ms or 0)
                if quiet_ms > cfg.stale_after_s * 1000:
                    return f"no message for {quiet_ms / 1000:.1f} s (stale connection)"
            return "stopped" if stop.is_set() else "connection closed by the server or the network"
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            return f"connect/subscribe to {cfg.ws_url} failed: {e!r}"
        finally:
            self._broken = None
            try:
                await ws.close_connection(close_session=True)
            except Exception as e:  # noqa: BLE001 - closing a broken connection may fail; nothing to keep
                log.debug("collector: closing the connection: %r", e)
