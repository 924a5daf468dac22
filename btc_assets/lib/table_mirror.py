"""Warehouse tables on S3: every replaced window is also written as parquet, one object per day, and a DuckDB
warehouse can be rebuilt from those objects on any machine.

In production the DuckDB file lives on a volume for speed, and S3 holds the durable copy of every table
(`s3://bucket/warehouse/<schema>/<table>/date=YYYY-MM-DD.parquet`). The mirror is active only while a production
warehouse connection is open (a context variable set by WarehouseResource), so lib code and tests that use plain
DuckDB connections are unaffected. A day the window left empty is written as an empty file, so a re-materialized
day can never leave an older copy behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

ACTIVE: contextvars.ContextVar[S3TableMirror | None] = contextvars.ContextVar("btc_table_mirror", default=None)
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class S3TableMirror:
    client: object  # a boto3 S3 client
    bucket: str
    prefix: str = "warehouse"

    def key(self, table: str, day: pd.Timestamp) -> str:
        schema, _, name = table.rpartition(".")
        return f"{self.prefix}/{schema or 'main'}/{name}/date={day:%Y-%m-%d}.parquet"

    def put(self, table: str, frame: pd.DataFrame, time_column: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
        """Write the window day by day (whole days only: windows are partitions); returns the objects written."""
        if start != start.normalize() or end != end.normalize():
            raise ValueError(f"{table}: window {start}..{end} is not whole days; it cannot be mirrored by day")
        days = pd.date_range(start, end, freq="D", inclusive="left")
        t = frame[time_column]
        for day in days:
            part = frame[(t >= day) & (t < day + DAY)]
            buf = io.BytesIO()
            part.to_parquet(buf, index=False)
            self.client.put_object(Bucket=self.bucket, Key=self.key(table, day), Body=buf.getvalue())
        return len(days)


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
