"""Render Binance REST replies into the archive's CSV layouts (archive/layouts.py LAYOUTS), header included, so a day
taken from REST parses exactly like the archive's file for that day. Values are kept as the API sent them
(strings stay strings: no float round trip), booleans as the archive writes them (`true`/`false`).
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from btc_assets.lib.data.archive.layouts import LAYOUTS
from btc_assets.lib.data.market.metrics import VALUE_COLUMNS as METRICS_VALUES

KLINE_PATHS = {
    "klines": "/fapi/v1/klines",
    "markPriceKlines": "/fapi/v1/markPriceKlines",
    "indexPriceKlines": "/fapi/v1/indexPriceKlines",
    "premiumIndexKlines": "/fapi/v1/premiumIndexKlines",
}
REST_DATASETS = frozenset(KLINE_PATHS) | {"aggTrades", "fundingRate", "metrics"}


def _bool(v: object) -> str:
    return "true" if v is True or str(v).lower() == "true" else "false"


def _funding_rows(rows: list[dict]) -> list[list]:
    """fundingRate replies -> calc_time, funding_interval_hours, last_funding_rate. The interval is the gap to the
    previous funding time (8 h for BTCUSDT, and for the first row when there is no previous one)."""
    out, prev = [], None
    for r in rows:
        t = int(r["fundingTime"])
        hours = round((t - prev) / 3_600_000) if prev is not None else 8
        out.append([t, hours, r["fundingRate"]])
        prev = t
    return out


def _metrics_rows(rows: list[dict]) -> list[list]:
    """Statistics joined on their timestamp (rest_metrics.fetch_metrics) -> create_time, symbol, six values; a
    value no series sent stays an empty field."""
    return [[pd.Timestamp(r["timestamp"], unit="ms").strftime("%Y-%m-%d %H:%M:%S"), r["symbol"],
             *(r.get(c, "") for c in METRICS_VALUES)] for r in rows]


def rows_for(dataset: str, rows: list) -> list[list]:
    """REST rows of `dataset` as lists in the archive layout's column order."""
    if dataset in KLINE_PATHS:
        return [list(r[:12]) for r in rows]
    if dataset == "aggTrades":
        return [[r["a"], r["p"], r["q"], r["f"], r["l"], r["T"], _bool(r["m"])] for r in rows]
    if dataset == "fundingRate":
        return _funding_rows(rows)
    if dataset == "metrics":
        return _metrics_rows(rows)
    raise ValueError(f"rest_layouts: no REST rendering for dataset {dataset!r}; known: {sorted(REST_DATASETS)}")


def render_csv(dataset: str, rows: list[list]) -> str:
    """The archive CSV text (header + rows) for `dataset`."""
    layout = LAYOUTS[dataset]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(layout.columns)
    for r in rows:
        if len(r) != len(layout.columns):
            raise ValueError(f"rest_layouts: a {dataset} row has {len(r)} fields, the archive layout "
                             f"{len(layout.columns)} ({', '.join(layout.columns)}): {r!r}")
        writer.writerow(r)
    return buf.getvalue()
