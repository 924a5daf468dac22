"""Resources of the REST fallback and the live collector (kept out of resources.py, which wires them in).

| variable          | default                            | what                                               |
|-------------------|------------------------------------|----------------------------------------------------|
| BINANCE_REST_URL  | https://fapi.binance.com           | REST base for unpublished days (empty: no fallback) |
| BTC_STREAMS_DIR   | <BTC_DATA_DIR>/lake/bronze/streams | where `make collect` writes its hourly files       |

`ArchiveWithRestResource` is an `ArchiveResource` (same fields, so it replaces the `archive` resource) that can
also hand out a `PublicRest` client: bronze assets ask it for one when the archive has not published a file.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from btc_assets.defs.resources import ArchiveResource
from btc_assets.lib.data.rest.download import DEFAULT_REST_URL, PublicRest


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
