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

The trading process is also killed: on a share of the bars (`--kill-rate`) the worker runs in a process of its own
(the same `trade_forever`, on the same warehouse, instance and exchange) that gets SIGKILL at a random moment of
the bar -- while polling the feed, deciding, sending, waiting for a fill, or recording the run -- and a new worker
is started at once, as a supervisor would restart `make trade` (it must find and finish what the dead one left:
an unfinished run is reported failed and its bar run again, orders resumed by client order id). The invariants are
checked after the restart; protection must be back within 5 s of the kill.
The live feed is the REST one, so a dropped feed is a dropped connection on /fapi/v1/klines (the collector's own
WebSocket reconnects are tested with the collector).
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
RESTART_WITHIN_S = 5.0  # a killed worker's position is protected again this soon (the restart's run included)
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


def _trading(strategy: str, rest_url: str):
    from btc_assets.defs.resources.trading import TradingResource

    return TradingResource(
        strategy=strategy, mode="testnet", binance_url=rest_url, api_key=dg.EnvVar("BINANCE_API_KEY"),
        api_secret=dg.EnvVar("BINANCE_API_SECRET"), maker_tries=1, requote_after_s=0.2,
        session_start="2024-01-11T00:00:00")


def _defs(resources: dict):
    from btc_assets.defs.trading.sensors import trading_job
    from btc_assets_tests.defs.conftest import ALL_ASSETS

    return dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], resources=resources)


def child(spec: dict) -> int:
    """A trading worker in its own process for one bar (the soak kills it): the soak's resources rebuilt from
    `spec`, 'ready' printed once imported, then one tick of trade_forever when the soak says go."""
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value

    from btc_assets.cli.replay import trade_forever
    from btc_assets.defs.resources import local_resources
    from btc_assets.defs.resources.trading import LiveFeedResource

    resources = local_resources(Path(spec["root"]), archive_url=spec["archive"])
    resources["trading"] = _trading(spec["strategy"], spec["rest_url"])
    resources["live_feed"] = LiveFeedResource(source="rest", rest_url=spec["rest_url"])
    defs = _defs(resources)
    with dg.DagsterInstance.from_ref(deserialize_value(spec["instance"], InstanceRef)) as instance:
        print("ready", flush=True)
        sys.stdin.readline()
        trade_forever(defs, instance, spec["cursor"], tick_seconds=0.01, max_ticks=1, max_wait_s=0.0)
    return 0


