"""Every partitioning of the graph, declared once.

Partitions start at the first day the configured archive has, so the UI never lists years of "missing" partitions
that no source could fill: BTC_PARTITIONS_START (YYYY-MM-DD) if set; otherwise, for a local mirror
(BINANCE_ARCHIVE_URL a path or file:// URL, the bundled sample included), the day of its first 1m kline file;
otherwise the listing date of the USD-M perpetual (its first funding, 2019-09-10)."""

import datetime as dt
import os
import re

import dagster as dg
import pandas as pd

from btc_assets.lib.data.archive.local import local_root
from btc_assets.lib.research.features.window import WARMUP_DAYS

# The USD-M BTCUSDT perpetual's first funding (GET /fapi/v1/fundingRate) was 2019-09-10 08:00 UTC.
LISTING_DATE = "2019-09-10"
START_VARIABLE = "BTC_PARTITIONS_START"
_DAILY_FILE = re.compile(r"-1m-(\d{4}-\d{2}-\d{2})\.zip$")
_MONTHLY_FILE = re.compile(r"-1m-(\d{4}-\d{2})\.zip$")


def first_archive_day(url: str, symbol: str = "BTCUSDT") -> str | None:
    """The first day of 1m klines a local mirror holds (daily or monthly files); None for a remote archive or a
    mirror without klines."""
    root = local_root(url)
    if root is None:
        return None
    days = []
    for freq, pattern, fmt in (("daily", _DAILY_FILE, "{}"), ("monthly", _MONTHLY_FILE, "{}-01")):
        folder = root / "data" / "futures" / "um" / freq / "klines" / symbol / "1m"
        if folder.is_dir():
            days += [fmt.format(m.group(1)) for f in folder.iterdir() if (m := pattern.search(f.name))]
    return min(days) if days else None


def partitions_start(env=os.environ) -> str:
    """The first daily partition (see the module docstring); a malformed BTC_PARTITIONS_START is refused by name."""
    explicit = env.get(START_VARIABLE, "").strip()
    if explicit:
        try:
            return dt.date.fromisoformat(explicit).isoformat()
        except ValueError:
            raise ValueError(f"{START_VARIABLE}={explicit!r} is not a date: set it to the first day to partition, "
                             f"as YYYY-MM-DD (e.g. {LISTING_DATE}), or unset it to start at the archive's first day"
                             ) from None
    return first_archive_day(env.get("BINANCE_ARCHIVE_URL", ""), env.get("BTC_SYMBOL", "BTCUSDT") or "BTCUSDT") \
        or LISTING_DATE


ARCHIVE_START = partitions_start()

daily = dg.DailyPartitionsDefinition(start_date=ARCHIVE_START, timezone="UTC")
monthly = dg.MonthlyPartitionsDefinition(start_date=ARCHIVE_START[:8] + "01", timezone="UTC")
# Models are trained for a week of trading that starts on Monday 00:00 UTC, on data strictly before it.
weekly = dg.WeeklyPartitionsDefinition(start_date=ARCHIVE_START, day_offset=1, timezone="UTC")

# gold reads WARMUP_DAYS previous days of silver to warm its indicators up (lib/research/features/window.py).
# Before the first partition there is nothing to read: the warm-up is counted from the data there is.
warmup_mapping = dg.TimeWindowPartitionMapping(start_offset=-WARMUP_DAYS, end_offset=0,
                                               allow_nonexistent_upstream_partitions=True)
# labels look ahead by design, into the first minutes of the next day.
next_day_mapping = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1)


def days_of(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The UTC days of the run's partition window (a single-run backfill covers many)."""
    window = context.partition_time_window
    days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
    return [d.date() for d in days]
