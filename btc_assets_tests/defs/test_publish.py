"""A partition that fails a blocking check is never visible to readers: silver and gold compute their checks before
they write, so a bad re-delivery of a day leaves the last good version in place (and a bad first delivery leaves
nothing), and the materialization says so."""

import datetime as dt

import dagster as dg
import pytest

from btc_assets.defs.publish import blocking_failures, publish
from btc_assets_tests.conftest import real_klines, zip_csv
from btc_assets_tests.defs.test_bad_input import mirror, pipeline, publish as publish_file  # noqa: F401

KLINES = [["bronze", "klines_1m"], ["silver", "klines_1m"]]


def _klines_zip(day: dt.date, drop=(), high_below_low_at=None) -> bytes:
    raw = real_klines(day).drop(index=list(drop))
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
             "taker_buy_quote_volume,ignore"]
    for i, r in zip(raw.index, raw.itertuples()):
        high = r.low - 1.0 if i == high_below_low_at else r.high
        lines.append(f"{int(r.open_time.value // 10**6)},{r.open},{high},{r.low},{r.close},{r.volume},"
                     f"{int(r.close_time.value // 10**6)},{r.quote_volume},{r.count},{r.taker_buy_volume},"
                     f"{r.taker_buy_quote_volume},0")
    return zip_csv(f"BTCUSDT-1m-{day}.csv", "\n".join(lines) + "\n")


@pytest.mark.parametrize("bad, check", [
    ({"drop": (100,)}, "klines_1m_has_every_minute"),
    ({"high_below_low_at": 700}, "klines_1m_ohlc_consistent"),
])
def test_a_bad_redelivery_leaves_the_last_good_version(tmp_path, mirror, bad, check):  # noqa: F811
    p = pipeline(tmp_path, mirror)
    p.run(KLINES, partition_key="2024-01-02")
    good = p.sql("SELECT count(*), sum(high), max(high - low) FROM silver.klines_1m")
    assert good[0][0] == 1440
    publish_file(mirror, "BTCUSDT-1m-2024-01-02.zip", _klines_zip(dt.date(2024, 1, 2), **bad))
    res = p.run(KLINES, partition_key="2024-01-02", raise_on_error=False)
    assert not res.success
    failed = [c.check_name for c in res.get_asset_check_evaluations() if not c.passed]
    assert check in failed  # (a high below the low also breaks the pandera schema)
    assert p.sql("SELECT count(*), sum(high), max(high - low) FROM silver.klines_1m") == good
    [mat] = [e.materialization for e in res.get_asset_materialization_events()
             if e.asset_key == dg.AssetKey(["silver", "klines_1m"])]
    assert mat.metadata["written"].value is False and mat.metadata["withheld_by"].value == failed
    assert "previous version" in mat.metadata["visible_to_readers"].value


def test_a_good_redelivery_replaces_the_day(tmp_path, mirror):  # noqa: F811
    p = pipeline(tmp_path, mirror)
    p.run(KLINES, partition_key="2024-01-02")
    res = p.run(KLINES, partition_key="2024-01-02")
    [mat] = [e.materialization for e in res.get_asset_materialization_events()
             if e.asset_key == dg.AssetKey(["silver", "klines_1m"])]
    assert mat.metadata["written"].value is True and p.sql("SELECT count(*) FROM silver.klines_1m") == [(1440,)]


def test_publish_writes_only_when_every_blocking_check_passed():
    specs = [dg.AssetCheckSpec("a_is_fine", asset="x", blocking=True), dg.AssetCheckSpec("b_warns", asset="x")]
    wrote = []

    def write():
        wrote.append(1)
        return 7

    warn_only = [dg.AssetCheckResult(check_name="a_is_fine", passed=True),
                 dg.AssetCheckResult(check_name="b_warns", passed=False, severity=dg.AssetCheckSeverity.WARN)]
    assert publish(specs, warn_only, write, 7) == (7, {"written": True, "rows_checked": 7}) and wrote == [1]
    blocked = [dg.AssetCheckResult(check_name="a_is_fine", passed=False), warn_only[1]]
    rows, meta = publish(specs, blocked, write, 7)
    assert rows == 0 and meta["written"] is False and meta["withheld_by"] == ["a_is_fine"] and wrote == [1]
    assert blocking_failures(specs, blocked) == ["a_is_fine"]
