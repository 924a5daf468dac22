"""models/tft_model (weekly) and models/regime_forecast (daily): the Temporal Fusion Transformer on the hourly
history and the multi-day forecasts it gives each day (lib/research/models/tft.py).

* tft_model: trained for a week on every hourly bar before its Monday (silver/history.read_history: 1m-built bars
  where they exist, the archive's monthly 1h files elsewhere), walk-forward scored against a zero return and the
  historical quantiles (pinball loss, coverage of the 10-90 % interval), the final fit early-stopped on the last
  validation slice; registered in MLflow (`btc_assets.tft`, `btc_assets_tft_regime`) and promoted only if it beats
  both baselines out of sample (WARN check `tft_model_beats_baselines`).
* regime_forecast: for each UTC day, the forecast made at 00:00 (the close of the day's first hour's predecessor)
  by the promoted TFT of the latest week that starts on or before the day: quantiles, mean, spread and skew of the
  1/7/30-day return. The trading rules can use it as a filter (TradingResource.regime_filter); a day without a
  promoted forecaster has no row, and the filter then lets no entry through (said in the report).
"""


import dataclasses
import time

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.silver.history import read_history
from btc_assets.defs.table_metadata import table_metadata
from btc_assets.lib.research.models import tracking
from btc_assets.lib.storage import lakehouse
from btc_assets.lib.storage.warehouse import ensure_table, read_window, replace_window, table_exists

KEY = ["models", "tft_model"]
FORECAST_KEY = ["models", "regime_forecast"]
REGISTRY = "models.tft_models"
FORECASTS = "models.regime_forecast"
REGISTRY_TYPES = {
    "week_start": "TIMESTAMP", "family": "VARCHAR", "run_id": "VARCHAR", "model_uri": "VARCHAR",
    "registered_name": "VARCHAR", "model_version": "VARCHAR", "train_from": "TIMESTAMP", "train_to": "TIMESTAMP",
    "train_rows": "BIGINT", "pinball": "DOUBLE", "zero_pinball": "DOUBLE", "historical_pinball": "DOUBLE",
    "coverage": "DOUBLE", "pinball_1d": "DOUBLE", "pinball_7d": "DOUBLE", "pinball_30d": "DOUBLE",
    "coverage_1d": "DOUBLE", "coverage_7d": "DOUBLE", "coverage_30d": "DOUBLE", "skill_vs_zero": "DOUBLE",
    "skill_vs_historical": "DOUBLE", "promoted": "BOOLEAN", "reason": "VARCHAR", "trained_at": "TIMESTAMP",
    "train_seconds": "DOUBLE", "train_samples_per_second": "DOUBLE",
}
FORECAST_TYPES = {
    "open_time": "TIMESTAMP", "horizon": "VARCHAR", "q10": "DOUBLE", "q25": "DOUBLE", "q50": "DOUBLE",
    "q75": "DOUBLE", "q90": "DOUBLE", "mean": "DOUBLE", "spread": "DOUBLE", "skew": "DOUBLE",
    "model_version": "VARCHAR", "model_week": "TIMESTAMP",
}
FAMILY = "tft"
# Enough hourly bars before a forecast for every feature's window (the 30-day volume z-score) and the encoder.
FEATURE_WARMUP = pd.Timedelta(days=40)


class TftTrainingConfig(dg.Config):
    encoder_hours: int = 168
    hidden_size: int = 16
    attention_heads: int = 2
    dropout: float = 0.1
    hidden_continuous_size: int = 8
    learning_rate: float = 3e-3
    max_epochs: int = 10
    patience: int = 2
    batch_size: int = 128
    batches_per_epoch: int = 0
    validation_days: int = 60
    seed: int = 7
    n_folds: int = 2
    test_days: int = 60
    promotion: str = "baselines"  # or "off": promoted whatever the scores (tests of what follows; said in the reason)

    def params(self):
        from btc_assets.lib.research.models import tft

        fields = dataclasses.fields(tft.TftParams)
        return tft.TftParams(**{f.name: getattr(self, f.name) for f in fields})


# `make demo`: a small network, a shorter encoder and capped epochs, so the fits stay within a minute or two on 2
# cores; the shape of the model and its evaluation are the same.
DEMO_CONFIG = {"encoder_hours": 72, "hidden_size": 8, "hidden_continuous_size": 4, "max_epochs": 3,
               "batches_per_epoch": 25, "batch_size": 64, "n_folds": 2, "test_days": 45}


def hourly_rows(conn, end: pd.Timestamp) -> pd.DataFrame:
    """The TFT's rows from every hourly bar before `end`."""
    from btc_assets.lib.research.models import tft

    bars = read_history(conn, "1h", pd.Timestamp("2000-01-01", tz="UTC"), end)
    if bars.empty:
        raise dg.Failure(f"no hourly bars before {end:%Y-%m-%d}: materialize silver/klines_1h_history (the archive's "
                         "monthly 1h files) or silver/klines_1h")
    try:
        return tft.usable(tft.hourly_frame(bars))
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None


