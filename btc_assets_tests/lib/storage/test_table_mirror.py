"""The S3 table mirror on a local S3 API: one object per day, a re-written day replaces its object, restore."""

import boto3
import duckdb
import pandas as pd
import pytest

from btc_assets.lib.storage.table_mirror import S3TableMirror, mirroring, restore
from btc_assets.lib.storage.warehouse import replace_window

COLS = {"open_time": "TIMESTAMP", "v": "DOUBLE"}
D1 = pd.Timestamp("2024-01-01")


@pytest.fixture()
def mirror(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    return S3TableMirror(client, "btc-assets-test", prefix=f"wh-{pd.Timestamp.now().value}")


def frame(day, v, n=3):
    return pd.DataFrame({"open_time": pd.date_range(day, periods=n, freq="1h", tz="UTC"), "v": v})


def test_rewritten_day_replaces_its_object_and_restore_rebuilds(tmp_path, mirror):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    with mirroring(mirror):
        two_days = pd.concat([frame("2024-01-01", 1.0), frame("2024-01-02", 2.0)])
        replace_window(conn, "s.t", COLS, two_days, "open_time", D1, D1 + pd.Timedelta(days=2))
        replace_window(conn, "s.t", COLS, frame("2024-01-02", 5.0, n=1), "open_time", D1 + pd.Timedelta(days=1),
                       D1 + pd.Timedelta(days=2))
    rebuilt = duckdb.connect(str(tmp_path / "b.duckdb"))
    assert restore(rebuilt, mirror) == {"s.t": 4}
    assert rebuilt.execute("SELECT sum(v) FROM s.t").fetchone()[0] == 3 * 1.0 + 5.0


def test_windows_that_are_not_whole_days_are_refused(mirror):
    with pytest.raises(ValueError, match="not whole days"):
        mirror.put("s.t", frame("2024-01-01", 1.0), "open_time", D1, D1 + pd.Timedelta(hours=6))


def test_without_a_mirror_nothing_is_sent(tmp_path, mirror):
    conn = duckdb.connect(str(tmp_path / "c.duckdb"))
    replace_window(conn, "s.t", COLS, frame("2024-01-01", 1.0), "open_time", D1, D1 + pd.Timedelta(days=1))
    assert "Contents" not in mirror.client.list_objects_v2(Bucket=mirror.bucket, Prefix=mirror.prefix)
