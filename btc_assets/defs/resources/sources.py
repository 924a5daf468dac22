"""Where the data comes from: the Binance archive (or a mirror in its layout), the public REST API for the days the
archive has not published yet, and the live collector's hourly recordings.

| variable            | default                            | what                                                |
|---------------------|------------------------------------|-----------------------------------------------------|
| BINANCE_ARCHIVE_URL | https://data.binance.vision        | archive root: https URL, file:// URL or a mirror path |
| BTC_SYMBOL          | BTCUSDT                            | the USD-M perpetual                                 |
| BINANCE_REST_URL    | https://fapi.binance.com           | REST base for unpublished days (empty: no fallback) |
| BTC_STREAMS_DIR     | <BTC_DATA_DIR>/lake/bronze/streams | where `make collect` writes its hourly files        |

`ArchiveWithRestResource` is an `ArchiveResource` (same fields, so it replaces the `archive` resource) that can
also hand out a `PublicRest` client: bronze assets ask it for one when the archive has not published a file.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from btc_assets.lib.data.archive.client import ArchiveClient
from btc_assets.lib.data.collector.salvage import CorruptRecording, HourFile, read_hour_file
from btc_assets.lib.data.rest.client import DEFAULT_REST_URL, PublicRest

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
SAMPLE_ARCHIVE = Path(__file__).resolve().parents[2] / "sample_data" / "archive"


def is_bundled_sample(root: Path | None) -> bool:
    """Whether a local archive root is the bundled sample: its directory, or a copy of it (the same manifest, e.g.
    another checkout of the repository)."""
    if root is None:
        return False
    if root.resolve() == SAMPLE_ARCHIVE.resolve():
        return True
    manifest = root / "synthetic_manifest.json"
    return manifest.is_file() and manifest.read_bytes() == (SAMPLE_ARCHIVE / "synthetic_manifest.json").read_bytes()


class ArchiveResource(dg.ConfigurableResource):
    """Where archive files come from: data.binance.vision or a mirror in its exact layout."""

    base_url: str = Field(default=DEFAULT_ARCHIVE_URL, description="BINANCE_ARCHIVE_URL")
    symbol: str = Field(default="BTCUSDT", description="BTC_SYMBOL")
    timeout_s: float = 30.0
    max_attempts: int = 4

    def client(self) -> ArchiveClient:
        return ArchiveClient(self.base_url, timeout_s=self.timeout_s, max_attempts=self.max_attempts)


class ArchiveWithRestResource(ArchiveResource):
    """The archive, with the public REST API as the source of days the archive has not published yet."""

    rest_url: str = Field(default=DEFAULT_REST_URL, description="BINANCE_REST_URL (empty: archive only)")
    rest_timeout_ms: int = 10_000
    rest_retries: int = 4
    rest_backoff_s: float = 0.5
    rest_page: int = 1500

    def rest_client(self) -> PublicRest | None:
        if not self.rest_url:
            return None
        return PublicRest(self.rest_url, timeout_ms=self.rest_timeout_ms, retries=self.rest_retries,
                          backoff_s=self.rest_backoff_s)


class StreamRecordingsResource(dg.ConfigurableResource):
    """The folder the live collector writes its hourly gzip JSON-lines files to."""

    root: str = Field(description="BTC_STREAMS_DIR")

    def files(self, kind: str, day: str) -> list[Path]:
        return sorted((Path(self.root) / kind / day).glob(f"{kind}-{day}-*.jsonl.gz"))



def read_recording(content: bytes, where: str) -> HourFile:
    """Every complete record of one collector hour file (crash-cut ends salvaged); damage inside fails the run
    naming the file, byte and line. Bronze and silver read the recordings through this one function."""
    try:
        return read_hour_file(content, where)
    except CorruptRecording as e:
        raise dg.Failure(str(e), metadata={"file": where, "byte_offset": e.byte_offset, "line": e.line}) from e
