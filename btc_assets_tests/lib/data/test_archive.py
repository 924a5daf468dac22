"""Tests of archive paths, fetching (local mirror, file:// and a local HTTP server with injected faults) and
checksum verification. Nothing leaves 127.0.0.1 and no test really sleeps: the client's sleep is injected."""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

from btc_assets.lib.data.archive.client import ArchiveClient
from btc_assets.lib.data.archive.errors import (ArchiveError, ArchiveNotPublished, ArchiveUnreachable,
                                                ChecksumMismatch, ChecksumMissing, MalformedCsv)
from btc_assets.lib.data.archive.files import ArchiveFile, daily_file, monthly_file
from btc_assets.lib.data.archive.client import _retry_after_seconds

MIRROR = Path(__file__).resolve().parents[3] / "btc_assets" / "sample_data" / "archive"
KLINES_DAY = daily_file("klines", "BTCUSDT", dt.date(2024, 1, 1), "1m")
SPOT_DAY = daily_file("klines", "BTCUSDT", dt.date(2020, 1, 1), "1m", market="spot")
FUNDING_MONTH = monthly_file("fundingRate", "BTCUSDT", dt.date(2026, 4, 1))
MISSING_DAY = daily_file("klines", "BTCUSDT", dt.date(2030, 1, 1), "1m")


# -- paths ----------------------------------------------------------------------------------------------

def test_daily_klines_path() -> None:
    assert KLINES_DAY.filename == "BTCUSDT-1m-2024-01-01.zip"
    assert KLINES_DAY.relpath == "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip"
    assert KLINES_DAY.checksum_relpath == KLINES_DAY.relpath + ".CHECKSUM"
    assert KLINES_DAY.csv_name == "BTCUSDT-1m-2024-01-01.csv"


def test_monthly_klines_path_uses_the_month_of_any_day() -> None:
    f = monthly_file("klines", "BTCUSDT", dt.date(2024, 2, 17), "1m")
    assert f.filename == "BTCUSDT-1m-2024-02.zip"
    assert f.relpath == "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip"
    assert f.day == dt.date(2024, 2, 1)
    assert f == monthly_file("klines", "BTCUSDT", dt.date(2024, 2, 1), "1m")


def test_funding_aggtrades_spot_and_other_kline_paths() -> None:
    assert FUNDING_MONTH.filename == "BTCUSDT-fundingRate-2026-04.zip"
    assert FUNDING_MONTH.relpath == "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-04.zip"
    agg = daily_file("aggTrades", "BTCUSDT", dt.date(2024, 1, 1))
    assert agg.relpath == "data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-01.zip"
    assert SPOT_DAY.relpath == "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip"
    mark = daily_file("markPriceKlines", "BTCUSDT", dt.date(2024, 1, 1), "1m")
    assert mark.relpath == "data/futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip"


