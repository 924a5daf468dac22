"""The live market as the collector recorded it: the trades (aggTrade) and the partial book (depth20@100ms) that the
paper broker fills against when the trader runs on the collector's feed.

- A market order sent at t fills against the first recorded book update at or after t: it takes the levels of the
  opposite side in price order until its quantity is filled (the volume-weighted price of what it took). A book
  too thin for the quantity fills the rest at its last recorded level, and the fill's note says so.
- A protective order (STOP_MARKET / TAKE_PROFIT_MARKET) triggers at the first recorded trade through its trigger
  price, then fills as a market order against the book after that trade.

Hour files are read with collector.salvage, so a file cut by a crash gives every record before the cut; only the
hours that overlap the asked window are read, and only its records are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from btc_assets.lib.data.collector.salvage import read_hour_file
from btc_assets.lib.data.collector.writer import hour_names

FilesFor = Callable[[str, str], list[Path]]  # (kind, "YYYY-MM-DD") -> that day's hour files, e.g. streams.files
EPS = 1e-12


class MarketDataError(ValueError):
    """A recorded record the fill cannot read; the message names the file and the line."""


@dataclass(frozen=True)
class MarketFill:
    price: float  # volume-weighted over the levels taken
    time: pd.Timestamp  # transaction time of the book update filled against
    levels: int
    note: str = ""


def _ms(t: pd.Timestamp) -> int:
    return int(pd.Timestamp(t).timestamp() * 1000)


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


class RecordedMarket:
    def __init__(self, files_for: FilesFor, depth_kind: str = "depth20"):
        self.files_for, self.depth_kind = files_for, depth_kind

    def records(self, kind: str, start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[int, dict]]:
        """(transaction time ms, data) of the `kind` records with transaction time in [start, end), time-sorted."""
        lo, hi = _ms(start), _ms(end)
        names = hour_names(kind, lo, hi)
        out = []
        for day in sorted({name[len(kind) + 1:][:10] for name in names}):  # <kind>-<YYYY-MM-DD>-<HH>.jsonl.gz
            for path in (p for p in self.files_for(kind, day) if p.name in names):
                for line, rec in read_hour_file(path.read_bytes(), str(path)).records:
                    try:
                        data = rec["data"]
                        t = int(data["T"])
                    except (KeyError, TypeError, ValueError) as e:
                        raise MarketDataError(f"{path} line {line}: not a {kind} record (no {e}); the collector "
                                              "writes only validated records here: check what else writes to "
                                              "this folder") from None
                    if lo <= t < hi:
                        out.append((t, data))
        out.sort(key=lambda r: r[0])
        return out

    def market_fill(self, side: str, qty: float, after: pd.Timestamp, until: pd.Timestamp) -> MarketFill | None:
        """A market order of `qty` sent at `after`, filled against the first book update in [after, until)."""
        for t, d in self.records(self.depth_kind, after, until):
            try:
                levels = [(float(p), float(q)) for p, q in (d["a"] if side == "BUY" else d["b"])]
            except (KeyError, TypeError, ValueError) as e:
                raise MarketDataError(f"{self.depth_kind} update at {_ts(t)}: unreadable levels ({e!r})") from None
            levels = sorted((lv for lv in levels if lv[1] > 0), reverse=side == "SELL")  # best price first
            if not levels:
                continue
            left, cost, taken = qty, 0.0, 0
            for price, available in levels:
                take = min(left, available)
                cost, left, taken = cost + take * price, left - take, taken + 1
                if left <= EPS:
                    break
            note = ""
            if left > EPS:
                cost += left * levels[-1][0]
                note = (f"the recorded book held {qty - left:.3f} of {qty:.3f} over {len(levels)} levels: the rest "
                        "at its last level")
            return MarketFill(cost / qty, _ts(t), taken, note)
        return None

    def first_trade_through(self, trigger: float, falling: bool, start: pd.Timestamp,
                            end: pd.Timestamp) -> pd.Timestamp | None:
        """Time of the first recorded trade in [start, end) at or below (`falling`) / at or above the trigger."""
        for t, d in self.records("aggTrade", start, end):
            price = float(d["p"])
            if (price <= trigger) if falling else (price >= trigger):
                return _ts(t)
        return None
