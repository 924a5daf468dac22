"""The whole BTCUSDT history at scale (SYNTHETIC, and labelled so): wall time, peak memory and lake size.

    .venv/bin/python -m btc_assets_tests.bench_full_history [--start 2019-09-08] [--end YESTERDAY] [--agg-days 2]

1. A local archive mirror with a daily 1m kline file (zip + CHECKSUM, the archive's exact layout) for every day from
   --start (the listing, 2019-09-08) to --end, at real density (1,440 rows a day): the bundled sample's real rows,
   re-dated (day i is sample day i mod 60). Prices therefore repeat; volumes and row counts are real.
2. `btc-assets backfill` over the whole range (klines: bronze -> silver 1m..1d -> gold features and labels), in a
   fresh data directory with the Delta lakehouse on (BTC_LAKEHOUSE_URI), as a user would run it. Measured: wall time,
   the backfill process's peak RSS, the data directory's size by part (bronze files, DuckDB warehouse, Delta tables).
3. aggTrades at real density for --agg-days sampled days: from each minute's real trade count, one synthetic
   aggTrade per --agg-divisor trades (the archive aggregates fills of one taker order at one price; the default, 4,
   gives about 2M rows a day on the sample's days, the archive's typical BTCUSDT density; 1 is the upper bound): bronze -> silver (agg_trades, order_flow_1m) timed per day, then EXTRAPOLATED to every day of the
   range (the archive has aggTrades from 2019-12-31) and printed as such.
Prints a table and one JSON line; .bench/full_history.json keeps it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "btc_assets" / "sample_data" / "archive"
KLINES_DIR = "data/futures/um/daily/klines/BTCUSDT/1m"
LISTING = dt.date(2019, 9, 8)
AGG_TRADES_FROM = dt.date(2019, 12, 31)
DAY_MS = 86_400_000


def sample_days() -> list[tuple[dt.date, str, list[str]]]:
    """(day, header line or "", data lines) of every bundled 1m kline file."""
    out = []
    for z in sorted((SAMPLE / KLINES_DIR).glob("*.zip")):
        day = dt.date.fromisoformat(re.search(r"(\d{4}-\d{2}-\d{2})", z.name).group(1))
        text = zipfile.ZipFile(z).read(z.name.replace(".zip", ".csv")).decode()
        lines = text.strip("\n").split("\n")
        header = lines[0] if not lines[0][:1].isdigit() else ""
        out.append((day, header, lines[1:] if header else lines))
    return out


def write_mirror(root: Path, start: dt.date, end: dt.date) -> int:
    """The re-dated daily files of [start, end] under root (the archive's layout); returns the rows written."""
    from btc_assets.lib.data.archive.files import daily_file
    from btc_assets.lib.data.synthetic.archive_writer import write_archive_file

    days = sample_days()
    parsed = []
    for day, header, lines in days:
        fields = np.array([ln.split(",") for ln in lines], dtype=object)
        parsed.append((day, header, fields))
    rows, n = 0, (end - start).days + 1
    for i in range(n):
        day = start + dt.timedelta(days=i)
        src_day, header, fields = parsed[i % len(parsed)]
        shift = (day - src_day).days * DAY_MS
        f = fields.copy()
        f[:, 0] = [str(int(x) + shift) for x in fields[:, 0]]
        f[:, 6] = [str(int(x) + shift) for x in fields[:, 6]]
        body = "\n".join(",".join(r) for r in f) + "\n"
        data = ((header + "\n") if header else "") + body
        write_archive_file(root, daily_file("klines", "BTCUSDT", day, interval="1m"), data.encode())
        rows += len(f)
    return rows


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_backfill(data: Path, archive: Path, start: dt.date, end: dt.date, datasets: str, chunk_days: int,
                 lakehouse: bool, log: Path) -> tuple[float, float, str]:
    """`btc-assets backfill` in a subprocess; (wall seconds, peak RSS in GB of the children so far, its stderr)."""
    env = {**os.environ, "BTC_DATA_DIR": str(data), "BINANCE_ARCHIVE_URL": str(archive),
           "BTC_PARTITIONS_END": end.isoformat()}
    env.pop("DAGSTER_HOME", None)
    if lakehouse:
        env["BTC_LAKEHOUSE_URI"] = str(data / "lakehouse")
    else:
        env.pop("BTC_LAKEHOUSE_URI", None)
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "btc-assets"), "backfill", "--start",
                                 start.isoformat(), "--end", end.isoformat(), "--datasets", datasets, "--chunk-days",
                                 str(chunk_days)], env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage (its peak RSS)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    text = log.read_text()
    if rc != 0:
        raise SystemExit(f"backfill failed (rc {rc}); its log: {log}\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024 / 1024, text  # KiB on Linux


def step_seconds(text: str, prefix: str) -> float:
    return sum(float(m) for m in re.findall(rf"\] \d+/\d+  {re.escape(prefix)}[^:]*: ([\d.]+) s", text))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=dt.date.fromisoformat, default=LISTING)
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date.today() - dt.timedelta(days=1))
    ap.add_argument("--chunk-days", type=int, default=30)
    ap.add_argument("--agg-days", type=int, default=2, help="aggTrades days at real density, timed and extrapolated")
    ap.add_argument("--agg-divisor", type=int, default=4, help="real trades per synthetic aggTrade")
    ap.add_argument("--no-lakehouse", action="store_true", help="the DuckDB warehouse only")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-full-history-"))
    try:
        days = (args.end - args.start).days + 1
        t0 = time.perf_counter()
        rows = write_mirror(tmp / "archive", args.start, args.end)
        print(f"mirror: {days:,} synthetic days ({rows:,} 1m rows, real sample rows re-dated) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        wall, peak, text = run_backfill(tmp / "data", tmp / "archive", args.start, args.end, "klines",
                                        args.chunk_days, not args.no_lakehouse, tmp / "backfill.log")
        data = tmp / "data"
        sizes = {"bronze files (lake/)": du(data / "lake"), "DuckDB warehouse": du(data / "warehouse.duckdb"),
                 "Delta tables (lakehouse/)": du(data / "lakehouse")}
        silver_s, gold_s = step_seconds(text, "klines bronze->silver"), step_seconds(text, "gold features+labels")
        # aggTrades at real density for a few days: their own archive (the klines of those days plus the synthetic
        # market files made from them), their own data dir
        from btc_assets.lib.data.synthetic.generate import generate

        agg_days = [args.end - dt.timedelta(days=i) for i in range(args.agg_days)][::-1]
        agg_archive = tmp / "agg-archive"
        for d in agg_days:
            src = tmp / "archive" / KLINES_DIR / f"BTCUSDT-1m-{d}.zip"
            dst = agg_archive / KLINES_DIR
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst / src.name)
            shutil.copy(str(src) + ".CHECKSUM", dst / (src.name + ".CHECKSUM"))
        t1 = time.perf_counter()
        entries = generate(agg_archive, "BTCUSDT", set(agg_days), divisor=args.agg_divisor)
        agg_rows = sum(int(e["rows"]) for e in entries if "aggTrades" in str(e["relpath"]))
        gen_s = time.perf_counter() - t1
        _, peak_agg, agg_text = run_backfill(tmp / "agg-data", agg_archive, agg_days[0], agg_days[-1], "klines,market",
                                             1, not args.no_lakehouse, tmp / "agg.log")
        market_s = step_seconds(agg_text, "market bronze->silver")
        agg_total_days = max(0, (args.end - max(args.start, AGG_TRADES_FROM)).days + 1)
        per_day = market_s / len(agg_days)
        agg_size = du(tmp / "agg-data")
        figures = {
            "synthetic_days": days, "kline_rows": rows, "backfill_wall_s": round(wall, 1),
            "backfill_days_per_s": round(days / wall, 2), "klines_bronze_silver_s": round(silver_s, 1),
            "gold_s": round(gold_s, 1), "backfill_peak_rss_gb": round(peak, 2),
            **{f"size_{k.split(' ')[0].lower()}_mb": round(v / 1e6, 1) for k, v in sizes.items()},
            "agg_sampled_days": len(agg_days), "agg_rows_per_day": round(agg_rows / len(agg_days)),
            "agg_generate_s": round(gen_s, 1), "agg_market_s_per_day": round(per_day, 1),
            "agg_peak_rss_gb": round(peak_agg, 2),
            "agg_extrapolated_days": agg_total_days, "agg_extrapolated_hours": round(per_day * agg_total_days / 3600, 1),
            "agg_extrapolated_size_gb": round(agg_size / len(agg_days) * agg_total_days / 1e9, 1),
            "agg_s_per_day_at_2m_rows": round(per_day * 2e6 / max(agg_rows / len(agg_days), 1), 1),
        }
        print(f"\nSYNTHETIC full history {args.start}..{args.end} ({days:,} days), klines at real density, "
              f"{'DuckDB + Delta lakehouse' if not args.no_lakehouse else 'DuckDB only'}, one process:")
        print("| figure | value |\n|---|---|")
        print(f"| backfill bronze -> gold, wall | {wall / 60:.1f} min ({days / wall:.2f} days/s) |")
        print(f"| of which klines bronze -> silver / gold | {silver_s / 60:.1f} / {gold_s / 60:.1f} min |")
        print(f"| peak memory (backfill process) | {peak:.2f} GB |")
        for k, v in sizes.items():
            print(f"| {k} | {v / 1e9:.2f} GB |")
        print(f"| aggTrades, {len(agg_days)} sampled days (1 per {args.agg_divisor} real trades) | "
              f"{agg_rows / len(agg_days):,.0f} rows/day, "
              f"{per_day:.1f} s/day bronze -> silver, peak {peak_agg:.2f} GB |")
        print(f"| aggTrades EXTRAPOLATED to {agg_total_days:,} days | {per_day * agg_total_days / 3600:.1f} h in one "
              f"process, {agg_size / len(agg_days) * agg_total_days / 1e9:.0f} GB on disk |")
        at_2m = per_day * 2e6 / max(agg_rows / len(agg_days), 1)
        print(f"| aggTrades EXTRAPOLATED at 2M rows/day (2024 density), linear in rows | {at_2m:.0f} s/day, "
              f"{at_2m * agg_total_days / 3600:.1f} h for {agg_total_days:,} days in one process |")
        print(json.dumps(figures))
        out = REPO / ".bench"
        out.mkdir(exist_ok=True)
        (out / "full_history.json").write_text(json.dumps(figures, indent=1))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
