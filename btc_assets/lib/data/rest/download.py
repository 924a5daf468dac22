"""Days the archive has not published yet, from Binance's public REST API, rendered into the archive's zip + CSV
layout so silver reads a REST day exactly like an archive day.

`download_file(rest, archive_file)` pages through one archive file's period: klines (1m trade, mark, index,
premium index) by startTime, aggTrades by fromId, fundingRate by startTime, metrics from the five 5-minute
statistics of the last 30 days (rest/metrics.py). Datasets the API cannot rebuild (bookDepth: no history endpoint;
metrics older than 30 days) raise `RestUnsupported`.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

from btc_assets.lib.data.archive.files import ArchiveFile
from btc_assets.lib.data.rest.client import PublicRest, RestUnsupported, kline_weight, period_ms
from btc_assets.lib.data.rest.layouts import KLINE_PATHS, render_csv, rows_for
from btc_assets.lib.data.rest.metrics import fetch_metrics
from btc_assets.lib.data.rest.errors import BinanceError


def fetch_rows(rest: PublicRest, f: ArchiveFile, page: int = 1500) -> list:
    """Every REST row of the file's period, oldest first, paged; duplicates at page borders removed."""
    start, end = period_ms(f)
    sym = f.symbol
    if f.dataset in KLINE_PATHS:
        path, out, cursor = KLINE_PATHS[f.dataset], [], start
        key = "pair" if f.dataset == "indexPriceKlines" else "symbol"
        while cursor < end:
            rows = rest.get(path, {key: sym, "interval": f.interval, "startTime": cursor, "endTime": end - 1,
                                   "limit": min(page, 1500)}, kline_weight(min(page, 1500)))
            if not rows:
                break
            out += [r for r in rows if int(r[0]) >= cursor]
            cursor = int(rows[-1][0]) + 1
            if len(rows) < min(page, 1500):  # a short page is the last one
                break
        return out
    if f.dataset == "aggTrades":
        return _agg_trades(rest, sym, start, end, min(page, 1000))
    if f.dataset == "fundingRate":
        out, cursor = [], start
        while cursor < end:
            rows = rest.get("/fapi/v1/fundingRate", {"symbol": sym, "startTime": cursor, "endTime": end - 1,
                                                     "limit": min(page, 1000)}, 1)
            out += rows
            if len(rows) < min(page, 1000):
                break
            cursor = int(rows[-1]["fundingTime"]) + 1
        return out
    if f.dataset == "metrics":

        return fetch_metrics(rest, f, page)
    raise RestUnsupported(f"{f.relpath}: the REST API cannot rebuild the {f.dataset} archive file (Binance has no "
                          f"history endpoint for it); wait for the archive to publish it (about a day after the "
                          "period ends).")


def _agg_trades(rest: PublicRest, sym: str, start: int, end: int, limit: int) -> list:
    """Anchor on the first hour with trades (startTime/endTime may span one hour at most), then page by fromId."""
    out, anchor = [], start
    while not out and anchor < end:
        out = rest.get("/fapi/v1/aggTrades", {"symbol": sym, "startTime": anchor,
                                              "endTime": min(anchor + 3_599_999, end - 1), "limit": limit}, 20)
        anchor += 3_600_000
    while out:
        rows = rest.get("/fapi/v1/aggTrades", {"symbol": sym, "fromId": int(out[-1]["a"]) + 1, "limit": limit}, 20)
        keep = [r for r in rows if int(r["T"]) < end]
        out += keep
        if len(keep) < len(rows) or len(rows) < limit:
            break
    return out


@dataclass(frozen=True)
class RestFile:
    """An archive-layout zip built from REST rows, with its .CHECKSUM text, like a fetched archive file."""

    file: ArchiveFile
    content: bytes
    sha256: str
    checksum_text: str
    source_url: str
    rows: int

    @property
    def size(self) -> int:
        return len(self.content)


def download_file(rest: PublicRest, f: ArchiveFile, page: int = 1500) -> RestFile:
    """Fetch the file's period from REST and render it into the archive's zip + CSV (with header) layout."""
    rows = fetch_rows(rest, f, page)
    if not rows:
        raise BinanceError(f"{f.relpath}: REST returned no rows for {f.date_label} at {rest.base_url}: the period "
                           "may be in the future or the symbol unknown; check the partition and BTC_SYMBOL.")
    csv_text = render_csv(f.dataset, rows_for(f.dataset, rows))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f.csv_name, csv_text)
        zf.comment = f"REST {rest.base_url} {len(rows)} rows".encode()
    content = buf.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    return RestFile(f, content, digest, f"{digest}  {f.filename}\n", f"{rest.base_url} (REST)", len(rows))
