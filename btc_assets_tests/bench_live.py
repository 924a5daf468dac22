"""Live trading latency: bar close -> order acknowledged by the exchange, through the sensor and the run path.

    .venv/bin/python -m btc_assets_tests.bench_live --bars 200

The sample's silver (2024-01-01..10) and a model trained on it make the warehouse; the fake exchange on 127.0.0.1
then plays the real bars of 2024-01-11, closing one every `--bar-seconds` of wall time (a thread calls advance()).
The live trader runs as `make trade` runs it: `trade_forever` polls live_trading_sensor (REST feed) every `--tick`
seconds and executes the runs it requests in process (trading_job: the trading/live step -- live bars -> decision
-> orders through the Binance broker in testnet mode -- then the parity check), against a Dagster instance on
local sqlite storage (`--postgres`: on PostgreSQL, as in production). So the figures include the polling delay, the sensor, the run's creation and Dagster's events.

Printed, as p50 / p95 over the bars:
* close -> first order acknowledged by the exchange (its accept time of the bar's first order), bars with orders;
* close -> the bar's decision journaled (the orders are sent right after it), every bar;
* close -> trading/orders materialized (orders sent, then reconciled with the exchange), every bar;
* close -> run finished (every bar);
* inference + risk alone (features, model, the rules' plan), from the journal's decide_ms;
* the work of the step (live bars, decision, orders), from its materialization metadata -- done by the worker
  before the run is created (defs/trading/ahead.py) -- and the decision step's parts (step_ms: bar/model lookup,
  inputs, features, inference, rules' inputs, rules, journal); the decision step is every part but the journal.
The JSON line: close_to_ack_p50_s/p95_s/n, decide_ms_p95, decision_step_p95_ms, decision_and_journal_p95_ms.
The Dagster daemon's sensor path (`dagster dev` with the sensor on) adds its polling interval and a fresh process
per run (the code location's imports) on top: `make trade` is the low-latency path.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np

from btc_assets.defs.resources.trading import LiveFeedResource, TradingResource
from btc_assets.defs.trading import checks as trading_checks
from btc_assets.defs.trading.market import BARS_FROM
from btc_assets.defs.trading.sensors import trading_job
from btc_assets_tests.fakes.binance import Exchange, run_in_thread
from btc_assets_tests.fakes.binance.runner import run_in_process
from btc_assets.cli.replay import trade_forever
from btc_assets_tests.conftest import SAMPLE, real_klines
from btc_assets_tests.defs.conftest import ALL_ASSETS, ten_days, train_config

KEY, SECRET = "bench-key", "bench-secret"


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def line(label: str, values, unit: str = "s", scale: float = 1.0, target: str = "") -> str:
    v = [x * scale for x in values]
    fmt = "{:.2f}" if unit == "s" else "{:.1f}"
    return (f"{label:<46} p50 {fmt.format(pct(v, 50)):>6} {unit}, p95 {fmt.format(pct(v, 95)):>6} {unit}, "
            f"max {fmt.format(max(v) if v else float('nan')):>6} {unit}  (n={len(v)}){target}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=200)
    ap.add_argument("--bar-seconds", type=float, default=2.0, help="wall seconds between two bar closes")
    ap.add_argument("--tick", type=float, default=0.02, help="the worker's polling interval: what it does in the "
                    "seconds after a bar's expected close (FAST_POLL_S); the fake exchange closes bars on its own clock")
    ap.add_argument("--exchange-in-process", action="store_true",
                    help="the fake exchange's server in the trader's own process (threads sharing its interpreter "
                    "lock), as before; default: its own process, as a venue is another machine")
    ap.add_argument("--postgres", action="store_true",
                    help="the Dagster instance on PostgreSQL (Debian's server on 127.0.0.1), as in production")
    ap.add_argument("--profile", default="", help="write a cProfile of the worker's order path (the work before "
                    "each run) to this file")
    ap.add_argument("--profile-decisions", default="", help="write a cProfile of the decision step (trading/"
                    "decisions of every run) to this file")
    args = ap.parse_args()
    if args.profile:
        profile_order_path(args.profile)
    if args.profile_decisions:
        profile_decisions(args.profile_decisions)
    with contextlib.ExitStack() as stack:
        overrides, storage = None, "sqlite instance"
        if args.postgres:
            from btc_assets_tests.services.postgres import postgres_server

            pg = stack.enter_context(postgres_server(("dagster",)))
            overrides = {"storage": {"postgres": {"postgres_url": pg.url("dagster", "postgresql+psycopg2")}}}
            storage = "PostgreSQL instance"
        bench(args, overrides, storage)


def profile_order_path(out: str) -> None:
    """cProfile the trading worker's order path (OrderPath.prepare) of every bar into `out` (pstats)."""
    import atexit
    import cProfile

    from btc_assets.defs.trading import ahead

    prof, prepare = cProfile.Profile(), ahead.OrderPath.prepare

    def profiled(self, *a, **k):
        prof.enable()
        try:
            return prepare(self, *a, **k)
        finally:
            prof.disable()

    ahead.OrderPath.prepare = profiled
    atexit.register(prof.dump_stats, out)


