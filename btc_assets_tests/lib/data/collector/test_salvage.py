"""Hour files written by the real HourlyWriter, then cut as a crash cuts them (mid gzip member, mid line, inside
the gzip header or trailer, then a restart appending to the same hour) or damaged inside: every complete record is
salvaged and the cut reported with its byte offset; damage inside raises naming the file, byte and line."""

from __future__ import annotations

import gzip
import json

import pytest

from btc_assets.lib.data.collector.salvage import CorruptRecording, read_hour_file
from btc_assets.lib.data.collector.writer import HourlyWriter

T = 1_709_287_200_000  # 2024-03-01 10:00 UTC


def _hour_file(tmp_path, batches: list[int]) -> tuple[bytes, list[int]]:
    """An hour file of `batches` flushes (one gzip member each); returns its bytes and each member's end offset."""
    w = HourlyWriter(tmp_path, flush_every=10**9)
    ends, n = [], 0
    path = None
    for size in batches:
        for _ in range(size):
            w.record("aggTrade", "btcusdt@aggTrade", {"a": n, "p": f"{42000 + n}.10", "pad": "x" * 40}, T + n)
            n += 1
        w.flush()
        path = next(iter(w.files))
        ends.append(path.stat().st_size)
    return path.read_bytes(), ends


def test_an_intact_file_reads_whole(tmp_path):
    content, _ = _hour_file(tmp_path, [50, 50, 7])
    got = read_hour_file(content, "f")
    assert [r["data"]["a"] for _, r in got.records] == list(range(107)) and not got.truncations
    assert [line for line, _ in got.records] == list(range(1, 108))


@pytest.mark.parametrize("into_last", [3, 0.5, -4, -1])  # in the header, mid stream, in the trailer, last byte
def test_a_cut_last_member_is_salvaged_and_reported(tmp_path, into_last):
    content, ends = _hour_file(tmp_path, [50, 50, 40])
    size = ends[2] - ends[1]
    cut = ends[1] + (int(size * into_last) if isinstance(into_last, float) else into_last % size)
    got = read_hour_file(content[:cut], "aggTrade-2024-03-01-10.jsonl.gz")
    ids = [r["data"]["a"] for _, r in got.records]
    assert ids == list(range(len(ids))) and 100 <= len(ids) <= 140  # every complete record, in order, no gap
    [t] = got.truncations
    assert t.file == "aggTrade-2024-03-01-10.jsonl.gz" and t.byte_offset == ends[1] and t.line == len(ids) + 1
    assert "cut short by a crash" in t.reason and "end of the file" in t.reason
    if into_last == 0.5:  # mid stream: the partial line is kept for the dead letter, not parsed
        assert t.tail and t.tail.startswith('{"recv_ms"') and not t.tail.endswith("}")


def test_a_cut_member_followed_by_a_restarts_records_is_salvaged(tmp_path):
    content, ends = _hour_file(tmp_path, [50, 50, 40])
    restart = gzip.compress(b"".join(json.dumps({"recv_ms": T, "stream": "s", "data": {"a": i}}).encode() + b"\n"
                                     for i in range(1000, 1010)))
    cut = ends[0] + (ends[1] - ends[0]) // 2
    got = read_hour_file(content[:cut] + restart + content[ends[1]:], "f")
    ids = [r["data"]["a"] for _, r in got.records]
    assert ids[:50] == list(range(50)) and ids[-50:] == list(range(1000, 1010)) + list(range(100, 140))
    [t] = got.truncations
    assert t.byte_offset == ends[0] and "restart" in t.reason


def test_damage_inside_a_file_fails_naming_file_byte_and_line(tmp_path):
    content, ends = _hour_file(tmp_path, [50, 50, 40])
    bad = bytearray(content)
    bad[ends[0] + 30] ^= 0xFF  # inside the second member's deflate data
    with pytest.raises(CorruptRecording, match=r"aggTrade-10\.jsonl\.gz: .*\(byte \d+, line \d+\).*damaged inside"
                                               r".*move it aside") as err:
        read_hour_file(bytes(bad), "aggTrade-10.jsonl.gz")
    assert err.value.byte_offset == ends[0] and err.value.line <= 51 + 50


def test_a_complete_line_that_is_not_json_is_corruption_not_a_cut(tmp_path):
    content, ends = _hour_file(tmp_path, [5])
    broken = content + gzip.compress(b'{"recv_ms": 1}\n{"recv_ms": \n{"recv_ms": 2}\n') + content
    with pytest.raises(CorruptRecording, match=r"f: line is not JSON .*byte \d+, line 7\)"):
        read_hour_file(broken, "f")
