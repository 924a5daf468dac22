"""The collector records every stream into hourly files, dead-letters malformed messages, reconnects and
resubscribes after drops with gap records, and flushes its buffers on SIGTERM."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from btc_assets.lib.data.collector import MalformedMessage, parse_message
from btc_assets.lib.data.collector.writer import read_records
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.market_streams import publish_raw, publish_round
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets_tests.lib.data.collector.conftest import run_collector, until_recording, wait_for

# Binance's documented payload shapes (copied from the docs, see SOURCES.md there): the collector must accept them.
PAYLOADS = Path(__file__).resolve().parents[3] / "fixtures" / "binance_payloads"


def records(root: Path, kind: str) -> list[dict]:
    return [r for p in sorted(root.glob(f"{kind}/*/*.jsonl.gz")) for r in read_records(p)]


def test_the_documented_payloads_pass_the_check():
    for name, stream in [("ws_aggTrade", "bnbusdt@aggTrade"), ("ws_forceOrder", "btcusdt@forceOrder"),
                         ("ws_markPriceUpdate", "btcusdt@markPrice@1s"), ("ws_kline_1m", "btcusdt@kline_1m")]:
        data = json.loads((PAYLOADS / f"{name}.json").read_text())
        assert parse_message({"stream": stream, "data": data})[0] == stream
    depth = json.loads((PAYLOADS / "ws_depthUpdate_partial.json").read_text())
    assert parse_message({"stream": "btcusdt@depth20@100ms", "data": depth})[1] == "depth20"
    with pytest.raises(MalformedMessage, match="'p' should be a number"):
        parse_message({"stream": "x@aggTrade", "data": {**json.loads((PAYLOADS / "ws_aggTrade.json").read_text()),
                                                         "p": "abc"}})


def test_records_every_stream_into_hourly_files(fx, tmp_path):
    async def body(col):
        n = await until_recording(fx, col)
        for i in range(n, n + 50):
            publish_round(fx.exchange, i)
        await wait_for(lambda: col.stats.by_kind.get("forceOrder", 0) >= 50, timeout=3)

    col = run_collector(fx, tmp_path, body)
    root = tmp_path / "streams"
    for kind in ("aggTrade", "depth20", "markPrice", "kline_1m", "forceOrder"):
        got = records(root, kind)
        assert len(got) == col.stats.by_kind[kind] and len(got) >= 50, kind
        assert {"recv_ms", "stream", "data"} <= set(got[0])
    names = [Path(p).name for p in glob.glob(str(root / "depth20/*/*.jsonl.gz"))]
    assert all(n.startswith("depth20-") and n.endswith(".jsonl.gz") for n in names)
    assert len(records(root, "forceOrder")[0]["data"]["o"]) >= 8
    assert col.stats.dead_letters == 0 and col.stats.gaps == 0


def test_malformed_messages_go_to_the_dead_letter_file(fx, tmp_path):
    async def body(col):
        n = await until_recording(fx, col)
        publish_raw(fx.exchange, "btcusdt@aggTrade", '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,'
                    '"s":"BTCUSDT","a":1,"p":"not-a-price","q":"1","T":1,"m":true}}')
        publish_raw(fx.exchange, "btcusdt@forceOrder", '{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder"}}')
        await wait_for(lambda: col.stats.dead_letters >= 2)
        publish_raw(fx.exchange, "btcusdt@markPrice@1s", '{"stream":"btcusdt@markPrice@1s","data":{"e":"mark')
        await wait_for(lambda: col.stats.dead_letters >= 3)  # not JSON: the client's receive task dies on it
        await wait_for(lambda: col.stats.sessions >= 2)  # ... so the collector reconnects
        await until_recording(fx, col, n)

    col = run_collector(fx, tmp_path, body)
    dead = records(tmp_path / "streams", "dead_letter")
    assert len(dead) == 3 == col.stats.dead_letters
    assert "not-a-price" in dead[0]["raw"] and "'p' should be a number" in dead[0]["reason"]
    assert "missing fields" in dead[1]["reason"]
    assert dead[2]["raw"].endswith('"e":"mark') and "not JSON" in dead[2]["reason"]
    assert col.stats.gaps == 1  # the reconnect after the bad frame is a gap, on record


def test_reconnects_resubscribes_and_records_the_gap(fx, tmp_path):
    async def body(col):
        n = await until_recording(fx, col)
        fx.drop_websockets()
        await wait_for(lambda: col.stats.reconnects >= 1)
        await until_recording(fx, col, n + 1000)
        await wait_for(lambda: col.stats.gaps >= 1)

    col = run_collector(fx, tmp_path, body)
    gaps = records(tmp_path / "streams", "gaps")
    assert len(gaps) == 1 and gaps[0]["end_ms"] >= gaps[0]["start_ms"]
    assert "closed" in gaps[0]["reason"] and col.stats.sessions >= 2


def test_stale_connection_is_replaced(fx, tmp_path):
    async def body(col):
        await until_recording(fx, col)
        await wait_for(lambda: col.stats.reconnects >= 1, timeout=5)

    col = run_collector(fx, tmp_path, body, stale_after_s=0.5)
    assert col.stats.reconnects >= 1


def test_unreachable_server_is_a_gap_until_stop(tmp_path):
    with run_in_thread(synthetic_bars(3), "k", "s") as fx:
        url = fx.ws_url
    # the server is gone: every connect fails; on stop the gap up to the stop is recorded

    class Gone:
        ws_url = url

    async def body(col):
        await wait_for(lambda: col.stats.reconnects >= 2)

    col = run_collector(Gone, tmp_path, body)
    gaps = records(tmp_path / "streams", "gaps")
    assert col.stats.sessions == 0 and len(gaps) == 1 and "stopped before a reconnect" in gaps[0]["reason"]


def test_sigterm_flushes_buffered_records(fx, tmp_path):
    root = tmp_path / "streams"
    proc = subprocess.Popen([sys.executable, "-m", "btc_assets.lib.data.collector.main", "--ws-url", fx.ws_url, "--root",
                             str(root), "--flush-interval-s", "60", "--stale-after-s", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[4])})
    try:
        async def drive() -> None:
            for _ in range(1000):  # until the subprocess has connected (3 sockets) and sent its subscriptions
                if len(fx.app.sockets) >= 3:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            for i in range(100):
                publish_round(fx.exchange, i, liquidation=True)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
        asyncio.run(drive())
        assert not list(root.glob("aggTrade/*/*.gz"))  # everything still buffered (flush every 60 s)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    stats = json.loads(out.strip().splitlines()[-1])["collector"]
    assert stats["messages"] > 0
    assert len(records(root, "aggTrade")) == stats["by_kind"]["aggTrade"] > 0


def test_unwritable_root_stops_the_collector_loudly(fx, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the collector's folder should be")

    async def body(col):
        for i in range(200):
            publish_round(fx.exchange, i)
            await asyncio.sleep(0.02)
            if col.fatal is not None:
                return

    with pytest.raises(RuntimeError, match="cannot write under .*not-a-dir.*restart `make collect`"):
        run_collector(fx, tmp_path / "not-a-dir", body)
