"""bronze/stream_recordings, silver/liquidations and silver/order_book_live over hour files written by the real
HourlyWriter (events in Binance's forceOrder / depth20 shapes, values made up for the test): a file cut by a
collector crash is salvaged with its tail in the dead-letter table, damage inside a file fails naming it, and
each check of the live tables fails on the bad data it is there to catch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from btc_assets.defs.bronze import streams as bronze_streams
from btc_assets.defs.resources import local_resources
from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.silver import live as silver_live
from btc_assets.lib.data.collector.writer import HourlyWriter

DAY = "2024-03-01"
T10 = 1_709_287_200_000  # 2024-03-01 10:00 UTC
ASSETS = dg.load_assets_from_modules([bronze_streams, silver_live])
KEYS = [dg.AssetKey(["bronze", "stream_recordings"]), dg.AssetKey(["silver", "liquidations"]),
        dg.AssetKey(["silver", "order_book_live"])]


def liquidation(i: int, **o) -> dict:
    t = T10 + 1000 * i
    return {"e": "forceOrder", "E": t, "o": {"s": "BTCUSDT", "S": "SELL" if i % 2 else "BUY", "o": "LIMIT",
                                            "f": "IOC", "q": "0.010", "p": f"{62000 + i}.10", "ap": f"{62000 + i}.10",
                                            "X": "FILLED", "l": "0.010", "z": "0.010", "T": t, **o}}


def depth(i: int, levels: int = 20, bid: float | None = None, u: int | None = None) -> dict:
    t = T10 + 100 * i
    best_bid = 62000.0 + i / 10 if bid is None else bid
    return {"e": "depthUpdate", "E": t, "T": t, "s": "BTCUSDT", "ps": "BTCUSDT", "st": 1, "U": 1000 + 2 * i,
            "u": 1001 + 2 * i if u is None else u, "pu": 999 + 2 * i,
            "b": [[f"{best_bid - k / 10:.2f}", "1.500"] for k in range(levels)],
            "a": [[f"{62000.1 + i / 10 + k / 10:.2f}", "1.200"] for k in range(levels)]}


def record(root: Path, liquidations: list[dict], books: list[dict], gaps: list[tuple[int, int]] = ()) -> None:
    w = HourlyWriter(root, flush_every=10**9)
    for ev in liquidations:
        w.record("forceOrder", "btcusdt@forceOrder", ev, ev["E"] + 40)
    for ev in books:
        w.record("depth20", "btcusdt@depth20@100ms", ev, ev["E"] + 40)
    for start, end in gaps:
        w.gap(start, end, "websocket closed by the server; reconnected")
    w.close()


def run(tmp_path: Path, **kw) -> dg.ExecuteInProcessResult:
    res = local_resources(tmp_path / "data")
    res["streams"] = StreamRecordingsResource(root=str(tmp_path / "streams"))
    return dg.materialize(ASSETS, selection=KEYS, partition_key=DAY, resources=res, **kw)


def checks(result) -> dict[str, tuple[bool, str]]:
    return {e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()}


def good() -> tuple[list[dict], list[dict]]:
    return [liquidation(i) for i in range(20)], [depth(i) for i in range(50)]


def test_good_recordings_pass_every_check(tmp_path):
    record(tmp_path / "streams", *good())
    result = run(tmp_path)
    assert result.success and all(passed for passed, _ in checks(result).values())
    assert len(checks(result)) == 1 + 4 + 5


def test_a_day_without_liquidations_passes(tmp_path):
    record(tmp_path / "streams", [], good()[1])
    result = run(tmp_path)
    assert result.success and all(passed for passed, _ in checks(result).values())


@pytest.mark.parametrize("case, failing", [
    ("negative price", "liquidations_match_schema"),
    ("unknown side", "liquidations_match_schema"),
    ("zero quantity", "liquidations_match_schema"),
    ("duplicate liquidation", "liquidations_have_no_duplicates"),
    ("event after receipt", "liquidations_times_in_order"),
    ("liquidation time going back in the file", "liquidations_times_in_order"),
    ("book time going back in the file", "order_book_live_times_in_order"),
    ("crossed book", "order_book_live_not_crossed"),
    ("missing levels", "order_book_live_match_schema"),
    ("duplicate update", "order_book_live_have_no_duplicates"),
    ("update id going back", "order_book_live_times_in_order"),
])
def test_each_blocking_check_fails_on_its_bad_data(tmp_path, case, failing):
    liqs, books = good()
    if case == "negative price":
        liqs[3] = liquidation(3, p="-62003.10")
    elif case == "unknown side":
        liqs[3] = liquidation(3, S="HOLD")
    elif case == "zero quantity":
        liqs[3] = liquidation(3, z="0")
    elif case == "duplicate liquidation":
        liqs.append(liqs[5])  # e.g. two collectors appending to one hour file
    elif case == "event after receipt":
        liqs[3] = liquidation(3, T=T10 + 3_600_000)  # received an hour before it happened: a clock bug
    elif case == "liquidation time going back in the file":  # recorded after an event 10 s later than itself
        liqs.insert(12, liquidation(3, T=T10 + 2_500))
    elif case == "book time going back in the file":
        books[7], books[8] = books[8], books[7]  # ids keep rising with time; only the recorded order is wrong
    elif case == "crossed book":
        books[7] = depth(7, bid=62100.0)
    elif case == "missing levels":
        books[7] = depth(7, levels=5)
    elif case == "duplicate update":
        books.append(books[9])
    elif case == "update id going back":
        books[7] = depth(7, u=5)
    record(tmp_path / "streams", liqs, books)
    result = run(tmp_path, raise_on_error=False)
    assert not result.success  # a blocking check stops the run: nothing downstream reads the bad day
    found = checks(result)
    assert found[failing] == (False, "ERROR")
    assert [name for name, (passed, _) in found.items() if not passed] == [failing]


def test_recorded_gaps_are_a_warning_that_does_not_block(tmp_path):
    record(tmp_path / "streams", *good(), gaps=[(T10 + 60_000, T10 + 90_000)])
    result = run(tmp_path)
    assert result.success
    found = checks(result)
    assert found["order_book_live_has_no_recorded_gaps"] == (False, "WARN")
    assert found["liquidations_has_no_recorded_gaps"] == (False, "WARN")
    [ev] = [e for e in result.get_asset_check_evaluations() if e.check_name == "order_book_live_has_no_recorded_gaps"]
    assert ev.metadata["gaps"].value == 1 and ev.metadata["gap_seconds"].value == 30.0


def test_a_file_cut_by_a_crash_is_salvaged_with_its_tail_dead_lettered(tmp_path):
    liqs, books = good()
    record(tmp_path / "streams", liqs[:10], books)
    record(tmp_path / "streams", liqs[10:], [])  # a second flush: a second gzip member in the same hour file
    path = tmp_path / "streams" / "forceOrder" / DAY / f"forceOrder-{DAY}-10.jsonl.gz"
    content = path.read_bytes()
    first_member = len(content) - len(content.split(b"\x1f\x8b\x08")[-1]) - 3
    path.write_bytes(content[:first_member + (len(content) - first_member) // 2])  # killed mid-write
    result = run(tmp_path)
    assert result.success
    meta = result.asset_materializations_for_node("bronze__stream_recordings")[0].metadata
    assert meta["truncated_files"].value == 1 and "forceOrder-2024-03-01-10.jsonl.gz" in meta["truncations"].value
    assert checks(result)["stream_recordings_not_truncated"] == (False, "WARN")
    salvaged = meta["records"].value["forceOrder"]
    assert 10 <= salvaged < 20
    res = local_resources(tmp_path / "data")
    with res["warehouse"].get_connection() as conn:
        rows = conn.execute("SELECT relpath, byte_offset, line, reason, raw FROM bronze.stream_dead_letters").fetchall()
        liq = conn.execute("SELECT count(*) FROM silver.liquidations").fetchone()[0]
    [(relpath, offset, line, reason, raw)] = rows
    assert relpath == f"bronze/streams/forceOrder/{DAY}/forceOrder-{DAY}-10.jsonl.gz"
    assert offset == first_member and line == salvaged + 1 and "cut short by a crash" in reason
    assert liq == salvaged  # silver reads the same complete records, up to the cut


def test_damage_inside_a_file_fails_naming_it(tmp_path):
    liqs, books = good()
    record(tmp_path / "streams", liqs[:10], books)
    record(tmp_path / "streams", liqs[10:], [])
    path = tmp_path / "streams" / "forceOrder" / DAY / f"forceOrder-{DAY}-10.jsonl.gz"
    bad = bytearray(path.read_bytes())
    bad[40] ^= 0xFF  # inside the first member: complete records follow it
    path.write_bytes(bytes(bad))
    with pytest.raises(dg.Failure, match=r"forceOrder-2024-03-01-10\.jsonl\.gz: .*byte 0, line 1.*damaged inside"):
        run(tmp_path)


def test_dead_letters_are_replaced_when_the_day_is_rematerialized(tmp_path):
    test_a_file_cut_by_a_crash_is_salvaged_with_its_tail_dead_lettered(tmp_path)
    path = tmp_path / "streams" / "forceOrder" / DAY / f"forceOrder-{DAY}-10.jsonl.gz"
    path.unlink()  # the operator restored the hour from elsewhere: here, without it
    record(tmp_path / "streams", [liquidation(i) for i in range(20)], [])
    assert run(tmp_path).success
    with local_resources(tmp_path / "data")["warehouse"].get_connection() as conn:
        assert conn.execute("SELECT count(*) FROM bronze.stream_dead_letters").fetchone()[0] == 0


def test_dead_letters_are_keyed_on_their_day(tmp_path):
    test_a_file_cut_by_a_crash_is_salvaged_with_its_tail_dead_lettered(tmp_path)
    with local_resources(tmp_path / "data")["warehouse"].get_connection() as conn:
        assert conn.execute("SELECT DISTINCT period_start FROM bronze.stream_dead_letters").fetchall() == [
            (dt.datetime(2024, 3, 1),)]
