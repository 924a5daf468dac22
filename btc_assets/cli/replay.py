"""Drive the live trading sensor over a replayed window in this process, the way the Dagster daemon would.

Each tick evaluates `live_trading_sensor` with its stored cursor and executes the runs it requests against the
same instance (a run_key already used is skipped, as the daemon does). With the daemon running (`make ui`, sensor
switched on) the same sensor does this by itself; here it makes the demo deterministic and quick.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time

import dagster as dg

from btc_assets.cli import in_process

log = logging.getLogger("btc_assets.cli.replay")


WORKER_PID = "btc/worker_pid"  # the trading worker's process id on the runs it executes


def sensor_tags(req: dg.RunRequest, worker: bool = False) -> dict[str, str]:
    """The tags of a run of live_trading_sensor's request, as the daemon would launch it (`worker`: and the trading
    worker's process id, so that a run it left unfinished is recognised as such)."""
    return {**req.tags, "dagster/sensor_name": "live_trading_sensor", "dagster/run_key": req.run_key,
            **({WORKER_PID: str(os.getpid())} if worker else {})}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_to_do(instance: dg.DagsterInstance, run_key: str) -> bool:
    """Whether the trading worker must execute the request `run_key`: no run has it yet, or the run that has it was
    left unfinished by a trading worker that is gone (killed or crashed mid-run: its run stays STARTED forever).
    That run is reported failed, saying so, and the bars are run again: their decisions are reported from the
    journal and their orders resumed by client order id (never sent twice). A finished run -- success or failure --
    and a run of another launcher (the daemon) are left alone."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    if not runs:
        return True
    run = runs[0]
    if run.is_finished:
        return False
    pid = run.tags.get(WORKER_PID)
    if pid is None or (int(pid) != os.getpid() and _alive(int(pid))):
        return False  # the daemon's, or a live worker's (two workers: the run key keeps them from trading twice)
    instance.report_run_failed(run, f"the trading worker (pid {pid}) stopped during this run (killed or crashed); "
                               "its bars are run again by the next worker: decisions reported from the journal, "
                               "orders resumed by client order id")
    log.warning("run %s for %s was left unfinished by a stopped worker: reported failed, running its bars again",
                run.run_id, run_key)
    return True


def run_as_sensor(job, instance: dg.DagsterInstance, req: dg.RunRequest, raise_on_error: bool = False,
                  run_id: str | None = None):
    """Execute a run request of live_trading_sensor in this process, tagged as the sensor's run (as the daemon
    would launch it); `run_id`: the id the trading worker's order path already used for it."""
    from btc_assets.cli.settings import run_logs

    return in_process.execute(job, instance, partition_key=req.partition_key, raise_on_error=raise_on_error,
                                  run_config=run_logs(), tags=sensor_tags(req, worker=run_id is not None),
                                  run_id=run_id)


def replay_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, start: dt.datetime, end: dt.datetime, speed: float,
    tick_seconds: float = 2.0, max_ticks: int = 10_000,
) -> dict[str, float]:
    from btc_assets.defs.resources.trading import LiveFeedResource, ReplayResource
    from btc_assets.defs.trading.sensors import live_trading_sensor

    resources = dict(defs.resources or {})
    resources["replay"] = ReplayResource(start=start.isoformat(), end=end.isoformat(), speed=speed)
    resources["live_feed"] = LiveFeedResource(source="replay")
    job = defs.resolve_job_def("trading_job")
    cursor, runs = None, 0
    used_keys: set[str] = set()
    for _ in range(max_ticks):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
        result = live_trading_sensor(ctx)
        cursor = ctx.cursor
        requests = [r for r in (result if isinstance(result, list) else []) if r.run_key not in used_keys]
        for req in requests:
            used_keys.add(req.run_key)
            res = run_as_sensor(job, instance, req, raise_on_error=True)
            if not res.success:
                raise SystemExit(f"trading run {res.run_id} for {req.run_key} failed")
            runs += 1
        if isinstance(result, dg.SkipReason) and "finished" in (result.skip_message or ""):
            break
        state = json.loads(cursor)
        if state.get("last_bar") and dt.datetime.fromisoformat(state["last_bar"]) + dt.timedelta(minutes=1) >= end:
            break
        if requests:
            bars = int((dt.datetime.fromisoformat(state["last_bar"]) - start).total_seconds() / 60 + 1)
            log.info("  replay tick: %d run(s), %d/%d bars decided", len(requests), bars,
                     int((end - start).total_seconds() / 60))
        time.sleep(tick_seconds)
    return {"replay_runs": runs}


FAST_POLL_S = 0.02  # how often the worker asks the feed in the seconds after a bar's expected close
FAST_WINDOW_S = 3.0  # ... for this long; then every tick_seconds
WARM_BEFORE_S = 1.0  # the warehouse connection is opened this long before the expected close


