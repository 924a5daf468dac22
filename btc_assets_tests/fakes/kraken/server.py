"""The fake Kraken Futures venue's aiohttp application: the derivatives REST API v3 under /derivatives/api/v3, in
Kraken's paths, parameters and reply shapes ({"result": "success", "serverTime": ..., ...}; errors as
{"result": "error", "error": ...}). Private endpoints check the APIKey / Nonce / Authent headers (auth.py) over the
raw query string and body as received. Faults (faults.py) are applied here, before or after the request takes
effect.

ROUTES maps (method, endpoint) to (handler, private).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from btc_assets_tests.fakes.kraken import auth
from btc_assets_tests.fakes.kraken.engine import KrakenExchange, iso
from btc_assets_tests.fakes.kraken.errors import KrakenApiError
from btc_assets_tests.fakes.kraken.faults import Faults

PREFIX = "/derivatives/api/v3"
Params = dict[str, list[str]]
Handler = Callable[[KrakenExchange, Params], dict]


def one(p: Params, name: str) -> str | None:
    values = p.get(name)
    return values[-1] if values else None


def flat(p: Params) -> dict[str, str]:
    return {k: v[-1] for k, v in p.items()}


def leverage(ex: KrakenExchange, p: Params) -> dict:
    return {"leveragePreferences": [{"symbol": s, "maxLeverage": lev} for s, lev in sorted(ex.leverage.items())]}


def set_leverage(ex: KrakenExchange, p: Params) -> dict:
    sym = ex.spec(one(p, "symbol") or "").symbol
    value = one(p, "maxLeverage")
    if value is None:
        ex.leverage.pop(sym, None)  # back to cross margin
    else:
        lev = float(value)
        if not 1 <= lev <= 1 / ex.specs[sym].initial_margin:
            raise KrakenApiError("invalidArgument")
        ex.leverage[sym] = lev
    return {}


def cancel_order(ex: KrakenExchange, p: Params) -> dict:
    if one(p, "order_id") is None and one(p, "cliOrdId") is None:
        raise KrakenApiError("requiredArgumentMissing")
    return {"cancelStatus": ex.cancel(one(p, "order_id"), one(p, "cliOrdId"))}


ROUTES: dict[tuple[str, str], tuple[Handler, bool]] = {
    ("GET", "/instruments"): (lambda ex, p: {"instruments": [s.row() for s in ex.specs.values()]}, False),
    ("GET", "/tickers"): (lambda ex, p: {"tickers": ex.tickers()}, False),
    ("GET", "/accounts"): (lambda ex, p: {"accounts": ex.accounts()}, True),
    ("GET", "/openpositions"): (lambda ex, p: {"openPositions": ex.open_positions()}, True),
    ("GET", "/openorders"): (lambda ex, p: {"openOrders": ex.open_orders()}, True),
    ("GET", "/fills"): (lambda ex, p: {"fills": ex.fills_json(one(p, "lastFillTime"))}, True),
    ("POST", "/sendorder"): (lambda ex, p: {"sendStatus": ex.send_order(flat(p))}, True),
    ("POST", "/cancelorder"): (cancel_order, True),
    ("POST", "/cancelallorders"): (lambda ex, p: {"cancelStatus": ex.cancel_all(one(p, "symbol"))}, True),
    ("POST", "/orders/status"): (lambda ex, p: {"orders": ex.order_statuses(p.get("orderIds", []),
                                                                            p.get("cliOrdIds", []))}, True),
    ("GET", "/leveragepreferences"): (leverage, True),
    ("PUT", "/leveragepreferences"): (set_leverage, True),
}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


class FakeKrakenApp:
    def __init__(self, exchange: KrakenExchange, credentials: auth.Credentials, faults: Faults | None = None):
        self.exchange, self.credentials, self.faults = exchange, credentials, faults or Faults()
        self.routes = dict(ROUTES)

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", PREFIX + "/{tail:.*}", self.rest)
        return app

    async def rest(self, request: web.Request) -> web.StreamResponse:
        ex, method, path = self.exchange, request.method, request.path
        raw_query = request.rel_url.raw_query_string  # signed as sent: url-encoded
        body = (await request.text()) if request.can_read_body else ""
        route = self.routes.get((method, path[len(PREFIX):]))
        if route is None:
            return _json({"result": "error", "serverTime": iso(ex.now_ms()), "error": "Not Found"}, 404)
        handler, private = route
        fault = self.faults.take(method, path)
        try:
            if fault is not None and fault.kind == "error":
                raise KrakenApiError(fault.error, fault.http_status)
            if fault is not None and not fault.apply_first:
                return await self._misbehave(request, fault)
            if private:
                auth.check(request.headers, raw_query + body, path, self.credentials)
            params: Params = {}
            for k, v in [*parse_qsl(raw_query, keep_blank_values=True), *parse_qsl(body, keep_blank_values=True)]:
                params.setdefault(k, []).append(v)
            with ex.lock:
                result = handler(ex, params)
        except KrakenApiError as e:
            return _json(e.body(iso(ex.now_ms())), e.http_status)
        reply = _json({"result": "success", **result, "serverTime": iso(ex.now_ms())})
        if fault is not None:
            return await self._misbehave(request, fault, reply)
        return reply

    @staticmethod
    async def _misbehave(request: web.Request, fault, reply: web.Response | None = None) -> web.StreamResponse:
        if fault.kind == "server_error":
            return web.Response(status=fault.http_status, content_type="text/html",
                                text=f"<html><body><h1>{fault.http_status} Service Unavailable</h1></body></html>")
        if fault.kind == "timeout":
            await asyncio.sleep(fault.delay_s)
            return reply or web.Response(status=504, text="")
        if request.transport is not None:  # drop
            request.transport.abort()
        raise asyncio.CancelledError()  # nothing is written: the client sees the connection drop
