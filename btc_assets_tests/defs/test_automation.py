"""Schedules pick the right partitions, are off locally and on in prod; failed runs are announced."""

import datetime as dt
import http.server
import importlib
import json
import threading

import dagster as dg
import pytest

from btc_assets.defs import automation
from btc_assets.defs.resources.trading import NotifierResource
from btc_assets_tests.defs.conftest import Pipeline

UTC = dt.timezone.utc


def ctx(when: dt.datetime) -> dg.ScheduleEvaluationContext:
    return dg.build_schedule_context(scheduled_execution_time=when)


def test_weekly_retrain_targets_the_week_that_starts_today():
    req = automation.weekly_retrain_schedule(ctx(dt.datetime(2024, 2, 12, 8, 0, tzinfo=UTC)))
    assert req.partition_key == "2024-02-12" and req.run_key == "xgb-2024-02-12"


def test_labels_wait_for_the_next_day():
    req = automation.labels_schedule(ctx(dt.datetime(2024, 2, 12, 7, 30, tzinfo=UTC)))
    assert req.partition_key == "2024-02-10"


def test_daily_archive_schedule_fetches_yesterday():
    from btc_assets.definitions import defs

    sched = defs.get_schedule_def("daily_archive_job_schedule")
    assert sched.cron_schedule == "0 7 * * *"
    result = sched.evaluate_tick(ctx(dt.datetime(2024, 2, 12, 7, 0, tzinfo=UTC)))
    assert [r.partition_key for r in result.run_requests] == ["2024-02-11"]


def test_off_locally_on_in_production(monkeypatch):
    assert automation.weekly_retrain_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("BTC_ENV", "prod")
    prod = importlib.reload(automation)
    try:
        assert prod.weekly_retrain_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        assert prod.eager_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    finally:
        monkeypatch.delenv("BTC_ENV")
        importlib.reload(automation)


def test_every_sensor_and_schedule_is_off_locally():
    from btc_assets.definitions import defs

    for s in defs.schedules:
        assert s.default_status == dg.DefaultScheduleStatus.STOPPED, s.name
    for s in defs.sensors:
        assert s.default_status == dg.DefaultSensorStatus.STOPPED, s.name
    assert {s.name for s in defs.sensors} >= {"rest_partitions_now_in_archive", "eager_downstream"}


def test_training_runs_are_not_retried():
    assert automation.weekly_model_job.tags["dagster/max_retries"] == "0"


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        Hook.received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_failed_run_is_announced(tmp_path, sample_archive, webhook):
    instance = dg.DagsterInstance.ephemeral()
    p = Pipeline(tmp_path, sample_archive, instance)
    res = p.run([["bronze", "klines_1m"]], partition_key="2024-03-05", raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "PIPELINE_FAILURE")  # the run failure
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_event=failure, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(res.run_id),
        resources={"notifier": NotifierResource(webhook_url=webhook)},
    ).for_run_failure()
    automation.run_failure_alert(context)
    (path, body), = Hook.received
    assert body["level"] == "error" and res.run_id in body["text"]


def test_the_long_history_schedule_fetches_the_month_just_ended():
    from btc_assets.definitions import defs

    sched = defs.get_schedule_def("history_job_schedule")
    assert sched.cron_schedule == "0 7 1 * *"
    result = sched.evaluate_tick(ctx(dt.datetime(2024, 3, 1, 7, 0, tzinfo=UTC)))
    assert [r.partition_key for r in result.run_requests] == ["2024-02-01"]


def test_the_days_regime_forecast_waits_for_the_previous_days_hourly_bars():
    """Eager in production: day D's forecast reads the bars before D, so it follows D-1's hourly bars."""
    from btc_assets.definitions import defs

    key = dg.AssetKey(["models", "regime_forecast"])
    asset = defs.get_assets_def(key)
    assert asset.automation_conditions_by_key[key] is not None
    mapping = asset.get_partition_mapping(dg.AssetKey(["silver", "klines_1h"]))
    assert (mapping.start_offset, mapping.end_offset) == (-1, -1)


