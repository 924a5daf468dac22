"""Soak: the live trading worker bar after bar on the fake exchange with faults injected, invariants after each bar.

    .venv/bin/python -m btc_assets_tests.soak --bars 1000      (make soak)
    .venv/bin/python -m btc_assets_tests.soak --bars 12        (the shortened form CI runs, test_soak.py)

The sample's silver (2024-01-01..10) and a weekly XGBoost trading the most probable class (so that it trades often)
make the warehouse; the fake exchange plays the real 1m bars from 2024-01-11 on a clock that follows its market.
Each bar: maybe a fault is injected on a trading or feed endpoint (-1021 clock, -2019 margin, -1111 precision,
-4164 notional, 429, 418, 5xx, a lost reply after the order took effect, a dropped connection), the worker
(`trade_forever`, as `make trade` runs it) takes the bar, the exchange moves on one bar. After every bar:

- position: exchange position = journal position (a difference may last one bar: the next run repairs it);
- protected: an open position has its stop on the exchange;
- unique ids: no client order id sent twice (the journal's NEW events, the exchange's orders);
- late entries: no entry accepted by the exchange later than max_order_delay_s after its bar's close (counted
  once per order; an entry's stop or target firing later is an exit, not a late entry);
- lost orders: no entry or exit still NEW (neither filled, rejected, cancelled nor skipped) a bar later.

Not injected here: killing the trading process (the crash tests in lib/trading/brokers/test_crash_recovery.py kill a
real process at each point of an order's life) and dropped WebSocket streams (the REST feed is used).
Prints the faults injected and each invariant's violations, then one JSON line:
{"bars": ..., "faults_injected": ..., "violations": {invariant: count, ...}}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd

KEY, SECRET = "soak-key", "soak-secret"
TRADING_PATHS = ["/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v2/positionRisk", "/fapi/v1/openOrders",
                 "/fapi/v1/klines", "/fapi/v2/balance"]
FAULTS = ("-1021", "-2019", "-1111", "-4164", "429", "418", "5xx", "lost_reply", "drop")
INVARIANTS = ("position", "protected", "unique_ids", "late_entries", "lost_orders")


def inject(rng: random.Random, fx, rate: float) -> str | None:
    """Maybe one fault on one endpoint for the coming bar; its name."""
    if rng.random() >= rate:
        return None
    kind, path = rng.choice(FAULTS), rng.choice(TRADING_PATHS)
    post = path in ("/fapi/v1/order", "/fapi/v1/algoOrder")
    method = "POST" if post else "GET"
    f = fx.faults
    if kind == "-1021":
        fx.exchange.clock_skew_ms += 6_000  # the server's clock jumps: signed requests fall outside recvWindow
    elif kind in ("-2019", "-1111", "-4164"):
        f.error(int(kind), "injected", method="POST", path="/fapi/v1/order")
    elif kind == "429":
        f.rate_limited(retry_after=1, method=method, path=path)
    elif kind == "418":
        f.banned(retry_after=1, method=method, path=path)
    elif kind == "5xx":
        f.server_error(503, method=method, path=path)
    elif kind == "lost_reply":
        f.timeout(1.5, apply_first=True, method="POST", path=rng.choice(["/fapi/v1/order", "/fapi/v1/algoOrder"]))
    else:
        f.drop(apply_first=False, method=method, path=path)
    return kind


def check(p, fx, strategy: str, max_delay_s: float, prev_mismatch: bool) -> tuple[dict[str, int], bool]:
    """Violations of each invariant after a bar, and whether the positions differ now."""
    out = dict.fromkeys(INVARIANTS, 0)
    ex = fx.exchange
    with ex.lock:
        position = ex.account.position(ex.symbol).amount
        algos = [a for a in ex.algo_orders.values() if a.status == "NEW"]
        orders = list(ex.orders.values())
    journal = p.sql("SELECT coalesce(sum(CASE side WHEN 'BUY' THEN qty ELSE -qty END), 0) FROM "
                    "trading.order_events WHERE event = 'FILLED' AND broker <> 'paper'")[0][0]
    mismatch = abs(position - journal) > 5e-4
    out["position"] = int(mismatch and prev_mismatch)
    if abs(position) > 5e-4:
        stops = [a for a in algos if a.order_type == "STOP_MARKET"]
        out["protected"] = int(not stops)
    twice = p.sql("SELECT count(*) FROM (SELECT client_order_id FROM trading.order_events WHERE event = 'NEW' "
                  "GROUP BY 1 HAVING count(*) > 1)")[0][0]
    ids = Counter(o.client_order_id for o in orders)
    out["unique_ids"] = int(twice) + sum(1 for n in ids.values() if n > 1)
    late = set()
    for o in orders:
        parts = o.client_order_id.split("-")
        # an entry's legs (its quotes and market remainder); its stop and target (-sl/-tp, moved: -s1/-t1..) are
        # exits
        if (o.client_order_id.startswith(strategy) and "entry" in parts and parts[1].isdigit()
                and not re.fullmatch(r"sl|tp|s[1-9]|t[1-9]", parts[-1])):
            close_ms = int(parts[1]) * 1000 + 60_000
            if (o.time - close_ms) / 1000 > max_delay_s:
                late.add(o.client_order_id)
    out["late_entries"] = late  # ids: counted once each over the soak
    stuck = p.sql("SELECT count(*) FROM (SELECT client_order_id, arg_max(event, seq) AS last, max(bar_time) AS bar "
                  "FROM trading.order_events WHERE event <> 'ACK' GROUP BY 1) WHERE last = 'NEW' AND "
                  "NOT regexp_matches(client_order_id, '-(sl|tp|s[1-9]|t[1-9])$') AND bar < (SELECT max(bar_time) - INTERVAL 1 "
                  "MINUTE FROM trading.order_events)")[0][0]
    out["lost_orders"] = int(stuck)
    return out, mismatch


def soak(bars: int, fault_rate: float, seed: int, quiet: bool = True, plant=None) -> dict:
    """The soak; `plant(i, pipeline, fx)`, if given, is called after bar i's run and before its checks (the tests
    plant each kind of violation with it to show the checks fire)."""
    from btc_assets.cli.replay import trade_forever
    from btc_assets.defs.resources.trading import LiveFeedResource, TradingResource
    from btc_assets.defs.trading.sensors import trading_job
    from btc_assets_tests.conftest import SAMPLE, real_klines
    from btc_assets_tests.defs.conftest import ALL_ASSETS, ten_days, train_config
    from btc_assets_tests.fakes.binance import Exchange, run_in_thread

    rng = random.Random(seed)
    os.environ.update({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "BTC_TRADING_MODE": "testnet"})
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    days = [real_klines(dt.date(2024, 1, 11) + dt.timedelta(days=i)) for i in range(bars // 1440 + 1)]
    rows = pd.concat(days, ignore_index=True).iloc[:bars + 5]
    kl = [(int(r.open_time.timestamp() * 1000), r.open, r.high, r.low, r.close, r.volume) for r in rows.itertuples()]
    (root / "home").mkdir()
    strategy = "soak"
    totals, faults = Counter(), Counter()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance, \
            run_in_thread(kl, KEY, SECRET, exchange=Exchange(kl, market_clock=True)) as fx:
        t0 = time.perf_counter()
        p = ten_days(root / "data", SAMPLE, instance)
        p.run([["models", "xgb_model"]], partition_key="2024-01-08", run_config=train_config())
        setup_s = time.perf_counter() - t0
        trading = TradingResource(
            strategy=strategy, mode="testnet", binance_url=fx.rest_url, api_key=dg.EnvVar("BINANCE_API_KEY"),
            api_secret=dg.EnvVar("BINANCE_API_SECRET"), maker_tries=1, requote_after_s=0.2,
            session_start="2024-01-11T00:00:00")
        p.resources["trading"] = trading
        p.resources["live_feed"] = LiveFeedResource(source="rest", rest_url=fx.rest_url)
        defs = dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], resources=p.resources)
        cursor, mismatch, failed, unmet, late_ids = root / "cursor.json", False, 0, 0, set()
        t1 = time.perf_counter()
        for i in range(bars):
            kind = inject(rng, fx, fault_rate)
            if kind:
                faults[kind] += 1
            out = trade_forever(defs, instance, cursor, tick_seconds=0.01, max_ticks=1, max_wait_s=0.0)
            failed += out["failed_runs"]
            fx.exchange.clock_skew_ms = 0  # a clock jump lasts one bar (the broker resyncs on -1021)
            unmet += fx.faults.clear()  # so does any fault: one no request met must not wait for the next order
            if plant is not None:
                plant(i, p, fx)
            found, mismatch = check(p, fx, strategy, trading.max_order_delay_s, mismatch)
            new_late = found.pop("late_entries") - late_ids
            late_ids |= new_late
            totals.update({k: v for k, v in found.items() if v})
            found["late_entries"] = len(new_late)
            if not quiet and any(found.values()):
                print(f"bar {i}: {kind or 'no fault'}: {found}", flush=True)
            fx.exchange.advance()
        soak_s = time.perf_counter() - t1
        entries = p.sql("SELECT count(*) FROM trading.order_events WHERE event = 'FILLED' AND "
                        "client_order_id LIKE 'soak-%-entry'")[0][0]
    totals["late_entries"] = len(late_ids)
    return {"bars": bars, "faults_injected": sum(faults.values()), "faults": dict(faults), "faults_unmet": unmet,
            "violations": {k: int(totals.get(k, 0)) for k in INVARIANTS}, "failed_runs": failed,
            "entries_filled": int(entries), "setup_s": round(setup_s, 1), "soak_s": round(soak_s, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1000)
    ap.add_argument("--fault-rate", type=float, default=0.3, help="share of bars with a fault injected")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    res = soak(args.bars, args.fault_rate, args.seed, quiet=False)
    print(f"{res['bars']} bars in {res['soak_s']} s (setup {res['setup_s']} s), {res['failed_runs']} failed runs, "
          f"{res['entries_filled']} entries filled; {res['faults_unmet']} faults met no request in their bar")
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(res["faults"].items())))
    print("violations: " + ", ".join(f"{k} {v}" for k, v in res["violations"].items()))
    print(json.dumps({k: res[k] for k in ("bars", "faults_injected", "violations")}))
    return 0 if not any(res["violations"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
