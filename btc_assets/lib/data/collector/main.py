"""`btc-assets collect` / `make collect` / `python -m btc_assets.lib.data.collector.main`: run the live market-data
collector until SIGINT/SIGTERM (or --duration-s), then flush every buffered record and print the run's counts.

| variable           | default                       | what                                           |
|--------------------|-------------------------------|------------------------------------------------|
| BINANCE_WS_URL     | wss://fstream.binance.com     | USD-M market streams base URL                  |
| BTC_SYMBOL         | BTCUSDT                       | the perpetual recorded                         |
| BTC_STREAMS_DIR    | <BTC_DATA_DIR>/lake/bronze/streams | where the hourly files go                 |
| BTC_COLLECT_DEPTH  | 20                            | partial book depth levels (10 or 20), 100 ms   |
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path

from btc_assets.lib.data.collector.session import DEFAULT_WS_URL, Collector, CollectorConfig

log = logging.getLogger("btc_assets.collector")


def default_root() -> str:
    """BTC_STREAMS_DIR, else <BTC_DATA_DIR>/lake/bronze/streams (where bronze/stream_recordings looks)."""
    return os.environ.get("BTC_STREAMS_DIR") or str(Path(os.environ.get("BTC_DATA_DIR", "data")) / "lake" / "bronze"
                                                    / "streams")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="collect", description="Record Binance USD-M market streams to bronze files.")
    p.add_argument("--ws-url", default=os.environ.get("BINANCE_WS_URL", DEFAULT_WS_URL))
    p.add_argument("--symbol", default=os.environ.get("BTC_SYMBOL", "BTCUSDT"))
    p.add_argument("--root", default=default_root(), help="folder of the hourly stream files")
    p.add_argument("--depth-levels", type=int, choices=(10, 20), default=int(os.environ.get("BTC_COLLECT_DEPTH", 20)))
    p.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0: until a signal)")
    p.add_argument("--flush-interval-s", type=float, default=5.0)
    p.add_argument("--stale-after-s", type=float, default=10.0)
    return p.parse_args(argv)


async def collect(config: CollectorConfig, duration_s: float = 0.0) -> dict:
    """Run the collector until SIGINT/SIGTERM or `duration_s`; return its counts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration_s > 0:
        loop.call_later(duration_s, stop.set)
    try:
        stats = await Collector(config).run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return dataclasses.asdict(stats)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = CollectorConfig(root=args.root, ws_url=args.ws_url, symbol=args.symbol, depth_levels=args.depth_levels,
                             flush_interval_s=args.flush_interval_s, stale_after_s=args.stale_after_s)
    log.info("collecting %s from %s into %s (Ctrl-C or SIGTERM stops and flushes)", config.symbol, config.ws_url,
             config.root)
    stats = asyncio.run(collect(config, args.duration_s))
    print(json.dumps({"collector": stats, "root": config.root}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
