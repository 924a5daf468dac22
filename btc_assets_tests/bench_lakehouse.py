"""Lakehouse bench: one table written day by day and read back in the DuckDB warehouse, in Delta Lake (delta-rs,
lib/storage/lakehouse.py) and in DuckLake, side by side; and Delta's concurrent writers.

    python -m btc_assets_tests.bench_lakehouse [--days 30] [--columns 130]

The table is a day of 1m rows per partition with `--columns` float columns (130: gold/features' width). Each store
replaces the days one by one (a daily partition's write), replaces one day again (a re-materialization), reads a
week back in time order and aggregates the whole table by day. DuckLake runs in its own virtualenv
(.bench/ducklake-venv, from bench/requirements-ducklake.txt: its PyPI extension is built for DuckDB 1.4.4, the
platform pins 2.0.0). Delta also writes the same days from 1, 2 and 4 threads at once (different partitions, no lock
of ours). Figures are rows/s and ratios to the DuckDB warehouse. Results go to .bench/lakehouse.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd

from btc_assets.lib.storage.lakehouse import Lakehouse
from btc_assets.lib.storage.warehouse import read_window, replace_window

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
VENV = BENCH / "ducklake-venv"
OUT = BENCH / "lakehouse.json"
START = pd.Timestamp("2024-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
sys.path.insert(0, str(REPO / "bench"))
from ducklake_worker import DAY_MINUTES, day_frame  # noqa: E402  (the same rows as the DuckLake side)


def _frames(days: int, columns: int) -> list[pd.DataFrame]:
    out = []
    for d in range(days):
        f = day_frame(d, columns)
        f["open_time"] = f["open_time"].dt.tz_localize("UTC")
        out.append(f)
    return out


def _types(columns: int) -> dict[str, str]:
    return {"open_time": "TIMESTAMP", **{f"f{i}": "DOUBLE" for i in range(columns)}}


def duckdb_store(frames: list[pd.DataFrame], columns: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="duckdb-bench-"))
    conn = duckdb.connect(str(root / "warehouse.duckdb"))
    types = _types(columns)
    t0 = time.perf_counter()
    for d, f in enumerate(frames):
        replace_window(conn, "gold.t", types, f, "open_time", START + d * DAY, START + (d + 1) * DAY)
    write_s = time.perf_counter() - t0
    mid = len(frames) // 2
    t0 = time.perf_counter()
    replace_window(conn, "gold.t", types, frames[mid], "open_time", START + mid * DAY, START + (mid + 1) * DAY)
    rewrite_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = read_window(conn, "gold.t", "open_time", START + mid * DAY, START + (mid + 7) * DAY)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    agg = conn.execute("SELECT date_trunc('day', open_time), avg(f0), max(f1) FROM gold.t GROUP BY 1").fetchall()
    agg_s = time.perf_counter() - t0
    assert len(got) == 7 * DAY_MINUTES and len(agg) == len(frames)
    return {"store": "DuckDB warehouse (one file, one writer)", "write_s": write_s, "rewrite_s": rewrite_s,
            "read_week_s": read_s, "aggregate_s": agg_s}


def delta_store(frames: list[pd.DataFrame], columns: int) -> dict:
    lh = Lakehouse(tempfile.mkdtemp(prefix="delta-bench-"))
    types = _types(columns)
    t0 = time.perf_counter()
    for d, f in enumerate(frames):
        lh.replace_window("gold.t", types, f, "open_time", START + d * DAY, START + (d + 1) * DAY)
    write_s = time.perf_counter() - t0
    mid = len(frames) // 2
    t0 = time.perf_counter()
    lh.replace_window("gold.t", types, frames[mid], "open_time", START + mid * DAY, START + (mid + 1) * DAY)
    rewrite_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = lh.read_window("gold.t", "open_time", START + mid * DAY, START + (mid + 7) * DAY)
    read_s = time.perf_counter() - t0
    from deltalake import QueryBuilder

    t0 = time.perf_counter()
    agg = QueryBuilder().register("t", lh._table("gold.t")).execute(
        "SELECT date_trunc('day', open_time), avg(f0), max(f1) FROM t GROUP BY 1").read_all()
    agg_s = time.perf_counter() - t0
    assert len(got) == 7 * DAY_MINUTES and len(agg) == len(frames)
    return {"store": "Delta Lake (delta-rs, local disk)", "write_s": write_s, "rewrite_s": rewrite_s,
            "read_week_s": read_s, "aggregate_s": agg_s}


def delta_concurrent(frames: list[pd.DataFrame], columns: int, writers: int) -> dict:
    """Every day written by `writers` threads at once (each its own days, no lock of ours): wall seconds, and the
    commits made again after another writer's."""
    lh = Lakehouse(tempfile.mkdtemp(prefix="delta-concurrent-"))
    types = _types(columns)
    lh.replace_window("gold.t", types, frames[0].iloc[:0], "open_time", START - DAY, START)  # the table exists
    retries, errors = [0], []

    def work(k: int) -> None:
        for d in range(k, len(frames), writers):
            try:
                c = lh.replace_window("gold.t", types, frames[d], "open_time", START + d * DAY, START + (d + 1) * DAY)
                retries[0] += c.retries
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rows = len(lh.read_window("gold.t", "open_time", START, START + len(frames) * DAY))
    return {"writers": writers, "wall_s": wall, "retries": retries[0], "errors": len(errors),
            "rows_ok": rows == len(frames) * DAY_MINUTES}


