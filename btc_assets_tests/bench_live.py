"""Live trading latency: bar close -> order acknowledged by the exchange, through the sensor and the run path.

    .venv/bin/python -m btc_assets_tests.bench_live --bars 200

The sample's silver (2024-01-01..10) and a model trained on it make the warehouse; the fake exchange on 127.0.0.1
then plays the real bars of 2024-01-11. For each bar: the exchange closes it (that instant is the bar close),
live_trading_sensor (REST feed) is evaluated at once, and the run it requests (trading_job: live bars -> decision
-> orders through the Binance broker in testnet mode) is executed in this process, as the daemon's run would be.

Printed, as p50 / p95 over the bars:
* close -> first order acknowledged by the exchange (its accept time of the bar's first order), bars with orders;
* close -> run finished (every bar);
* inference + risk alone (features, model, the rules' plan), from the journal's decide_ms;
* the Dagster run's own overhead (run finished minus the work inside its steps).
The daemon adds its sensor polling interval on top (it evaluates the sensor every few seconds, not at the close).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from btc_assets.defs.resources import LiveFeedResource, TradingResource
from btc_assets.defs.trading.sensors import live_trading_sensor, trading_job
from btc_assets.lib.fake_exchange import run_in_thread
from btc_assets_tests.conftest import SAMPLE, real_klines
from btc_assets_tests.defs.conftest import ALL_ASSETS, ten_days, train_config

KEY, SECRET = "bench-key", "bench-secret"


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=200)
    ap.add_argument("--consolidated-event-log", action="store_true",
                    help="one sqlite event log for all runs instead of Dagster's default file per run")
    args = ap.parse_args()
    os.environ.update({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "BTC_TRADING_MODE": "testnet"})
    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    day = real_klines(dt.date(2024, 1, 11))
    bars = [(int(r.open_time.timestamp() * 1000), r.open, r.high, r.low, r.close, r.volume)
            for r in day.iloc[:args.bars + 5].itertuples()]
    (root / "home").mkdir()
    overrides = {"event_log_storage": {"module": "dagster._core.storage.event_log",
                                       "class": "ConsolidatedSqliteEventLogStorage",
                                       "config": {"base_dir": str(root / "home" / "events")}}} \
        if args.consolidated_event_log else None
    with dg.instance_for_test(temp_dir=str(root / "home"), overrides=overrides) as instance, \
            run_in_thread(bars, KEY, SECRET) as fx:
        t0 = time.perf_counter()
        p = ten_days(root / "data", SAMPLE, instance)
        p.run([["models", "xgb_model"]], partition_key="2024-01-08", run_config=train_config())
        print(f"setup (10 sample days bronze..gold, one weekly XGBoost): {time.perf_counter() - t0:.0f} s")
        p.resources["trading"] = TradingResource(
            strategy="bench_live", mode="testnet", binance_url=fx.rest_url, api_key=dg.EnvVar("BINANCE_API_KEY"),
            api_secret=dg.EnvVar("BINANCE_API_SECRET"), maker_tries=1, requote_after_s=0.2,
            session_start="2024-01-11T00:00:00")
        p.resources["live_feed"] = LiveFeedResource(source="rest", rest_url=fx.rest_url)
        job = dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], resources=p.resources).resolve_job_def("trading_job")
        cursor, closes, ends, failed, steps = None, {}, {}, 0, {}
        for i in range(args.bars):
            close = time.time()
            bar_ms = int(fx.exchange.bar[0])
            closes[bar_ms] = close
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=p.resources)
            for req in live_trading_sensor(ctx):
                res = job.execute_in_process(instance=instance, partition_key=req.partition_key, raise_on_error=False,
                                             tags={**req.tags, "dagster/run_key": req.run_key})
                failed += not res.success
                for e in res.all_events:
                    if e.event_type_value == "STEP_SUCCESS":
                        steps.setdefault(e.step_key, []).append(e.event_specific_data.duration_ms)
            ends[bar_ms] = time.time()
            cursor = ctx.cursor
            fx.exchange.advance()
            if (i + 1) % 50 == 0:
                print(f"  {i + 1} bars")
        first_ack: dict[int, float] = {}
        for o in fx.exchange.orders.values():
            parts = o.client_order_id.split("-")
            if len(parts) >= 3 and parts[1].isdigit() and o.client_order_id.startswith("bench_live"):
                bar_ms = int(parts[1]) * 1000
                first_ack[bar_ms] = min(first_ack.get(bar_ms, float("inf")), o.time / 1000)
        decide_ms = [r[0] for r in p.sql("SELECT decide_ms FROM trading.decisions")]
    to_ack = [(first_ack[b] - closes[b]) for b in first_ack if b in closes]
    to_end = [ends[b] - closes[b] for b in closes]
    print(f"bars: {args.bars} ({failed} failed runs), bars with orders: {len(to_ack)}")
    print(f"bar close -> first order acknowledged: p50 {pct(to_ack, 50):.2f} s, p95 {pct(to_ack, 95):.2f} s "
          f"(target p95 < 2 s)")
    print(f"bar close -> run finished:             p50 {pct(to_end, 50):.2f} s, p95 {pct(to_end, 95):.2f} s")
    for step, ms in sorted(steps.items()):
        print(f"  step {step:<48} p50 {pct(ms, 50):6.0f} ms, p95 {pct(ms, 95):6.0f} ms")
    print(f"inference + risk per bar:              p50 {pct(decide_ms, 50):.1f} ms, p95 {pct(decide_ms, 95):.1f} ms "
          f"(target p95 < 100 ms)")


if __name__ == "__main__":
    main()
