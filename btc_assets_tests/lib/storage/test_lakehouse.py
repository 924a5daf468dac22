"""The Delta Lake tables: one commit per window, nothing else touched, refused rows never written, concurrent writers
of different days without a lock (local disk and the local S3 server), a same-window race refused, the audit trail,
time travel, and a process that reads a table exits cleanly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.storage.lakehouse import Lakehouse, LakehouseError, arrow_schema, s3_options

TYPES = {"open_time": "TIMESTAMP", "close": "DOUBLE", "trades": "BIGINT", "closed": "BOOLEAN", "note": "VARCHAR"}
TABLE = "silver.klines_1m"
BUCKET = "btc-assets-test"


def bars(start: str, n: int, value: float = 1.0) -> pd.DataFrame:
    t = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({"open_time": t, "close": value + np.arange(n, dtype=float), "trades": np.arange(n),
                         "closed": True, "note": "x"})


def day(lh: Lakehouse, d: str, value: float = 1.0):
    start = pd.Timestamp(d, tz="UTC")
    return lh.replace_window(TABLE, TYPES, bars(d, 1440, value), "open_time", start, start + pd.Timedelta(days=1))


def test_a_window_is_replaced_by_one_commit_and_nothing_else_moves(tmp_path):
    lh = Lakehouse(str(tmp_path / "lake"))
    assert lh.version(TABLE) is None and not lh.exists(TABLE)
    for d in ("2024-01-01", "2024-01-02", "2024-01-03"):
        day(lh, d)
    assert lh.version(TABLE) == 3  # version 0 created the table (its schema and partitioning)
    # six hours of the middle day, replaced by ten rows of other values: one more commit
    c = lh.replace_window(TABLE, TYPES, bars("2024-01-02 06:00", 10, value=-1000.0), "open_time",
                          "2024-01-02 06:00", "2024-01-02 12:00", note={"run_id": "run-7", "partition": "2024-01-02"})
    assert (c.version, c.rows, c.days, c.retries) == (4, 10, ["2024-01-02"], 0)
    got = lh.read_window(TABLE, "open_time", "2024-01-01", "2024-01-04")
    assert len(got) == 3 * 1440 - 360 + 10 and got["open_time"].is_monotonic_increasing
    assert str(got["open_time"].dtype) == "datetime64[ns, UTC]" and got["trades"].dtype == np.int64
    middle = got[(got["open_time"] >= "2024-01-02 06:00") & (got["open_time"] < "2024-01-02 12:00")]
    assert middle["close"].tolist() == [-1000.0 + i for i in range(10)]
    untouched = got[got["open_time"] < "2024-01-02 06:00"]
    assert len(untouched) == 1440 + 360 and (untouched["close"] >= 1).all()
    # an empty window deletes its rows (a re-materialized day with no data leaves nothing older behind)
    lh.replace_window(TABLE, TYPES, bars("2024-01-03", 0), "open_time", "2024-01-03", "2024-01-04")
    assert lh.read_window(TABLE, "open_time", "2024-01-03", "2024-01-04").empty
    # every version stays readable: the audit trail and time travel
    assert len(lh.read_window(TABLE, "open_time", "2024-01-03", "2024-01-04", version=4)) == 1440
    log = lh.history(TABLE)
    assert [h["version"] for h in log] == [5, 4, 3, 2, 1, 0] and log[-1]["operation"] == "CREATE TABLE"
    assert [h["version"] for h in lh.history(TABLE, limit=2)] == [5, 4]
    assert log[1]["operation"] == "WRITE" and log[1]["rows_added"] == 10
    assert log[1]["note"] == {"run_id": "run-7", "partition": "2024-01-02"} and log[0]["note"] == {}
    assert "2024-01-02T06:00:00" in log[1]["predicate"] and "2024-01-02T12:00:00" in log[1]["predicate"]


def test_rows_outside_the_window_or_a_wrong_schema_are_refused_and_nothing_is_committed(tmp_path):
    lh = Lakehouse(str(tmp_path / "lake"))
    day(lh, "2024-01-01")
    with pytest.raises(LakehouseError, match=r"silver.klines_1m: 1 rows outside the window .*2024-01-02 00:00"):
        lh.replace_window(TABLE, TYPES, bars("2024-01-01 23:00", 61), "open_time", "2024-01-01", "2024-01-02")
    with pytest.raises(LakehouseError, match=r"lack columns \['note'\]"):
        lh.replace_window(TABLE, TYPES, bars("2024-01-01", 5).drop(columns="note"), "open_time",
                          "2024-01-01", "2024-01-02")
    narrower = {k: v for k, v in TYPES.items() if k != "note"}
    with pytest.raises(LakehouseError, match=r"lacks the table's columns \['note'\]; removing a column"):
        lh.replace_window(TABLE, narrower, bars("2024-01-01", 5), "open_time", "2024-01-01", "2024-01-02")
    with pytest.raises(LakehouseError, match="partition column"):
        arrow_schema({"utc_day": "VARCHAR"})
    with pytest.raises(LakehouseError, match="schema.table"):
        lh.uri("klines")
    assert lh.version(TABLE) == 1 and len(lh.read_window(TABLE, "open_time", "2024-01-01", "2024-01-02")) == 1440
    with pytest.raises(LookupError, match="silver.nothing does not exist"):
        lh.read_window("silver.nothing", "open_time", "2024-01-01", "2024-01-02")


def test_a_table_gains_a_column_as_the_warehouse_tables_do(tmp_path):
    lh = Lakehouse(str(tmp_path / "lake"))
    day(lh, "2024-01-01")
    wider = {**TYPES, "extra": "DOUBLE"}
    lh.replace_window(TABLE, wider, bars("2024-01-02", 1440).assign(extra=2.5), "open_time", "2024-01-02",
                      "2024-01-03")
    got = lh.read_window(TABLE, "open_time", "2024-01-01", "2024-01-03")
    assert got["extra"].iloc[:1440].isna().all() and (got["extra"].iloc[1440:] == 2.5).all()


def _concurrent_days(lh: Lakehouse, days: list[str]) -> tuple[list[str], list]:
    errors: list[str] = []
    commits: list = []
    barrier = threading.Barrier(len(days))

    def write(d: str) -> None:
        barrier.wait()  # every writer starts its commit at the same moment
        try:
            commits.append(day(lh, d, value=float(d[-2:])))
        except Exception as e:  # noqa: BLE001 - the test reports every writer's failure
            errors.append(f"{d}: {e!r}")

    threads = [threading.Thread(target=write, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors, commits


def _every_day_landed(lh: Lakehouse, days: list[str], commits: list) -> None:
    got = lh.read_window(TABLE, "open_time", days[0], pd.Timestamp(days[-1]) + pd.Timedelta(days=1))
    assert len(got) == 1440 * len(days)
    first = got.groupby(got["open_time"].dt.strftime("%Y-%m-%d"))["close"].min()
    assert first.to_dict() == {d: float(d[-2:]) for d in days}  # each day holds its own writer's rows
    log = lh.history(TABLE)
    writes = [h for h in log if h["operation"] == "WRITE"]
    assert len(writes) == len(days) and all(h["rows_added"] == 1440 for h in writes)  # one commit each, none lost
    assert {h["operation"] for h in log} <= {"WRITE", "CREATE TABLE"}
    # the writers really raced: some commit was made again after another writer's
    assert sorted(c.version for c in commits) == sorted(h["version"] for h in writes)
    assert sum(c.retries for c in commits) > 0


def test_concurrent_writers_of_different_days_all_land_without_a_lock(tmp_path):
    lh = Lakehouse(str(tmp_path / "lake"))
    days = [f"2024-01-{d:02d}" for d in range(1, 7)]
    errors, commits = _concurrent_days(lh, days)  # the table did not exist: they also raced to create it
    assert errors == []
    _every_day_landed(lh, days, commits)


def test_a_race_for_the_same_rows_is_refused_not_merged(tmp_path):
    from deltalake import DeltaTable, write_deltalake

    lh = Lakehouse(str(tmp_path / "lake"))
    day(lh, "2024-01-01")
    stale = DeltaTable(lh.uri(TABLE))  # a writer that read the table before the commit below
    day(lh, "2024-01-01", value=50.0)
    frame = bars("2024-01-01", 3).assign(utc_day="2024-01-01")
    import pyarrow as pa

    with pytest.raises(Exception, match="concurrent transaction"):
        write_deltalake(stale, pa.Table.from_pandas(frame, schema=arrow_schema(TYPES), preserve_index=False),
                        mode="overwrite", predicate="utc_day = '2024-01-01'", partition_by=["utc_day"])
    got = lh.read_window(TABLE, "open_time", "2024-01-01", "2024-01-02")
    assert len(got) == 1440 and got["close"].iloc[0] == 50.0


@pytest.fixture(scope="module")
def s3_endpoint():
    """The local S3 API in its own process: delta-rs waits for a reply holding the GIL, so a server thread of the
    test's process could never answer it."""
    from btc_assets_tests.services.s3 import s3_server_process

    with s3_server_process(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture()
def s3_lake(s3_endpoint, monkeypatch):
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    prefix = f"lakehouse-{pd.Timestamp.now().value}"
    monkeypatch.setenv("BTC_LAKEHOUSE_URI", f"s3://{BUCKET}/{prefix}")
    return Lakehouse.from_env()


def test_the_s3_server_refuses_a_second_create_of_one_key(s3_endpoint):
    """The commit protocol's premise: a PUT with If-None-Match: * fails when the key exists (the next log entry is
    created by one writer only). Were the server to accept it, two writers could both write version N."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    key = f"premise/{pd.Timestamp.now().value}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"second", IfNoneMatch="*")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"


def test_concurrent_writers_on_s3_use_conditional_commits_and_all_land(s3_lake):
    assert s3_lake.root.startswith("s3://") and s3_lake.storage_options["aws_conditional_put"] == "etag"
    assert s3_lake.storage_options["AWS_ALLOW_HTTP"] == "true"  # the local server; AWS itself is https
    assert repr(s3_lake) == f"Lakehouse(root={s3_lake.root!r})"  # its options are never printed
    days = [f"2024-02-{d:02d}" for d in range(1, 6)]
    errors, commits = _concurrent_days(s3_lake, days)
    assert errors == []
    _every_day_landed(s3_lake, days, commits)


def test_s3_options_come_from_the_environment():
    assert s3_options({}) == {"aws_conditional_put": "etag"}
    o = s3_options({"AWS_ENDPOINT_URL_S3": "https://s3.example", "AWS_ENDPOINT_URL": "http://other",
                    "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert o == {"aws_conditional_put": "etag", "AWS_ENDPOINT_URL": "https://s3.example", "AWS_REGION": "eu-west-1",
                 "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    local = Lakehouse.from_env({}, data_dir="/data")
    assert local.root == "/data/lakehouse" and local.storage_options == {}


def test_a_process_that_read_a_table_exits_cleanly(tmp_path):
    """Scanning a Delta table through a pyarrow dataset makes the process abort at exit now and then (delta-rs
    issue 2184): reads go through delta-rs' own engine. Three fresh processes write, read and exit with 0."""
    code = textwrap.dedent(f"""
        import pandas as pd
        from btc_assets.lib.storage.lakehouse import Lakehouse
        lh = Lakehouse({str(tmp_path / 'lake')!r})
        t = pd.date_range("2024-01-01", periods=2880, freq="1min", tz="UTC")
        df = pd.DataFrame({{"open_time": t, "close": 1.0}})
        lh.replace_window("silver.k", {{"open_time": "TIMESTAMP", "close": "DOUBLE"}}, df, "open_time",
                          "2024-01-01", "2024-01-03")
        assert len(lh.read_window("silver.k", "open_time", "2024-01-01 12:00", "2024-01-02 12:00")) == 1440
        lh.history("silver.k")
    """)
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]


