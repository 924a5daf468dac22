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

log = logging.getLogger("btc_assets.replay")


def replay_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, start: dt.datetime, end: dt.datetime, speed: float,
    tick_seconds: float = 2.0, max_ticks: int = 10_000,
) -> dict[str, float]:
    from btc_assets.defs.resources import LiveFeedResource, ReplayResource
    from btc_assets.defs.trading.sensors import live_trading_sensor

    resources = dict(defs.resources or {})
    resources["replay"] = ReplayResource(start=start.isoformat(), end=end.isoformat(), speed=speed)
    resources["live_feed"] = LiveFeedResource(source="replay")
    job = defs.get_job_def("trading_job")
    cursor, runs, bars = None, 0, 0
    used_keys: set[str] = set()
    for _ in range(max_ticks):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
        result = live_trading_sensor(ctx)
        cursor = ctx.cursor
        requests = [r for r in (result if isinstance(result, list) else []) if r.run_key not in used_keys]
        for req in requests:
            used_keys.add(req.run_key)
            res = job.execute_in_process(instance=instance, partition_key=req.partition_key,
                                         tags={**req.tags, "dagster/sensor_name": "live_trading_sensor",
                                               "dagster/run_key": req.run_key})
            if not res.success:
                raise SystemExit(f"trading run {res.run_id} for {req.run_key} failed")
            runs += 1
        if isinstance(result, dg.SkipReason) and "finished" in (result.skip_message or ""):
            break
        state = json.loads(cursor)
        if state.get("last_bar") and dt.datetime.fromisoformat(state["last_bar"]) + dt.timedelta(minutes=1) >= end:
            break
        if requests:
            bars_done = (dt.datetime.fromisoformat(state["last_bar"]) - start).total_seconds() / 60 + 1
            bars = int(bars_done)
            log.info("  replay tick: %d run(s), %d/%d bars decided", len(requests), bars,
                     int((end - start).total_seconds() / 60))
        time.sleep(tick_seconds)
    return {"replay_runs": runs}