class Killer:
    """Workers in their own process, started ahead (imports take seconds) and killed at a random moment."""

    def __init__(self, spec: dict, rng: random.Random) -> None:
        self.spec, self.rng, self.proc = spec, rng, None

    def _start(self) -> None:
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", "btc_assets_tests.soak", "--child", json.dumps(self.spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the soak's worker process did not start: {line!r}")

    def run_and_kill(self, within_s: float) -> tuple[float, bool]:
        """Start the bar in the worker process and SIGKILL it after a random delay in [0, within_s); returns when
        it was killed (time.time()) and whether it had already finished by itself."""
        import signal

        if self.proc is None:
            self._start()
        proc, self.proc = self.proc, None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(self.rng.uniform(0.0, within_s))
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return time.time(), finished

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def soak(bars: int, fault_rate: float, seed: int, quiet: bool = True, plant=None, kill_rate: float = 0.0) -> dict:
    """The soak (see _soak), with the environment it sets (keys, testnet mode) put back afterwards."""
    names = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BTC_TRADING_MODE")
    saved = {k: os.environ.get(k) for k in names}
    try:
        return _soak(bars, fault_rate, seed, quiet, plant, kill_rate)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _soak(bars: int, fault_rate: float, seed: int, quiet: bool, plant, kill_rate: float) -> dict:
    """The soak; `plant(i, pipeline, fx)`, if given, is called after bar i's run and before its checks (the tests
    plant each kind of violation with it to show the checks fire)."""
    from dagster._serdes import serialize_value

    from btc_assets.cli.replay import trade_forever
    from btc_assets.defs.resources.trading import LiveFeedResource
    from btc_assets_tests.conftest import SAMPLE, real_klines
    from btc_assets_tests.defs.conftest import ten_days, train_config
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
        trading = _trading(strategy, fx.rest_url)
        p.resources["trading"] = trading
        p.resources["live_feed"] = LiveFeedResource(source="rest", rest_url=fx.rest_url)
        defs = _defs(p.resources)
        cursor, mismatch, failed, unmet, late_ids = root / "cursor.json", False, 0, 0, set()
        killer = Killer({"root": str(root / "data"), "archive": str(SAMPLE), "strategy": strategy,
                         "rest_url": fx.rest_url, "cursor": str(cursor),
                         "instance": serialize_value(instance.get_ref())}, rng)
        kills = Counter()
        t1 = time.perf_counter()
        for i in range(bars):
            kind = inject(rng, fx, fault_rate)
            if kind:
                faults[kind] += 1
            killed_at = None
            if kill_rate and rng.random() < kill_rate:
                killed_at, by_itself = killer.run_and_kill(within_s=1.5)
                kills["finished before the kill" if by_itself else "killed"] += 1
            # the worker (restarted at once after a kill, as a supervisor would): finishes what a dead one left
            out = trade_forever(defs, instance, cursor, tick_seconds=0.01, max_ticks=1, max_wait_s=0.0)
            failed += out["failed_runs"]
            restart_s = time.time() - killed_at if killed_at is not None else 0.0
            fx.exchange.clock_skew_ms = 0  # a clock jump lasts one bar (the broker resyncs on -1021)
            unmet += fx.faults.clear()  # so does any fault: one no request met must not wait for the next order
            if plant is not None:
                plant(i, p, fx)
            found, mismatch = check(p, fx, strategy, trading.max_order_delay_s, mismatch)
            found["protected"] = protected_in_time(found["protected"], restart_s, _open_position(fx))
            new_late = found.pop("late_entries") - late_ids
            late_ids |= new_late
            totals.update({k: v for k, v in found.items() if v})
            found["late_entries"] = len(new_late)
            if not quiet and any(found.values()):
                print(f"bar {i}: {kind or 'no fault'}: {found}", flush=True)
            fx.exchange.advance()
        soak_s = time.perf_counter() - t1
        killer.close()
        entries = p.sql("SELECT count(*) FROM trading.order_events WHERE event = 'FILLED' AND "
                        "client_order_id LIKE 'soak-%-entry'")[0][0]
    totals["late_entries"] = len(late_ids)
    if kills:
        faults["process_killed"] = kills["killed"]
    return {"bars": bars, "faults_injected": sum(faults.values()), "faults": dict(faults), "faults_unmet": unmet,
            "kills": dict(kills),
            "violations": {k: int(totals.get(k, 0)) for k in INVARIANTS}, "failed_runs": failed,
            "entries_filled": int(entries), "setup_s": round(setup_s, 1), "soak_s": round(soak_s, 1)}


def protected_in_time(unprotected: int, since_kill_s: float, position_open: bool,
                      within_s: float = RESTART_WITHIN_S) -> int:
    """The 'protected' invariant after a bar (1: violated): no stop for an open position, or -- after a kill -- a
    position protected again only later than `within_s` after the kill (`since_kill_s`: 0 without a kill)."""
    return int(bool(unprotected) or (position_open and since_kill_s > within_s))


def _open_position(fx) -> bool:
    ex = fx.exchange
    with ex.lock:
        return abs(ex.account.position(ex.symbol).amount) > 5e-4


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1000)
    ap.add_argument("--fault-rate", type=float, default=0.3, help="share of bars with a fault injected")
    ap.add_argument("--kill-rate", type=float, default=0.05,
                    help="share of bars whose worker process is killed at a random moment (then restarted)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)  # the soak's own worker process
    args = ap.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    res = soak(args.bars, args.fault_rate, args.seed, quiet=False, kill_rate=args.kill_rate)
    print(f"{res['bars']} bars in {res['soak_s']} s (setup {res['setup_s']} s), {res['failed_runs']} failed runs, "
          f"{res['entries_filled']} entries filled; {res['faults_unmet']} faults met no request in their bar; "
          f"worker processes: {res['kills'] or 'none killed'}")
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(res["faults"].items())))
    print("violations: " + ", ".join(f"{k} {v}" for k, v in res["violations"].items()))
    print(json.dumps({k: res[k] for k in ("bars", "faults_injected", "violations")}))
    return 0 if not any(res["violations"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
