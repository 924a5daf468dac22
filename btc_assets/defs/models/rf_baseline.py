"""models/rf_daily_baseline: the reference random forest on daily bars (lib/models/rf_daily.py), walk-forward over
all of silver's history, logged in its own MLflow experiment with the same metric names. It never trades here, but
it is judged like every family: its out-of-sample daily calls traded by the backtest engine on daily bars (enter at
the next day's open, hold one day, fees, fixed slippage, funding), the same after-cost gate and names."""


import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.backtest import Costs
from btc_assets.lib.research.models import rf_daily, tracking
from btc_assets.lib.research.models.economics import walk_forward_economics
from btc_assets.lib.research.models.evaluation import METRIC_NAMES
from btc_assets.lib.research.risk import RiskConfig
from btc_assets.lib.storage.warehouse import read_window, table_exists

KEY = ["models", "rf_daily_baseline"]
MIN_TRAIN_DAYS = 10


class RfDailyConfig(common.PromotionSettings):
    n_estimators: int = 300
    max_depth: int = 4
    n_folds: int = 3
    test_days: int = 5
    seed: int = 7


@dg.asset(
    key=KEY,
    deps=[dg.AssetKey(["silver", "klines_1m"])],
    group_name="models",
    pool="duckdb",
    kinds={"scikitlearn", "mlflow"},
    check_specs=[common.promotion_spec("rf_daily", KEY)],
    description="Reference: random forest on daily bars (EMA-12 ratio, ATR-14, 20-day log return, MFI-14; "
    "next day beyond ±1 %), expanding walk-forward over every complete day in silver, logged and registered.",
)
def rf_daily_baseline(context: dg.AssetExecutionContext, config: RfDailyConfig, warehouse: DuckDBResource,
                      mlflow: MlflowResource, trading: TradingResource):
    started = time.time()
    with warehouse.get_connection() as conn:
        bars = conn.execute("SELECT open_time, open, high, low, close, volume, quote_volume FROM silver.klines_1m "
                            "ORDER BY open_time").df()
        funding = (read_window(conn, "silver.funding_rates", "funding_time", pd.Timestamp("2000-01-01", tz="UTC"),
                               pd.Timestamp.now(tz="UTC"), ["funding_time", "rate"])
                   if table_exists(conn, "silver.funding_rates") else None)
    bars["open_time"] = pd.to_datetime(bars["open_time"]).dt.tz_localize("UTC")
    p = rf_daily.RfParams(n_estimators=config.n_estimators, max_depth=config.max_depth, seed=config.seed)
    data = rf_daily.daily_dataset(rf_daily.daily_bars(bars), p.threshold)
    needed = MIN_TRAIN_DAYS + config.n_folds * config.test_days
    if len(data) < needed:
        raise dg.Failure(f"rf_daily_baseline: {len(data)} usable days in silver.klines_1m after the 20-day warm-up, "
                         f"need {needed} ({MIN_TRAIN_DAYS} to train + {config.n_folds} folds x {config.test_days} "
                         "days); materialize more days or lower n_folds/test_days")
    wf = rf_daily.walk_forward(data, p, config.n_folds, config.test_days)
    evidence = daily_evidence(wf, bars, funding, trading, config)
    final = rf_daily.fit(data, p)
    logged = tracking.log_run(mlflow, "rf_daily", params={**p.as_dict(), **config.model_dump(), "days": len(data)},
                              overall={**wf.overall, **evidence.figures}, fold_metrics=wf.fold_metrics,
                              tags={"dagster_run_id": context.run.run_id},
                              log_model=tracking.sklearn_logger(final, data[rf_daily.DAILY_FEATURES].tail(3)),
                              started_at=started, predictions=wf.predictions)
    # the registry row of the week its last training day belongs to (same columns as every family)
    week_start = (data["open_time"].max() - pd.Timedelta(days=data["open_time"].max().dayofweek)).floor("D")
    with warehouse.get_connection() as conn:
        row = common.record(conn, "rf_daily", week_start, logged, wf, data, evidence=evidence)
    tracking.record_verdict(mlflow, logged, row, dagster_run_id=context.run.run_id)
    m = wf.overall
    yield dg.MaterializeResult(metadata={
        "mlflow_run": dg.MetadataValue.url(logged.run_url), "model_version": f"{logged.registered_name} v{logged.version}",
        "days": len(data), "folds": len(wf.fold_metrics), **{f"test_{k}": m[k] for k in METRIC_NAMES},
        **{f"majority_{k}": m[f"majority_{k}"] for k in METRIC_NAMES}, "promoted": bool(row["promoted"]),
        "promotion_reason": row["reason"], **common.economic_metadata(evidence)})
    yield common.promotion_check("rf_daily_model_beats_baselines", row)


def daily_evidence(wf, bars_1m: pd.DataFrame, funding, trading: TradingResource,
                   settings: RfDailyConfig) -> common.Evidence:
    """The daily calls traded by the backtest engine on daily bars: a call made at day d's close enters at d+1's
    open and is held one day (max_hold_bars=1); ATR stops on daily bars; fees and fixed slippage (the engine's
    volatility slippage is a 1-minute model, so it is off here); funding at settlements."""
    b = bars_1m.set_index("open_time").sort_index()
    daily = b.resample("1D").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                  "quote_volume": "sum"})
    # The spread filter sees what a 1-minute order would: the day's median 1m range proxy, not the day's range.
    daily["spread_bps"] = ((b["high"] - b["low"]) / b["close"] * 1e4).resample("1D").median()
    daily = daily.dropna().reset_index()
    c = trading.costs()
    costs = Costs(taker_fee=c.taker_fee, maker_fee=c.maker_fee, slippage_bps=c.slippage_bps, slippage_vol_mult=0.0)
    base = trading.risk_config()  # the trading settings' breakers and sizing; one day's hold, daily volatility
    risk = RiskConfig(max_positions=1, max_hold_bars=1, max_vol=1.0, daily_dd=base.daily_dd, weekly_dd=base.weekly_dd)
    rule = settings.rule()
    figures, per_fold = walk_forward_economics(wf.predictions, daily, funding, costs=costs, risk=risk,
                                               initial_equity=trading.notional_usdt, rule=rule, warmup_bars=20)
    why = rule.verdict(figures) if settings.promotion == "after_costs" else []
    return common.Evidence(figures, per_fold, why, settings.promotion)
