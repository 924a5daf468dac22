"""DuckDB warehouse helpers: explicit table schemas and idempotent window replacement.

Every partitioned write deletes exactly its time window and inserts the new rows in one transaction, so
re-materializing a day replaces that day and nothing else. Time columns are TIMESTAMP (UTC wall time), never text:
a text partition column compares lexically and can delete the wrong rows.
"""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd

from btc_assets.lib.storage import lakehouse, table_mirror

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"unsafe SQL identifier {name!r}: use lowercase letters, digits and underscores")
    return name


def ensure_table(conn: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    """Create the table (and its schema) with explicit column types if it does not exist yet."""
    table = _ident(table)
    schema, _, name = table.rpartition(".")

    def existing() -> set[str]:
        return {r[0] for r in conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = ?",
            [name, schema or "main"]).fetchall()}

    have = existing()  # a read: the usual case (the table is there with every column) writes no DDL
    if have >= set(columns):
        return
    if not have:
        if schema:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cols = ", ".join(f"{_ident(c)} {t}" for c, t in columns.items())
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
        have = existing()
    # Tables evolve by adding columns: a warehouse written by an older version gains them (null in old rows).
    for c, t in columns.items():
        if c not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {_ident(c)} {t}")


def replace_window(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, str],
    df: pd.DataFrame,
    time_column: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> int:
    """Replace the rows of `table` with time_column in [start, end) by `df`; returns the number of rows written.

    Rows of `df` outside the window are refused: writing them would leave data that the next replacement of
    their own window could not account for.
    """
    ensure_table(conn, table, columns)
    start_n, end_n = _naive(start), _naive(end)
    frame = df[list(columns)].copy()
    for col, typ in columns.items():
        if typ.upper().startswith("TIMESTAMP") and isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.tz_convert("UTC").dt.tz_localize(None)
    if len(frame):
        t = frame[time_column]
        outside = frame[(t < start_n) | (t >= end_n)]
        if len(outside):
            raise ValueError(
                f"{table}: {len(outside)} rows outside the window [{start_n}, {end_n}) "
                f"(first {outside[time_column].iloc[0]}); refusing to write them"
            )
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {table} WHERE {_ident(time_column)} >= ? AND {time_column} < ?", [start_n, end_n])
        if len(frame):
            conn.register("_incoming", frame)
            conn.execute(f"INSERT INTO {table} SELECT {', '.join(columns)} FROM _incoming")
            conn.unregister("_incoming")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    mirror = table_mirror.ACTIVE.get()
    if mirror is not None:  # production: the durable copy of the window on S3 (lib/table_mirror.py)
        mirror.put(table, frame, time_column, start_n, end_n)
    lake = lakehouse.ACTIVE.get()
    if lake is not None:  # BTC_LAKEHOUSE_URI: the same window, one commit of the table's Delta Lake table
        # (committed once the warehouse connection is closed when WarehouseResource opened it)
        lakehouse.commit_window(lake, table, columns, frame, time_column, start_n, end_n)
    return len(frame)


def frame_of(result: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """A query's result as DuckDB's .df() gives it (same dtypes: NULLs as NaN/NaT/None, nullable Int/boolean), built
    from fetchnumpy: a few hundred microseconds instead of a few milliseconds for the small reads of the live order
    path. For the column types of the project's tables (numbers, booleans, timestamps, text)."""
    cols = {}
    for name, a in result.fetchnumpy().items():
        if isinstance(a, np.ma.MaskedArray):
            mask, data = np.ma.getmaskarray(a), np.ma.getdata(a)
            if not mask.any():
                a = data
            elif data.dtype.kind == "f":
                a = np.where(mask, np.nan, data)
            elif data.dtype.kind in "mM":
                a = data.copy()
                a[mask] = np.datetime64("NaT")
            elif data.dtype.kind in "iu":
                a = pd.arrays.IntegerArray(data, mask)
            elif data.dtype.kind == "b":
                a = pd.arrays.BooleanArray(data, mask)
            else:
                a = data.astype(object)
                a[mask] = None
        cols[name] = a
    return pd.DataFrame(cols)


def read_window(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    time_column: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    columns: list[str] | None = None,
    small: bool = False,
) -> pd.DataFrame:
    """Rows with time_column in [start, end), sorted by it, time columns returned as tz-aware UTC. `small`: a read
    of a few rows on the live order path, converted by frame_of (the same frame, without .df()'s fixed cost)."""
    table = _ident(table)
    cols = ", ".join(_ident(c) for c in columns) if columns else "*"
    try:
        res = conn.execute(
            f"SELECT {cols} FROM {table} WHERE {_ident(time_column)} >= ? AND {time_column} < ? ORDER BY {time_column}",
            [_naive(start), _naive(end)],
        )
        df = frame_of(res) if small else res.df()
    except duckdb.CatalogException:
        if not table_exists(conn, table):
            raise LookupError(f"table {table} does not exist yet: materialize the asset that writes it first") from None
        raise
    for col in df.columns:
        if pd.api.types.is_datetime64_dtype(df[col]) and not isinstance(df[col].dtype, pd.DatetimeTZDtype):
            # DuckDB hands back microsecond precision; the rest of the code (and pandera) speaks nanoseconds.
            df[col] = df[col].dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    return df


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, _, name = table.rpartition(".")
    q = "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?"  # cheaper than information_schema
    params = [name]
    if schema:
        q += " AND schema_name = ?"
        params.append(schema)
    return conn.execute(q, params).fetchall()[0][0] > 0  # fetchall: no unfinished result left on conn


def _naive(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
