"""Request authentication exactly as Binance USD-M does it: X-MBX-APIKEY header, HMAC-SHA256 signature over the
query string concatenated with the body (the `signature` parameter left out), timestamp within recvWindow."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl

from btc_assets_tests.fakes.binance import errors

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
FUTURE_TOLERANCE_MS = 1_000  # Binance refuses timestamps more than 1 s ahead of its clock


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str


def _without_signature(raw: str) -> tuple[str, str | None]:
    kept, signature = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


def params_of(query: str, body: str) -> dict[str, str]:
    """All request parameters (query string and form body), last one wins, as Binance reads them."""
    return dict(parse_qsl(query, keep_blank_values=True)) | dict(parse_qsl(body, keep_blank_values=True))


def check_api_key(headers: dict[str, str], creds: Credentials) -> None:
    key = headers.get("X-MBX-APIKEY", "")
    if not hmac.compare_digest(key.encode(), creds.api_key.encode()):
        raise errors.bad_api_key()


def check_signed(query: str, body: str, headers: dict[str, str], creds: Credentials, server_ms: int) -> None:
    """Raise the ApiError Binance would give for this signed request, or return if it is valid."""
    check_api_key(headers, creds)
    q, sig_q = _without_signature(query)
    b, sig_b = _without_signature(body)
    signature = sig_q or sig_b
    if not signature:
        raise errors.missing_param("signature")
    expected = hmac.new(creds.api_secret.encode(), (q + b).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.bad_signature()
    params = params_of(q, b)
    if "timestamp" not in params:
        raise errors.missing_param("timestamp")
    try:
        ts = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except ValueError as e:
        raise errors.bad_value("timestamp/recvWindow", str(e)) from None
    if not 0 < recv_window <= MAX_RECV_WINDOW_MS:
        raise errors.bad_value("recvWindow", str(recv_window))
    if ts > server_ms + FUTURE_TOLERANCE_MS or server_ms - ts > recv_window:
        raise errors.timestamp_outside_recv_window()
