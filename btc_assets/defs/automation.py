"""Schedules and sensors: on in production (BTC_ENV=prod), off locally (switch them on in the UI to try them).

- daily archive: yesterday's bronze klines, book depth, metrics and mark/index/premium klines at 07:00 UTC, after
  data.binance.vision has published the day, and its aggTrades (the heavy file, a bigger run) at 07:15; silver,
  gold features and signals follow eagerly (AutomationCondition.eager on the latest partition);
- day close: at 00:01 UTC the day that just closed, from the REST API (no archive file has it yet; bronze falls back
  to REST and the REST sensor swaps the archive's file in later): its 1m klines and the 5m..1d bars built from them,
  so that the day's regime forecast (eager on the previous day's hourly bars) exists minutes after midnight and the
  00:05 daily strategy finds its bar;
- labels: the day before yesterday at 07:30 UTC (a label needs the first minutes of the next day);
- funding: the previous month's file on the 1st at 07:00 UTC;
- long history: the previous month's 1h/1d kline files on the 1st at 07:00 UTC (silver history follows eagerly);
- models: the new week's models every Monday at 08:00 UTC (XGBoost, LSTM, Transformer, ensemble, and the TFT on the
  hourly history), trained on the weeks before it; the day's regime forecast follows eagerly once the previous
  day's hourly bars land;
- paper P&L: yesterday's trading/pnl at 00:10 UTC, sent as the daily summary alert;
- run failures: every failed run is announced through the notifier.
History is not filled by schedules but by backfills (README: Backfills).
"""

import datetime as dt
import json
import os

import dagster as dg

from btc_assets.defs import partitions
from btc_assets.defs.resources.trading import NotifierResource

PROD = os.environ.get("BTC_ENV", "local") == "prod"
SCHEDULE_STATUS = dg.DefaultScheduleStatus.RUNNING if PROD else dg.DefaultScheduleStatus.STOPPED
SENSOR_STATUS = dg.DefaultSensorStatus.RUNNING if PROD else dg.DefaultSensorStatus.STOPPED
# labels need the next day and funding has its own monthly job: neither is eager.
EAGER = (dg.AssetSelection.groups("silver", "gold")
         - dg.AssetSelection.assets(["gold", "labels"], ["silver", "funding_rates"])) \
    | dg.AssetSelection.assets(["models", "signals"], ["models", "regime_forecast"])



def size_tags(cpu: float, memory_gib: int) -> dict[str, str]:
    """Run size for the run launchers of deploy/run_launchers: ECS task size and the Kubernetes pod's resources."""
    k8s = {"container_config": {"resources": {"requests": {"cpu": str(cpu), "memory": f"{memory_gib}Gi"},
                                              "limits": {"cpu": str(cpu * 2), "memory": f"{memory_gib * 2}Gi"}}}}
    return {"ecs/cpu": str(int(cpu * 1024)), "ecs/memory": str(memory_gib * 1024),
            "dagster-k8s/config": json.dumps(k8s)}


SMALL, TRAINING = size_tags(1, 4), size_tags(2, 8)  # the LSTM and year-long XGBoost fits need the bigger pods

# Every daily archive dataset on a schedule: the light files together, aggTrades (~2M rows a day) in its own run.
DAILY_DATASETS = ("book_depth", "metrics", "mark_price_klines", "index_price_klines", "premium_index_klines")
daily_archive_job = dg.define_asset_job(
    "daily_archive_job", selection=dg.AssetSelection.assets(["bronze", "klines_1m"],
                                                            *[["bronze", n] for n in DAILY_DATASETS]),
    partitions_def=partitions.daily, tags=SMALL)
daily_trades_job = dg.define_asset_job(
    "daily_trades_job", selection=dg.AssetSelection.assets(["bronze", "agg_trades"]), partitions_def=partitions.daily,
    tags=size_tags(1, 8))
day_close_job = dg.define_asset_job(
    "day_close_job", selection=dg.AssetSelection.assets(
        ["bronze", "klines_1m"], *[["silver", f"klines_{tf}"] for tf in ("1m", "5m", "15m", "1h", "4h", "1d")]),
    partitions_def=partitions.daily, tags=SMALL)
labels_job = dg.define_asset_job("labels_job", selection=dg.AssetSelection.assets(["gold", "labels"]),
                                 partitions_def=partitions.daily, tags=SMALL)
pnl_job = dg.define_asset_job("daily_pnl_job", selection=dg.AssetSelection.assets(["trading", "pnl"]),
                               partitions_def=partitions.daily, tags=SMALL)
