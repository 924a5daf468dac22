"""Request authentication as Kraken Futures does it: headers APIKey, Nonce and Authent, with
Authent = base64(HMAC-SHA512(base64decode(secret), SHA256(postData + nonce + endpointPath))), postData the raw
(url-encoded) query string followed by the raw form body, endpointPath the request path without its leading
"/derivatives" (/api/v3/sendorder). Nonces of a key must increase: one at or below the last accepted one is refused
(nonceDuplicate when equal, nonceBelowThreshold when lower), as Kraken does. A wrong key or signature, or a
missing header, is authenticationError; a refused request does not move the key's nonce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass, field

from btc_assets_tests.fakes.kraken.errors import KrakenApiError


@dataclass
class Credentials:
    api_key: str
    api_secret: str  # base64, as Kraken issues them
    last_nonce: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def authent(secret_b64: str, post_data: str, nonce: str, path: str) -> str:
    """The Authent header a request to `path` with this postData and nonce must carry."""
    endpoint = path[len("/derivatives"):] if path.startswith("/derivatives") else path
    digest = hashlib.sha256((post_data + nonce + endpoint).encode()).digest()
    return base64.b64encode(hmac.new(base64.b64decode(secret_b64), digest, hashlib.sha512).digest()).decode()


def check(headers, post_data: str, path: str, creds: Credentials) -> None:
    """Raise the KrakenApiError Kraken would give for this signed request, or accept it (and its nonce)."""
    key, nonce, sig = headers.get("APIKey", ""), headers.get("Nonce", ""), headers.get("Authent", "")
    if not key or not sig or not nonce:
        raise KrakenApiError("authenticationError")
    if not hmac.compare_digest(key.encode(), creds.api_key.encode()):
        raise KrakenApiError("authenticationError")
    if not hmac.compare_digest(sig.encode(), authent(creds.api_secret, post_data, nonce, path).encode()):
        raise KrakenApiError("authenticationError")
    try:
        n = int(nonce)
    except ValueError:
        raise KrakenApiError("authenticationError") from None
    with creds.lock:
        if n == creds.last_nonce:
            raise KrakenApiError("nonceDuplicate")
        if n < creds.last_nonce:
            raise KrakenApiError("nonceBelowThreshold")
        creds.last_nonce = n
