"""Where a local mirror of the archive lives, when BINANCE_ARCHIVE_URL names one (a path or a file:// URL)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse


def local_root(url: str) -> Path | None:
    """The directory of a local mirror; None for a remote archive (http/https) or an empty setting."""
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return Path(unquote(urlparse(url).path))
    if url and len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(url).expanduser()
    return None
