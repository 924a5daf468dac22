"""Idempotent window replacement in DuckDB: re-writing a day replaces exactly that day."""

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.storage.warehouse import read_window, replace_window

COLS = {"open_time": "TIMESTAMP", "v": "DOUBLE"}


def day(d, v):
    t = pd.date_range(d, periods=3, freq="1h", tz="UTC")
    return pd.DataFrame({"open_time": t, "v": v})


def test_replace_window_replaces_exactly_that_day(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    d1, d2 = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")
    replace_window(conn, "s.t", COLS, day("2024-01-01", 1.0), "open_time", d1, d2)
    replace_window(conn, "s.t", COLS, day("2024-01-02", 2.0), "open_time", d2, d2 + pd.Timedelta(days=1))
    replace_window(conn, "s.t", COLS, day("2024-01-01", 3.0), "open_time", d1, d2)
    out = read_window(conn, "s.t", "open_time", d1, d2 + pd.Timedelta(days=1))
    assert out["v"].tolist() == [3.0] * 3 + [2.0] * 3
    assert str(out["open_time"].dtype) == "datetime64[ns, UTC]"
    assert conn.execute("SELECT data_type FROM information_schema.columns WHERE column_name='open_time'").fetchone()[0] == "TIMESTAMP"


def test_rows_outside_the_window_are_refused(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    d1 = pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(ValueError, match="outside the window"):
        replace_window(conn, "s.t", COLS, day("2024-01-02", 1.0), "open_time", d1, d1 + pd.Timedelta(days=1))


def test_reading_a_table_not_built_yet_says_what_to_do(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(LookupError, match="materialize the asset"):
        read_window(conn, "silver.klines_1m", "open_time", pd.Timestamp(0), pd.Timestamp(1))


def test_unsafe_identifiers_are_refused(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        replace_window(conn, "t; DROP TABLE x", COLS, day("2024-01-01", 1.0), "open_time",
                       pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))


def test_an_older_table_gains_new_columns(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    d1 = pd.Timestamp("2024-01-01", tz="UTC")
    replace_window(conn, "s.t", COLS, day("2024-01-01", 1.0), "open_time", d1, d1 + pd.Timedelta(days=1))
    newer = {**COLS, "w": "BIGINT"}
    frame = day("2024-01-02", 2.0).assign(w=7)
    replace_window(conn, "s.t", newer, frame, "open_time", d1 + pd.Timedelta(days=1), d1 + pd.Timedelta(days=2))
    out = read_window(conn, "s.t", "open_time", d1, d1 + pd.Timedelta(days=2))
    assert out["w"].isna().sum() == 3 and (out["w"].dropna() == 7).all()


def test_the_small_read_gives_the_frame_duckdb_gives():
    """frame_of (the live order path's small reads) builds exactly .df()'s frame: dtypes, NULLs as NaN/NaT/None and
    nullable Int64/Int8/boolean columns when a column has NULLs, an empty result's columns."""
    from btc_assets.lib.storage.warehouse import frame_of

    conn = duckdb.connect()
    conn.execute("CREATE TABLE t (a BIGINT, ts TIMESTAMP, x DOUBLE, b BOOLEAN, s VARCHAR, k TINYINT)")
    conn.execute("INSERT INTO t VALUES (1, TIMESTAMP '2024-01-01', 1.5, true, 'x', 1), "
                 "(NULL, NULL, NULL, NULL, NULL, NULL), (3, TIMESTAMP '2024-01-02', 2.5, false, 'y', 2)")
    for q in ("SELECT * FROM t", "SELECT * FROM t WHERE a IS NOT NULL", "SELECT * FROM t WHERE false"):
        pd.testing.assert_frame_equal(frame_of(conn.execute(q)), conn.execute(q).df())
    conn.execute("CREATE TABLE k (open_time TIMESTAMP, close DOUBLE)")
    conn.execute("INSERT INTO k VALUES (TIMESTAMP '2024-01-01 00:00', 1.0), (TIMESTAMP '2024-01-01 00:01', 2.0)")
    args = ("k", "open_time", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    pd.testing.assert_frame_equal(read_window(conn, *args, small=True), read_window(conn, *args))