@pytest.mark.parametrize("call, fragment", [
    (lambda: daily_file("klines", "BTCUSDT", dt.date(2024, 1, 1)), "needs an interval"),
    (lambda: daily_file("premiumIndexKlines", "BTCUSDT", dt.date(2024, 1, 1)), "needs an interval"),
    (lambda: daily_file("klines", "BTCUSDT", dt.date(2024, 1, 1), "7m"), "needs an interval"),
    (lambda: daily_file("klines", "BTCUSDT", dt.date(2024, 1, 1), "1w"), "needs an interval"),
    (lambda: daily_file("klines", "BTCUSDT", dt.date(2024, 1, 1), "1s"), "only for spot"),
    (lambda: daily_file("aggTrades", "BTCUSDT", dt.date(2024, 1, 1), "1m"), "has no interval"),
    (lambda: monthly_file("fundingRate", "BTCUSDT", dt.date(2024, 1, 1), "1m"), "has no interval"),
    (lambda: daily_file("fundingRate", "BTCUSDT", dt.date(2024, 1, 1)), "monthly only"),
    (lambda: daily_file("candles", "BTCUSDT", dt.date(2024, 1, 1)), "unknown dataset"),
    (lambda: daily_file("aggTrades", "btcusdt", dt.date(2024, 1, 1)), "upper case"),
    (lambda: daily_file("aggTrades", "BTCUSDT", dt.datetime(2024, 1, 1)), "datetime.date"),
    (lambda: daily_file("aggTrades", "BTCUSDT", dt.date(2024, 1, 1), market="futures/xx"), "market"),
    (lambda: ArchiveFile("aggTrades", "BTCUSDT", "weekly", dt.date(2024, 1, 1)), "period"),
])
def test_invalid_files_are_rejected(call, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        call()


def test_monthly_only_intervals_allowed_monthly() -> None:
    assert monthly_file("klines", "BTCUSDT", dt.date(2024, 1, 1), "1mo").filename == "BTCUSDT-1mo-2024-01.zip"


# -- local mirror ---------------------------------------------------------------------------------------

def _assert_genuine(fetched, f: ArchiveFile) -> None:
    path = MIRROR / f.relpath
    assert fetched.file == f
    assert fetched.content == path.read_bytes()
    assert fetched.size == path.stat().st_size
    assert fetched.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fetched.checksum_text == (MIRROR / f.checksum_relpath).read_text()


@pytest.mark.parametrize("f", [KLINES_DAY, SPOT_DAY, FUNDING_MONTH], ids=["um", "spot", "funding"])
def test_fetch_from_mirror_path(f: ArchiveFile) -> None:
    fetched = ArchiveClient(str(MIRROR) + "/").fetch(f)
    _assert_genuine(fetched, f)
    assert fetched.source_url == str(MIRROR / f.relpath)


def test_fetch_from_file_url_and_relative_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _assert_genuine(ArchiveClient(MIRROR.as_uri()).fetch(KLINES_DAY), KLINES_DAY)
    monkeypatch.chdir(MIRROR.parent.parent)
    client = ArchiveClient("sample_data/archive")
    monkeypatch.chdir("/")  # resolved at construction, so a later chdir must not matter
    _assert_genuine(client.fetch(KLINES_DAY), KLINES_DAY)


def test_local_missing_file_is_not_published() -> None:
    client = ArchiveClient(str(MIRROR))
    with pytest.raises(ArchiveNotPublished, match="retry later") as err:
        client.fetch(MISSING_DAY)
    assert err.value.path.endswith(MISSING_DAY.relpath)
    assert MISSING_DAY.filename in str(err.value)
    assert client.exists(KLINES_DAY) and not client.exists(MISSING_DAY)


def _copy_mirror(dst: Path, files: list[ArchiveFile]) -> Path:
    for f in files:
        for rel in (f.relpath, f.checksum_relpath):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(MIRROR / rel, dst / rel)
    return dst


def test_local_missing_checksum_and_missing_root(tmp_path: Path) -> None:
    root = _copy_mirror(tmp_path / "mirror", [KLINES_DAY])
    (root / KLINES_DAY.checksum_relpath).unlink()
    with pytest.raises(ChecksumMissing, match="cannot be verified") as err:
        ArchiveClient(str(root)).fetch(KLINES_DAY)
    assert err.value.path.endswith(".CHECKSUM")
    gone = ArchiveClient(str(tmp_path / "nowhere"))
    with pytest.raises(ArchiveUnreachable, match="base_url"):
        gone.fetch(KLINES_DAY)
    with pytest.raises(ArchiveUnreachable):
        gone.exists(KLINES_DAY)


@pytest.mark.parametrize("text", [
    "{sha}  BTCUSDT-1m-2024-01-01.zip\n", "{SHA} BTCUSDT-1m-2024-01-01.zip", "{sha} *BTCUSDT-1m-2024-01-01.zip\r\n",
])
def test_checksum_format_variants_accepted(tmp_path: Path, text: str) -> None:
    root = _copy_mirror(tmp_path, [KLINES_DAY])
    sha = hashlib.sha256((root / KLINES_DAY.relpath).read_bytes()).hexdigest()
    (root / KLINES_DAY.checksum_relpath).write_text(text.format(sha=sha, SHA=sha.upper()))
    assert ArchiveClient(str(root)).fetch(KLINES_DAY).sha256 == sha


def test_checksum_naming_another_file_or_garbage(tmp_path: Path) -> None:
    root = _copy_mirror(tmp_path, [KLINES_DAY])
    sha = hashlib.sha256((root / KLINES_DAY.relpath).read_bytes()).hexdigest()
    (root / KLINES_DAY.checksum_relpath).write_text(f"{sha}  BTCUSDT-1m-2024-01-02.zip\n")
    with pytest.raises(ChecksumMismatch, match="BTCUSDT-1m-2024-01-02.zip"):
        ArchiveClient(str(root)).fetch(KLINES_DAY)
    (root / KLINES_DAY.checksum_relpath).write_text("<html>Access denied</html>")
    with pytest.raises(ChecksumMismatch, match="cannot parse"):
        ArchiveClient(str(root)).fetch(KLINES_DAY)


def test_client_argument_validation() -> None:
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        ArchiveClient("ftp://example.org/archive")
    with pytest.raises(ValueError, match="empty"):
        ArchiveClient("")
    with pytest.raises(ValueError, match="max_attempts"):
        ArchiveClient(str(MIRROR), max_attempts=0)


def test_errors_survive_pickling() -> None:
    err = pickle.loads(pickle.dumps(MalformedCsv("bad", "x.zip", row=7, column="open", value="abc")))
    assert (str(err), err.path, err.row, err.column, err.value) == ("bad", "x.zip", 7, "open", "abc")
    mm = pickle.loads(pickle.dumps(ChecksumMismatch("m", "u", expected="a", actual="b")))
    assert (mm.path, mm.expected, mm.actual) == ("u", "a", "b")


def test_retry_after_parsing() -> None:
    assert _retry_after_seconds("7") == 7.0
    assert _retry_after_seconds(None) is None
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now
    assert _retry_after_seconds("soon") is None


# -- HTTP -------------------------------------------------------------------------------------------------

class _Archive:
    """State shared with the handler: files under `root`, scripted responses per path, a request log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.script: dict[str, list[object]] = {}  # path -> responses to give before serving normally
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()  # frees "slow" handlers at teardown
        self.url = ""


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        state: _Archive = self.server.state  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0].lstrip("/")
        state.requests.append((self.command, path))
        script = state.script.get(path)
        action = script.pop(0) if script else None
        if action == "slow":
            state.release.wait(10)  # longer than the client's timeout; released at teardown
            return
        if action is not None:
            status, headers = action if isinstance(action, tuple) else (action, {})
            self._reply(status, b"", headers, send_body)
            return
        file = state.root / path
        if file.is_file():
            self._reply(200, file.read_bytes(), {}, send_body)
        else:
            self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>", {}, send_body)

    def _reply(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Archive]:
    state = _Archive(_copy_mirror(tmp_path / "served", [KLINES_DAY, SPOT_DAY, FUNDING_MONTH]))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def _client(url: str, sleeps: list[float], **kw: object) -> ArchiveClient:
    session = requests.Session()
    session.trust_env = False  # an environment proxy must not intercept 127.0.0.1
    return ArchiveClient(url, session=session, sleep=sleeps.append, **kw)  # type: ignore[arg-type]


def test_http_fetch_and_exists(server: _Archive) -> None:
    client = _client(server.url, [])
    for f in (KLINES_DAY, SPOT_DAY, FUNDING_MONTH):
        fetched = client.fetch(f)
        _assert_genuine(fetched, f)
        assert fetched.source_url == server.url + f.relpath
    assert client.exists(KLINES_DAY) and not client.exists(MISSING_DAY)
    assert ("HEAD", KLINES_DAY.relpath) in server.requests


def test_http_404_is_not_published_and_not_retried(server: _Archive) -> None:
    sleeps: list[float] = []
    with pytest.raises(ArchiveNotPublished, match="HTTP 404") as err:
        _client(server.url, sleeps).fetch(MISSING_DAY)
    assert err.value.path == server.url + MISSING_DAY.relpath
    assert sleeps == [] and server.requests == [("GET", MISSING_DAY.relpath)]


def test_http_500_then_200_is_retried(server: _Archive) -> None:
    server.script[KLINES_DAY.relpath] = [500]
    sleeps: list[float] = []
    _assert_genuine(_client(server.url, sleeps, backoff_s=0.5).fetch(KLINES_DAY), KLINES_DAY)
    assert sleeps == [0.5]
    assert server.requests.count(("GET", KLINES_DAY.relpath)) == 2


def test_http_always_503_gives_unreachable_with_exponential_backoff(server: _Archive) -> None:
    server.script[KLINES_DAY.relpath] = [503] * 10
    sleeps: list[float] = []
    with pytest.raises(ArchiveUnreachable, match="after 4 attempts.*HTTP 503") as err:
        _client(server.url, sleeps, backoff_s=0.5, max_attempts=4).fetch(KLINES_DAY)
    assert sleeps == [0.5, 1.0, 2.0]
    assert server.requests.count(("GET", KLINES_DAY.relpath)) == 4
    assert err.value.path == server.url + KLINES_DAY.relpath
    server.script[KLINES_DAY.relpath] = [503] * 10
    with pytest.raises(ArchiveUnreachable):  # exists() must not answer "no" when it cannot tell
        _client(server.url, [], max_attempts=2).exists(KLINES_DAY)


def test_http_429_honours_retry_after(server: _Archive) -> None:
    server.script[KLINES_DAY.checksum_relpath] = [(429, {"Retry-After": "7"})]
    sleeps: list[float] = []
    _assert_genuine(_client(server.url, sleeps, backoff_s=0.5).fetch(KLINES_DAY), KLINES_DAY)
    assert sleeps == [7.0]


def test_http_other_4xx_is_an_error_without_retry(server: _Archive) -> None:
    server.script[KLINES_DAY.relpath] = [403]
    sleeps: list[float] = []
    with pytest.raises(ArchiveError, match="HTTP 403") as err:
        _client(server.url, sleeps).fetch(KLINES_DAY)
    assert type(err.value) is ArchiveError and sleeps == []


def test_http_slow_response_times_out(server: _Archive) -> None:
    server.script[KLINES_DAY.relpath] = ["slow", "slow"]
    sleeps: list[float] = []
    with pytest.raises(ArchiveUnreachable, match="Timeout") as err:
        _client(server.url, sleeps, timeout_s=0.2, max_attempts=2, backoff_s=0.25).fetch(KLINES_DAY)
    assert sleeps == [0.25]
    assert isinstance(err.value.__cause__, requests.Timeout)


def test_http_connection_refused_is_unreachable() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(ArchiveUnreachable, match="ConnectionError"):
        _client(f"http://127.0.0.1:{port}", sleeps, max_attempts=3, backoff_s=1.0).fetch(KLINES_DAY)
    assert sleeps == [1.0, 2.0]


def test_http_checksum_mismatch_when_file_modified(server: _Archive) -> None:
    zip_path = server.root / KLINES_DAY.relpath
    zip_path.write_bytes(zip_path.read_bytes() + b"\0")
    expected = (server.root / KLINES_DAY.checksum_relpath).read_text().split()[0]
    with pytest.raises(ChecksumMismatch) as err:
        _client(server.url, []).fetch(KLINES_DAY)
    msg = str(err.value)
    assert expected in msg and hashlib.sha256(zip_path.read_bytes()).hexdigest() in msg
    assert "re-download" in msg and KLINES_DAY.filename in msg
    assert err.value.expected == expected


def test_http_missing_checksum(server: _Archive) -> None:
    (server.root / KLINES_DAY.checksum_relpath).unlink()
    with pytest.raises(ChecksumMissing, match="cannot be verified") as err:
        _client(server.url, []).fetch(KLINES_DAY)
    assert err.value.path == server.url + KLINES_DAY.checksum_relpath
