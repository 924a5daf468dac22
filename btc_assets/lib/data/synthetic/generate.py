"""Drive the generator over the sample days: read real klines from an archive mirror, write every synthetic file.

Ids continue across days (as in the archive), so days are always generated in order from the first day that has
klines; `only` restricts which days are written. Seeds derive from the day, so output is byte-for-byte stable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from btc_assets.lib.data.archive.files import daily_file
from btc_assets.lib.data.archive.layouts import KLINES
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.synthetic import market
from btc_assets.lib.data.synthetic.agg_trades import IdState, agg_trades_for_klines
from btc_assets.lib.data.synthetic.archive_writer import agg_trades_csv, write_archive_file

logger = logging.getLogger(__name__)

FIRST_AGG_TRADE_ID = 1_900_000_000  # plausible magnitudes for 2024; ids are synthetic like everything else here
FIRST_TRADE_ID = 4_300_000_000
SAMPLE_DIVISOR = 300  # about 1 aggTrade per 300 real trades (real: ~1 per 3), at least what OHLC needs
DATASETS = ("aggTrades", "bookDepth", "metrics", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines")


def sample_density(divisor: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda n: np.ceil(n / divisor).astype(np.int64)


def kline_days(root: Path, symbol: str) -> list[dt.date]:
    folder = root / daily_file("klines", symbol, dt.date(2024, 1, 1), interval="1m").relpath
    return sorted(dt.date.fromisoformat(p.name[-14:-4]) for p in folder.parent.glob(f"{symbol}-1m-*.zip"))


def _seed(day: dt.date, salt: int) -> int:
    return day.toordinal() * 10 + salt


def generate(root: Path, symbol: str = "BTCUSDT", only: set[dt.date] | None = None,
             divisor: int = SAMPLE_DIVISOR) -> list[dict[str, object]]:
    """Write every synthetic dataset for the days with real klines under `root`; returns the manifest entries."""
    days = kline_days(root, symbol)
    if not days:
        raise FileNotFoundError(f"no daily 1m klines of {symbol} under {root}: the generator derives everything "
                                "from them; point it at the sample archive")
    ids = IdState(FIRST_AGG_TRADE_ID, FIRST_TRADE_ID)
    entries: list[dict[str, object]] = []
    for day in days:
        kf = daily_file("klines", symbol, day, interval="1m")
        klines = read_archive_csv((root / kf.relpath).read_bytes(), kf.filename, KLINES)
        trades, ids = agg_trades_for_klines(klines, ids, _seed(day, 1), sample_density(divisor))
        if only is not None and day not in only:
            continue
        texts = {"aggTrades": agg_trades_csv(trades),
                 "bookDepth": market.book_depth(klines, _seed(day, 2)).encode(),
                 "metrics": market.metrics(klines, day, symbol, _seed(day, 3)).encode(),
                 **{k: v.encode() for k, v in market.price_klines(klines, _seed(day, 4)).items()}}
        for dataset in DATASETS:
            interval = "1m" if dataset.endswith("Klines") else None
            entry = write_archive_file(root, daily_file(dataset, symbol, day, interval=interval), texts[dataset])
            entries.append({"dataset": dataset, "day": day.isoformat(), **entry})
        logger.info("%s: %d synthetic aggTrades for %d real trades", day, len(trades), int(klines["count"].sum()))
    return entries


def write_manifest(root: Path, entries: list[dict[str, object]], divisor: int) -> Path:
    agg = [e for e in entries if e["dataset"] == "aggTrades"]
    manifest = {
        "synthetic": True,
        "generator": "python -m btc_assets.lib.data.synthetic",
        "derived_from": "the real daily 1m klines in this archive (data/futures/um/daily/klines)",
        "agg_trades_density": f"ceil(real trades per minute / {divisor}) aggTrades a minute, at least what the "
                              "minute's OHLC and both taker sides need; real BTCUSDT has ~1 aggTrade per 3 trades",
        "agg_trades_rows": sum(int(e["rows"]) for e in agg),
        "bytes": sum(int(e["bytes"]) for e in entries),
        "files": entries,
    }
    path = root / "synthetic_manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path
