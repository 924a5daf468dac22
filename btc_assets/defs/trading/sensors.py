"""The live trading sensor in replay mode: each newly closed bar of a replayed window becomes a decision run.

The replay clock runs `speed` times faster than the wall clock from the moment the sensor first ticks. On each
tick the bars that closed since the previous tick are requested as one run per day, keyed by their bar times
(a retried tick asks for the same run_key, so Dagster never runs it twice). The cursor is JSON:
{"start", "end", "anchor", "speed", "last_bar"}.
"""


import json
import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.resources import ReplayResource
from btc_assets.defs.trading.assets import BARS_FROM, BARS_TO, REQUESTED_AT, decisions, orders

MINUTE = pd.Timedelta(minutes=1)
DEFAULT_REPLAY = pd.Timedelta(hours=2)

trading_job = dg.define_asset_job(
    "trading_job", selection=dg.AssetSelection.assets(decisions, orders),
    description="Decide the bars named by the run's tags and send their orders (the live sensor's job).",
)


def replay_window(replay: ReplayResource, warehouse: DuckDBResource) -> tuple[pd.Timestamp, pd.Timestamp]:
    if replay.start and replay.end:
        return pd.Timestamp(replay.start, tz="UTC"), pd.Timestamp(replay.end, tz="UTC")
    with warehouse.get_connection() as conn:
        last = conn.execute("SELECT max(open_time) FROM silver.klines_1m").fetchone()[0]
    if last is None:
        raise dg.Failure("nothing to replay: silver.klines_1m is empty; run `make demo` or backfill silver first")
    end = pd.Timestamp(last, tz="UTC") + MINUTE
    return end - DEFAULT_REPLAY, end


def due_bars(cursor: dict, now: float) -> list[pd.Timestamp]:
    """Bars of the window that closed on the replay clock after cursor['last_bar']."""
    start, end = pd.Timestamp(cursor["start"]), pd.Timestamp(cursor["end"])
    replay_now = start + pd.Timedelta(seconds=(now - cursor["anchor"]) * cursor["speed"])
    first = pd.Timestamp(cursor["last_bar"]) + MINUTE if cursor.get("last_bar") else start
    last = min(replay_now.floor("1min") - MINUTE, end - MINUTE)
    return list(pd.date_range(first, last, freq="1min")) if last >= first else []


@dg.sensor(job=trading_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.STOPPED)
def replay_trading_sensor(context: dg.SensorEvaluationContext, replay: ReplayResource, warehouse: DuckDBResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    if not cursor:
        start, end = replay_window(replay, warehouse)
        cursor = {"start": start.isoformat(), "end": end.isoformat(), "anchor": time.time(), "speed": replay.speed,
                  "last_bar": None}
    bars = due_bars(cursor, time.time())
    if not bars:
        context.update_cursor(json.dumps(cursor))
        done = cursor.get("last_bar") and pd.Timestamp(cursor["last_bar"]) + MINUTE >= pd.Timestamp(cursor["end"])
        return dg.SkipReason("replay finished" if done else "no bar closed since the last tick")
    requests = []
    for day, day_bars in pd.Series(bars).groupby(pd.Series(bars).dt.floor("D")):
        lo, hi = day_bars.iloc[0], day_bars.iloc[-1]
        requests.append(dg.RunRequest(
            run_key=f"replay-{lo:%Y%m%dT%H%M}-{hi:%Y%m%dT%H%M}",
            partition_key=f"{day:%Y-%m-%d}",
            tags={BARS_FROM: lo.isoformat(), BARS_TO: hi.isoformat(), "btc/mode": "replay",
                  REQUESTED_AT: f"{time.time():.3f}"},
        ))
    cursor["last_bar"] = bars[-1].isoformat()
    context.update_cursor(json.dumps(cursor))
    return requests
