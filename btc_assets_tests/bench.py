"""`make bench`: the speed figures of the end-to-end graph, printed as rows/s and wall times.

1. archive parsing: every bundled daily kline zip, and one larger zip built from the same real rows repeated;
2. the 60-day bronze -> silver backfill in one run (in process, fresh data dir);
3. the whole demo (`btc-assets demo`, a fresh data dir, in a subprocess as `make demo` runs it);
4. the study on the demo's sample (models/study, its default 12 trials, one week): trials per minute.
Results are also written to .bench/results.json. Targets: the whole demo graph under 5 minutes here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "btc_assets" / "sample_data" / "archive"
KLINES = SAMPLE / "data/futures/um/daily/klines/BTCUSDT/1m"


def bench_parsing() -> dict[str, float]:
    from btc_assets.lib.data.archive.layouts import KLINES as LAYOUT
    from btc_assets.lib.data.archive.csv_reader import read_archive_csv

    files = sorted(KLINES.glob("*.zip"))
    blobs = [(f.name, f.read_bytes()) for f in files]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        rows = sum(len(read_archive_csv(b, n, LAYOUT)) for n, b in blobs)
        best = min(best, time.perf_counter() - t0)
    text = [zipfile.ZipFile(io.BytesIO(b)).read(n.replace(".zip", ".csv")).decode().split("\n", 1) for n, b in blobs]
    header, body = text[0][0], "".join(t[1] for t in text)
    big_csv = header + "\n" + body * 6  # 518,400 real rows (repeated; parsing does not care about order)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bench.csv", big_csv)
    big = buf.getvalue()
    best_big = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        big_rows = len(read_archive_csv(big, "bench.zip", LAYOUT))
        best_big = min(best_big, time.perf_counter() - t0)
    return {"parse_daily_files_rows_per_s": rows / best, "parse_daily_files_rows": rows,
            "parse_518k_rows_per_s": big_rows / best_big}


def bench_backfill() -> dict[str, float]:
    import dagster as dg

    from btc_assets_tests.defs.conftest import ALL_ASSETS, RANGE_END, RANGE_START
    from btc_assets.defs.resources import local_resources

    with tempfile.TemporaryDirectory() as tmp:
        resources = local_resources(Path(tmp), archive_url=str(SAMPLE))
        keys = [dg.AssetKey(["bronze", "klines_1m"]), dg.AssetKey(["silver", "klines_1m"])]
        with dg.instance_for_test() as instance:
            t0 = time.perf_counter()
            res = dg.materialize(ALL_ASSETS, selection=keys, resources=resources, instance=instance,
                                 tags={RANGE_START: "2024-01-01", RANGE_END: "2024-02-29"})
            wall = time.perf_counter() - t0
        assert res.success
    return {"backfill_60d_bronze_silver_s": wall, "backfill_rows_per_s": 60 * 1440 / wall}


def bench_demo() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BTC_DATA_DIR": tmp, "BINANCE_ARCHIVE_URL": str(SAMPLE)}
        env.pop("DAGSTER_HOME", None)
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "btc-assets"), "demo"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        study = bench_study(Path(tmp))
    return {"demo_wall_s": wall, "demo_vs_5min_target": wall / 300.0, **study}


def bench_study(root: Path, week: str = "2024-02-26") -> dict[str, float]:
    """models/study over the demo's warehouse (its default settings), in process: trials per minute."""
    import dagster as dg

    from btc_assets.defs.models.study import study
    from btc_assets.defs.resources import local_resources

    resources = local_resources(root, archive_url=str(SAMPLE))
    with dg.instance_for_test() as instance:
        t0 = time.perf_counter()
        res = dg.materialize([study], partition_key=week, resources=resources, instance=instance,
                             selection=[dg.AssetKey(["models", "study"])])
        wall = time.perf_counter() - t0
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    n = float(meta["n_trials"].value)
    return {"study_trials": n, "study_wall_s": wall, "study_trials_per_minute": n / wall * 60,
            "study_trials_per_minute_own": float(meta["trials_per_minute"].value)}


def main() -> int:
    results: dict[str, float] = {}
    for name, fn in (("parsing", bench_parsing), ("backfill", bench_backfill), ("demo", bench_demo)):
        print(f"running {name} …", flush=True)
        results.update(fn())
    print("\n| figure | value |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:,.2f} |")
    out = REPO / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
