"""What a recorded stream message must look like: the stream kinds the collector records and a check of each
payload's fields against Binance's shapes (btc_assets_tests/fixtures/binance_payloads/ws_*.json).

A message that fails the check is a `MalformedMessage`: the collector writes it to the dead-letter file with the
reason, it is never dropped and never written among the good records (silver would choke on it later).
"""

from __future__ import annotations

from typing import Any

# stream suffix -> (kind used in file names, event type "e", required fields, numeric-string fields)
STREAM_KINDS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "kline_1m": ("kline_1m", "kline", ("E", "s", "k"), ()),
    "aggTrade": ("aggTrade", "aggTrade", ("E", "s", "a", "p", "q", "T", "m"), ("p", "q")),
    "depth20@100ms": ("depth20", "depthUpdate", ("E", "T", "s", "U", "u", "b", "a"), ()),
    "depth10@100ms": ("depth10", "depthUpdate", ("E", "T", "s", "U", "u", "b", "a"), ()),
    "markPrice@1s": ("markPrice", "markPriceUpdate", ("E", "s", "p", "i", "r", "T"), ("p", "i", "r")),
    "forceOrder": ("forceOrder", "forceOrder", ("E", "o"), ()),
}
KLINE_FIELDS = ("t", "T", "o", "h", "l", "c", "v", "x")
FORCE_ORDER_FIELDS = ("s", "S", "q", "p", "ap", "X", "z", "T")


class MalformedMessage(ValueError):
    """A stream message that is not the payload its stream promises; `.reason` says what is wrong."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def kind_of(stream: str) -> str:
    """'btcusdt@depth20@100ms' -> 'depth20'; raises MalformedMessage for a stream the collector does not record."""
    suffix = stream.split("@", 1)[1] if "@" in stream else ""
    if suffix not in STREAM_KINDS:
        raise MalformedMessage(f"stream {stream!r} is not one the collector records ({sorted(STREAM_KINDS)})")
    return STREAM_KINDS[suffix][0]


def _number(obj: dict, key: str, where: str) -> None:
    try:
        float(obj[key])
    except (TypeError, ValueError):
        raise MalformedMessage(f"{where}: field {key!r} should be a number, got {obj[key]!r}") from None


def _require(obj: Any, fields: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise MalformedMessage(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [f for f in fields if f not in obj]
    if missing:
        raise MalformedMessage(f"{where}: missing fields {missing}")


def _levels(levels: Any, where: str) -> None:
    if not isinstance(levels, list) or not all(isinstance(x, list) and len(x) == 2 for x in levels):
        raise MalformedMessage(f"{where}: book levels must be [[price, qty], ...], got {str(levels)[:80]!r}")
    for price, qty in levels:
        _number({"price": price, "qty": qty}, "price", where)
        _number({"price": price, "qty": qty}, "qty", where)


def parse_message(envelope: Any) -> tuple[str, str, dict]:
    """A combined-stream envelope {"stream", "data"} -> (stream, kind, data) after checking the data's shape."""
    _require(envelope, ("stream", "data"), "envelope")
    stream, data = envelope["stream"], envelope["data"]
    kind = kind_of(str(stream))
    suffix = stream.split("@", 1)[1]
    _, event, fields, numbers = STREAM_KINDS[suffix]
    _require(data, fields, stream)
    if data.get("e") != event:
        raise MalformedMessage(f"{stream}: event type {data.get('e')!r}, expected {event!r}")
    if not isinstance(data["E"], int):
        raise MalformedMessage(f"{stream}: event time E should be integer ms, got {data['E']!r}")
    for key in numbers:
        _number(data, key, stream)
    if event == "kline":
        _require(data["k"], KLINE_FIELDS, f"{stream}.k")
    elif event == "depthUpdate":
        _levels(data["b"], f"{stream}.b")
        _levels(data["a"], f"{stream}.a")
    elif event == "forceOrder":
        _require(data["o"], FORCE_ORDER_FIELDS, f"{stream}.o")
        for key in ("q", "p", "ap", "z"):
            _number(data["o"], key, f"{stream}.o")
    return stream, kind, data
