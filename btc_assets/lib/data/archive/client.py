"""Download and checksum-verify files of the Binance public data archive.

The same client reads the real site over HTTP(S), a local HTTP server, or a local mirror directory in the
archive's layout (plain path or file:// URL), so tests and offline demos run the production code path.
Parsing the CSV inside a fetched zip is the job of `csv_reader`.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

import requests

from btc_assets.lib.data.archive.errors import (NOT_PUBLISHED_HINT, ArchiveError, ArchiveNotPublished,
                                                ArchiveUnreachable,
                                                ChecksumMismatch, ChecksumMissing)
from btc_assets.lib.data.archive.files import ArchiveFile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedFile:
    """A downloaded zip whose sha256 matched its .CHECKSUM."""

    file: ArchiveFile
    content: bytes
    sha256: str
    checksum_text: str
    source_url: str

    @property
    def size(self) -> int:
        return len(self.content)


# "<sha256>  <name>" as written by sha256sum; one space and the binary-mode "*" marker are tolerated too.
_CHECKSUM_RE = re.compile(r"\A\s*([0-9a-fA-F]{64})[ \t]+\*?(\S+)\s*\Z")
_RETRYABLE_EXC = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                  requests.exceptions.ContentDecodingError)


def parse_checksum(text: str, expected_name: str, where: str) -> str:
    """Return the lowercase hex digest from a .CHECKSUM text, checking that it names `expected_name`."""
    m = _CHECKSUM_RE.match(text)
    if not m:
        raise ChecksumMismatch(
            f"{where}: cannot parse checksum file, expected '<64 hex sha256>  {expected_name}', "
            f"got {text[:200]!r}: re-download it; if it persists the mirror serves a broken .CHECKSUM", where)
    digest, named = m.group(1).lower(), m.group(2)
    if named != expected_name:
        raise ChecksumMismatch(
            f"{where}: checksum file is for {named!r}, not {expected_name!r}: the mirror has the wrong "
            f".CHECKSUM next to this zip; re-download both or fix the mirror", where, expected=digest)
    return digest


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        logger.warning("ignoring unparseable Retry-After header %r", value)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


class ArchiveClient:
    """Fetches archive files from an HTTP(S) base URL, a file:// URL or a mirror directory."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0, max_attempts: int = 4,
                 backoff_s: float = 1.0, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_wait_s: float = 300.0) -> None:
        if not base_url or not str(base_url).strip():
            raise ValueError("ArchiveClient: base_url is empty; pass e.g. 'https://data.binance.vision' "
                             "or the path of a local mirror")
        if max_attempts < 1:
            raise ValueError(f"ArchiveClient: max_attempts must be >= 1, got {max_attempts}")
        base_url = str(base_url)
        scheme = urlparse(base_url).scheme.lower()
        self._root: Path | None = None
        if scheme in ("http", "https"):
            self.base_url = base_url.rstrip("/")
        elif scheme == "file":
            self._root = Path(unquote(urlparse(base_url).path)).resolve()
            self.base_url = self._root.as_uri()
        elif len(scheme) <= 1:  # no scheme, or a Windows drive letter
            # Resolved now so a later chdir does not silently point the client elsewhere.
            self._root = Path(base_url).expanduser().resolve()
            self.base_url = str(self._root)
        else:
            raise ValueError(f"ArchiveClient: unsupported URL scheme {scheme!r} in {base_url!r}; "
                             "use http(s)://, file:// or a filesystem path")
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._session = session
        self._owns_session = session is None

    @property
    def is_local(self) -> bool:
        return self._root is not None

    def location(self, relpath: str) -> str:
        """Full URL, or absolute filesystem path for a mirror, of an archive relative path."""
        if self._root is not None:
            return str(self._root / relpath)
        return f"{self.base_url}/{relpath}"

    def close(self) -> None:
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> ArchiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, f: ArchiveFile) -> FetchedFile:
        """Download `f` and its .CHECKSUM and verify the sha256; raises an ArchiveError subclass on failure."""
        zip_loc = self.location(f.relpath)
        sum_loc = self.location(f.checksum_relpath)
        content = self._get(zip_loc)
        try:
            checksum_bytes = self._get(sum_loc)
        except ArchiveNotPublished as exc:
            raise ChecksumMissing(
                f"{zip_loc} exists but its checksum file {sum_loc} does not, so the download cannot be "
                "verified: retry later (the archive may still be uploading it) or check the mirror copied "
                "the .CHECKSUM files too", sum_loc) from exc
        try:
            checksum_text = checksum_bytes.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ChecksumMismatch(f"{sum_loc}: checksum file is not ASCII text ({exc}): re-download it",
                                   sum_loc) from exc
        expected = parse_checksum(checksum_text, f.filename, sum_loc)
        actual = hashlib.sha256(content).hexdigest()
        if actual != expected:
            raise ChecksumMismatch(
                f"{zip_loc}: sha256 of the downloaded zip is {actual} but {sum_loc} says {expected}: "
                "re-download it; if it persists the file was probably replaced upstream (the archive "
                "republishes files) and the .CHECKSUM is out of step", zip_loc, expected=expected, actual=actual)
        return FetchedFile(file=f, content=content, sha256=actual, checksum_text=checksum_text,
                           source_url=zip_loc)

    def exists(self, f: ArchiveFile) -> bool:
        """True if the zip is published. Raises ArchiveUnreachable rather than guessing when it cannot tell."""
        loc = self.location(f.relpath)
        if self._root is not None:
            self._check_root(loc)
            return Path(loc).is_file()
        return self._http("HEAD", loc) is not None

    # -- transport ------------------------------------------------------------------------------------

    def _get(self, loc: str) -> bytes:
        if self._root is not None:
            return self._read_local(loc)
        resp = self._http("GET", loc)
        if resp is None:
            raise ArchiveNotPublished(f"{loc} was not found (HTTP 404): {NOT_PUBLISHED_HINT}", loc)
        return resp.content

    def _check_root(self, loc: str) -> None:
        if not self._root.is_dir():  # type: ignore[union-attr]
            raise ArchiveUnreachable(
                f"cannot read {loc}: the mirror directory {self._root} does not exist or is not a "
                "directory: check the archive base_url setting", loc)

    def _read_local(self, loc: str) -> bytes:
        self._check_root(loc)
        try:
            return Path(loc).read_bytes()
        except FileNotFoundError as exc:
            raise ArchiveNotPublished(f"{loc} is not in the local mirror: {NOT_PUBLISHED_HINT}; or add the "
                                      "file to the mirror", loc) from exc
        except OSError as exc:
            raise ArchiveUnreachable(f"cannot read {loc} from the local mirror ({exc}): check the file's "
                                     "permissions and that it is a regular file", loc) from exc

    def _http(self, method: str, url: str) -> requests.Response | None:
        """One request with retries. Returns None on 404, raises ArchiveError subclasses otherwise."""
        if self._session is None:
            self._session = requests.Session()
        last_problem = "no attempt made"
        last_exc: BaseException | None = None
        for attempt in range(self.max_attempts):
            retry_after: float | None = None
            try:
                resp = self._session.request(method, url, timeout=self.timeout_s, allow_redirects=True)
            except _RETRYABLE_EXC as exc:
                last_problem, last_exc = f"{type(exc).__name__}: {exc}", exc
            else:
                if resp.status_code == 200:
                    return resp
                if resp.status_code == 404:
                    return None
                if resp.status_code == 429 or resp.status_code >= 500:
                    last_problem, last_exc = f"HTTP {resp.status_code} {resp.reason}", None
                    if resp.status_code in (429, 503):
                        retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
                else:
                    raise ArchiveError(
                        f"{method} {url} failed with HTTP {resp.status_code} {resp.reason}: not retried; "
                        "check the base URL and that the path exists in the archive "
                        "(403 from data.binance.vision usually means a wrong path)", url)
            if attempt + 1 < self.max_attempts:
                delay = retry_after if retry_after is not None else self.backoff_s * 2 ** attempt
                delay = min(delay, self.max_wait_s)
                logger.warning("%s %s: %s (attempt %d/%d); retrying in %.1fs", method, url, last_problem,
                               attempt + 1, self.max_attempts, delay)
                self._sleep(delay)
        raise ArchiveUnreachable(
            f"{method} {url} failed after {self.max_attempts} attempts; last error: {last_problem}. "
            "Check network access to the archive (or that the local server is running) and retry later",
            url) from last_exc
