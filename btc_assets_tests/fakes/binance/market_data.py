"""Market data of the fake exchange beyond klines: REST history endpoints (aggTrades, fundingRate, premiumIndex,
mark/index/premium-index klines; the /futures/data statistics are in market_stats) and the market streams the
collector records (aggTrade, depth20@100ms, markPrice@1s, forceOrder), in Binance USD-M's parameter names and
reply shapes.

Everything here is SYNTHETIC, derived deterministically from the replayed bars (which may be real): each bar
yields `TRADES_PER_BAR` aggregated trades spread over its minute, mark = close, index = close - 1 tick, premium
= 0. History endpoints serve bars up to the cursor, like the kline endpoint: nothing of later bars is known.
"""

from __future__ import annotations

from btc_assets_tests.fakes.binance import errors
from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.market_stats import stats_routes

TRADES_PER_BAR = 4
FUNDING_EVERY_MS = 8 * 3_600_000


def _window(ex: Exchange, p: dict, max_limit: int, default: int) -> tuple[int, int, int]:
    if p.get("symbol", ex.symbol) != ex.symbol:
        raise errors.ApiError(-1121, "Invalid symbol.")
    limit = int(p.get("limit", default))
    if not 1 <= limit <= max_limit:
        raise errors.bad_value("limit", str(limit))
    start = int(p.get("startTime", 0))
    end = int(p.get("endTime", 2**62))
    return start, end, limit


def _known(ex: Exchange) -> list[tuple]:
    return ex.bars[: ex.cursor + 1]


def price_klines(kind: str):
    """GET /fapi/v1/{markPrice,indexPrice,premiumIndex}Klines (and klines with startTime): oldest first."""
    def handler(ex: Exchange, p: dict) -> list:
        start, end, limit = _window(ex, {**p, "symbol": p.get("pair", p.get("symbol", ex.symbol))}, 1500, 500)
        rows = [b for b in _known(ex) if start <= b[0] <= end][:limit]
        out = []
        for t, o, h, lo, c, v in rows:
            if kind == "index":
                o, h, lo, c = (x - float(ex.tick) for x in (o, h, lo, c))
            if kind == "premium":
                o = h = lo = c = 0.0
            volume = f"{v:.3f}" if kind == "trade" else "0"
            out.append([int(t), f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", volume, int(t) + 59_999,
                        f"{v * c:.2f}" if kind == "trade" else "0", TRADES_PER_BAR if kind == "trade" else 60,
                        f"{v / 2:.3f}" if kind == "trade" else "0", f"{v * c / 2:.2f}" if kind == "trade" else "0",
                        "0"])
        return out
    return handler


def trade_at(ex: Exchange, trade_id: int) -> dict:
    """Aggregated trade `trade_id` (bar = id // TRADES_PER_BAR), in the REST reply's shape."""
    bar, j = divmod(trade_id, TRADES_PER_BAR)
    t, o, h, lo, c, v = ex.bars[bar]
    price = o + (c - o) * (j + 1) / TRADES_PER_BAR
    return {"a": trade_id, "p": f"{price:.2f}", "q": f"{v / TRADES_PER_BAR:.3f}", "nq": f"{price * v / 4:.2f}",
            "f": trade_id * 3, "l": trade_id * 3 + 2, "T": int(t) + j * (60_000 // TRADES_PER_BAR) + 7,
            "m": j % 2 == 0}


def agg_trades(ex: Exchange, p: dict) -> list:
    """GET /fapi/v1/aggTrades: by fromId, or by startTime/endTime (at most one hour apart, as Binance requires)."""
    start, end, limit = _window(ex, p, 1000, 500)
    last = (ex.cursor + 1) * TRADES_PER_BAR
    if "fromId" in p:
        first = int(p["fromId"])
    else:
        if "startTime" in p and "endTime" in p and end - start > 3_600_000:
            raise errors.ApiError(-1127, "More than 1 hours between startTime and endTime.")
        first = next((i for i in range(last) if trade_at(ex, i)["T"] >= start), last) if start else max(0, last - limit)
    out = []
    for i in range(max(0, first), last):
        tr = trade_at(ex, i)
        if tr["T"] > end or len(out) >= limit:
            break
        out.append(tr)
    return out


def funding_rate(ex: Exchange, p: dict) -> list:
    """GET /fapi/v1/fundingRate: one row per 8 h boundary inside the known bars; rate 0.0001 (SYNTHETIC)."""
    start, end, limit = _window(ex, p, 1000, 100)
    out = []
    for t, _, _, _, c, _ in _known(ex):
        if int(t) % FUNDING_EVERY_MS == 0 and start <= t <= end and len(out) < limit:
            out.append({"symbol": ex.symbol, "fundingRate": "0.00010000", "fundingTime": int(t) + 1,
                        "markPrice": f"{c:.8f}", "rateType": "Regular"})
    return out


def premium_index(ex: Exchange, p: dict) -> dict:
    close = ex.bar[4]
    nxt = (ex.now_ms() // FUNDING_EVERY_MS + 1) * FUNDING_EVERY_MS
    return {"symbol": ex.symbol, "markPrice": f"{close:.8f}", "indexPrice": f"{close - float(ex.tick):.8f}",
            "estimatedSettlePrice": f"{close:.8f}", "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
            "nextFundingTime": nxt, "time": ex.now_ms()}


def market_routes() -> dict:
    """(method, path) -> (handler, security, weight, orders), merged into the fake's REST routes."""
    return {
        ("GET", "/fapi/v1/aggTrades"): (agg_trades, "NONE", 20, 0),
        ("GET", "/fapi/v1/fundingRate"): (funding_rate, "NONE", 1, 0),
        ("GET", "/fapi/v1/premiumIndex"): (premium_index, "NONE", 1, 0),
        ("GET", "/fapi/v1/markPriceKlines"): (price_klines("mark"), "NONE", 5, 0),
        ("GET", "/fapi/v1/indexPriceKlines"): (price_klines("index"), "NONE", 5, 0),
        ("GET", "/fapi/v1/premiumIndexKlines"): (price_klines("premium"), "NONE", 5, 0),
        **stats_routes(),
    }
