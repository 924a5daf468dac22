"""Every partitioning of the graph, declared once.

Partitions start at the first day the configured archive has, so the UI never lists years of "missing" partitions
that no source could fill: BTC_PARTITIONS_START (YYYY-MM-DD) if set; otherwise, for a local mirror
(BINANCE_ARCHIVE_URL a path or file:// URL, the bundled sample included), the day of its first 1m kline file;
otherwise the listing date of the USD-M perpetual (its first funding, 2019-09-10). They end at BTC_PARTITIONS_END
if set, at the bundled sample's last day when it is the archive, and are open-ended (one more each UTC day)
otherwise."""

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
END_VARIABLE = "BTC_PARTITIONS_END"
_DAILY_FILE = re.compile(r"-1m-(\d{4}-\d{2}-\d{2})\.zip$")
_MONTHLY_FILE = re.compile(r"-1m-(\d{4}-\d{2})\.zip$")


def _archive_days(url: str, symbol: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(first, last) day of each 1m kline file a local mirror holds (a monthly file spans its month); [] for a
    remote archive or a mirror without klines."""
    root = local_root(url)
    if root is None:
        return []
    spans = []
    for freq, pattern in (("daily", _DAILY_FILE), ("monthly", _MONTHLY_FILE)):
        folder = root / "data" / "futures" / "um" / freq / "klines" / symbol / "1m"
        if folder.is_dir():
            for f in folder.iterdir():
                if m := pattern.search(f.name):
                    day = pd.Timestamp(m.group(1))
                    spans.append((day, day if freq == "daily" else day + pd.offsets.MonthEnd(0)))
    return spans


def first_archive_day(url: str, symbol: str = "BTCUSDT") -> str | None:
    """The first day of 1m klines a local mirror holds (daily or monthly files); None for a remote archive or a
    mirror without klines."""
    spans = _archive_days(url, symbol)
    return f"{min(a for a, _ in spans):%Y-%m-%d}" if spans else None


def last_archive_day(url: str, symbol: str = "BTCUSDT") -> str | None:
    """The last day of 1m klines a local mirror holds (a monthly file counts to its month's last day)."""
    spans = _archive_days(url, symbol)
    return f"{max(b for _, b in spans):%Y-%m-%d}" if spans else None


def _date_setting(env, variable: str, what: str) -> str | None:
    """The variable's date (YYYY-MM-DD), None when unset; a malformed one refused by name, saying what to set."""
    explicit = env.get(variable, "").strip()
    if not explicit:
        return None
    try:
        return dt.date.fromisoformat(explicit).isoformat()
    except ValueError:
        raise ValueError(f"{variable}={explicit!r} is not a date: set it to {what}") from None


def _symbol(env) -> str:
    return env.get("BTC_SYMBOL", "BTCUSDT") or "BTCUSDT"


def partitions_end(env=os.environ) -> str | None:
    """The last daily partition, or None (open-ended: a partition appears each UTC day). BTC_PARTITIONS_END if set;
    for the bundled sample (a fixed 60 days, nothing can be added to it) its last day, so the UI does not list every
    day since as missing; any other archive, local mirrors included, stays open (live trading needs today)."""
    explicit = _date_setting(env, END_VARIABLE, "the last day to partition, as YYYY-MM-DD, or unset it for "
                             "partitions up to today")
    if explicit:
        return explicit
    from btc_assets.defs.resources.sources import is_bundled_sample

    root = local_root(env.get("BINANCE_ARCHIVE_URL", ""))
    if is_bundled_sample(root):
        return last_archive_day(str(root), _symbol(env))
    return None


def _after(day: str | None, **offset) -> str | None:
    return None if day is None else f"{pd.Timestamp(day) + pd.DateOffset(**offset):%Y-%m-%d}"


def partitions_start(env=os.environ) -> str:
    """The first daily partition (see the module docstring); a malformed BTC_PARTITIONS_START is refused by name."""
    explicit = _date_setting(env, START_VARIABLE, f"the first day to partition, as YYYY-MM-DD (e.g. {LISTING_DATE}), "
                             "or unset it to start at the archive's first day")
    return explicit or first_archive_day(env.get("BINANCE_ARCHIVE_URL", ""), _symbol(env)) or LISTING_DATE


ARCHIVE_START = partitions_start()
ARCHIVE_END = partitions_end()  # the last day, inclusive (Dagster's end_date is exclusive)

daily = dg.DailyPartitionsDefinition(start_date=ARCHIVE_START, end_date=_after(ARCHIVE_END, days=1), timezone="UTC")
monthly = dg.MonthlyPartitionsDefinition(
    start_date=ARCHIVE_START[:8] + "01",
    end_date=None if ARCHIVE_END is None else f"{pd.Timestamp(ARCHIVE_END) + pd.offsets.MonthBegin(1):%Y-%m-%d}",
    timezone="UTC")
# Long history (silver/klines_1h_history, silver/klines_1d_history) is read from the archive's monthly 1h and 1d
# kline files, one partition per month: years of bars without years of minute files. It starts at
# BTC_HISTORY_START (YYYY-MM) if set, else at the first monthly 1d file of a local mirror (the bundled sample's:
# 2019-10), else at the listing month; it ends with the bundled sample's last file, and is open-ended otherwise
# (a month's partition appears once the month is over).
HISTORY_START_VARIABLE = "BTC_HISTORY_START"
_HISTORY_FILE = re.compile(r"-1d-(\d{4}-\d{2})\.zip$")


def _history_months(url: str, symbol: str) -> list[str]:
    root = local_root(url)
    folder = None if root is None else root / "data" / "futures" / "um" / "monthly" / "klines" / symbol / "1d"
    if folder is None or not folder.is_dir():
        return []
    return sorted(m.group(1) for f in folder.iterdir() if (m := _HISTORY_FILE.search(f.name)))


def history_start(env=os.environ) -> str:
    """The first month of the long history, as YYYY-MM-01 (see above); a malformed BTC_HISTORY_START is refused."""
    explicit = env.get(HISTORY_START_VARIABLE, "").strip()
    if explicit:
        try:
            return f"{dt.date.fromisoformat(explicit[:7] + '-01'):%Y-%m-01}"
        except ValueError:
            raise ValueError(f"{HISTORY_START_VARIABLE}={explicit!r} is not a month: set it to the first month of "
                             "history to read, as YYYY-MM (e.g. 2019-10), or unset it") from None
    months = _history_months(env.get("BINANCE_ARCHIVE_URL", ""), _symbol(env))
    return f"{months[0]}-01" if months else LISTING_DATE[:8] + "01"


def history_end(env=os.environ) -> str | None:
    """The end (exclusive, YYYY-MM-01) of the long history: the month after the bundled sample's last file; None
    (open-ended) for any other archive."""
    from btc_assets.defs.resources.sources import is_bundled_sample

    root = local_root(env.get("BINANCE_ARCHIVE_URL", ""))
    months = _history_months(str(root), _symbol(env)) if is_bundled_sample(root) else []
    return f"{pd.Timestamp(months[-1] + '-01') + pd.offsets.MonthBegin(1):%Y-%m-%d}" if months else None


history_monthly = dg.MonthlyPartitionsDefinition(start_date=history_start(), end_date=history_end(), timezone="UTC")

# Models are trained for a week of trading that starts on Monday 00:00 UTC, on data strictly before it (a week
# that starts within the data exists even when the data end before its Sunday).
weekly = dg.WeeklyPartitionsDefinition(start_date=ARCHIVE_START, end_date=_after(ARCHIVE_END, days=7), day_offset=1,
                                       timezone="UTC")

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
