"""BTC_ENV=prod end to end on real servers: Dagster's instance on PostgreSQL, the lake, MLflow artifacts and
compute logs on a local S3 API (moto), MLflow's backend on PostgreSQL. A few partitions of every layer."""

import shutil
import sys

import boto3
import dagster as dg
import duckdb
import pandas as pd
import psycopg2
import pytest
from dagster._core.storage.compute_log_manager import ComputeIOType

from btc_assets.cli import main as cli
from btc_assets.defs.resources import build_resources
from btc_assets.lib.trading.journal import DECISIONS, ORDER_EVENTS, Journal, OrderEvent, mirror_journal
from btc_assets.lib.storage.table_mirror import restore
from btc_assets_tests.defs.conftest import ALL_ASSETS, DAILY, RANGE_END, RANGE_START, train_config

BUCKET = "btc-assets-test"


@pytest.fixture()
def prod_env(monkeypatch, tmp_path, pg_server, s3_endpoint, sample_archive):
    env = {
        "BTC_ENV": "prod", "BTC_DATA_DIR": str(tmp_path / "volume"), "BINANCE_ARCHIVE_URL": str(sample_archive),
        "BTC_S3_BUCKET": BUCKET, "AWS_ENDPOINT_URL_S3": s3_endpoint, "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "DAGSTER_PG_URL": pg_server.url("dagster", driver="postgresql+psycopg2"),
        "BTC_MLFLOW_TRACKING_URI": f"postgresql+psycopg2://{pg_server.user}@{pg_server.host}:{pg_server.port}/mlflow",
        "PGPASSWORD": pg_server.password,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(__import__("btc_assets.cli.main", fromlist=["REPO"]).REPO / "deploy" / "dagster.prod.yaml",
                home / "dagster.yaml")
    return home


def s3_keys(endpoint, prefix):
    s3 = boto3.client("s3", endpoint_url=endpoint)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_prod_profile_runs_every_layer_on_postgres_and_s3(prod_env, pg_server, s3_endpoint):
    instance = dg.DagsterInstance.from_config(str(prod_env))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
    resources = build_resources()

    def run(keys, **kw):
        res = dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                             instance=instance, **kw)
        assert res.success
        return res

    run([["bronze", "funding_rates"], ["silver", "funding_rates"]], partition_key="2024-01-01")
    run(DAILY, tags={RANGE_START: "2024-01-01", RANGE_END: "2024-01-08"})
    run([["models", "xgb_model"]], partition_key="2024-01-08", run_config=train_config())
    run([["models", "signals"]], partition_key="2024-01-08")
    run([["backtest", "report"]])
    run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-08",
        tags={"btc/bars_from": "2024-01-08T12:00:00+00:00", "btc/bars_to": "2024-01-08T12:29:00+00:00"})

    lake = s3_keys(s3_endpoint, "lake/")
    assert "lake/bronze/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-05.zip" in lake
    assert any(k.endswith("reports/backtest.html") for k in lake)
    assert any("/model/" in k or k.endswith("MLmodel") for k in s3_keys(s3_endpoint, "mlflow/"))
    # Tables on S3: one parquet object per day and table; a fresh DuckDB rebuilt from them has the same rows.
    tables = s3_keys(s3_endpoint, "warehouse/")
    assert "warehouse/silver/klines_1m/date=2024-01-05.parquet" in tables
    assert any(k.startswith("warehouse/gold/features/") for k in tables)
    fresh = duckdb.connect(str(prod_env.parent / "restored.duckdb"))
    restored = restore(fresh, resources["warehouse"].mirror())
    with resources["warehouse"].get_connection() as conn:
        for table in ("silver.klines_1m", "gold.features", "models.signals", "models.xgb_models"):
            assert restored[table] == conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0], table
    with psycopg2.connect(pg_server.url("dagster")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] == 6
    with psycopg2.connect(pg_server.url("mlflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM registered_models")
        assert cur.fetchone()[0] == 1


@dg.asset
def compute_log_probe() -> None:
    print("probe stdout: 42 bars decided")
    print("probe stderr: broker said -2019", file=sys.stderr)


def test_prod_compute_logs_of_a_step_land_on_s3(prod_env, s3_endpoint):
    """The prod instance (Postgres storage, S3ComputeLogManager from deploy/dagster.prod.yaml) uploads what a step
    printed: the objects exist under dagster/compute-logs/ and hold the lines, stdout and stderr apart."""
    instance = dg.DagsterInstance.from_config(str(prod_env))
    result = dg.materialize([compute_log_probe], instance=instance)
    assert result.success
    captured = [e.event_specific_data for e in result.all_events if e.event_type_value == "LOGS_CAPTURED"]
    assert len(captured) == 1, "the run captured no compute logs"
    stem = f"dagster/compute-logs/storage/{result.run_id}/compute_logs/{captured[0].file_key}"
    assert {stem + ".out", stem + ".err"} <= set(s3_keys(s3_endpoint, f"dagster/compute-logs/storage/{result.run_id}/"))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    out = s3.get_object(Bucket=BUCKET, Key=stem + ".out")["Body"].read().decode()
    err = s3.get_object(Bucket=BUCKET, Key=stem + ".err")["Body"].read().decode()
    assert "probe stdout: 42 bars decided" in out and "probe stderr" not in out
    assert "probe stderr: broker said -2019" in err and "probe stdout" not in err
    # the instance (what the UI asks) finds the logs on S3 and points at them there
    manager = instance.compute_log_manager
    log_key = [result.run_id, "compute_logs", captured[0].file_key]
    assert manager.cloud_storage_has_logs(log_key, ComputeIOType.STDOUT)
    assert manager.display_path_for_type(log_key, ComputeIOType.STDERR) == f"s3://{BUCKET}/{stem}.err"


def test_restore_warehouse_brings_the_trading_journal_back(prod_env, monkeypatch, capsys):
    """The journal mirrored with the prod warehouse's own mirror survives the loss of the DuckDB file: the CLI's
    restore-warehouse rebuilds both journal tables row for row."""
    monkeypatch.setenv("DAGSTER_HOME", str(prod_env))
    warehouse = build_resources()["warehouse"]
    day = pd.Timestamp("2031-03-04", tz="UTC")  # a day no other test journals: the bucket is shared
    bar = day + pd.Timedelta(hours=9)
    database = prod_env.parent / "volume" / "warehouse.duckdb"
    assert warehouse.database == str(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(warehouse.database) as conn:
        journal = Journal(conn)
        journal.record_decisions(pd.DataFrame([{
            "decision_id": "x-1", "bar_time": bar, "decided_at": bar + pd.Timedelta(seconds=61), "run_id": "r",
            "model_version": "xgb/1", "p_sell": 0.1, "p_hold": 0.2, "p_buy": 0.7, "signal": 2,
            "target_position": 0.002, "price": 64000.0, "requested_at": bar + pd.Timedelta(seconds=60)}]))
        journal.append(OrderEvent("x-1-entry", "NEW", bar, "BUY", 0.002, None, 0.0, "binance", "r"))
        journal.append(OrderEvent("x-1-entry", "FILLED", bar, "BUY", 0.002, 64001.5, 0.0512, "binance", "r"))
        assert mirror_journal(conn, warehouse.mirror(), bar, bar) == {DECISIONS: 1, ORDER_EVENTS: 2}
        query = "SELECT * FROM {} WHERE bar_time >= ? AND bar_time < ? ORDER BY ALL"
        window = [day.tz_localize(None), (day + pd.Timedelta(days=1)).tz_localize(None)]
        before = {t: conn.execute(query.format(t), window).df() for t in (DECISIONS, ORDER_EVENTS)}
    database.unlink()

    assert cli.main(["restore-warehouse"]) == 0
    assert ORDER_EVENTS in capsys.readouterr().out
    with duckdb.connect(warehouse.database) as conn:
        for table, frame in before.items():
            pd.testing.assert_frame_equal(conn.execute(query.format(table), window).df(), frame)


def test_prod_profile_refuses_to_start_without_its_settings(monkeypatch):
    monkeypatch.setenv("BTC_ENV", "prod")
    monkeypatch.delenv("BTC_S3_BUCKET", raising=False)
    with pytest.raises(ValueError, match="BTC_S3_BUCKET"):
        build_resources()


def test_mlflow_uri_with_a_password_is_refused(monkeypatch):
    monkeypatch.setenv("BTC_ENV", "prod")
    monkeypatch.setenv("BTC_S3_BUCKET", "b")
    monkeypatch.setenv("BTC_MLFLOW_TRACKING_URI", "postgresql://u:secret@h:5432/mlflow")
    with pytest.raises(ValueError, match="PGPASSWORD"):
        build_resources()
