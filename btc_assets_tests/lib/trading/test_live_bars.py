"""Closed bars for the live trader: from the collector's hour files (closed klines only, a crash-cut tail salvaged)
and from REST on the fake exchange through the real client (open bars left out)."""

import gzip
import json

import dagster as dg
import pandas as pd
import pytest

from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.trading import LiveFeedResource, ReplayResource
from btc_assets.defs.trading.sensors import live_trading_sensor, next_close
from btc_assets.lib.trading import live_bars
from btc_assets.lib.data.collector.salvage import CorruptRecording
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.data.rest.client import PublicRest

T0 = pd.Timestamp("2024-01-11 00:00", tz="UTC")
MIN = pd.Timedelta(minutes=1)


def gzip_lines(records) -> bytes:
    """One gzip member of JSON lines: what one flush of the collector's writer appends to an hour file."""
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


def kline(t: pd.Timestamp, closed: bool, close: float = 100.0) -> dict:
    ms = int(t.timestamp() * 1000)
    return {"recv_ms": ms + 60_000, "stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": ms + 60_000,
            "s": "BTCUSDT", "k": {"t": ms, "T": ms + 59_999, "s": "BTCUSDT", "i": "1m", "o": "99.0", "h": "101.0",
                                  "l": "98.0", "c": f"{close}", "v": "2.5", "n": 7, "x": closed, "q": "250.0",
                                  "V": "1.0", "Q": "100.0"}}}


def hour_file(root, records, tail: bytes = b""):
    path = root / "kline_1m" / "2024-01-11" / "kline_1m-2024-01-11-00.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip_lines(records) + tail)
    return path


def test_only_closed_klines_in_the_window_count(tmp_path):
    recs = [kline(T0, False), kline(T0, True, 100.5), kline(T0 + MIN, True, 101.0), kline(T0 + 2 * MIN, False)]
    path = hour_file(tmp_path, recs)
    got = live_bars.from_recordings([path], T0, T0 + 3 * MIN)
    assert got["open_time"].tolist() == [T0, T0 + MIN]
    assert got["close"].tolist() == [100.5, 101.0] and got["trades"].tolist() == [7, 7]
    assert got["quote_volume"].tolist() == [250.0, 250.0] and not got["is_halt"].any()
    assert live_bars.latest_closed_from_recordings([path]) == T0 + MIN
    assert live_bars.from_recordings([path], T0 + MIN, T0 + 2 * MIN)["open_time"].tolist() == [T0 + MIN]


def test_a_crash_cut_tail_keeps_the_bars_before_it_and_damage_inside_fails(tmp_path):
    whole = gzip_lines([kline(T0 + 2 * MIN, True)])
    path = hour_file(tmp_path, [kline(T0, True), kline(T0 + MIN, True)], tail=whole[: len(whole) // 2])
    assert live_bars.from_recordings([path], T0, T0 + 5 * MIN)["open_time"].tolist() == [T0, T0 + MIN]
    raw = bytearray(gzip_lines([kline(T0, True)]))
    raw[12] ^= 0xFF  # inside the deflate data of a complete member
    path.write_bytes(bytes(raw) + gzip_lines([kline(T0 + MIN, True)]))
    with pytest.raises(CorruptRecording, match="kline_1m-2024-01-11-00"):
        live_bars.from_recordings([path], T0, T0 + 5 * MIN)


def test_a_record_that_is_not_a_kline_is_named(tmp_path):
    path = hour_file(tmp_path, [{"recv_ms": 1, "stream": "x", "data": {"e": "aggTrade"}}])
    with pytest.raises(live_bars.LiveBarError, match="line 1: not a kline_1m record"):
        live_bars.from_recordings([path], T0, T0 + MIN)


def test_rest_gives_closed_bars_through_the_client():
    bars = synthetic_bars(50, drift=1.0)
    with run_in_thread(bars, "k", "s") as fx:
        fx.exchange.advance(20)
        rest = PublicRest(fx.rest_url)
        start = pd.Timestamp(bars[0][0], unit="ms", tz="UTC")
        got = live_bars.from_rest(rest, "BTCUSDT", start, start + 30 * MIN, server_now_ms=int(bars[20][0]) + 60_000)
        assert len(got) == 21 and got["open_time"].iloc[-1] == start + 20 * MIN  # nothing after the cursor
        still_open = live_bars.from_rest(rest, "BTCUSDT", start, start + 30 * MIN, server_now_ms=int(bars[20][0]) + 1)
        assert len(still_open) == 20  # the newest bar has not closed on the server's clock


def test_sensor_on_the_collector_starts_at_the_newest_bar_then_one_run_per_bar(tmp_path):
    now = pd.Timestamp.now(tz="UTC").floor("min")
    path = tmp_path / "kline_1m" / f"{now:%Y-%m-%d}" / f"kline_1m-{now:%Y-%m-%d}-{now:%H}.jsonl.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip_lines([kline(now - 3 * MIN, True), kline(now - 2 * MIN, True)]))
    resources = {"live_feed": LiveFeedResource(source="collector"), "replay": ReplayResource(),
                 "streams": StreamRecordingsResource(root=str(tmp_path)), "warehouse": dg.ResourceDefinition.none_resource()}
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        (req,) = live_trading_sensor(ctx)
        assert req.run_key == f"bar-{now - 2 * MIN:%Y%m%dT%H%M}" and req.tags["btc/mode"] == "collector"
        with path.open("ab") as f:
            f.write(gzip_lines([kline(now - MIN, False), kline(now - MIN, True), kline(now, False)]))
        ctx2 = dg.build_sensor_context(instance=instance, cursor=ctx.cursor, resources=resources)
        (req2,) = live_trading_sensor(ctx2)
        assert req2.run_key == f"bar-{now - MIN:%Y%m%dT%H%M}"
        assert json.loads(ctx2.cursor)["last_bar"] == (now - MIN).isoformat()
        skip = live_trading_sensor(dg.build_sensor_context(instance=instance, cursor=ctx2.cursor, resources=resources))
        assert isinstance(skip, dg.SkipReason)


def test_the_worker_sleeps_until_the_next_bar_closes_on_the_feeds_clock():
    bar = pd.Timestamp("2026-11-22 12:05", tz="UTC")  # the last bar taken closed at 12:06; the next closes at 12:07
    rest = {"source": "rest", "last_bar": bar.isoformat(), "clock_offset": 2.5}  # the server is 2.5 s ahead
    assert next_close(rest) == pd.Timestamp("2026-11-22 12:07", tz="UTC").timestamp() - 2.5
    assert next_close({**rest, "source": "collector", "clock_offset": 0.0}) == pd.Timestamp(
        "2026-11-22 12:07", tz="UTC").timestamp()
    assert next_close({"source": "rest"}) is None  # nothing taken yet: poll
    assert next_close({"source": "replay", "last_bar": bar.isoformat()}) is None  # the replay keeps its own clock