def trade_forever(defs: dg.Definitions, instance: dg.DagsterInstance, cursor_file, tick_seconds: float = 0.25,
                  should_stop=lambda: False, max_ticks: int | None = None,
                  max_wait_s: float | None = None, fast_poll_s: float = FAST_POLL_S) -> dict[str, int]:
    """The live trader as one long-lived worker: evaluate `live_trading_sensor` and execute the runs it requests in
    this process, against the instance (they show in the UI with their lineage, tagged as the sensor's runs).

    When it polls: once a bar is taken, the worker sleeps until the next bar closes on the feed's clock (the
    sensor's cursor knows it), opening the warehouse a second before; from the close it evaluates the sensor every
    `fast_poll_s` for FAST_WINDOW_S, then every `tick_seconds` until the bar is there. So a bar is seen within
    `fast_poll_s` of its close while the feed is asked a few dozen times a minute, not continuously.

    The order path runs ahead of each run (defs/trading/ahead.py): the run's step work -- live bars, decision,
    orders -- is done under the run's id before Dagster creates the run, which then records it. Why a worker and
    not the daemon: the daemon launches each run in a fresh process, which spends seconds importing the code
    location before the first order, and every run spends a few hundred milliseconds on its own events before its
    step; here the imports, the model and the exchange session stay warm and the order leaves before the run's
    events (bench_live). Run either this worker or the sensor in the daemon, not both: the run keys would keep them
    from trading twice, but they would race for each bar. The cursor is kept in `cursor_file` so a restarted worker
    resumes after the last bar it requested. `max_wait_s` caps the sleep (a fake exchange closing a bar every few
    seconds, the bench and the soak: the worker then polls every `tick_seconds` throughout).
    """
    from pathlib import Path

    from dagster._core.utils import make_new_run_id

    from btc_assets.defs.trading.ahead import OrderPath
    from btc_assets.defs.trading.sensors import live_trading_sensor, next_close

    cursor_path = Path(cursor_file)
    cursor = cursor_path.read_text() if cursor_path.exists() else None
    job = defs.resolve_job_def("trading_job")
    # A long-lived process: pooled connections to the instance's database, as the webserver holds them. Dagster's
    # storages otherwise open a connection per query, and on PostgreSQL each one is a new authenticated session
    # (bench_live --postgres: seconds per run without the pool). A no-op on the local sqlite storage.
    instance.optimize_for_webserver(statement_timeout=60_000, pool_recycle=3600, max_overflow=5)
    runs = failed = ticks = 0
    with OrderPath(defs, instance) as path:
        while not should_stop() and (max_ticks is None or ticks < max_ticks):
            ticks += 1
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=dict(defs.resources or {}),
                                          definitions=defs)
            try:
                result = live_trading_sensor(ctx)
            except Exception as e:  # noqa: BLE001 - a feed hiccup must not stop the trader; the next tick retries
                log.warning("live sensor tick failed (%s: %s); retrying in %.0f s", type(e).__name__, e,
                            tick_seconds)
                time.sleep(max(tick_seconds, 1.0))
                continue
            for req in result if isinstance(result, list) else []:
                if not run_to_do(instance, req.run_key):
                    continue  # already run (by this worker before a restart, or by the daemon)
                run_id = make_new_run_id()
                path.prepare(job, req.partition_key, run_id, sensor_tags(req, worker=True))  # the orders leave here
                res = run_as_sensor(job, instance, req, run_id=run_id)  # ... and the run records them
                runs += 1
                failed += not res.success
                if not res.success:
                    log.error("trading run %s for %s failed: see it in the Dagster UI", res.run_id, req.run_key)
            if ctx.cursor != cursor:
                cursor = ctx.cursor
                cursor_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = cursor_path.with_suffix(".tmp")
                tmp.write_text(cursor)
                tmp.replace(cursor_path)
            if max_ticks is not None and ticks >= max_ticks:
                break  # the last tick: no wait after it
            due = next_close(json.loads(cursor)) if cursor else None
            now = time.time()
            if due is None:
                wait_until = now + tick_seconds
            elif now < due:
                wait_until = due  # sleep to the next bar's expected close
            elif now < due + FAST_WINDOW_S:
                wait_until = now + fast_poll_s  # just after it: ask often
            else:
                wait_until = now + tick_seconds
            if max_wait_s is not None:
                wait_until = min(wait_until, now + max_wait_s)
            if max_wait_s is None and (due is None or due - now > WARM_BEFORE_S + 1.0):
                path.disconnect()  # between bars the warehouse is free for other processes (a feed closing bars
                # every few seconds, max_wait_s: the next close is always near, the connection stays open)
            while not should_stop() and time.time() < wait_until:  # a stop request is honoured within a tick
                if due is not None and due - time.time() <= WARM_BEFORE_S:
                    path.connect()  # the bar closes within a second: its order path finds the warehouse open
                time.sleep(min(tick_seconds, max(0.0, wait_until - time.time())))
    return {"ticks": ticks, "runs": runs, "failed_runs": failed}
