"""Warehouse tables as Delta Lake tables (delta-rs), partitioned by UTC day, on local disk or on S3.

Why Delta Lake and not DuckLake: docs/ARCHITECTURE.md ("Lakehouse"); the measurements are `bench_lakehouse`.

- One table = one directory (`<root>/<schema>/<table>`), locally or under an S3 prefix. Rows carry a `utc_day`
  column (`YYYY-MM-DD` of the table's time column, UTC): the partition.
- `replace_window` is one Delta commit: the rows of [start, end) are replaced by the new ones (an overwrite with a
  predicate on `utc_day` and on the time column), so a reader sees the old window or the new one, never a mix, and
  every other row -- other days, the rest of a partly replaced day -- is untouched. Rows outside the window are
  refused, as in the DuckDB warehouse.
- Writers need no lock of ours. Each commit creates the next `_delta_log/<version>.json` only if it does not exist
  (on S3 a conditional PUT, `If-None-Match: *`; locally an atomic create). A writer that loses the race re-reads
  the log and retries at the next version when the winner touched other partitions (different days: no conflict);
  it fails with the conflict when both replaced the same rows. The retries are in each commit's metrics.
- The log is the audit trail: every commit keeps its operation, predicate, rows added and removed and time
  (`history`). Nothing here vacuums old files, so every version stays readable (`read_window(version=...)`).

Reads go through delta-rs' own query engine (DataFusion), not through a pyarrow dataset: a process that scanned a
pyarrow dataset of a Delta table aborts at exit now and then ("terminate called without an active exception",
delta-rs issue 2184; measured here: 5 of 12 runs).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import uuid
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

DAY = "utc_day"  # the partition column (a table's own column may be called `day`)
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
# DuckDB column types of the warehouse (lib/storage/warehouse.py) as arrow types: the same table declarations serve
# both stores. A time column is a UTC instant in microseconds (Delta's `timestamp`).
_ARROW = {"TIMESTAMP": pa.timestamp("us", tz="UTC"), "DOUBLE": pa.float64(), "FLOAT": pa.float32(),
          "BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "TINYINT": pa.int8(),
          "BOOLEAN": pa.bool_(), "VARCHAR": pa.string(), "TEXT": pa.string(), "DATE": pa.date32()}
# Where the lakehouse is when nothing says otherwise (`BTC_LAKEHOUSE_URI`): beside the DuckDB file.
URI_VAR = "BTC_LAKEHOUSE_URI"
WRITE_ID = "btc_assets.write_id"  # in each commit's commitInfo
METADATA_RETRIES = 5  # a window commit made again after a concurrent metadata commit (a new table's first windows)


# The lakehouse every warehouse window write is also committed to (WarehouseResource sets it while a connection is
# open, when BTC_LAKEHOUSE_URI is set): lib/storage/warehouse.replace_window.
ACTIVE: contextvars.ContextVar[Lakehouse | None] = contextvars.ContextVar("btc_lakehouse", default=None)


# Window commits put off until the warehouse connection is closed (WarehouseResource): the DuckDB file is free for
# other runs while delta-rs writes. None: commit at once.
DEFERRED: contextvars.ContextVar[list | None] = contextvars.ContextVar("btc_lakehouse_deferred", default=None)


@contextlib.contextmanager
def committing(lake: Lakehouse | None, deferred: list | None = None) -> Iterator[None]:
    """Within it, every warehouse window write is also committed to `lake`: at once, or, with `deferred`, appended
    there as (table, columns, frame, time_column, start, end) for the caller to commit (commit_deferred)."""
    token, token_d = ACTIVE.set(lake), DEFERRED.set(deferred)
    try:
        yield
    finally:
        ACTIVE.reset(token)
        DEFERRED.reset(token_d)


def commit_window(lake: Lakehouse, table: str, columns: Mapping[str, str], df: pd.DataFrame, time_column: str,
                  start, end) -> None:
    """lake.replace_window now, or once the warehouse connection is closed when inside committing(..., deferred)."""
    deferred = DEFERRED.get()
    if deferred is not None:
        deferred.append((table, columns, df, time_column, start, end))
    else:
        lake.replace_window(table, columns, df, time_column, start, end)


def commit_deferred(lake: Lakehouse, deferred: list) -> None:
    """Commit the windows put off, in the order they were written to DuckDB (a failure raises: the step fails and a
    rerun replaces both)."""
    while deferred:
        lake.replace_window(*deferred.pop(0))


class LakehouseError(ValueError):
    """A write refused before anything was committed (the message names the table, the rows and what to change)."""


def arrow_schema(columns: Mapping[str, str]) -> pa.Schema:
    """The arrow schema of a table declared with DuckDB types, plus the `day` partition column."""
    fields = []
    for name, typ in columns.items():
        base = typ.upper().split("(")[0].strip()
        if base not in _ARROW:
            raise LakehouseError(f"column {name!r}: type {typ!r} has no lakehouse type; use one of {sorted(_ARROW)}")
        if name == DAY:
            raise LakehouseError(f"column {DAY!r} is the lakehouse's partition column: rename the table's column")
        fields.append(pa.field(name, _ARROW[base]))
    return pa.schema([*fields, pa.field(DAY, pa.string())])


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _literal(ts: pd.Timestamp) -> str:
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _days(start: pd.Timestamp, end: pd.Timestamp) -> tuple[str, str]:
    """First and last `day` partition that [start, end) touches."""
    return f"{start:%Y-%m-%d}", f"{(end - pd.Timedelta(microseconds=1)):%Y-%m-%d}"


@dataclass(frozen=True)
class Commit:
    table: str
    version: int  # the table's version after the commit
    rows: int  # rows written for the window
    days: list[str]  # the partitions the window touches
    retries: int  # times this commit was made again after another writer's (0: nobody wrote in between)


@dataclass(frozen=True)
class Lakehouse:
    """Delta tables under `root` (a local directory or s3://bucket/prefix). `storage_options`: delta-rs' object
    store options for S3 (credentials come from the environment unless given; never logged)."""

    root: str
    storage_options: dict = field(default_factory=dict, repr=False)

    @classmethod
    def at(cls, root: str, env: Mapping[str, str] = os.environ) -> Lakehouse:
        """The lakehouse at `root`, with the S3 options from the environment for an s3:// root."""
        return cls(root, s3_options(env) if root.startswith("s3://") else {})

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, data_dir: str | None = None) -> Lakehouse:
        """`BTC_LAKEHOUSE_URI` (default `$BTC_DATA_DIR/lakehouse`). For an s3:// root: the AWS_* variables the
        SDKs read (`AWS_ENDPOINT_URL` for an S3-compatible server, `AWS_REGION`, the credentials) and conditional
        PUT for the commits."""
        return cls.at(env.get(URI_VAR) or os.path.join(data_dir or env.get("BTC_DATA_DIR", "data"), "lakehouse"), env)

    def uri(self, table: str) -> str:
        if not _TABLE.match(table):
            raise LakehouseError(f"table {table!r}: name it schema.table in lowercase letters, digits and _")
        schema, name = table.split(".")
        return f"{self.root.rstrip('/')}/{schema}/{name}"

    def _table(self, table: str, version: int | None = None):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def exists(self, table: str) -> bool:
        return self._table(table) is not None

    def version(self, table: str) -> int | None:
        t = self._table(table)
        return None if t is None else int(t.version())

    def replace_window(self, table: str, columns: Mapping[str, str], df: pd.DataFrame, time_column: str,
                       start, end, note: Mapping[str, str] | None = None,
                       where: Mapping[str, str] | None = None) -> Commit:
        """Replace the rows of `table` with time_column in [start, end) by `df` in one commit (an empty table is
        created first if there is none). Rows of `df` outside the window are refused, nothing is written. `note`:
        what the audit trail keeps with the commit (the run and partition that wrote it). `where`: text columns
        that further narrow what is replaced (one family's rows of a week), which every row of `df` must match."""
        from deltalake import CommitProperties, write_deltalake

        start, end = _utc(start), _utc(end)
        if not end > start:
            raise LakehouseError(f"{table}: empty window [{start}, {end})")
        if time_column not in columns or not columns[time_column].upper().startswith("TIMESTAMP"):
            raise LakehouseError(f"{table}: time column {time_column!r} must be a declared TIMESTAMP column")
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise LakehouseError(f"{table}: the rows to write lack columns {missing}")
        schema = arrow_schema(columns)
        frame = df[list(columns)].copy()
        t = pd.to_datetime(frame[time_column], utc=True)
        outside = (t < start) | (t >= end) | t.isna()
        if outside.any():
            first = frame.loc[outside.to_numpy(), time_column].iloc[0]
            raise LakehouseError(f"{table}: {int(outside.sum())} rows outside the window [{start}, {end}) (first "
                                 f"{time_column}={first}); refusing to write them (nothing was committed)")
        for col, value in (where or {}).items():
            if col not in columns or not _IDENT.match(col) or not columns[col].upper().startswith(("VARCHAR", "TEXT")):
                raise LakehouseError(f"{table}: where-column {col!r} must be a declared text column")
            if "'" in str(value):
                raise LakehouseError(f"{table}: where {col}={value!r}: a value without quotes")
            other = frame[col] != value
            if other.any():
                raise LakehouseError(f"{table}: {int(other.sum())} rows have {col} other than {value!r} (first "
                                     f"{frame.loc[other.to_numpy(), col].iloc[0]!r}); refusing to write them")
        for col, typ in columns.items():
            if typ.upper().startswith("TIMESTAMP"):
                frame[col] = pd.to_datetime(frame[col], utc=True)
        frame[DAY] = t.dt.strftime("%Y-%m-%d").to_numpy() if len(frame) else np.array([], dtype=object)
        data = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        d0, d1 = _days(start, end)
        predicate = (f"{DAY} >= '{d0}' AND {DAY} <= '{d1}' AND {time_column} >= '{_literal(start)}' "
                     f"AND {time_column} < '{_literal(end)}'"
                     + "".join(f" AND {col} = '{value}'" for col, value in (where or {}).items()))
        existing = self._ensure(table, schema)
        have = {f.name for f in existing.schema().fields}
        dropped = sorted(have - set(schema.names))
        if dropped:
            raise LakehouseError(f"{table}: the write lacks the table's columns {dropped}; removing a column needs a "
                                 "migration of the table, not a window write")
        # a table gains columns as the DuckDB warehouse's do (ensure_table): older rows read them as null
        merge = "merge" if set(schema.names) - have else None
        from deltalake.exceptions import CommitFailedError

        write_id = uuid.uuid4().hex  # finds this commit in the log whatever other writers committed after it
        props = CommitProperties(custom_metadata={WRITE_ID: write_id, **{f"btc_assets.{k}": str(v)
                                                                           for k, v in (note or {}).items()}})
        attempt = 0
        for attempt in range(METADATA_RETRIES + 1):
            try:
                write_deltalake(self.uri(table), data, partition_by=[DAY], mode="overwrite", predicate=predicate,
                                storage_options=self.storage_options or None, commit_properties=props,
                                schema_mode=merge)
                break
            except CommitFailedError as e:
                # The first windows of a new table can race with the commits that set its metadata: such a commit
                # changed nothing of this window, and the write (a replacement of its own window) is simply made
                # again on the table as it now is. Any other conflict is another writer's replacement of the same
                # rows: refused, never merged.
                if "metadata changed" in str(e).lower() and attempt < METADATA_RETRIES:
                    continue
                raise LakehouseError(f"{table}: another writer replaced rows of [{start}, {end}) at the same time; "
                                     f"nothing of this write was committed: rerun it ({e})") from None
        version, info = self._own_commit(table, write_id)
        retries = attempt + int((info.get("operationMetrics") or {}).get("num_retries", 0) or 0)
        days = list(pd.date_range(d0, d1, freq="D").strftime("%Y-%m-%d"))
        return Commit(table, version, len(frame), days, retries)

    def append_new(self, table: str, columns: Mapping[str, str], df: pd.DataFrame, time_column: str,
                   key: tuple[str, ...], note: Mapping[str, str] | None = None) -> int:
        """Insert the rows of `df` whose `key` the table does not hold yet, in one commit; nothing is ever updated
        or deleted (an append-only table such as the trading journal: a source that lost rows cannot thin out
        what the table holds). Returns the rows inserted (0: nothing new, and no commit is made)."""
        from deltalake import CommitProperties

        bad = [k for k in key if k not in columns or not _IDENT.match(k)]
        if bad or not key:
            raise LakehouseError(f"{table}: key columns {list(key)} must be declared columns")
        schema = arrow_schema(columns)
        frame = df[list(columns)].copy()
        if frame[list(key)].isna().any().any():
            raise LakehouseError(f"{table}: rows without a key ({', '.join(key)}): refusing to append them")
        for col, typ in columns.items():
            if typ.upper().startswith("TIMESTAMP"):
                frame[col] = pd.to_datetime(frame[col], utc=True)
        t = frame[time_column]
        if t.isna().any():
            raise LakehouseError(f"{table}: rows without {time_column}: their partition is unknown")
        frame[DAY] = t.dt.strftime("%Y-%m-%d").to_numpy() if len(frame) else np.array([], dtype=object)
        if frame.empty:
            return 0
        existing = self._ensure(table, schema)
        days = sorted(set(frame[DAY]))
        on = " AND ".join(f"t.{k} = s.{k}" for k in key)
        within = " OR ".join(f"t.{DAY} = '{d}'" for d in days)  # only the partitions the rows fall in are read
        props = CommitProperties(custom_metadata={f"btc_assets.{k}": str(v) for k, v in (note or {}).items()})
        out = existing.merge(pa.Table.from_pandas(frame, schema=schema, preserve_index=False),
                             predicate=f"({within}) AND {on}", source_alias="s", target_alias="t",
                             commit_properties=props).when_not_matched_insert_all().execute()
        return int(out.get("num_target_rows_inserted", 0) or 0)

    def _ensure(self, table: str, schema: pa.Schema):
        """The table, created empty (version 0: its schema and partitioning) if it does not exist yet. Two first
        writers may both create it: one commit wins, the other finds the table there and goes on to its window."""
        from deltalake import DeltaTable

        t = self._table(table)
        if t is not None:
            return t
        try:
            DeltaTable.create(self.uri(table), schema, partition_by=[DAY], mode="ignore",
                              storage_options=self.storage_options or None)
        except Exception:  # noqa: BLE001 - another writer created it first: the check below decides
            pass
        t = self._table(table)
        if t is None:
            raise LakehouseError(f"{table}: could not create the table under {self.root}: check the location "
                                 f"({URI_VAR}) and its credentials")
        return t

    def read_window(self, table: str, time_column: str, start, end, columns: list[str] | None = None,
                    version: int | None = None) -> pd.DataFrame:
        """Rows of `table` with time_column in [start, end), in time order (`version`: as of that commit).
        Only the partitions of the window are read."""
        from deltalake import QueryBuilder

        start, end = _utc(start), _utc(end)
        t = self._table(table, version)
        if t is None:
            raise LookupError(f"lakehouse table {table} does not exist under {self.root}: materialize it first")
        names = [f.name for f in t.schema().fields]
        cols = [c for c in (columns or names) if c != DAY]
        bad = [c for c in [*cols, time_column] if c not in names or not _IDENT.match(c)]
        if bad:
            raise LakehouseError(f"{table}: no column(s) {bad}; it has {names}")
        d0, d1 = _days(start, end)
        sql = (f"SELECT {', '.join(cols)} FROM t WHERE {DAY} >= '{d0}' AND {DAY} <= '{d1}' AND {time_column} >= "
               f"arrow_cast('{_literal(start)}', 'Timestamp(Microsecond, Some(\"UTC\"))') AND {time_column} < "
               f"arrow_cast('{_literal(end)}', 'Timestamp(Microsecond, Some(\"UTC\"))') ORDER BY {time_column}")
        result = pa.table(QueryBuilder().register("t", t).execute(sql).read_all())
        out = result.to_pandas()
        for c in cols:
            if isinstance(out[c].dtype, pd.DatetimeTZDtype):
                out[c] = out[c].astype("datetime64[ns, UTC]")
        return out

    def _commit_info(self, table: str, version: int) -> dict:
        """The commitInfo action of the table's log entry `version` (`_delta_log/<20-digit version>.json`, one JSON
        action per line), read as the Delta protocol stores it. (delta-rs' own history() hangs on an S3-compatible
        server here, without a request: the entry is read directly, locally or with the S3 client.)"""
        key = f"{self.uri(table)}/_delta_log/{version:020d}.json"
        if key.startswith("s3://"):
            bucket, _, path = key.removeprefix("s3://").partition("/")
            body = self._s3().get_object(Bucket=bucket, Key=path)["Body"].read().decode()
        else:
            with open(key.removeprefix("file://"), encoding="utf-8") as f:
                body = f.read()
        for line in body.splitlines():
            action = json.loads(line) if line.strip() else {}
            if "commitInfo" in action:
                return action["commitInfo"]
        return {}

    def _own_commit(self, table: str, write_id: str) -> tuple[int, dict]:
        """(version, commitInfo) of the commit carrying `write_id`: the newest ones are looked at first (other
        writers may have committed after it)."""
        latest = self.version(table)
        for v in range(latest, max(-1, latest - 1000), -1):
            info = self._commit_info(table, v)
            if info.get(WRITE_ID) == write_id:
                return v, info
        raise LakehouseError(f"{table}: the commit just made is not among its last 1,000 log entries")

    def _s3(self):
        import boto3

        o = self.storage_options
        return boto3.client("s3", endpoint_url=o.get("AWS_ENDPOINT_URL"), region_name=o.get("AWS_REGION"),
                            aws_access_key_id=o.get("AWS_ACCESS_KEY_ID"),
                            aws_secret_access_key=o.get("AWS_SECRET_ACCESS_KEY"),
                            aws_session_token=o.get("AWS_SESSION_TOKEN"))

    def history(self, table: str, limit: int | None = None) -> list[dict]:
        """The table's commits, newest first (the audit trail): version, time, operation, its predicate, rows
        added, files removed, and the commits of other writers it was retried after."""
        version = self.version(table)
        if version is None:
            return []
        out = []
        for v in range(version, max(-1, version - limit) if limit else -1, -1):
            h = self._commit_info(table, v)
            metrics = h.get("operationMetrics") or {}
            params = h.get("operationParameters") or {}
            out.append({"version": v, "at": pd.Timestamp(int(h.get("timestamp", 0)), unit="ms", tz="UTC"),
                        "operation": h.get("operation"), "mode": params.get("mode"),
                        "predicate": params.get("predicate"),
                        "rows_added": metrics.get("num_added_rows", metrics.get("num_target_rows_inserted")),
                        "files_removed": metrics.get("num_removed_files"), "retries": metrics.get("num_retries"),
                        "note": {k.removeprefix("btc_assets."): v for k, v in h.items()
                                 if k.startswith("btc_assets.") and k != WRITE_ID}})
        return out


def s3_options(env: Mapping[str, str] = os.environ) -> dict:
    """delta-rs' S3 options from the environment: endpoint and region as the AWS SDKs read them; commits by
    conditional PUT (`If-None-Match: *` on the next log entry: AWS S3 since 2024, MinIO, R2 and moto's server), so
    concurrent writers need no DynamoDB lock. Credentials stay in the environment, which delta-rs reads itself."""
    opts = {"aws_conditional_put": "etag"}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        opts["AWS_REGION"] = region
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if env.get(key):
            opts[key] = env[key]
    return opts