funding_job = dg.define_asset_job(
    "funding_job", selection=dg.AssetSelection.assets(["bronze", "funding_rates"], ["silver", "funding_rates"]),
    partitions_def=partitions.monthly, tags=SMALL)
weekly_model_job = dg.define_asset_job(
    "weekly_model_job", selection=dg.AssetSelection.assets(["models", "xgb_model"], ["models", "lstm_model"],
                                                          ["models", "transformer_model"], ["models", "ensemble"],
                                                          ["models", "tft_model"]),
    partitions_def=partitions.weekly,
    # No run retries for training: a model that is not promoted is a result, and a crashed fit is retrained by
    # hand after reading why (the instance retries other runs once, dagster.yaml).
    tags={"btc/workload": "training", "dagster/max_retries": "0", **TRAINING})

history_job = dg.define_asset_job(
    "history_job", selection=dg.AssetSelection.assets(["bronze", "klines_history"]),
    partitions_def=partitions.history_monthly, tags=SMALL)

daily_archive_schedule = dg.build_schedule_from_partitioned_job(
    daily_archive_job, hour_of_day=7, minute_of_hour=0, default_status=SCHEDULE_STATUS)
day_close_schedule = dg.build_schedule_from_partitioned_job(
    day_close_job, hour_of_day=0, minute_of_hour=1, default_status=SCHEDULE_STATUS)
daily_trades_schedule = dg.build_schedule_from_partitioned_job(
    daily_trades_job, hour_of_day=7, minute_of_hour=15, default_status=SCHEDULE_STATUS)
daily_pnl_schedule = dg.build_schedule_from_partitioned_job(
    pnl_job, hour_of_day=0, minute_of_hour=10, default_status=SCHEDULE_STATUS)
funding_schedule = dg.build_schedule_from_partitioned_job(
    funding_job, day_of_month=1, hour_of_day=7, minute_of_hour=0, default_status=SCHEDULE_STATUS)
history_schedule = dg.build_schedule_from_partitioned_job(
    history_job, day_of_month=1, hour_of_day=7, minute_of_hour=0, default_status=SCHEDULE_STATUS)


@dg.schedule(job=labels_job, cron_schedule="30 7 * * *", execution_timezone="UTC", default_status=SCHEDULE_STATUS)
def labels_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = (context.scheduled_execution_time.astimezone(dt.timezone.utc) - dt.timedelta(days=2)).date()
    return dg.RunRequest(run_key=f"labels-{day}", partition_key=day.isoformat())


@dg.schedule(job=weekly_model_job, cron_schedule="0 8 * * 1", execution_timezone="UTC",
             default_status=SCHEDULE_STATUS)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The partition is the week that starts today: its model sees only the weeks before it."""
    monday = context.scheduled_execution_time.astimezone(dt.timezone.utc).date()
    return dg.RunRequest(run_key=f"xgb-{monday}", partition_key=monday.isoformat())


eager_sensor = dg.AutomationConditionSensorDefinition(
    "eager_downstream", target=EAGER, default_status=SENSOR_STATUS, minimum_interval_seconds=60,
    description="Materializes silver, gold features and signals for the newest partition once their inputs land.")


EAGER_KEYS: set[dg.AssetKey] = set()


def with_eager_downstream(assets: list) -> list:
    """Attach AutomationCondition.eager() to the assets the eager sensor targets (decided here, in one place)."""
    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key in EAGER_KEYS:
            return spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())
        return spec

    EAGER_KEYS.clear()
    EAGER_KEYS.update(EAGER.resolve(assets))
    return list(dg.map_asset_specs(attach, assets))


@dg.run_failure_sensor(default_status=SENSOR_STATUS, monitor_all_code_locations=False)
def run_failure_alert(context: dg.RunFailureSensorContext, notifier: NotifierResource) -> None:
    run = context.dagster_run
    error = context.failure_event.message if context.failure_event else "unknown error"
    notifier.notifier().send(f"run failed: {run.job_name}", f"run {run.run_id}\n{error[:1500]}", level="error")


SCHEDULES = [day_close_schedule, daily_archive_schedule, daily_trades_schedule, funding_schedule, history_schedule,
             labels_schedule, weekly_retrain_schedule, daily_pnl_schedule]
SENSORS = [eager_sensor, run_failure_alert]
JOBS = [day_close_job, daily_archive_job, daily_trades_job, labels_job, funding_job, history_job, weekly_model_job,
        pnl_job]