def profile_decisions(out: str) -> None:
    """cProfile the decision step (the trading step's decide_bars) of every run into `out` (pstats)."""
    import atexit
    import cProfile

    from btc_assets.defs.trading import assets

    prof, decide = cProfile.Profile(), assets.decide_bars

    def profiled(*a, **k):
        prof.enable()
        try:
            return decide(*a, **k)
        finally:
            prof.disable()

    assets.decide_bars = profiled
    atexit.register(prof.dump_stats, out)


class _InThread:
    """run_in_thread's exchange behind run_in_process's interface (advance, orders, rest_url)."""

    def __init__(self, fx):
        self.fx, self.rest_url = fx, fx.rest_url

    def advance(self) -> int:
        self.fx.exchange.advance()
        return int(self.fx.exchange.bar[0])

    def orders(self) -> list[tuple[str, float]]:
        return [(o.client_order_id, o.accepted_wall) for o in self.fx.exchange.orders.values()]


@contextlib.contextmanager
def _exchange(bars, in_process: bool):
    if in_process:
        with run_in_thread(bars, KEY, SECRET, exchange=Exchange(bars, market_clock=True)) as fx:
            yield _InThread(fx)
    else:
        with run_in_process(bars, KEY, SECRET, market_clock=True) as fx:
            yield fx


