"""The DuckLake side of `python -m btc_assets_tests.bench_lakehouse`, run in its own virtualenv
(.bench/ducklake-venv, from bench/requirements-ducklake.txt): PyPI's DuckLake extension is built for DuckDB 1.4.4,
the platform pins DuckDB 2.0.0. Prints one JSON line with the same figures as the bench's other stores.

    python bench/ducklake_worker.py DAYS COLUMNS
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import duckdb
import numpy as np
import pandas as pd

DAY_MINUTES = 1440


def day_frame(day: int, columns: int) -> pd.DataFrame:
    """The bench's rows for day `day` (the same generator as the bench: a seed per day)."""
    rng = np.random.default_rng(day)
    t = pd.date_range(pd.Timestamp("2024-01-01") + pd.Timedelta(days=day), periods=DAY_MINUTES, freq="1min")
    return pd.DataFrame({"open_time": t, **{f"f{i}": rng.normal(size=DAY_MINUTES) for i in range(columns)}})


def main(days: int, columns: int) -> None:
    import duckdb_ext  # the extension's package: only in the DuckLake virtualenv

    root = tempfile.mkdtemp(prefix="ducklake-bench-")
    conn = duckdb.connect()
    conn.execute(f"SET extension_directory='{os.path.join(list(duckdb_ext.__path__)[0], 'extensions')}'")
    conn.execute("LOAD ducklake")
    conn.execute(f"ATTACH 'ducklake:{root}/catalog.ducklake' AS lake (DATA_PATH '{root}/data')")
    cols = ", ".join(f"f{i} DOUBLE" for i in range(columns))
    conn.execute(f"CREATE TABLE lake.t (open_time TIMESTAMP, {cols})")
    conn.execute("ALTER TABLE lake.t SET PARTITIONED BY (year(open_time), month(open_time), day(open_time))")
    frames = [day_frame(d, columns) for d in range(days)]

    def replace(d: int) -> None:
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=d)
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DELETE FROM lake.t WHERE open_time >= ? AND open_time < ?", [start, start + pd.Timedelta(days=1)])
        conn.register("incoming", frames[d])
        conn.execute("INSERT INTO lake.t SELECT * FROM incoming")
        conn.unregister("incoming")
        conn.execute("COMMIT")

    t0 = time.perf_counter()
    for d in range(days):
        replace(d)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    replace(days // 2)
    rewrite_s = time.perf_counter() - t0
    week = pd.Timestamp("2024-01-01") + pd.Timedelta(days=days // 2)
    t0 = time.perf_counter()
    got = conn.execute("SELECT * FROM lake.t WHERE open_time >= ? AND open_time < ? ORDER BY open_time",
                       [week, week + pd.Timedelta(days=7)]).df()
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    agg = conn.execute("SELECT date_trunc('day', open_time) AS d, avg(f0), max(f1) FROM lake.t GROUP BY 1").fetchall()
    agg_s = time.perf_counter() - t0
    assert len(got) == 7 * DAY_MINUTES and len(agg) == days
    print(json.dumps({"store": "DuckLake (DuckDB 1.4.4, catalog in a DuckDB file)", "write_s": write_s,
                      "rewrite_s": rewrite_s, "read_week_s": read_s, "aggregate_s": agg_s}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
