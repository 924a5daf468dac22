"""A day of the archive's `metrics` file rebuilt from Binance's trading statistics (GET /futures/data/..., period
5m), for days the archive has not published yet.

The archive's columns come from five endpoints, joined on their 5-minute timestamp (= the archive's create_time):

| archive column                    | endpoint (/futures/data/...) | field                                 |
|-----------------------------------|------------------------------|---------------------------------------|
| sum_open_interest, _value         | openInterestHist             | sumOpenInterest, sumOpenInterestValue |
| count_toptrader_long_short_ratio  | topLongShortAccountRatio     | longShortRatio                        |
| sum_toptrader_long_short_ratio    | topLongShortPositionRatio    | longShortRatio                        |
| count_long_short_ratio            | globalLongShortAccountRatio  | longShortRatio                        |
| sum_taker_long_short_vol_ratio    | takerlongshortRatio          | buySellRatio                          |

A series without a row at some time leaves that field empty: nothing is interpolated or carried forward. Binance
serves only the last 30 days of these statistics, so an older day is refused before anything is fetched, with a
message that says to take it from the archive.
"""

from __future__ import annotations

import re

import pandas as pd

from btc_assets.lib.data.archive.files import ArchiveFile
from btc_assets.lib.data.rest.client import PublicRest, RestRefused, RestUnsupported, period_ms

SLOT_MS = 300_000
HISTORY_DAYS = 30
MAX_LIMIT = 500
# (path, {reply field: archive column})
SERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("/futures/data/openInterestHist",
     {"sumOpenInterest": "sum_open_interest", "sumOpenInterestValue": "sum_open_interest_value"}),
    ("/futures/data/topLongShortAccountRatio", {"longShortRatio": "count_toptrader_long_short_ratio"}),
    ("/futures/data/topLongShortPositionRatio", {"longShortRatio": "sum_toptrader_long_short_ratio"}),
    ("/futures/data/globalLongShortAccountRatio", {"longShortRatio": "count_long_short_ratio"}),
    ("/futures/data/takerlongshortRatio", {"buySellRatio": "sum_taker_long_short_vol_ratio"}),
)


def _too_old(f: ArchiveFile, server_ms: int, why: str) -> RestUnsupported:
    now = pd.Timestamp(server_ms, unit="ms", tz="UTC")
    return RestUnsupported(
        f"{f.relpath}: metrics for {f.date_label} cannot come from the REST API: Binance serves the 5-minute "
        f"statistics (open interest, long/short ratios) for the last {HISTORY_DAYS} days only and {why} "
        f"(server time {now:%Y-%m-%d %H:%M} UTC). Use the archive for {f.date_label} (data.binance.vision "
        "daily/metrics keeps every published day): check that the archive resource points at it.")


def _series(rest: PublicRest, f: ArchiveFile, path: str, start: int, end: int, limit: int, server_ms: int) -> list:
    """Every row of one statistic in [start, end), one window of `limit` slots per request (a window cannot hold
    more rows than a page, whichever end of the window Binance fills a page from)."""
    out, cursor = [], start
    while cursor < end:
        window_end = min(cursor + limit * SLOT_MS, end) - 1
        try:
            out += rest.get(path, {"symbol": f.symbol, "period": "5m", "startTime": cursor, "endTime": window_end,
                                   "limit": limit}, 1)
        except RestRefused as e:
            if e.code == -1130 and re.search(r"(start|end)Time", e.msg):  # "parameter 'startTime' is invalid."
                raise _too_old(f, server_ms, f"Binance refused the window ({e.code}: {e.msg})") from None
            raise
        cursor = window_end + 1
    return out


def fetch_metrics(rest: PublicRest, f: ArchiveFile, page: int = MAX_LIMIT) -> list[dict]:
    """The day's rows of the five statistics joined on their timestamp, oldest first: {"timestamp", "symbol",
    <archive column>: <value as sent>} with absent series left out of the row."""
    start, end = period_ms(f)
    server_ms = int(rest.get("/fapi/v1/time", {}, 1)["serverTime"])
    if start < server_ms - HISTORY_DAYS * 86_400_000:
        days = (server_ms - start) // 86_400_000
        raise _too_old(f, server_ms, f"{f.date_label} began {days} days ago")
    joined: dict[int, dict] = {}
    for path, fields in SERIES:
        for row in _series(rest, f, path, start, end, max(1, min(page, MAX_LIMIT)), server_ms):
            t = int(row["timestamp"])
            if start <= t < end:
                slot = joined.setdefault(t, {"timestamp": t, "symbol": f.symbol})
                slot.update({col: row[field] for field, col in fields.items() if row.get(field) is not None})
    return [joined[t] for t in sorted(joined)]