def bench(args, overrides: dict | None, storage: str) -> None:
    os.environ.update({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "BTC_TRADING_MODE": "testnet"})
    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    day = real_klines(dt.date(2024, 1, 11))
    bars = [(int(r.open_time.timestamp() * 1000), r.open, r.high, r.low, r.close, r.volume)
            for r in day.iloc[:args.bars + 5].itertuples()]
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home"), overrides=overrides) as instance, \
            _exchange(bars, args.exchange_in_process) as fx:
        t0 = time.perf_counter()
        p = ten_days(root / "data", SAMPLE, instance)
        # A strategy that trades often, for the latency figures: labels at a tiny threshold (the model calls BUY or
        # SELL on most bars), the most probable class traded, every position closed after one bar.
        p.run([["gold", "labels"]], first="2024-01-01", last="2024-01-10",
              run_config={"ops": {"gold__labels": {"config": {"threshold": 0.0004}}}})
        p.run([["models", "xgb_model"]], partition_key="2024-01-08", run_config=train_config())
        print(f"setup (10 sample days bronze..gold, one weekly XGBoost): {time.perf_counter() - t0:.0f} s")
        p.resources["trading"] = TradingResource(
            strategy="bench_live", mode="testnet", binance_url=fx.rest_url, api_key=dg.EnvVar("BINANCE_API_KEY"),
            api_secret=dg.EnvVar("BINANCE_API_SECRET"), maker_tries=1, requote_after_s=0.2, max_hold_bars=1,
            daily_drawdown=1.0, weekly_drawdown=1.0,  # a latency bench: the breakers would stop it trading
            session_start="2024-01-11T00:00:00")
        p.resources["live_feed"] = LiveFeedResource(source="rest", rest_url=fx.rest_url)
        # The trading job as the project's Definitions have it: the trading/live step, then the parity check.
        defs = dg.Definitions(assets=ALL_ASSETS, asset_checks=dg.load_asset_checks_from_modules([trading_checks]),
                              jobs=[trading_job], resources=p.resources)
        closes: dict[int, float] = {}
        finished = threading.Event()

        def close_bars() -> None:
            time.sleep(3 * args.tick + 1.0)  # the worker's first tick starts from the bar already closed
            for _ in range(args.bars):
                time.sleep(args.bar_seconds)
                t = time.time()
                closes[fx.advance()] = t
            time.sleep(max(5.0, 2 * args.bar_seconds))  # the last bar's run
            finished.set()

        closer = threading.Thread(target=close_bars, daemon=True)
        closer.start()
        t0 = time.perf_counter()
        worker = trade_forever(defs, instance, root / "cursor.json", tick_seconds=args.tick,
                               should_stop=finished.is_set, max_wait_s=args.tick)  # bars close every few seconds
        print(f"worker: {worker} over {time.perf_counter() - t0:.0f} s")

        first_ack: dict[int, float] = {}
        for cid, accepted_wall in fx.orders():
            parts = cid.split("-")
            if len(parts) >= 3 and parts[1].isdigit() and cid.startswith("bench_live"):
                bar_ms = int(parts[1]) * 1000
                first_ack[bar_ms] = min(first_ack.get(bar_ms, float("inf")), accepted_wall)
        ends, orders_out, work = {}, {}, {"live_bars": [], "decisions": [], "orders": []}
        created, step_start, step_parts = {}, {}, {}
        for rec in instance.get_run_records(dg.RunsFilter(job_name="trading_job")):
            run = rec.dagster_run
            bar_ms = int(dt.datetime.fromisoformat(run.tags[BARS_FROM]).timestamp() * 1000)
            if bar_ms not in closes:
                continue
            ends[bar_ms] = rec.end_time
            created[bar_ms] = rec.create_timestamp.timestamp()
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
                if e.step_key == "trading_live":
                    step_start[bar_ms] = e.timestamp
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
                m = e.dagster_event.event_specific_data.materialization
                name = m.asset_key.path[-1]
                if name == "orders":
                    orders_out[bar_ms] = e.timestamp
                    work["orders"].append(m.metadata["send_seconds"].value)
                elif name in work and "seconds" in m.metadata:
                    work[name].append(m.metadata["seconds"].value)
                    if name == "decisions" and "step_ms" in m.metadata:
                        for part, ms in m.metadata["step_ms"].value.items():
                            step_parts.setdefault(part, []).append(ms)
        decide_ms = [r[0] for r in p.sql("SELECT decide_ms FROM trading.decisions")]
        utc = dt.timezone.utc
        decided = {int(t.replace(tzinfo=utc).timestamp() * 1000): d.replace(tzinfo=utc).timestamp()
                   for t, d in p.sql("SELECT bar_time, decided_at FROM trading.decisions")}
        failed = worker["failed_runs"]
    to_ack = [first_ack[b] - closes[b] for b in first_ack if b in closes]
    print(f"bars closed: {len(closes)}, runs: {len(ends)} ({failed} failed), bars with orders: {len(to_ack)}; "
          f"one bar every {args.bar_seconds} s, worker polling every {args.tick} s, {storage}, fake exchange "
          + ("in the trader's process" if args.exchange_in_process else "in its own process"))
    print(line("bar close -> first order acknowledged", to_ack, target="  target p95 < 0.25 s"))
    print(line("bar close -> run created (sensor's request)", [created[b] - closes[b] for b in created]))
    print(line("bar close -> trading/live step starts", [step_start[b] - closes[b] for b in step_start]))
    print(line("bar close -> decision journaled (orders next)", [decided[b] - closes[b] for b in closes if b in decided]))
    print(line("bar close -> trading/orders materialized", [orders_out[b] - closes[b] for b in orders_out]))
    print(line("bar close -> run finished", [ends[b] - closes[b] for b in ends]))
    for name, values in work.items():
        print(line(f"  in the step: {name}", values, unit="ms", scale=1000))
    for part, values in step_parts.items():
        print(line(f"    decision step: {part}", values, unit="ms"))
    # the decision step as the issue defines it: features + model + risk for the new bar (every part but the
    # journal row written after it, printed above; `decision_and_journal` includes it)
    step = [sum(v[i] for k, v in step_parts.items() if k != "journal") for i in range(len(step_parts.get("journal", [])))]
    print(line("decision step (features + model + risk)", step, unit="ms", target="  target p95 < 20 ms"))
    print(line("inference + risk per bar (decide_ms)", decide_ms, unit="ms", target="  target p95 < 100 ms"))
    print(json.dumps({"close_to_ack_p95_s": round(pct(to_ack, 95), 3), "close_to_ack_p50_s": round(pct(to_ack, 50), 3),
                      "close_to_ack_n": len(to_ack), "decide_ms_p95": round(pct(decide_ms, 95), 1),
                      "decision_step_p95_ms": round(pct(step, 95), 1),
                      "decision_and_journal_p95_ms": round(pct(work["decisions"], 95) * 1000, 1)}))


if __name__ == "__main__":
    main()