def ensure_ducklake_venv() -> Path:
    from btc_assets_tests.bench_backtest import ensure_bench_venv

    return ensure_bench_venv(VENV, "requirements-ducklake.txt", "DuckDB 1.4.4 + DuckLake")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--columns", type=int, default=130)
    ap.add_argument("--no-ducklake", action="store_true", help="skip the DuckLake side (no virtualenv for it)")
    a = ap.parse_args(argv)
    if a.days < 14:
        ap.error("--days: at least 14 (a week is read back from the middle of the days)")
    BENCH.mkdir(exist_ok=True)
    frames = _frames(a.days, a.columns)
    rows = a.days * DAY_MINUTES
    results = [duckdb_store(frames, a.columns), delta_store(frames, a.columns)]
    if not a.no_ducklake:
        out = subprocess.run([str(ensure_ducklake_venv()), str(REPO / "bench" / "ducklake_worker.py"), str(a.days),
                              str(a.columns)], capture_output=True, text=True, cwd=REPO)
        if out.returncode != 0:
            raise SystemExit(f"the DuckLake worker failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]
    print(f"{a.days} daily partitions of {DAY_MINUTES} rows x {a.columns} float columns ({rows:,} rows)\n")
    print(f"{'store':<52}{'write rows/s':>14}{'rewrite a day':>15}{'read a week':>13}{'aggregate':>11}")
    for r in results:
        r["write_rows_per_s"] = rows / r["write_s"]
        r["vs_duckdb"] = {k: r[k] / base[k] for k in ("write_s", "rewrite_s", "read_week_s", "aggregate_s")}
        print(f"{r['store']:<52}{r['write_rows_per_s']:>14,.0f}{r['rewrite_s']:>13.3f} s{r['read_week_s']:>11.3f} s"
              f"{r['aggregate_s']:>9.3f} s")
    print("\ntimes relative to the DuckDB warehouse (lower is faster):")
    for r in results[1:]:
        v = r["vs_duckdb"]
        print(f"  {r['store']:<50} write {v['write_s']:.2f}x, rewrite {v['rewrite_s']:.2f}x, read {v['read_week_s']:.2f}x,"
              f" aggregate {v['aggregate_s']:.2f}x")
    concurrent = [delta_concurrent(frames, a.columns, w) for w in (1, 2, 4)]
    print("\nDelta, the same days from several writers at once (different partitions, no lock of ours):")
    for c in concurrent:
        print(f"  {c['writers']} writer(s): {rows / c['wall_s']:,.0f} rows/s ({c['wall_s'] / concurrent[0]['wall_s']:.2f}x"
              f" the wall time of one), {c['retries']} commits made again, {c['errors']} failed, all rows there: "
              f"{c['rows_ok']}")
    OUT.write_text(json.dumps({"days": a.days, "columns": a.columns, "stores": results, "delta_concurrent": concurrent},
                              indent=2, default=float))
    print(f"written {OUT}")
    return 0 if all(c["rows_ok"] and not c["errors"] for c in concurrent) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
