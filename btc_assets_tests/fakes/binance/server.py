"""The fake exchange's aiohttp application: Binance USD-M REST under /fapi, market streams under /ws/<streams> and
/stream?streams=a/b (combined; also /market|public|private/stream as the SDK uses), user data as the stream
named by the listen key.

Every REST reply carries the rate-limit headers; errors are {"code", "msg"} with Binance's HTTP status. Faults
(see faults.py) are applied here, before or after the request takes effect.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from btc_assets_tests.fakes.binance import auth, errors
from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.faults import Faults
from btc_assets_tests.fakes.binance.limits import RateLimits
from btc_assets_tests.fakes.binance.rest import ListenKeys, routes

log = logging.getLogger(__name__)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


class FakeBinanceApp:
    def __init__(self, exchange: Exchange, credentials: auth.Credentials, faults: Faults | None = None,
                 limits: RateLimits | None = None):
        self.exchange, self.credentials = exchange, credentials
        self.faults, self.limits = faults or Faults(), limits or RateLimits()
        self.listen_keys = ListenKeys()
        self.routes = routes(self.listen_keys)
        self.sockets: set[tuple[web.WebSocketResponse, asyncio.BaseTransport | None]] = set()

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/fapi/{tail:.*}", self.rest)
        app.router.add_route("*", "/futures/data/{tail:.*}", self.rest)
        app.router.add_get("/ws/{streams}", self.websocket)
        app.router.add_get("/stream", self.websocket)
        for route in ("market", "public", "private"):  # the SDK's per-category stream paths
            app.router.add_get(f"/{route}/stream", self.websocket)
            app.router.add_get(f"/{route}/ws/{{streams}}", self.websocket)
        return app

    async def rest(self, request: web.Request) -> web.StreamResponse:
        method, path, ex = request.method, request.path, self.exchange
        query, body = request.query_string, (await request.text()) if request.can_read_body else ""
        route = self.routes.get((method, path))
        if route is None:
            return _json({"code": -5000, "msg": f"Path {path} could not be found."}, 404)
        handler, security, weight, orders = route
        fault = self.faults.take(method, path)
        try:
            if fault is not None and fault.kind == "error":
                raise fault.error
            if fault is not None and fault.kind in ("drop", "timeout") and not fault.apply_first:
                return await self._misbehave(request, fault)
            headers = self.limits.charge(ex.now_ms(), weight, orders)
            hdrs = dict(request.headers)
            if security == "SIGNED":
                auth.check_signed(query, body, hdrs, self.credentials, ex.now_ms())
            elif security == "USER_STREAM":
                auth.check_api_key(hdrs, self.credentials)
            params = auth.params_of(query, body)
            params.pop("signature", None)
            with ex.lock:
                result = handler(ex, params)
        except errors.ApiError as e:
            hdr = {**self.limits.current(ex.now_ms()), **e.headers}
            if e.http_status >= 500:
                return web.Response(status=e.http_status, headers=hdr, text="")
            return _json({"code": e.code, "msg": e.msg}, e.http_status, hdr)
        if fault is not None and fault.kind in ("drop", "timeout"):
            return await self._misbehave(request, fault, _json(result, headers=headers))
        return _json(result, headers=headers)

    async def _misbehave(self, request: web.Request, fault, reply: web.Response | None = None) -> web.StreamResponse:
        if fault.kind == "timeout":
            await asyncio.sleep(fault.delay_s)
            return reply or _json({"code": -1007, "msg": "Timeout waiting for response from backend server."}, 408)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError()  # nothing is written: the client sees the connection drop

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Raw (/ws/<streams>) or combined (/stream, /market|public|private/stream) streams; subscriptions can
        be given in the URL or sent later as {"method": "SUBSCRIBE", "params": [...], "id": n}."""
        names = request.match_info.get("streams") or request.query.get("streams", "")
        combined = request.path.endswith("/stream")
        wanted = {n for n in names.split("/") if n}
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def listener(channel: str, event: dict) -> None:
            if channel == "raw":  # injected bytes (malformed messages), sent as they are
                if event["stream"] in wanted:
                    loop.call_soon_threadsafe(queue.put_nowait, (event["stream"], event))
                return
            stream = self.listen_keys.key if channel == "user" else self._stream_name(event)
            if stream in wanted:
                loop.call_soon_threadsafe(queue.put_nowait, (stream, event))

        self.exchange.listeners.append(listener)
        entry = (ws, request.transport)
        self.sockets.add(entry)
        reader = asyncio.ensure_future(self._read_requests(ws, wanted))
        try:
            while not ws.closed:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                stream, event = getter.result()
                try:
                    text = event["text"] if "text" in event and "stream" in event else json.dumps(
                        {"stream": stream, "data": event} if combined else event)
                    await ws.send_str(text)
                except ConnectionResetError:  # the client went away (or a drop was injected)
                    break
        finally:
            self.exchange.listeners.remove(listener)
            self.sockets.discard(entry)
            reader.cancel()
            await ws.close()
        return ws

    @staticmethod
    async def _read_requests(ws: web.WebSocketResponse, wanted: set[str]) -> None:
        async for msg in ws:
            if msg.type != web.WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            params = req.get("params") or []
            if req.get("method") == "SUBSCRIBE":
                wanted.update(params)
            elif req.get("method") == "UNSUBSCRIBE":
                wanted.difference_update(params)
            reply = list(wanted) if req.get("method") == "LIST_SUBSCRIPTIONS" else None
            await ws.send_str(json.dumps({"result": reply, "id": req.get("id")}))

    def _stream_name(self, event: dict) -> str:
        sym = self.exchange.symbol.lower()
        return {"kline": f"{sym}@kline_1m", "bookTicker": f"{sym}@bookTicker", "aggTrade": f"{sym}@aggTrade",
                "depthUpdate": f"{sym}@depth20@100ms", "markPriceUpdate": f"{sym}@markPrice@1s",
                "forceOrder": f"{sym}@forceOrder"}.get(event.get("e"), "")

    async def drop_sockets(self) -> None:
        """Cut every WebSocket without a close frame (the dropped-connection fault for streams)."""
        for ws, transport in list(self.sockets):
            if transport is not None:
                transport.abort()
            await ws.close()