def test_two_processes_write_different_days_of_one_table_at_once_and_both_commits_are_there(tmp_path):
    """Two writer processes (as two Dagster runs would be), released at the same instant, each replacing its own days
    of one table: every commit lands, none is lost or merged into another."""
    import time

    root = str(tmp_path / "lake")
    Lakehouse(root).replace_window(TABLE, TYPES, bars("2024-03-01", 0), "open_time", "2024-03-01", "2024-03-02")
    go = time.time() + 4.0  # both have imported everything by then
    code = textwrap.dedent("""
        import sys, time
        import numpy as np, pandas as pd
        from btc_assets.lib.storage.lakehouse import Lakehouse
        from btc_assets_tests.lib.storage.test_lakehouse import TABLE, TYPES, bars
        root, go, days = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
        lh = Lakehouse(root)
        time.sleep(max(0.0, go - time.time()))
        for d in days:
            start = pd.Timestamp(d, tz="UTC")
            c = lh.replace_window(TABLE, TYPES, bars(d, 1440, float(d[-2:])), "open_time", start,
                                  start + pd.Timedelta(days=1), note={"writer": days[0]})
            print(c.version, c.retries)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, root, str(go), *days], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for days in (["2024-03-02", "2024-03-04", "2024-03-06"], ["2024-03-03", "2024-03-05", "2024-03-07"])]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    lh = Lakehouse(root)
    got = lh.read_window(TABLE, "open_time", "2024-03-02", "2024-03-08")
    assert len(got) == 6 * 1440
    assert got.groupby(got["open_time"].dt.day)["close"].min().to_dict() == {d: float(d) for d in range(2, 8)}
    writes = [h for h in lh.history(TABLE) if h["operation"] == "WRITE" and h["rows_added"] == 1440]
    assert sorted(h["note"]["writer"] for h in writes) == ["2024-03-02"] * 3 + ["2024-03-03"] * 3
    versions = sorted(int(line.split()[0]) for o in outs for line in o[0].split("\n") if line.strip())
    assert versions == sorted(h["version"] for h in writes)  # each process's commits are its own versions


def test_a_window_narrowed_by_a_text_column_replaces_only_those_rows(tmp_path):
    """One family's out-of-sample predictions of a week replaced, the other family's of the same week kept."""
    lh = Lakehouse(str(tmp_path / "lake"))
    types = {"week_start": "TIMESTAMP", "family": "VARCHAR", "p": "DOUBLE"}
    week = pd.Timestamp("2024-01-08", tz="UTC")
    nxt = week + pd.Timedelta(weeks=1)
    for fam, p in (("xgb", 0.1), ("lstm", 0.2)):
        lh.replace_window("models.oos", types, pd.DataFrame({"week_start": [week] * 3, "family": fam, "p": p}),
                          "week_start", week, nxt, where={"family": fam})
    lh.replace_window("models.oos", types, pd.DataFrame({"week_start": [week], "family": "xgb", "p": 0.9}),
                      "week_start", week, nxt, where={"family": "xgb"})
    got = lh.read_window("models.oos", "week_start", week, nxt)
    assert sorted(zip(got["family"], got["p"])) == [("lstm", 0.2)] * 3 + [("xgb", 0.9)]
    with pytest.raises(LakehouseError, match=r"1 rows have family other than 'xgb' \(first 'lstm'\)"):
        lh.replace_window("models.oos", types, pd.DataFrame({"week_start": [week], "family": "lstm", "p": 0.0}),
                          "week_start", week, nxt, where={"family": "xgb"})
    with pytest.raises(LakehouseError, match="where-column 'p' must be a declared text column"):
        lh.replace_window("models.oos", types, pd.DataFrame({"week_start": [week], "family": "x", "p": 0.0}),
                          "week_start", week, nxt, where={"p": "1"})
