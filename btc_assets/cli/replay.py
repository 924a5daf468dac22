"""Drive the live trading sensor over a replayed window in this process, the way the Dagster daemon would.

Each tick evaluates `live_trading_sensor` with its stored cursor and executes the runs it requests against the
same instance (a run_key already used is skipped, as the daemon does). With the daemon running (`make ui`, sensor
switched on) the same sensor does this by itself; here it makes the demo deterministic and quick.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import dagster as dg

log = logging.getLogger("btc_assets.cli.replay")


def run_as_sensor(job, instance: dg.DagsterInstance, req: dg.RunRequest, raise_on_error: bool = False):
    """Execute a run request of live_trading_sensor in this process, tagged as the sensor's run (as the daemon
    would launch it)."""
    from btc_assets.cli.settings import run_logs

    return job.execute_in_process(instance=instance, partition_key=req.partition_key, raise_on_error=raise_on_error,
                                  run_config=run_logs(),
                                  tags={**req.tags, "dagster/sensor_name": "live_trading_sensor",
                                        "dagster/run_key": req.run_key})


def replay_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, start: dt.datetime, end: dt.datetime, speed: float,
    tick_seconds: float = 2.0, max_ticks: int = 10_000,
) -> dict[str, float]:
    from btc_assets.defs.resources.trading import LiveFeedResource, ReplayResource
    from btc_assets.defs.trading.sensors import live_trading_sensor

    resources = dict(defs.resources or {})
    resources["replay"] = ReplayResource(start=start.isoformat(), end=end.isoformat(), speed=speed)
    resources["live_feed"] = LiveFeedResource(source="replay")
    job = defs.get_job_def("trading_job")
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


def trade_forever(defs: dg.Definitions, instance: dg.DagsterInstance, cursor_file, tick_seconds: float = 0.25,
                  should_stop=lambda: False, max_ticks: int | None = None,
                  max_wait_s: float | None = None) -> dict[str, int]:
    """The live trader as one long-lived worker: evaluate `live_trading_sensor` and execute the runs it requests in
    this process, against the instance (they show in the UI with their lineage, tagged as the sensor's runs).

    When it polls: once a bar is taken, the worker sleeps until the next bar closes on the feed's clock (the
    sensor's cursor knows it), then evaluates the sensor every `tick_seconds` until that bar is there. So a bar is
    seen within a tick of its close while the REST feed is asked about once a minute, not every tick.

    Why a worker and not the daemon: the daemon launches each run in a fresh process, which spends seconds importing
    the code location before the first order; here the imports, the model and the exchange session stay warm, so a
    bar's first order is acknowledged about a second after its close (bench_live). Run either this worker or the
    sensor in the daemon, not both: the run keys would keep them from trading twice, but they would race for each
    bar. The cursor is kept in `cursor_file` so a restarted worker resumes after the last bar it requested.
    `max_wait_s` caps that sleep (a fake exchange closing a bar every few seconds, the bench and the soak).
    """
    from pathlib import Path

    from btc_assets.defs.trading.sensors import live_trading_sensor, next_close

    cursor_path = Path(cursor_file)
    cursor = cursor_path.read_text() if cursor_path.exists() else None
    job = defs.resolve_job_def("trading_job")
    # A long-lived process: pooled connections to the instance's database, as the webserver holds them. Dagster's
    # storages otherwise open a connection per query, and on PostgreSQL each one is a new authenticated session
    # (bench_live --postgres: seconds per run without the pool). A no-op on the local sqlite storage.
    instance.optimize_for_webserver(statement_timeout=60_000, pool_recycle=3600, max_overflow=5)
    runs = failed = ticks = 0
    while not should_stop() and (max_ticks is None or ticks < max_ticks):
        ticks += 1
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=dict(defs.resources or {}),
                                      definitions=defs)
        try:
            result = live_trading_sensor(ctx)
        except Exception as e:  # noqa: BLE001 - a feed hiccup must not stop the trader; the next tick retries
            log.warning("live sensor tick failed (%s: %s); retrying in %.0f s", type(e).__name__, e, tick_seconds)
            time.sleep(max(tick_seconds, 1.0))
            continue
        for req in result if isinstance(result, list) else []:
            if instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": req.run_key}), limit=1):
                continue  # already run (by this worker before a restart, or by the daemon)
            res = run_as_sensor(job, instance, req)
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
        due = next_close(json.loads(cursor)) if cursor else None
        wait_until = max(time.time() + tick_seconds, due or 0.0)
        if max_wait_s is not None:
            wait_until = min(wait_until, time.time() + max_wait_s)
        while not should_stop() and time.time() < wait_until:  # a stop request is honoured within a tick
            time.sleep(min(tick_seconds, max(0.0, wait_until - time.time())))
    return {"ticks": ticks, "runs": runs, "failed_runs": failed}
