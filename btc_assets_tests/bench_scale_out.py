"""Scale-out: the same 60-day backfill (bronze -> silver -> gold) with 1 and with 2 worker processes.

    .venv/bin/python -m btc_assets_tests.bench_scale_out [--workers 1,2] [--chunk-days 15] [--datasets ...]

Each run of the comparison is `btc-assets backfill --start --end --workers N` over every day of the bundled sample
(60 days; klines, funding and the market datasets by default) in a fresh data directory with the Delta lakehouse
on, exactly as a user runs it. No pool queues the runs: each asset holds the DuckDB warehouse only to read and to
write, and Delta commits of different days need no lock. Prints partitions (days) per second for each worker count
and the speed-up over one worker (target >= 1.6x on 2 cores), and one JSON line; .bench/scale_out.json keeps it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "btc_assets" / "sample_data" / "archive"
KLINES_DIR = "data/futures/um/daily/klines/BTCUSDT/1m"


def sample_span() -> tuple[dt.date, dt.date]:
    days = sorted(dt.date.fromisoformat(re.search(r"(\d{4}-\d{2}-\d{2})", z.name).group(1))
                  for z in (SAMPLE / KLINES_DIR).glob("*.zip"))
    return days[0], days[-1]


def backfill(workers: int, start: dt.date, end: dt.date, chunk_days: int, datasets: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"scale_out_{workers}_") as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "BTC_DATA_DIR": str(data), "BINANCE_ARCHIVE_URL": str(SAMPLE),
               "BTC_LAKEHOUSE_URI": str(data / "lakehouse")}
        env.pop("DAGSTER_HOME", None)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "btc_assets.cli.main", "backfill", "--start", start.isoformat(),
                              "--end", end.isoformat(), "--datasets", datasets, "--chunk-days", str(chunk_days),
                              "--workers", str(workers)], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"backfill with {workers} worker(s) failed:\n{res.stderr[-4000:]}")
        runs = re.search(r"backfill done: (\d+) runs", res.stderr)
    days = (end - start).days + 1
    return {"workers": workers, "seconds": round(wall, 1), "days": days, "runs": int(runs.group(1)),
            "partitions_per_second": round(days / wall, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--chunk-days", type=int, default=15)
    ap.add_argument("--datasets", default="klines,funding,market")
    args = ap.parse_args(argv)
    start, end = sample_span()
    results = [backfill(int(w), start, end, args.chunk_days, args.datasets) for w in args.workers.split(",")]
    base = results[0]["seconds"]
    print(f"\nscale-out: {start}..{end} ({results[0]['days']} daily partitions, datasets {args.datasets}, "
          f"{args.chunk_days} days a run, bronze -> silver -> gold, Delta lakehouse on), {os.cpu_count()} cores")
    print(f"{'workers':>8} {'runs':>5} {'seconds':>8} {'partitions/s':>13} {'speed-up':>9}")
    for r in results:
        r["speed_up"] = round(base / r["seconds"], 2)
        print(f"{r['workers']:>8} {r['runs']:>5} {r['seconds']:>8.1f} {r['partitions_per_second']:>13.3f} "
              f"{r['speed_up']:>8.2f}x")
    best = results[-1]["speed_up"]
    print(f"speed-up with {results[-1]['workers']} workers: {best:.2f}x (target >= 1.6x on 2 cores): "
          f"{'met' if best >= 1.6 else 'NOT met'}")
    out = {"bench": "scale_out", "span": f"{start}..{end}", "datasets": args.datasets,
           "chunk_days": args.chunk_days, "results": results}
    Path(REPO / ".bench").mkdir(exist_ok=True)
    (REPO / ".bench" / "scale_out.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
