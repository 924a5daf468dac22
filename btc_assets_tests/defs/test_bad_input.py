"""Bad archive input through the real assets: each fails naming the file and what to do, and loses nothing."""

import hashlib
import shutil

import dagster as dg
import pytest

from btc_assets_tests.conftest import KLINES_DIR, real_klines, zip_csv
from btc_assets_tests.defs.conftest import Pipeline

REL = "data/futures/um/daily/klines/BTCUSDT/1m"


@pytest.fixture()
def mirror(tmp_path):
    """A writable copy of three sample days in the archive layout."""
    d = tmp_path / "mirror" / REL
    d.mkdir(parents=True)
    for day in ("01", "02", "03"):
        for suffix in ("", ".CHECKSUM"):
            shutil.copy(KLINES_DIR / f"BTCUSDT-1m-2024-01-{day}.zip{suffix}", d)
    return tmp_path / "mirror"


def publish(mirror, name, data: bytes):
    (mirror / REL / name).write_bytes(data)
    (mirror / REL / f"{name}.CHECKSUM").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")


def archive_csv(raw) -> str:
    """Klines rows as the archive's 1m CSV (header, millisecond times)."""
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
             "taker_buy_quote_volume,ignore"]
    for r in raw.itertuples():
        lines.append(f"{int(r.open_time.value // 10**6)},{r.open},{r.high},{r.low},{r.close},{r.volume},"
                     f"{int(r.close_time.value // 10**6)},{r.quote_volume},{r.count},{r.taker_buy_volume},"
                     f"{r.taker_buy_quote_volume},0")
    return "\n".join(lines) + "\n"


def error_of(res) -> str:
    return str(res.get_step_failure_events()[0].event_specific_data.error)


def pipeline(tmp_path, mirror):
    instance = dg.DagsterInstance.ephemeral()
    return Pipeline(tmp_path / "data", mirror, instance)


def test_unpublished_day_is_reported_as_not_yet_published(tmp_path, mirror):
    res = pipeline(tmp_path, mirror).run([["bronze", "klines_1m"]], partition_key="2024-01-04", raise_on_error=False)
    assert not res.success
    err = error_of(res)
    assert "BTCUSDT-1m-2024-01-04.zip" in err and "not" in err.lower() and "publish" in err.lower()


def test_checksum_mismatch_names_the_file_and_keeps_the_good_days(tmp_path, mirror):
    f = mirror / REL / "BTCUSDT-1m-2024-01-02.zip"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: what a damaged download looks like
    f.write_bytes(bytes(data))
    p = pipeline(tmp_path, mirror)
    res = p.run([["bronze", "klines_1m"]], first="2024-01-01", last="2024-01-03", raise_on_error=False)
    assert not res.success
    err = error_of(res)
    assert "1 of 3" in err and "BTCUSDT-1m-2024-01-02.zip" in err and "checksum" in err.lower()
    kept = sorted(x.name for x in (p.root / "lake" / "bronze" / REL).glob("*.zip"))
    assert kept == ["BTCUSDT-1m-2024-01-01.zip", "BTCUSDT-1m-2024-01-03.zip"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda text: text.replace("\n", "\n1704153600000,1,2\n", 1), r"(?s)BTCUSDT-1m-2024-01-02\.csv|2024-01-02.*line"),
        (lambda text: text.replace(",42", ",4x2", 1), r"2024-01-02"),
        (lambda text: text[: len(text) // 2], r"2024-01-02"),
    ],
    ids=["wrong-column-count", "non-numeric", "truncated"],
)
def test_malformed_csv_fails_silver_naming_file_and_row(tmp_path, mirror, mutate, expected):
    import zipfile, io, re

    name = "BTCUSDT-1m-2024-01-02.zip"
    text = zipfile.ZipFile(io.BytesIO((KLINES_DIR / name).read_bytes())).read("BTCUSDT-1m-2024-01-02.csv").decode()
    publish(mirror, name, zip_csv("BTCUSDT-1m-2024-01-02.csv", mutate(text)))
    p = pipeline(tmp_path, mirror)
    p.run([["bronze", "klines_1m"]], partition_key="2024-01-02")
    res = p.run([["silver", "klines_1m"]], partition_key="2024-01-02", raise_on_error=False)
    assert not res.success
    err = error_of(res)
    assert re.search(expected, err), err
    assert "line" in err.lower() or "row" in err.lower()


def test_corrupt_zip_fails_silver_naming_the_file(tmp_path, mirror):
    publish(mirror, "BTCUSDT-1m-2024-01-02.zip", b"PK\x03\x04 this is not really a zip")
    p = pipeline(tmp_path, mirror)
    p.run([["bronze", "klines_1m"]], partition_key="2024-01-02")
    res = p.run([["silver", "klines_1m"]], partition_key="2024-01-02", raise_on_error=False)
    assert "BTCUSDT-1m-2024-01-02" in error_of(res) and "zip" in error_of(res).lower()


