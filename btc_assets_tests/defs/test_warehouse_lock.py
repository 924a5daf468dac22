"""The warehouse is not queued behind a pool: a run that finds the DuckDB file held by another process waits for it
(DuckDB's own lock), and fails naming the file and the setting when it is held too long; a connection is closed
even when the asset fails."""

import subprocess
import sys
import time

import pytest

from btc_assets.defs.resources.storage import WarehouseResource

HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("INSERT INTO t VALUES (1)")
conn.close()
"""


def _hold(db, seconds):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_run_waits_while_another_process_holds_the_warehouse(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    holder = _hold(db, 1.0)
    t0 = time.monotonic()
    with WarehouseResource(database=str(db)).get_connection() as conn:
        waited = time.monotonic() - t0
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # the holder's write, after it let go
    holder.wait(timeout=30)
    assert waited > 0.3


def test_held_too_long_fails_naming_the_file_and_the_setting(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    holder = _hold(db, 5.0)
    try:
        with pytest.raises(TimeoutError, match=r"warehouse.duckdb was held by another process for more than 0.5 s.*"
                                               r"lock_wait_seconds"):
            with WarehouseResource(database=str(db), lock_wait_seconds=0.5).get_connection():
                pass
    finally:
        holder.kill()
        holder.wait()


def test_the_connection_is_closed_when_the_asset_fails(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    res = WarehouseResource(database=str(db))
    with pytest.raises(RuntimeError, match="the asset failed"):
        with res.get_connection() as conn:
            conn.execute("CREATE TABLE t (x INTEGER)")
            raise RuntimeError("the asset failed")
    # another process can open it at once: nothing of ours still holds it
    out = subprocess.run([sys.executable, "-c", f"import duckdb; print(duckdb.connect({str(db)!r}).execute("
                          "'SELECT count(*) FROM t').fetchone()[0])"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


def test_an_error_other_than_the_lock_is_raised_at_once(tmp_path):
    bad = tmp_path / "not_a_db.duckdb"
    bad.write_bytes(b"this is not a DuckDB file" * 100)
    t0 = time.monotonic()
    with pytest.raises(Exception) as err:
        with WarehouseResource(database=str(bad), lock_wait_seconds=30).get_connection():
            pass
    assert not isinstance(err.value, TimeoutError) and time.monotonic() - t0 < 10


def _frame(day):
    import pandas as pd

    t = pd.date_range(day, periods=3, freq="1min", tz="UTC")
    return pd.DataFrame({"open_time": t, "close": [1.0, 2.0, 3.0]})


def test_delta_commits_wait_until_the_warehouse_is_free_and_are_made_even_if_the_asset_fails(tmp_path, monkeypatch):
    import duckdb
    import pandas as pd

    from btc_assets.lib.storage import lakehouse
    from btc_assets.lib.storage.warehouse import replace_window

    cols = {"open_time": "TIMESTAMP", "close": "DOUBLE"}
    res = WarehouseResource(database=str(tmp_path / "w.duckdb"), lakehouse_uri=str(tmp_path / "lake"))
    seen, real = [], lakehouse.Lakehouse.replace_window

    def spy(self, table, *args, **kwargs):
        try:
            held.execute("SELECT 1")
            seen.append("warehouse still open")
        except duckdb.ConnectionException:
            seen.append("warehouse closed")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(lakehouse.Lakehouse, "replace_window", spy)
    day = pd.Timestamp("2024-01-01", tz="UTC")
    with res.get_connection() as held:
        replace_window(held, "silver.t", cols, _frame(day), "open_time", day, day + pd.Timedelta(days=1))
        assert seen == []  # not while the file is held
    assert seen == ["warehouse closed"]
    day2 = day + pd.Timedelta(days=1)
    with pytest.raises(RuntimeError, match="after the write"):
        with res.get_connection() as held:
            replace_window(held, "silver.t", cols, _frame(day2), "open_time", day2, day2 + pd.Timedelta(days=1))
            raise RuntimeError("the asset failed after the write")
    rows = lakehouse.Lakehouse.at(str(tmp_path / "lake")).read_window("silver.t", "open_time", day,
                                                                      day + pd.Timedelta(days=2))
    assert len(rows) == 6  # DuckDB and Delta hold the same windows