def test_every_daily_archive_dataset_is_scheduled_and_its_next_tick_lands(tmp_path, sample_archive):
    """Each bronze daily dataset is in a scheduled job (the light files at 07:00, aggTrades at 07:15), its silver
    tables follow eagerly, and the production ticks for the sample's last day fetch every dataset's file."""
    from btc_assets.defs.resources import local_resources
    from btc_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    # the archive's daily datasets (bronze/stream_recordings is the collector's own, written as it records)
    daily_bronze = {k for k in graph.get_all_asset_keys() if k.path[0] == "bronze" and k.path[1] != "stream_recordings"
                    and graph.get(k).partitions_def == automation.partitions.daily}
    assert {k.path[1] for k in daily_bronze} >= {"klines_1m", "agg_trades", "book_depth", "metrics",
                                                 "mark_price_klines", "index_price_klines", "premium_index_klines"}
    when = dt.datetime(2024, 2, 29, 7, 30, tzinfo=UTC)
    scheduled: dict[dg.AssetKey, str] = {}
    for name, job in (("daily_archive_job_schedule", automation.daily_archive_job),
                      ("daily_trades_job_schedule", automation.daily_trades_job)):
        (req,) = defs.get_schedule_def(name).evaluate_tick(ctx(when)).run_requests
        assert req.partition_key == "2024-02-28", name
        for key in job.selection.resolve(graph):
            scheduled[key] = req.partition_key
    assert daily_bronze <= set(scheduled), daily_bronze - set(scheduled)
    # silver follows each of them eagerly (the eager sensor's targets)
    downstream = {c for k in daily_bronze for c in graph.get(k).child_keys if c.path[0] == "silver"}
    assert downstream and all(graph.get(c).automation_condition is not None for c in downstream), downstream
    # and the ticks' runs fetch every file of the day (the sample archive stands in for data.binance.vision)
    resources = local_resources(tmp_path, archive_url=str(sample_archive))
    assets = [defs.get_assets_def(k) for k in scheduled]
    res = dg.materialize(assets, selection=list(scheduled), partition_key="2024-02-28", resources=resources,
                         raise_on_error=False)
    assert res.success
    with resources["warehouse"].get_connection() as conn:
        got = {r[0] for r in conn.execute("SELECT DISTINCT dataset FROM bronze.files WHERE period_start = '2024-02-28'")
               .fetchall()}
    assert got >= {"klines", "aggTrades", "bookDepth", "metrics", "markPriceKlines", "indexPriceKlines",
                   "premiumIndexKlines"}, got


def test_the_day_that_just_closed_is_built_at_00_01_so_its_forecast_follows_at_once():
    """At 00:01 the day that just closed has no archive file: its bars come from the REST fallback in this job, and
    the day's regime forecast (eager, on the previous day's hourly bars) follows without waiting for the archive."""
    from btc_assets.definitions import defs

    (req,) = defs.get_schedule_def("day_close_job_schedule").evaluate_tick(
        ctx(dt.datetime(2024, 2, 12, 0, 1, tzinfo=UTC))).run_requests
    assert req.partition_key == "2024-02-11"
    graph = defs.resolve_asset_graph()
    built = automation.day_close_job.selection.resolve(graph)
    assert dg.AssetKey(["bronze", "klines_1m"]) in built and dg.AssetKey(["silver", "klines_1h"]) in built
    forecast = graph.get(dg.AssetKey(["models", "regime_forecast"]))
    assert forecast.automation_condition is not None  # eager: it runs once its inputs land
    mapping = graph.get_partition_mapping(dg.AssetKey(["models", "regime_forecast"]),
                                          dg.AssetKey(["silver", "klines_1h"]))
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        automation.partitions.daily.subset_with_partition_keys(["2024-02-12"]), automation.partitions.daily,
        automation.partitions.daily).partitions_subset.get_partition_keys()
    assert list(upstream) == ["2024-02-11"]  # day D's forecast needs exactly the day this job builds at D's 00:01
