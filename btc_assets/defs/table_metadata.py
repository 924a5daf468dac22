"""Metadata a person can read in the Dagster UI: real tables with a schema, figures formatted, each partition's own.

* ``frame_table(df)``: a DataFrame as ``MetadataValue.table`` (times as ``YYYY-MM-DD HH:MM``, floats with 4
  significant digits or as percentages) with its column types;
* ``column_schema(df)``: the ``dagster/column_schema`` of a table asset, from the frame written;
* ``preview(df)``: a few rows of it (wide tables: the first columns, named as such);
* ``per_partition(context, df, time_col)``: when a run materializes many daily partitions (a single-run backfill),
  each partition gets its own rows, first and last bar instead of the whole range's figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import dagster as dg
import numpy as np
import pandas as pd

PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 16


def fmt(v, percent: bool = False) -> str:
    """One figure as a person reads it: n/a, 12.34 %, 1,234, 0.1234."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, pd.Timestamp):
        return f"{v:%Y-%m-%d %H:%M}"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, float, np.number)):
        v = float(v)
        if percent:
            return f"{v:.2%}"
        if v.is_integer():
            return f"{int(v):,d}"
        return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _type(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "string"


def column_schema(df: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    d = descriptions or {}
    return dg.TableSchema([dg.TableColumn(str(c), _type(df[c].dtype), description=d.get(str(c)))
                           for c in df.columns])


def frame_table(df: pd.DataFrame, percent: Iterable[str] = (), max_rows: int = 200) -> dg.MetadataValue:
    """``df`` (its first ``max_rows`` rows) as a metadata table of formatted strings, every column typed "string"
    so the UI shows the formatting (the column schema of the asset itself carries the real types)."""
    pct = set(percent)
    shown = df.head(max_rows)
    records = [dg.TableRecord({str(c): fmt(row[c], c in pct) for c in shown.columns})
               for _, row in shown.iterrows()]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(
        [dg.TableColumn(str(c), "string") for c in shown.columns]))


def preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    cols = list(df.columns[:PREVIEW_COLUMNS])
    return frame_table(df[cols].tail(rows))


def table_metadata(df: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dict:
    """Column schema and a row preview of the frame an asset wrote."""
    meta = {"dagster/column_schema": column_schema(df, descriptions), "preview": preview(df)}
    if len(df.columns) > PREVIEW_COLUMNS:
        meta["preview_columns"] = f"first {PREVIEW_COLUMNS} of {len(df.columns)} (all in dagster/column_schema)"
    return meta


def per_partition(context: dg.AssetExecutionContext, df: pd.DataFrame, time_col: str, written: bool,
                  extra: Callable[[pd.DataFrame], dict] | None = None, monthly: bool = False) -> None:
    """Give each daily (or, `monthly`, each monthly) partition of the run its own figures: rows (0 when the run's
    data was withheld by a blocking check), rows checked, first and last bar, and ``extra(partition_rows)``."""
    if not context.has_partition_key_range and not context.has_partition_key:
        return
    keys = context.partition_keys
    times = pd.DatetimeIndex(df[time_col]) if len(df) else pd.DatetimeIndex([], tz="UTC")
    if times.tz is None:
        times = times.tz_localize("UTC")
    day = (times.strftime("%Y-%m-01") if monthly else times.floor("D").strftime("%Y-%m-%d"))
    groups = {k: np.flatnonzero(day == k) for k in keys} if len(df) else {k: np.zeros(0, int) for k in keys}
    for key in keys:
        idx = groups.get(key, np.zeros(0, int))
        part = df.iloc[idx]
        meta = {"rows": int(len(part)) if written else 0, "rows_checked": int(len(part)),
                "first_bar": f"{times[idx[0]]:%Y-%m-%d %H:%M}" if len(idx) else "none",
                "last_bar": f"{times[idx[-1]]:%Y-%m-%d %H:%M}" if len(idx) else "none"}
        if extra is not None:
            meta.update(extra(part))
        context.add_asset_metadata(meta, partition_key=key)
