"""REST endpoints of the fake exchange, in Binance USD-M's paths, parameters and reply shapes.

ROUTES maps (method, path) to (handler, security, weight, order count). Security is NONE (public), USER_STREAM
(API key only) or SIGNED (TRADE / USER_DATA: key, signature and timestamp).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from btc_assets_tests.fakes.binance import errors
from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.market_data import market_routes, price_klines

Handler = Callable[[Exchange, dict[str, str]], Any]


def _symbol(ex: Exchange, p: dict[str, str]) -> str:
    if p.get("symbol", ex.symbol) != ex.symbol:
        raise errors.ApiError(-1121, "Invalid symbol.")
    return ex.symbol


def server_time(ex: Exchange, p: dict) -> dict:
    return {"serverTime": ex.now_ms()}


def exchange_info(ex: Exchange, p: dict) -> dict:
    return {"timezone": "UTC", "serverTime": ex.now_ms(), "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
        "symbols": [{"symbol": ex.symbol, "pair": ex.symbol, "contractType": "PERPETUAL", "status": "TRADING",
                     "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2,
                     "quantityPrecision": 3, "filters": [
                         {"filterType": "PRICE_FILTER", "tickSize": str(ex.tick), "minPrice": "0.10",
                          "maxPrice": "4529764"},
                         {"filterType": "LOT_SIZE", "stepSize": str(ex.step), "minQty": str(ex.step), "maxQty": "1000"},
                         {"filterType": "MARKET_LOT_SIZE", "stepSize": str(ex.step), "minQty": str(ex.step),
                          "maxQty": "120"},
                         {"filterType": "MIN_NOTIONAL", "notional": f"{ex.min_notional:g}"}]}]}


def book_ticker(ex: Exchange, p: dict) -> dict:
    bid, ask = ex.best_bid_ask()
    return {"symbol": _symbol(ex, p), "bidPrice": f"{bid:.2f}", "bidQty": "10.000", "askPrice": f"{ask:.2f}",
            "askQty": "10.000", "time": ex.now_ms(), "lastUpdateId": ex.cursor}


def klines(ex: Exchange, p: dict) -> list:
    _symbol(ex, p)
    if "startTime" in p:  # history by time window (pagination), see market_data
        return price_klines("trade")(ex, p)
    limit = int(p.get("limit", 500))
    rows = ex.bars[max(0, ex.cursor + 1 - limit): ex.cursor + 1]
    return [[int(t), f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{v:.3f}", int(t) + 59_999, "0", 0, "0", "0",
             "0"] for t, o, h, lo, c, v in rows]


def new_order(ex: Exchange, p: dict) -> dict:
    _symbol(ex, p)
    for name in ("side", "type", "quantity"):
        if not p.get(name):
            raise errors.missing_param(name)
    return ex.new_order(p).rest()


def query_order(ex: Exchange, p: dict) -> dict:
    _symbol(ex, p)
    return ex.find(p.get("orderId"), p.get("origClientOrderId")).rest()


def cancel_order(ex: Exchange, p: dict) -> dict:
    _symbol(ex, p)
    return ex.cancel(ex.find(p.get("orderId"), p.get("origClientOrderId"))).rest()


def open_orders(ex: Exchange, p: dict) -> list:
    _symbol(ex, p)
    return [o.rest() for o in ex.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]


def cancel_all(ex: Exchange, p: dict) -> dict:
    _symbol(ex, p)
    for o in [o for o in ex.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]:
        ex.cancel(o)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def all_orders(ex: Exchange, p: dict) -> list:
    _symbol(ex, p)
    return [o.rest() for o in ex.orders.values()]


def leverage(ex: Exchange, p: dict) -> dict:
    lev = int(p.get("leverage", 0))
    if not 1 <= lev <= 125:
        raise errors.bad_value("leverage", str(lev))
    ex.account.position(_symbol(ex, p)).leverage = lev
    return {"leverage": lev, "maxNotionalValue": "50000", "symbol": ex.symbol}


def margin_type(ex: Exchange, p: dict) -> dict:
    pos = ex.account.position(_symbol(ex, p))
    wanted = p.get("marginType", "")
    if wanted not in ("ISOLATED", "CROSSED"):
        raise errors.bad_value("marginType", wanted)
    if wanted == pos.margin_type:
        raise errors.ApiError(-4046, "No need to change margin type.")
    if pos.amount != 0:
        raise errors.ApiError(-4048, "Margin type cannot be changed if there exists position.")
    pos.margin_type = wanted
    return {"code": 200, "msg": "success"}


def position_risk(ex: Exchange, p: dict) -> list:
    return [ex.account.position_risk(_symbol(ex, p), ex.bar[4])]


def balance(ex: Exchange, p: dict) -> list:
    return [ex.account.balance_row(ex.mark(), ex.now_ms())]


def new_algo_order(ex: Exchange, p: dict) -> dict:
    _symbol(ex, p)
    for name in ("algoType", "side", "type", "triggerPrice"):
        if not p.get(name):
            raise errors.missing_param(name)
    return ex.new_algo_order(p).rest()


def _find_algo(ex: Exchange, p: dict):
    for a in ex.algo_orders.values():
        if str(a.algo_id) == p.get("algoId") or a.client_algo_id == p.get("clientAlgoId"):
            return a
    raise errors.unknown_order()


def query_algo_order(ex: Exchange, p: dict) -> dict:
    return _find_algo(ex, p).rest()


def cancel_algo_order(ex: Exchange, p: dict) -> dict:
    a = _find_algo(ex, p)
    if a.status != "NEW":
        raise errors.unknown_order()
    a.status, a.update_time = "CANCELED", ex.now_ms()
    return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}


def open_algo_orders(ex: Exchange, p: dict) -> list:
    return [a.rest() for a in ex.algo_orders.values() if a.status == "NEW"]


def cancel_all_algo(ex: Exchange, p: dict) -> dict:
    for a in ex.algo_orders.values():
        if a.status == "NEW":
            a.status, a.update_time = "CANCELED", ex.now_ms()
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


class ListenKeys:
    """One listen key per fake account, as Binance keeps one per API key."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(32)

    def create(self, ex: Exchange, p: dict) -> dict:
        return {"listenKey": self.key}

    def keepalive(self, ex: Exchange, p: dict) -> dict:
        return {"listenKey": self.key}

    def close(self, ex: Exchange, p: dict) -> dict:
        return {}


