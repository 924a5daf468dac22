"""Every partitioning of the graph, declared once."""

import datetime as dt

import dagster as dg
import pandas as pd

from btc_assets.lib.research.features.window import WARMUP_DAYS

# USD-M BTCUSDT daily archive files start at the end of 2019; the bundled sample covers 2024-01-01..2024-02-29.
ARCHIVE_START = "2020-01-01"

daily = dg.DailyPartitionsDefinition(start_date=ARCHIVE_START, timezone="UTC")
monthly = dg.MonthlyPartitionsDefinition(start_date=ARCHIVE_START, timezone="UTC")
# Models are trained for a week of trading that starts on Monday 00:00 UTC, on data strictly before it.
weekly = dg.WeeklyPartitionsDefinition(start_date=ARCHIVE_START, day_offset=1, timezone="UTC")

# gold reads WARMUP_DAYS previous days of silver to warm its indicators up (lib/research/features/window.py).
warmup_mapping = dg.TimeWindowPartitionMapping(start_offset=-WARMUP_DAYS, end_offset=0)
# labels look ahead by design, into the first minutes of the next day.
next_day_mapping = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1)


def days_of(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The UTC days of the run's partition window (a single-run backfill covers many)."""
    window = context.partition_time_window
    days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
    return [d.date() for d in days]