def test_missing_minutes_fail_the_blocking_check_and_stop_gold(tmp_path, mirror):
    raw = real_klines(__import__("datetime").date(2024, 1, 2))
    raw = raw.drop(index=[500, 501])
    publish(mirror, "BTCUSDT-1m-2024-01-02.zip", zip_csv("BTCUSDT-1m-2024-01-02.csv", archive_csv(raw)))
    p = pipeline(tmp_path, mirror)
    p.run([["bronze", "klines_1m"]], partition_key="2024-01-02")
    res = p.run([["silver", "klines_1m"], ["silver", "klines_5m"]], partition_key="2024-01-02", raise_on_error=False)
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    every = checks["klines_1m_has_every_minute"]
    assert not every.passed and every.metadata["missing_minutes"].value == 2
    assert "2024-01-02 08:20:00+00:00" in str(every.metadata["first_missing"].value)
    assert not any(e.asset_key == dg.AssetKey(["silver", "klines_5m"]) for e in res.get_asset_materialization_events())
    # The day failed a blocking check: it is not written (readers never see it), and the materialization says so.
    assert p.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'silver' "
                 "AND table_name = 'klines_1m'") == [(0,)]  # never written: no reader finds the day
    [mat] = [e for e in res.get_asset_materialization_events()
             if e.asset_key == dg.AssetKey(["silver", "klines_1m"])]
    meta = mat.materialization.metadata
    assert meta["written"].value is False and meta["rows_checked"].value == 1438
    assert meta["withheld_by"].value == ["klines_1m_has_every_minute"]
    # ...and the failed blocking check engages the kill switch of the live path
    from btc_assets.defs.trading.orders import failed_data_checks

    assert failed_data_checks(p.instance) == ["silver/klines_1m: klines_1m_has_every_minute"]


def test_with_a_lakehouse_every_written_window_is_committed_there_and_a_failed_day_is_not(tmp_path, mirror,
                                                                                          monkeypatch):
    """BTC_LAKEHOUSE_URI: silver's windows land in their Delta tables too, one commit each, the same rows as DuckDB;
    a day that fails a blocking check is written to neither."""
    from btc_assets.lib.storage.lakehouse import Lakehouse

    monkeypatch.setenv("BTC_LAKEHOUSE_URI", str(tmp_path / "lakehouse"))
    raw = real_klines(__import__("datetime").date(2024, 1, 3)).drop(index=[100])
    publish(mirror, "BTCUSDT-1m-2024-01-03.zip", zip_csv("BTCUSDT-1m-2024-01-03.csv", archive_csv(raw)))
    p = pipeline(tmp_path, mirror)
    assert p.resources["warehouse"].lakehouse_uri == str(tmp_path / "lakehouse")
    for d in ("2024-01-01", "2024-01-02", "2024-01-03"):
        p.run([["bronze", "klines_1m"]], partition_key=d)
        p.run([["silver", "klines_1m"]], partition_key=d, raise_on_error=False)
    lake = Lakehouse(str(tmp_path / "lakehouse"))
    delta = lake.read_window("silver.klines_1m", "open_time", "2024-01-01", "2024-01-04")
    with p.resources["warehouse"].get_connection() as conn:
        duck = conn.execute("SELECT * FROM silver.klines_1m ORDER BY open_time").df()
    assert len(delta) == len(duck) == 2 * 1440  # the failed day (a missing minute) is in neither
    assert list(delta.columns) == list(duck.columns)
    assert (delta["open_time"].dt.tz_localize(None) == duck["open_time"]).all()
    assert (delta["close"].to_numpy() == duck["close"].to_numpy()).all()
    writes = [h for h in lake.history("silver.klines_1m") if h["operation"] == "WRITE"]
    assert len(writes) == 2 and all(h["rows_added"] == 1440 for h in writes)
    # re-materializing a day is one more commit replacing that day only
    p.run([["silver", "klines_1m"]], partition_key="2024-01-02")
    assert len(lake.read_window("silver.klines_1m", "open_time", "2024-01-01", "2024-01-04")) == 2 * 1440
    assert [h["operation"] for h in lake.history("silver.klines_1m", limit=1)] == ["WRITE"]
    assert lake.version("silver.klines_1m") == 3  # created, two days, the day again
    # the bronze manifest: every fetch appended (the history), DuckDB's table the current row of each file
    fetched = lake.read_window("bronze.files", "period_start", "2024-01-01", "2024-01-04")
    assert sorted(fetched["relpath"].str[-14:]) == [f"2024-01-0{d}.zip" for d in (1, 2, 3)]
    assert fetched["sha256"].str.fullmatch("[0-9a-f]{64}").all()
    p.run([["bronze", "klines_1m"]], partition_key="2024-01-02")  # fetched again
    again = lake.read_window("bronze.files", "period_start", "2024-01-02", "2024-01-03")
    with p.resources["warehouse"].get_connection() as conn:
        current = conn.execute("SELECT count(*) FROM bronze.files WHERE relpath LIKE '%2024-01-02.zip'").fetchone()[0]
    assert len(again) == 2 and again["sha256"].nunique() == 1 and current == 1
