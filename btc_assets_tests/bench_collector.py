"""Collector benchmark: messages/s sustained and memory (RSS) of `python -m btc_assets.lib.data.collector.main`
recording a replay from the fake exchange on 127.0.0.1 (SYNTHETIC events of all five streams).

    .venv/bin/python -m btc_assets_tests.bench_collector --seconds 60 --rate 400

`--rate` is publish rounds per second (5 messages each: aggTrade, depth20, markPrice, kline_1m, forceOrder);
0 publishes flat out. The collector runs in its own process so its RSS is measured alone (sampled each second
from /proc). The fake server and the collector share the machine's cores: the figures are a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.market_streams import publish_round
from btc_assets_tests.fakes.binance.replay import synthetic_bars


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=400.0, help="rounds/s (x5 messages); 0 = flat out")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    with run_in_thread(synthetic_bars(500), "k", "s") as fx:
        proc = subprocess.Popen([sys.executable, "-m", "btc_assets.lib.data.collector.main", "--ws-url", fx.ws_url,
                                 "--root", str(root / "streams"), "--stale-after-s", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        while len(fx.app.sockets) < 3:
            time.sleep(0.05)
        time.sleep(1.0)
        published, samples, stop = [0], [], threading.Event()

        def publisher() -> None:
            t0, i = time.perf_counter(), 0
            while not stop.is_set():
                publish_round(fx.exchange, i)
                i += 1
                published[0] = i * 5
                if args.rate:
                    ahead = i / args.rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        time.sleep(ahead)

        th = threading.Thread(target=publisher, daemon=True)
        start = time.perf_counter()
        th.start()
        while time.perf_counter() - start < args.seconds:
            time.sleep(1.0)
            samples.append(rss_mb(proc.pid))
        stop.set()
        th.join()
        elapsed = time.perf_counter() - start
        time.sleep(1.0)  # let the last frames arrive
        proc.send_signal(15)
        out, _ = proc.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1])["collector"]
    size = sum(p.stat().st_size for p in root.rglob("*.gz"))
    print(json.dumps({
        "seconds": round(elapsed, 1), "published": published[0], "recorded": stats["messages"],
        "lost_or_late": published[0] - stats["messages"], "messages_per_s": round(stats["messages"] / elapsed, 1),
        "rss_mb_first": round(samples[0], 1), "rss_mb_max": round(max(samples), 1),
        "rss_mb_last": round(samples[-1], 1), "gzip_bytes": size,
        "bytes_per_message": round(size / max(stats["messages"], 1), 1), "dead_letters": stats["dead_letters"],
        "gaps": stats["gaps"]}, indent=1))


if __name__ == "__main__":
    main()