@dg.asset(
    key=KEY,
    deps=[dg.AssetDep(["silver", "klines_1h_history"], partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(["silver", "klines_1h"], partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    partitions_def=partitions.weekly,
    pool="training",
    kinds={"pytorch", "mlflow"},
    check_specs=[dg.AssetCheckSpec(
        "tft_model_beats_baselines", asset=KEY, partitions_def=partitions.weekly,
        description="Pooled walk-forward out-of-sample quantile (pinball) loss of the 1/7/30-day return forecasts, "
                    "averaged over the horizons, below both a zero return and the training rows' historical "
                    "quantiles; otherwise not promoted (WARN: registered with promoted=false, no regime forecast "
                    "from it).")],
    description="Temporal Fusion Transformer (pytorch-forecasting) on the hourly history before the week: quantile "
    "forecasts of the log return over the next 1, 7 and 30 days (mean, spread, skew), walk-forward against a zero "
    "return and historical quantiles (pinball loss, interval coverage), early-stopped on a validation slice; "
    "registered in MLflow. Reads every hourly bar before the week's Monday (silver/history.read_history).",
)
def tft_model(context: dg.AssetExecutionContext, config: TftTrainingConfig, warehouse: DuckDBResource,
              mlflow: MlflowResource):
    from btc_assets.lib.research.models import tft

    try:
        params = config.params()
    except ValueError as exc:
        raise dg.Failure(f"models/tft_model config: {exc}") from None
    week_start = pd.Timestamp(context.partition_time_window.start)
    started = time.time()
    with warehouse.get_connection() as conn:
        rows = hourly_rows(conn, week_start)
    try:
        wf = tft.walk_forward(rows, week_start, params, config.n_folds, config.test_days)
        train, val = tft.split_for(rows, week_start, params)
        final = tft.fit(train, val, params)
    except ValueError as exc:
        raise dg.Failure(f"models/tft_model week {week_start:%Y-%m-%d}: {exc}") from None
    promoted, reason = tft.verdict(wf.overall)
    if config.promotion not in ("baselines", "off"):
        raise dg.Failure(f"models/tft_model promotion={config.promotion!r}: use baselines (the default) or off")
    if config.promotion == "off":
        reason, promoted = f"promotion gate off (promotion=off): {reason}", True
    overall = {**wf.overall, "train_seconds": final.train_seconds, "train_samples_per_second": final.samples_per_second,
               "best_epoch": float(final.best_epoch), "epochs_run": float(final.epochs_run)}
    logged = tracking.log_run(
        mlflow, FAMILY, params={**params.as_dict(), "n_folds": config.n_folds, "test_days": config.test_days,
                                "horizons": ",".join(tft.HORIZONS), "quantiles": ",".join(map(str, tft.QUANTILES))},
        overall=overall, fold_metrics=wf.fold_metrics, started_at=started,
        tags={"week_start": f"{week_start:%Y-%m-%d}", "promoted": str(promoted).lower()},
        log_model=tracking.tft_logger(final.net))
    train_from, train_to = pd.to_datetime(train["open_time"], utc=True).agg(["min", "max"])
    row = {"week_start": week_start.tz_localize(None), "family": FAMILY, "run_id": logged.run_id,
           "model_uri": logged.model_uri, "registered_name": logged.registered_name,
           "model_version": logged.version, "train_from": train_from.tz_localize(None),
           "train_to": train_to.tz_localize(None), "train_rows": len(train), "promoted": promoted, "reason": reason,
           "trained_at": pd.Timestamp.now(tz="UTC").tz_localize(None), "train_seconds": final.train_seconds,
           "train_samples_per_second": final.samples_per_second,
           **{k: wf.overall.get(k, np.nan) for k in REGISTRY_TYPES if k in wf.overall}}
    tracking.record_forecaster_verdict(mlflow, logged, row, dagster_run_id=context.run_id)
    with warehouse.get_connection() as conn:
        ensure_table(conn, REGISTRY, REGISTRY_TYPES)
        conn.execute(f"DELETE FROM {REGISTRY} WHERE week_start = ?", [row["week_start"]])
        frame = pd.DataFrame([{k: row.get(k) for k in REGISTRY_TYPES}])
        conn.register("_tft_row", frame)
        conn.execute(f"INSERT INTO {REGISTRY} SELECT {', '.join(REGISTRY_TYPES)} FROM _tft_row")
        conn.unregister("_tft_row")
        lake = lakehouse.ACTIVE.get()
        if lake is not None:  # BTC_LAKEHOUSE_URI: the week's registry row, one commit
            week = pd.Timestamp(row["week_start"])
            lake.replace_window(REGISTRY, REGISTRY_TYPES, frame, "week_start", week, week + pd.Timedelta(weeks=1))
    scores = pd.DataFrame([{"horizon": h, "tft": wf.overall.get(f"pinball_{h}"),
                            "zero_return": wf.overall.get(f"zero_pinball_{h}"),
                            "historical_quantiles": wf.overall.get(f"historical_pinball_{h}"),
                            "coverage_10_90": wf.overall.get(f"coverage_{h}"),
                            "forecasts": wf.overall.get(f"n_{h}")} for h in tft.HORIZONS])
    yield dg.MaterializeResult(metadata={
        "promoted": promoted, "reason": reason, "model_version": f"{logged.registered_name} v{logged.version}",
        "mlflow_run": dg.MetadataValue.url(logged.run_url), "train_rows": len(train),
        "train_range": f"{train_from:%Y-%m-%d %H:%M} .. {train_to:%Y-%m-%d %H:%M} UTC",
        "train_seconds": round(final.train_seconds, 1),
        "train_samples_per_second": round(final.samples_per_second, 1),
        "out_of_sample": dg.MetadataValue.md(scores.to_markdown(index=False, floatfmt=".5f")),
        **{k: float(v) for k, v in wf.overall.items() if np.isfinite(v)}})
    yield dg.AssetCheckResult(
        check_name="tft_model_beats_baselines", passed=promoted, severity=dg.AssetCheckSeverity.WARN,
        description=reason, metadata={k: float(wf.overall[k]) for k in ("pinball", "zero_pinball",
                                                                        "historical_pinball", "coverage")
                                      if np.isfinite(wf.overall.get(k, np.nan))})


def forecaster_for(conn, day: pd.Timestamp) -> "dict | None":
    """The registry row of the promoted TFT of the latest week that starts on or before `day` (None if none)."""
    if not table_exists(conn, REGISTRY):
        return None
    got = conn.execute(f"SELECT week_start, model_uri, registered_name, model_version FROM {REGISTRY} "
                       "WHERE promoted AND week_start <= ? ORDER BY week_start DESC LIMIT 1",
                       [day.tz_localize(None)]).fetchall()
    if not got:
        return None
    w, uri, name, version = got[0]
    return {"week_start": pd.Timestamp(w), "model_uri": uri, "label": f"{name}/{version}"}


@dg.asset(
    key=FORECAST_KEY,
    # day D's forecast reads the hourly bars before D: the previous day's partition of silver/klines_1h
    deps=[dg.AssetDep(KEY), dg.AssetDep(["silver", "klines_1h"], partition_mapping=dg.TimeWindowPartitionMapping(
              start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)),
          dg.AssetDep(["silver", "klines_1h_history"], partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pytorch", "duckdb"},
    description="Per UTC day, the promoted TFT's forecast made at 00:00 of the log return over the next 1, 7 and 30 "
    "days (q10..q90, mean, spread, skew), from the model of the latest week starting on or before the day. "
    f"Table {FORECASTS}; TradingResource.regime_filter can trade only with its direction.",
)
def regime_forecast(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource):
    from btc_assets.lib.research.models import tft

    days = partitions.days_of(context)
    start, end = pd.Timestamp(days[0], tz="UTC"), pd.Timestamp(days[-1], tz="UTC") + pd.Timedelta(days=1)
    frames, missing = [], []
    with warehouse.get_connection() as conn:
        for d in days:
            day = pd.Timestamp(d, tz="UTC")
            model = forecaster_for(conn, day)
            if model is None:
                missing.append(f"{day:%Y-%m-%d}")
                continue
            bars = read_history(conn, "1h", day - FEATURE_WARMUP, day)
            try:
                history = tft.usable(tft.hourly_frame(bars))
            except ValueError as exc:
                raise dg.Failure(f"models/regime_forecast {day:%Y-%m-%d}: {exc}") from None
            net = tracking.load_tft(mlflow, model["model_uri"])
            origin = tft.origin_row(day)  # the decoder step: its calendar only (its bar has not closed at 00:00)
            fc = tft.forecast(net, history.tail(net.dataset_parameters["max_encoder_length"]), origin)
            frames.append(fc.assign(model_version=model["label"], model_week=model["week_start"]))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FORECAST_TYPES))
        out["open_time"] = pd.to_datetime(out["open_time"], utc=True)
        out = out[list(FORECAST_TYPES)]
        written = replace_window(conn, FORECASTS, FORECAST_TYPES, out, "open_time", start, end)
    if missing:
        context.log.warning(f"no promoted TFT for {len(missing)} of {len(days)} days ({', '.join(missing[:5])}"
                            f"{' ...' if len(missing) > 5 else ''}): no regime forecast there")
    one_day = out[out["horizon"] == "1d"]
    return dg.MaterializeResult(metadata={
        **table_metadata(out), "rows": written, "days_forecast": int(one_day["open_time"].nunique()),
        "days_without_forecaster": len(missing),
        "mean_1d_median": float(one_day["q50"].mean()) if len(one_day) else float("nan"),
        "share_1d_up": float((one_day["q50"] > 0).mean()) if len(one_day) else float("nan")})


def read_forecasts(conn, start: pd.Timestamp, end: pd.Timestamp, horizon: str = "1d") -> pd.DataFrame:
    """The stored regime forecasts of `horizon` in [start, end) (empty if none were made)."""
    if not table_exists(conn, FORECASTS):
        return pd.DataFrame(columns=list(FORECAST_TYPES))
    f = read_window(conn, FORECASTS, "open_time", start, end)
    return f[f["horizon"] == horizon].reset_index(drop=True)
