"""Files of the Binance public data archive (data.binance.vision): datasets, markets, intervals and each file's path
in the archive's layout."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

KLINE_DATASETS = frozenset({"klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines"})
NON_KLINE_DATASETS = frozenset(
    {"fundingRate", "aggTrades", "trades", "bookDepth", "metrics", "bookTicker", "liquidationSnapshot"}
)
MONTHLY_ONLY_DATASETS = frozenset({"fundingRate"})
MARKETS = frozenset({"futures/um", "futures/cm", "spot"})
# Daily files exist only up to "1d" and "1s" only for spot (binance-public-data README).
DAILY_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
INTERVALS = DAILY_INTERVALS + ("3d", "1w", "1mo")
# bronze.files.source: where a kept file came from (the archive, the sample's generated files, or REST).
ARCHIVE_SOURCE = "archive"
SYNTHETIC_SOURCE = "archive:synthetic"
REST_SOURCE = "rest"


@dataclass(frozen=True)
class ArchiveFile:
    """One zip in the archive. For monthly files `day` is normalised to the first of the month."""

    dataset: str
    symbol: str
    period: str
    day: datetime.date
    interval: str | None = None
    market: str = "futures/um"

    def __post_init__(self) -> None:
        where = f"archive file {self.dataset}/{self.symbol}/{self.period}/{self.day}"
        if self.period not in ("daily", "monthly"):
            raise ValueError(f"{where}: period must be 'daily' or 'monthly', got {self.period!r}")
        if self.market not in MARKETS:
            raise ValueError(f"{where}: market must be one of {sorted(MARKETS)}, got {self.market!r}")
        if not self.symbol or self.symbol != self.symbol.upper() or re.search(r"[\s/\\.]", self.symbol):
            raise ValueError(f"{where}: symbol must be upper case without spaces, dots or slashes like "
                             f"'BTCUSDT', got {self.symbol!r}")
        if isinstance(self.day, datetime.datetime) or not isinstance(self.day, datetime.date):
            raise ValueError(f"{where}: day must be a datetime.date (not a datetime), got {self.day!r}")
        if self.dataset in KLINE_DATASETS:
            allowed = DAILY_INTERVALS if self.period == "daily" else INTERVALS
            if self.interval not in allowed:
                raise ValueError(f"{where}: dataset {self.dataset!r} needs an interval from {allowed} "
                                 f"for {self.period} files, got {self.interval!r}")
            if self.interval == "1s" and self.market != "spot":
                raise ValueError(f"{where}: interval '1s' exists only for spot, not {self.market!r}")
        elif self.dataset in NON_KLINE_DATASETS:
            if self.interval is not None:
                raise ValueError(f"{where}: dataset {self.dataset!r} has no interval; pass interval=None "
                                 f"(got {self.interval!r})")
            if self.dataset in MONTHLY_ONLY_DATASETS and self.period != "monthly":
                raise ValueError(f"{where}: {self.dataset!r} is published monthly only; use monthly_file()")
        else:
            raise ValueError(f"{where}: unknown dataset {self.dataset!r}; "
                             f"known: {sorted(KLINE_DATASETS | NON_KLINE_DATASETS)}")
        if self.period == "monthly" and self.day.day != 1:
            object.__setattr__(self, "day", self.day.replace(day=1))

    @property
    def date_label(self) -> str:
        return self.day.strftime("%Y-%m-%d" if self.period == "daily" else "%Y-%m")

    @property
    def filename(self) -> str:
        return f"{self.symbol}-{self.interval or self.dataset}-{self.date_label}.zip"

    @property
    def csv_name(self) -> str:
        """Name of the single CSV member inside the zip."""
        return self.filename[: -len(".zip")] + ".csv"

    @property
    def relpath(self) -> str:
        interval_dir = f"{self.interval}/" if self.interval else ""
        return f"data/{self.market}/{self.period}/{self.dataset}/{self.symbol}/{interval_dir}{self.filename}"

    @property
    def checksum_relpath(self) -> str:
        return self.relpath + ".CHECKSUM"


def daily_file(dataset: str, symbol: str, day: datetime.date, interval: str | None = None,
               market: str = "futures/um") -> ArchiveFile:
    return ArchiveFile(dataset, symbol, "daily", day, interval, market)


def monthly_file(dataset: str, symbol: str, month: datetime.date, interval: str | None = None,
                 market: str = "futures/um") -> ArchiveFile:
    return ArchiveFile(dataset, symbol, "monthly", month, interval, market)
