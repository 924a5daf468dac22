"""The fake exchange's trading statistics under /futures/data (period 5m): openInterestHist,
topLongShortAccountRatio, topLongShortPositionRatio, globalLongShortAccountRatio and takerlongshortRatio, in
Binance USD-M's parameter names and reply shapes (the official client's typed models decode them).

As on Binance, only the last 30 days (of the server clock) are served: an older startTime or endTime is refused
with -1130. Rows are served up to the replay cursor, like every history endpoint of the fake.

What is served: by default SYNTHETIC values derived from the replayed bars (open interest 80,000 BTC priced at the
slot's close, constant ratios). `serve_metrics(ex, frame)` makes the fake serve a metrics table instead, e.g. the
bundled sample's archive metrics read with `sample_metrics`, so that a day rebuilt from REST can be compared with
the archive's file of that day. A NaN in the frame means that series has no row at that time.
"""

from __future__ import annotations

import bisect
import datetime as dt
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from btc_assets.lib.data.archive.files import daily_file
from btc_assets.lib.data.archive.layouts import METRICS
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets_tests.fakes.binance import errors
from btc_assets_tests.fakes.binance.engine import Exchange

SLOT_MS = 300_000
HISTORY_MS = 30 * 86_400_000
PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
COLUMNS = METRICS.float_columns  # the archive's metrics columns, in its order
_SERVED: weakref.WeakKeyDictionary[Exchange, pd.DataFrame] = weakref.WeakKeyDictionary()


def serve_metrics(ex: Exchange, frame: pd.DataFrame) -> None:
    """Serve `frame` (create_time UTC + the archive's six metric columns) instead of the SYNTHETIC default."""
    missing = {"create_time", *COLUMNS} - set(frame.columns)
    if missing:
        raise ValueError(f"serve_metrics: the frame lacks {sorted(missing)}; pass archive metrics rows")
    df = frame.assign(ms=pd.to_datetime(frame["create_time"], utc=True).astype("int64") // 1_000_000)
    _SERVED[ex] = df.sort_values("ms").drop_duplicates("ms").set_index("ms")


def sample_metrics(archive_root: str | Path, days: list[dt.date], symbol: str = "BTCUSDT") -> pd.DataFrame:
    """The archive metrics files of `days` under a local mirror (e.g. the bundled sample), as one frame."""
    frames = []
    for day in days:
        f = daily_file("metrics", symbol, day)
        frames.append(read_archive_csv((Path(archive_root) / f.relpath).read_bytes(), f.filename, METRICS))
    return pd.concat(frames, ignore_index=True)


def _synthetic(ex: Exchange) -> pd.DataFrame:
    """SYNTHETIC statistics from the bars: one row per bar on the 5-minute grid."""
    bars = [b for b in ex.bars if int(b[0]) % SLOT_MS == 0]
    close = np.array([b[4] for b in bars])
    return pd.DataFrame({"sum_open_interest": 80_000.0, "sum_open_interest_value": 80_000.0 * close,
                         "count_toptrader_long_short_ratio": 1.2, "sum_toptrader_long_short_ratio": 1.1,
                         "count_long_short_ratio": 1.3, "sum_taker_long_short_vol_ratio": 1.0},
                        index=pd.Index([int(b[0]) for b in bars], name="ms"))


def _volume_5m(ex: Exchange, t: int) -> float:
    lo, hi = bisect.bisect_left(ex.bars, (t,)), bisect.bisect_left(ex.bars, (t + SLOT_MS,))  # bars are time-sorted
    return float(sum(b[5] for b in ex.bars[lo:hi])) or 1.0


def _rows(ex: Exchange, p: dict, *columns: str) -> list[tuple[int, tuple[float, ...]]]:
    """(timestamp, values of `columns`) in the request's window, oldest first, as Binance pages them."""
    symbol = p.get("symbol")
    if not symbol:
        raise errors.missing_param("symbol")
    if symbol != ex.symbol:
        raise errors.ApiError(-1121, "Invalid symbol.")
    period = p.get("period")
    if not period:
        raise errors.missing_param("period")
    if period not in PERIODS:
        raise errors.bad_value("period", period)
    if period != "5m":
        raise errors.ApiError(-1130, f"fake exchange: only period=5m is served, not {period!r}.")
    limit = int(p.get("limit", 30))
    if not 1 <= limit <= 500:
        raise errors.bad_value("limit", str(limit))
    oldest = ex.now_ms() - HISTORY_MS
    for name in ("startTime", "endTime"):
        if name in p and int(p[name]) < oldest:
            raise errors.ApiError(-1130, f"parameter '{name}' is invalid.")
    series = _SERVED.get(ex)
    series = (_synthetic(ex) if series is None else series)[list(columns)].dropna()
    known = series[(series.index <= int(ex.bar[0])) & (series.index >= oldest)]
    if "startTime" in p or "endTime" in p:
        start, end = int(p.get("startTime", 0)), int(p.get("endTime", 2**62))
        known = known[(known.index >= start) & (known.index <= end)].iloc[:limit]
    else:
        known = known.iloc[-limit:]  # no window: the most recent rows
    return [(int(t), tuple(v)) for t, v in zip(known.index, known.itertuples(index=False))]


def open_interest_hist(ex: Exchange, p: dict) -> list:
    return [{"symbol": ex.symbol, "sumOpenInterest": f"{oi:.8f}", "sumOpenInterestValue": f"{value:.8f}",
             "CMCCirculatingSupply": "19800000.000", "timestamp": t}
            for t, (oi, value) in _rows(ex, p, "sum_open_interest", "sum_open_interest_value")]


def long_short_ratio(column: str):
    """topLongShortAccountRatio, topLongShortPositionRatio and globalLongShortAccountRatio: one shape."""
    def handler(ex: Exchange, p: dict) -> list:
        return [{"symbol": ex.symbol, "longShortRatio": f"{r:.4f}", "longAccount": f"{r / (1 + r):.4f}",
                 "shortAccount": f"{1 / (1 + r):.4f}", "timestamp": t} for t, (r,) in _rows(ex, p, column)]
    return handler


def taker_long_short_ratio(ex: Exchange, p: dict) -> list:
    out = []
    for t, (r,) in _rows(ex, p, "sum_taker_long_short_vol_ratio"):
        vol = _volume_5m(ex, t)
        out.append({"buySellRatio": f"{r:.4f}", "buyVol": f"{vol * r / (1 + r):.4f}",
                    "sellVol": f"{vol / (1 + r):.4f}", "timestamp": t})
    return out


def stats_routes() -> dict:
    """(method, path) -> (handler, security, weight, orders); Binance counts these by an IP limit of their own."""
    return {
        ("GET", "/futures/data/openInterestHist"): (open_interest_hist, "NONE", 1, 0),
        ("GET", "/futures/data/topLongShortAccountRatio"):
            (long_short_ratio("count_toptrader_long_short_ratio"), "NONE", 1, 0),
        ("GET", "/futures/data/topLongShortPositionRatio"):
            (long_short_ratio("sum_toptrader_long_short_ratio"), "NONE", 1, 0),
        ("GET", "/futures/data/globalLongShortAccountRatio"):
            (long_short_ratio("count_long_short_ratio"), "NONE", 1, 0),
        ("GET", "/futures/data/takerlongshortRatio"): (taker_long_short_ratio, "NONE", 1, 0),
    }
