"""live_trading_sensor: each newly closed 1m bar becomes a run of trading_job (live bars -> decisions -> orders).

Where it learns that a bar closed is the live feed's source (LiveFeedResource):
- ``collector``: the newest closed kline in the collector's kline_1m recordings (make collect);
- ``rest``: GET /fapi/v1/klines, a bar counting once its close time passed on the server's clock;
- ``replay``: a window of silver replayed on a clock `speed` times faster than the wall clock (the demo, and the
  parity of the live path with the backtest on the sample).

The cursor is JSON: {"source", "last_bar", "clock_offset"} (the feed's clock minus this machine's; the replay has
its own clock instead: "start", "end", "anchor", "speed"). The first
tick starts at the newest closed bar: the sensor trades from now on, it does not backfill history (a backfill of
trading/decisions does that). Each bar gets its own run, keyed by the bar's time, so a retried tick asks for the
same run_key and Dagster never runs it twice. After a pause (more than CATCH_UP bars due at once) the backlog goes
as one run per day, keyed by its range, rather than hundreds of runs; replay ticks also group their bars per day.
"""


import json
import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.trading import LiveFeedResource, ReplayResource
from btc_assets.defs.trading.market import BARS_FROM, BARS_TO
from btc_assets.defs.trading.specs import CLOCK_SPEED, REQUESTED_AT
from btc_assets.defs.trading.assets import live_trading
from btc_assets.lib.trading import live_bars
from btc_assets.lib.data.rest.client import PublicRest

MINUTE = pd.Timedelta(minutes=1)
DEFAULT_REPLAY = pd.Timedelta(hours=2)
CATCH_UP = 5

trading_job = dg.define_asset_job(
    "trading_job", selection=dg.AssetSelection.assets(live_trading),
    description="Take the bars named by the run's tags from the live feed, decide them, send their orders (the "
    "live sensor's job).",
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
    """Bars of the replay window that closed on the replay clock after cursor['last_bar']."""
    start, end = pd.Timestamp(cursor["start"]), pd.Timestamp(cursor["end"])
    replay_now = start + pd.Timedelta(seconds=(now - cursor["anchor"]) * cursor["speed"])
    first = pd.Timestamp(cursor["last_bar"]) + MINUTE if cursor.get("last_bar") else start
    last = min(replay_now.floor("1min") - MINUTE, end - MINUTE)
    return list(pd.date_range(first, last, freq="1min")) if last >= first else []


def newest_closed(feed: LiveFeedResource, streams: StreamRecordingsResource) -> tuple[pd.Timestamp | None, float]:
    """Open time of the newest bar the feed has seen close, and the feed's clock minus this machine's (seconds)."""
    if feed.source == "collector":
        today = pd.Timestamp.now(tz="UTC").floor("D")
        files = [f for d in (today - pd.Timedelta(days=1), today) for f in streams.files("kline_1m", f"{d:%Y-%m-%d}")]
        return live_bars.latest_closed_from_recordings(files[-3:]), 0.0
    rest = PublicRest(feed.rest_url, retries=1)
    server_now = int(rest.get("/fapi/v1/time", {})["serverTime"])
    offset = server_now / 1000 - time.time()
    rows = rest.get("/fapi/v1/klines", {"symbol": feed.symbol, "interval": "1m", "limit": 2}, weight=1)
    closed = [int(r[0]) for r in rows if int(r[6]) < server_now]
    return (pd.Timestamp(max(closed), unit="ms", tz="UTC") if closed else None), offset


def next_close(cursor: dict) -> float | None:
    """When (epoch seconds, this machine's clock) the bar after cursor['last_bar'] closes on the feed's clock: a
    worker polling the sensor can sleep until then (`make trade`)."""
    if not cursor.get("last_bar") or cursor.get("source") == "replay":
        return None
    return (pd.Timestamp(cursor["last_bar"]) + 2 * MINUTE).timestamp() - cursor.get("clock_offset", 0.0)


def closed_at(bar: pd.Timestamp, cursor: dict) -> float:
    """When (epoch seconds, this machine's clock) the bar closed on the feed's clock: live feeds by the measured
    clock offset, the replay by its own clock (anchor + elapsed replay time / speed)."""
    close = bar + MINUTE
    if cursor.get("source") == "replay":
        return cursor["anchor"] + (close - pd.Timestamp(cursor["start"])).total_seconds() / cursor["speed"]
    return close.timestamp() - cursor.get("clock_offset", 0.0)


def requests_for(bars: list[pd.Timestamp], mode: str, one_run_per_bar: bool,
                 cursor: dict | None = None) -> list[dg.RunRequest]:
    """One run per bar (a backlog of more than CATCH_UP bars: one per day). Each run is tagged with when its last
    bar closed (REQUESTED_AT, this machine's clock) and the feed's clock speed: the orders step measures every
    bar's age from its own close, so a backlog's old entries are never sent (trading/orders)."""
    cursor = cursor or {}
    speed = float(cursor.get("speed", 1.0)) if cursor.get("source") == "replay" else 1.0
    if one_run_per_bar and len(bars) <= CATCH_UP:
        groups = [[b] for b in bars]
    else:
        s = pd.Series(bars)
        groups = [list(g) for _, g in s.groupby(s.dt.floor("D"))]
    return [dg.RunRequest(
        run_key=(f"bar-{g[0]:%Y%m%dT%H%M}" if len(g) == 1 else f"{mode}-{g[0]:%Y%m%dT%H%M}-{g[-1]:%Y%m%dT%H%M}"),
        partition_key=f"{g[0]:%Y-%m-%d}",
        tags={BARS_FROM: g[0].isoformat(), BARS_TO: g[-1].isoformat(), "btc/mode": mode,
              REQUESTED_AT: f"{closed_at(g[-1], cursor) if cursor else time.time():.3f}", CLOCK_SPEED: f"{speed:g}"},
    ) for g in groups]


@dg.sensor(job=trading_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.STOPPED)
def live_trading_sensor(context: dg.SensorEvaluationContext, live_feed: LiveFeedResource, replay: ReplayResource,
                        warehouse: DuckDBResource, streams: StreamRecordingsResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    if cursor.get("source") not in (None, live_feed.source):
        cursor = {}  # the feed changed: start again from its newest bar
    if live_feed.source == "replay":
        if not cursor:
            start, end = replay_window(replay, warehouse)
            cursor = {"source": "replay", "start": start.isoformat(), "end": end.isoformat(), "anchor": time.time(),
                      "speed": replay.speed, "last_bar": None}
        bars = due_bars(cursor, time.time())
    else:
        newest, offset = newest_closed(live_feed, streams)
        if newest is None:
            return dg.SkipReason(f"the {live_feed.source} feed has no closed bar yet")
        if not cursor.get("last_bar"):
            cursor = {"source": live_feed.source, "last_bar": (newest - MINUTE).isoformat()}
        cursor["clock_offset"] = round(offset, 3)
        first = pd.Timestamp(cursor["last_bar"]) + MINUTE
        bars = list(pd.date_range(first, newest, freq="1min")) if newest >= first else []
    if not bars:
        context.update_cursor(json.dumps(cursor))
        done = cursor.get("end") and cursor.get("last_bar") and \
            pd.Timestamp(cursor["last_bar"]) + MINUTE >= pd.Timestamp(cursor["end"])
        return dg.SkipReason("replay finished" if done else "no bar closed since the last tick")
    cursor["last_bar"] = bars[-1].isoformat()
    context.update_cursor(json.dumps(cursor))
    return requests_for(bars, live_feed.source, one_run_per_bar=live_feed.source != "replay", cursor=cursor)
