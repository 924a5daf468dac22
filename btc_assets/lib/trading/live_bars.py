"""Closed 1m bars for the live trader, from the collector's recordings or from REST polling.

Both return the columns of silver.klines_1m (typed, UTC, is_halt flagged) for the bars that *closed* in a time
range: a kline stream message counts only when Binance marks it closed (``k.x``), a REST row only when its close
time has passed on the server's clock. A bar that is not there yet is simply absent; the caller decides whether
that is an error (the sensor asked for it) or a wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from btc_assets.lib.data.bars import SILVER_KLINE_COLUMNS, flag_halts
from btc_assets.lib.data.collector.salvage import read_hour_file

COLUMNS = list(SILVER_KLINE_COLUMNS)


class LiveBarError(ValueError):
    """A recording or a REST reply that cannot give the bars asked for; the message says which and what to do."""


def _frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}).astype(
            {"open_time": "datetime64[ns, UTC]", "trades": "int64", "is_halt": "bool"})
    df = pd.DataFrame(rows)
    df["open_time"] = pd.to_datetime(df["open_time"], unit="ms", utc=True)
    df = df.drop_duplicates("open_time", keep="last").sort_values("open_time").reset_index(drop=True)
    df["is_halt"] = flag_halts(df)
    return df[COLUMNS]


def from_recordings(files: Iterable[Path], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Closed klines with open_time in [start, end) from the collector's kline_1m hour files.

    A file cut short by a crash gives the bars it holds before the cut (collector.salvage); damage inside a file
    raises its CorruptRecording, naming file, byte and line.
    """
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    rows = []
    for path in files:
        for n, rec in read_hour_file(path.read_bytes(), str(path)).records:
            try:
                k = rec["data"]["k"]
            except (KeyError, TypeError) as e:
                raise LiveBarError(f"{path} line {n}: not a kline_1m record (no {e}); the collector writes only "
                                   "validated records here: check what else writes to this folder") from None
            if not k.get("x") or not lo <= int(k["t"]) < hi:
                continue
            rows.append({"open_time": int(k["t"]), "open": float(k["o"]), "high": float(k["h"]),
                         "low": float(k["l"]), "close": float(k["c"]), "volume": float(k["v"]),
                         "quote_volume": float(k.get("q", 0)), "trades": int(k.get("n", 0)),
                         "taker_buy_volume": float(k.get("V", 0)), "taker_buy_quote_volume": float(k.get("Q", 0))})
    return _frame(rows)


def from_rest(rest, symbol: str, start: pd.Timestamp, end: pd.Timestamp, server_now_ms: int) -> pd.DataFrame:
    """Closed klines with open_time in [start, end) from GET /fapi/v1/klines (``rest`` is a lib.rest.PublicRest)."""
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    rows, cursor = [], lo
    while cursor < hi:
        page = rest.get("/fapi/v1/klines", {"symbol": symbol, "interval": "1m", "startTime": cursor,
                                            "endTime": hi - 1, "limit": 1000}, weight=5)
        if not isinstance(page, list):
            raise LiveBarError(f"GET /fapi/v1/klines at {rest.base_url}: expected a list, got {str(page)[:120]}")
        for r in page:
            if int(r[6]) >= server_now_ms:  # still open
                continue
            rows.append({"open_time": int(r[0]), "open": float(r[1]), "high": float(r[2]), "low": float(r[3]),
                         "close": float(r[4]), "volume": float(r[5]), "quote_volume": float(r[7]),
                         "trades": int(r[8]), "taker_buy_volume": float(r[9]), "taker_buy_quote_volume": float(r[10])})
        if len(page) < 1000:
            break
        cursor = int(page[-1][0]) + 60_000
    return _frame([r for r in rows if lo <= r["open_time"] < hi])


def latest_closed_from_recordings(files: Iterable[Path]) -> pd.Timestamp | None:
    """Open time of the newest closed kline recorded in these files (None if none)."""
    best = None
    for path in files:
        for _, rec in read_hour_file(path.read_bytes(), str(path)).records:
            k = rec.get("data", {}).get("k", {}) if isinstance(rec, dict) else {}
            if k.get("x") and (best is None or int(k["t"]) > best):
                best = int(k["t"])
    return pd.Timestamp(best, unit="ms", tz="UTC") if best is not None else None
