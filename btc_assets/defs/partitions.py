"""Every partitioning of the graph, declared once."""

import math

import dagster as dg

from btc_assets.lib.research.features import WARMUP_BARS_1M

# USD-M BTCUSDT daily archive files start at the end of 2019; the bundled sample covers 2024-01-01..2024-02-29.
ARCHIVE_START = "2020-01-01"

daily = dg.DailyPartitionsDefinition(start_date=ARCHIVE_START, timezone="UTC")
monthly = dg.MonthlyPartitionsDefinition(start_date=ARCHIVE_START, timezone="UTC")
# Models are trained for a week of trading that starts on Monday 00:00 UTC, on data strictly before it.
weekly = dg.WeeklyPartitionsDefinition(start_date=ARCHIVE_START, day_offset=1, timezone="UTC")

# gold reads this many previous days of silver to warm its indicators up: the slowest feature's warm-up
# (1h MACD signal and ADX, ~13.3 days), rounded up to whole days.
WARMUP_DAYS = math.ceil(WARMUP_BARS_1M / 1440)
warmup_mapping = dg.TimeWindowPartitionMapping(start_offset=-WARMUP_DAYS, end_offset=0)
# labels look ahead by design, into the first minutes of the next day.
next_day_mapping = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1)
