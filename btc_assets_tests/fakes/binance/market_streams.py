"""Market stream events of the fake exchange for the collector's streams: aggTrade, depth20@100ms, markPrice@1s,
forceOrder (plus kline_1m from the engine), in the payload shapes of btc_assets_tests/fixtures/binance_payloads/ws_*.json, and raw
text injection for malformed messages.

Values are SYNTHETIC (derived from the replayed bar at the cursor), never market data. `publish_round` emits one
event of every stream; `publish_raw` sends any text as a stream's next frame (truncated JSON, wrong types...).
"""

from __future__ import annotations

from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.market_data import trade_at

STREAMS = ("kline_1m", "aggTrade", "depth20@100ms", "markPrice@1s", "forceOrder")


def stream_names(symbol: str = "BTCUSDT") -> list[str]:
    return [f"{symbol.lower()}@{s}" for s in STREAMS]


def agg_trade_event(ex: Exchange, trade_id: int) -> dict:
    tr = trade_at(ex, trade_id % (len(ex.bars) * 4))
    return {"e": "aggTrade", "E": ex.now_ms(), "s": ex.symbol, "a": trade_id, "p": tr["p"], "q": tr["q"],
            "nq": tr["nq"], "f": tr["f"], "l": tr["l"], "T": ex.now_ms(), "m": tr["m"], "st": 1}


def depth_event(ex: Exchange, update_id: int, levels: int = 20) -> dict:
    bid, ask = ex.best_bid_ask()
    tick = float(ex.tick)
    return {"e": "depthUpdate", "E": ex.now_ms(), "T": ex.now_ms(), "s": ex.symbol, "ps": ex.symbol, "st": 1,
            "U": update_id, "u": update_id + 1, "pu": update_id - 1,
            "b": [[f"{bid - i * tick:.2f}", f"{1 + i * 0.1:.3f}"] for i in range(levels)],
            "a": [[f"{ask + i * tick:.2f}", f"{1 + i * 0.1:.3f}"] for i in range(levels)]}


def mark_price_event(ex: Exchange) -> dict:
    close = ex.bar[4]
    return {"e": "markPriceUpdate", "E": ex.now_ms(), "s": ex.symbol, "p": f"{close:.8f}",
            "i": f"{close - float(ex.tick):.8f}", "P": f"{close:.8f}", "r": "0.00010000", "ap": f"{close:.8f}",
            "T": (ex.now_ms() // 28_800_000 + 1) * 28_800_000, "st": 1}


def force_order_event(ex: Exchange, side: str = "SELL", n: int = 0) -> dict:
    """Liquidation number n: its size varies with n, so events published in the same millisecond stay distinct
    (Binance sends at most one per symbol per second; two identical events would be a duplicate)."""
    close, qty = ex.bar[4], f"{0.001 * (n % 997 + 1):.3f}"
    return {"e": "forceOrder", "E": ex.now_ms(), "o": {
        "s": ex.symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": qty, "p": f"{close:.2f}", "ap": f"{close:.2f}",
        "X": "FILLED", "l": qty, "z": qty, "T": ex.now_ms()}}


def kline_event(ex: Exchange) -> dict:
    return ex._kline_event(closed=False)  # noqa: SLF001 - the engine owns the kline shape


def publish_round(ex: Exchange, n: int, liquidation: bool = True) -> None:
    """Publish event number n of every stream (forceOrder only when `liquidation`)."""
    ex._publish("market", agg_trade_event(ex, n))  # noqa: SLF001
    ex._publish("market", depth_event(ex, 1_000 + 2 * n))  # noqa: SLF001
    ex._publish("market", mark_price_event(ex))  # noqa: SLF001
    ex._publish("market", kline_event(ex))  # noqa: SLF001
    if liquidation:
        ex._publish("market", force_order_event(ex, "SELL" if n % 2 else "BUY", n))  # noqa: SLF001


def publish_raw(ex: Exchange, stream: str, text: str) -> None:
    """Send `text` verbatim as the next frame of `stream` (e.g. 'btcusdt@aggTrade') to every subscriber."""
    ex._publish("raw", {"stream": stream, "text": text})  # noqa: SLF001