def routes(keys: ListenKeys) -> dict[tuple[str, str], tuple[Handler, str, int, int]]:
    s = "SIGNED"
    return {
        ("GET", "/fapi/v1/ping"): (lambda ex, p: {}, "NONE", 1, 0),
        ("GET", "/fapi/v1/time"): (server_time, "NONE", 1, 0),
        ("GET", "/fapi/v1/exchangeInfo"): (exchange_info, "NONE", 1, 0),
        ("GET", "/fapi/v1/ticker/bookTicker"): (book_ticker, "NONE", 2, 0),
        ("GET", "/fapi/v1/klines"): (klines, "NONE", 2, 0),
        ("POST", "/fapi/v1/order"): (new_order, s, 0, 1),
        ("GET", "/fapi/v1/order"): (query_order, s, 1, 0),
        ("DELETE", "/fapi/v1/order"): (cancel_order, s, 1, 0),
        ("GET", "/fapi/v1/openOrders"): (open_orders, s, 1, 0),
        ("DELETE", "/fapi/v1/allOpenOrders"): (cancel_all, s, 1, 0),
        ("GET", "/fapi/v1/allOrders"): (all_orders, s, 5, 0),
        ("POST", "/fapi/v1/leverage"): (leverage, s, 1, 0),
        ("POST", "/fapi/v1/marginType"): (margin_type, s, 1, 0),
        ("GET", "/fapi/v2/positionRisk"): (position_risk, s, 5, 0),
        ("GET", "/fapi/v3/positionRisk"): (position_risk, s, 5, 0),
        ("GET", "/fapi/v2/balance"): (balance, s, 5, 0),
        ("GET", "/fapi/v3/balance"): (balance, s, 5, 0),
        ("POST", "/fapi/v1/algoOrder"): (new_algo_order, s, 0, 1),
        ("GET", "/fapi/v1/algoOrder"): (query_algo_order, s, 1, 0),
        ("DELETE", "/fapi/v1/algoOrder"): (cancel_algo_order, s, 1, 0),
        ("GET", "/fapi/v1/openAlgoOrders"): (open_algo_orders, s, 1, 0),
        ("DELETE", "/fapi/v1/algoOpenOrders"): (cancel_all_algo, s, 1, 0),
        ("POST", "/fapi/v1/listenKey"): (keys.create, "USER_STREAM", 1, 0),
        ("PUT", "/fapi/v1/listenKey"): (keys.keepalive, "USER_STREAM", 1, 0),
        ("DELETE", "/fapi/v1/listenKey"): (keys.close, "USER_STREAM", 1, 0),
        **market_routes(),
    }
