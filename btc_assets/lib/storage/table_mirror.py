"""Warehouse tables on S3: every replaced window is also written as parquet, one object per day, and a DuckDB
warehouse can be rebuilt from those objects on any machine.

In production the DuckDB file lives on a volume for speed, and S3 holds the durable copy of every table
(`s3://bucket/warehouse/<schema>/<table>/date=YYYY-MM-DD.parquet`). The mirror is active only while a production
warehouse connection is open (a context variable set by WarehouseResource), so lib code and tests that use plain
DuckDB connections are unaffected. A day the window left empty is written as an empty file, so a re-materialized
day can never leave an older copy behind.

Append-only tables (the trading journal) are mirrored with `put_merged` instead: each day's object becomes the
union of the day's rows in DuckDB and the rows already on S3, so a mirror run from a DuckDB file that lost rows
(a volume replaced before `restore-warehouse` was run) cannot erase history that S3 already holds.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ACTIVE: contextvars.ContextVar[S3TableMirror | None] = contextvars.ContextVar("btc_table_mirror", default=None)
DAY = pd.Timedelta(days=1)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3TableMirror:
    client: object  # a boto3 S3 client
    bucket: str
    prefix: str = "warehouse"

    def key(self, table: str, day: pd.Timestamp) -> str:
        schema, name = _split(table)
        return f"{self.prefix}/{schema}/{name}/date={day:%Y-%m-%d}.parquet"

    def put(self, table: str, frame: pd.DataFrame, time_column: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
        """Write the window day by day (whole days only: windows are partitions); returns the objects written."""
        days = _days(table, start, end)
        t = frame[time_column]
        for day in days:
            part = frame[(t >= day) & (t < day + DAY)]
            buf = io.BytesIO()
            part.to_parquet(buf, index=False)
            self.client.put_object(Bucket=self.bucket, Key=self.key(table, day), Body=buf.getvalue())
        return len(days)

    def put_merged(self, conn: duckdb.DuckDBPyConnection, table: str, time_column: str, start: pd.Timestamp,
                   end: pd.Timestamp, key: tuple[str, ...] = ()) -> int:
        """Mirror the days of [start, end) of an append-only `table` as the union of DuckDB's rows and S3's.

        Every row of the day in DuckDB is written (duplicates included). Rows only the existing object holds are
        kept too: with `key`, those whose key DuckDB does not have; without, a multiset difference of whole rows.
        Re-running with the same DuckDB rewrites the same objects. Returns the rows written.
        """
        days = _days(table, start, end)
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ? ORDER BY ordinal_position", list(_split(table))).fetchall()
        if not columns:
            raise LookupError(f"{table} does not exist in DuckDB: nothing to mirror")
        written = 0
        for day in days:
            local = (f"SELECT * FROM {table} WHERE {time_column} >= TIMESTAMP '{day}' "
                     f"AND {time_column} < TIMESTAMP '{day + DAY}'")
            old = self._get(self.key(table, day))
            if old is None:
                merged = conn.sql(f"{local} ORDER BY {time_column}").to_arrow_table()
                extra = 0
            else:
                view = f"_mirrored_{uuid.uuid4().hex}"
                conn.register(view, old)
                try:
                    # the object may predate a column DuckDB has since gained: fill it with NULL of the right type
                    have = set(old.column_names)
                    proj = ", ".join(c if c in have else f"CAST(NULL AS {t}) AS {c}" for c, t in columns)
                    if key:
                        only_s3 = (f"SELECT {proj} FROM {view} m WHERE NOT EXISTS (SELECT 1 FROM ({local}) l "
                                   f"WHERE {' AND '.join(f'l.{k} = m.{k}' for k in key)})")
                    else:
                        only_s3 = f"SELECT {proj} FROM {view} EXCEPT ALL {local}"
                    merged = conn.sql(
                        f"SELECT * FROM ({local} UNION ALL ({only_s3})) ORDER BY {time_column}").to_arrow_table()
                    extra = merged.num_rows - conn.sql(f"SELECT count(*) FROM ({local})").fetchall()[0][0]
                finally:
                    conn.unregister(view)
            if extra:
                log.warning("%s %s: S3 holds %d rows that DuckDB lacks (kept in the mirror); run "
                            "`btc-assets restore-warehouse` before trading on this warehouse", table, day.date(), extra)
            buf = io.BytesIO()
            pq.write_table(merged, buf)
            self.client.put_object(Bucket=self.bucket, Key=self.key(table, day), Body=buf.getvalue())
            written += merged.num_rows
        return written

    def _get(self, key: str) -> pa.Table | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return pq.read_table(io.BytesIO(body))


def _days(table: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    if start != start.normalize() or end != end.normalize():
        raise ValueError(f"{table}: window {start}..{end} is not whole days; it cannot be mirrored by day")
    return pd.date_range(start, end, freq="D", inclusive="left")


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return schema or "main", name


@contextlib.contextmanager
def mirroring(mirror: S3TableMirror | None) -> Iterator[None]:
    token = ACTIVE.set(mirror)
    try:
        yield
    finally:
        ACTIVE.reset(token)


def restore(conn: duckdb.DuckDBPyConnection, mirror: S3TableMirror) -> dict[str, int]:
    """Rebuild every mirrored table in `conn` from S3 (replacing it); returns rows per table."""
    paginator = mirror.client.get_paginator("list_objects_v2")
    keys: dict[str, list[str]] = {}
    for page in paginator.paginate(Bucket=mirror.bucket, Prefix=f"{mirror.prefix}/"):
        for obj in page.get("Contents", []):
            schema, name = obj["Key"].split("/")[1:3]
            keys.setdefault(f"{schema}.{name}", []).append(obj["Key"])
    restored = {}
    with tempfile.TemporaryDirectory() as tmp:
        for table, objects in sorted(keys.items()):
            files = []
            for i, key in enumerate(sorted(objects)):
                path = Path(tmp) / f"{table}-{i}.parquet"
                path.write_bytes(mirror.client.get_object(Bucket=mirror.bucket, Key=key)["Body"].read())
                files.append(str(path))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
            conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet(?, union_by_name = true)",
                         [files])
            restored[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return restored
