"""models/rf_daily_baseline: the reference random forest on daily bars (lib/models/rf_daily.py), walk-forward over
every daily bar silver has, logged in its own MLflow experiment with the same metric names. It never trades here,
but it is judged like every family: its out-of-sample daily calls traded by the backtest engine on daily bars as
the daily strategy trades them (the position table's rules: enter at the next day's open, hold while the call
stays, flat on HOLD, reverse on the opposite call; fees, fixed slippage, funding), the same after-cost gate and
names.

Daily bars: the long history (silver/history.read_history "1d": the archive's monthly 1d files, 2019-10 on in the
bundled sample, and the bars built from 1m where those exist); without any 1d table, the complete days of
silver.klines_1m. Walk-forward as the daily strategy specifies: an expanding window that starts with
`min_train_days` (1,250) and moves by `test_days` (20) to the last day."""


import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.defs.silver.history import read_history
from btc_assets.lib.research.backtest import Costs
from btc_assets.lib.research.models import rf_daily, tracking
from btc_assets.lib.research.models.economics import walk_forward_economics
from btc_assets.lib.research.models.evaluation import METRIC_NAMES
from btc_assets.lib.strategies import daily_swing as ds
from btc_assets.lib.storage.warehouse import read_window, table_exists

KEY = ["models", "rf_daily_baseline"]
# The spread filter on daily bars reads the day's median 1m range where 1m bars exist; elsewhere (years of archive
# daily bars) a typical BTCUSDT perpetual value is assumed and said in the metadata.
ASSUMED_SPREAD_BPS = 1.0


class RfDailyConfig(common.PromotionSettings):
    n_estimators: int = 300
    max_depth: int = 4
    min_train_days: int = 1250  # the first fold trains on this many days
    test_days: int = 20  # each step tests this many days, then the window grows by them
    n_folds: int = 0  # 0: every step to the last day; else the last n_folds steps
    seed: int = 7


@dg.asset(
    key=KEY,
    deps=[dg.AssetKey(["silver", "klines_1m"])],
    group_name="models",
    pool="training",
    kinds={"scikitlearn", "mlflow"},
    check_specs=[common.promotion_spec("rf_daily", KEY)],
    description="Reference: random forest on daily bars (EMA-12 ratio, ATR-14, 20-day log return, MFI-14; "
    "next day beyond ±1 %), expanding walk-forward over every complete day in silver, logged and registered.",
)
def rf_daily_baseline(context: dg.AssetExecutionContext, config: RfDailyConfig, warehouse: DuckDBResource,
                      mlflow: MlflowResource, trading: TradingResource):
    started = time.time()
    with warehouse.get_connection() as conn:
        daily, source = daily_source(conn)
        funding = (read_window(conn, "silver.funding_rates", "funding_time", pd.Timestamp("2000-01-01", tz="UTC"),
                               pd.Timestamp.now(tz="UTC"), ["funding_time", "rate"])
                   if table_exists(conn, "silver.funding_rates") else None)
    p = rf_daily.RfParams(n_estimators=config.n_estimators, max_depth=config.max_depth, seed=config.seed)
    data = rf_daily.daily_dataset(daily, p.threshold)
    needed = config.min_train_days + config.test_days
    if len(data) < needed:
        raise dg.Failure(f"rf_daily_baseline: {len(data)} usable days in {source} after the 20-day warm-up, "
                         f"need {needed} ({config.min_train_days} to train + at least one {config.test_days}-day "
                         "step); materialize the long history (silver/klines_1d_history) or lower min_train_days")
    steps = (len(data) - config.min_train_days) // config.test_days
    n_folds = min(steps, config.n_folds) if config.n_folds else steps
    wf = rf_daily.walk_forward(data, p, n_folds, config.test_days)
    evidence = daily_evidence(wf, daily, funding, trading, config)
    final = rf_daily.fit(data, p)
    logged = tracking.log_run(mlflow, "rf_daily", params={**p.as_dict(), **config.model_dump(), "days": len(data),
                                                          "folds_run": n_folds, "daily_bars": source},
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
        "days": len(data), "folds": len(wf.fold_metrics), "daily_bars": source,
        "first_day": f"{data['open_time'].min():%Y-%m-%d}", "last_day": f"{data['open_time'].max():%Y-%m-%d}",
        "out_of_sample_from": f"{wf.predictions['open_time'].min():%Y-%m-%d}",
        "days_with_assumed_spread": int(daily["spread_assumed"].sum()), **{f"test_{k}": m[k] for k in METRIC_NAMES},
        **{f"majority_{k}": m[f"majority_{k}"] for k in METRIC_NAMES}, "promoted": bool(row["promoted"]),
        "promotion_reason": row["reason"], **common.economic_metadata(evidence)})
    yield common.promotion_check("rf_daily_model_beats_baselines", row)


def daily_source(conn) -> tuple[pd.DataFrame, str]:
    """Daily OHLCV bars with a spread proxy (`spread_bps`; `spread_assumed` where no 1m bars give one), and what
    they were read from."""
    far, now = pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    daily = read_history(conn, "1d", far, now)
    source = "silver.klines_1d_history + silver.klines_1d"
    proxy = pd.Series(dtype=float)
    if table_exists(conn, "silver.klines_1m"):
        proxy = conn.execute("SELECT date_trunc('day', open_time) AS day, "
                             "median((high - low) / close * 1e4) FROM silver.klines_1m GROUP BY 1").df()
        proxy = pd.Series(proxy.iloc[:, 1].to_numpy(), index=pd.to_datetime(proxy["day"]).dt.tz_localize("UTC"))
    if daily.empty:
        if not table_exists(conn, "silver.klines_1m"):
            raise dg.Failure("rf_daily_baseline: no daily bars: materialize silver/klines_1d_history (the archive's "
                             "monthly 1d files) or silver/klines_1m")
        bars = conn.execute("SELECT open_time, open, high, low, close, volume, quote_volume FROM silver.klines_1m "
                            "ORDER BY open_time").df()
        bars["open_time"] = pd.to_datetime(bars["open_time"]).dt.tz_localize("UTC")
        daily = daily_from_1m(bars)
        return daily, "silver.klines_1m"
    daily = daily[["open_time", "open", "high", "low", "close", "volume", "quote_volume"]].copy()
    daily["open_time"] = pd.to_datetime(daily["open_time"], utc=True)
    spread = proxy.reindex(pd.DatetimeIndex(daily["open_time"])).to_numpy()
    daily["spread_assumed"] = pd.isna(spread)
    daily["spread_bps"] = pd.Series(spread).fillna(ASSUMED_SPREAD_BPS).to_numpy()
    return daily.reset_index(drop=True), source


def daily_from_1m(bars_1m: pd.DataFrame) -> pd.DataFrame:
    """Complete UTC days of 1m bars as daily bars, with the day's median 1m range as the spread proxy."""
    b = bars_1m.set_index("open_time").sort_index()
    daily = b.resample("1D").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
                                  "quote_volume": "sum"})
    daily["minutes"] = b["close"].resample("1D").count()
    # The spread filter sees what a 1-minute order would: the day's median 1m range proxy, not the day's range.
    daily["spread_bps"] = ((b["high"] - b["low"]) / b["close"] * 1e4).resample("1D").median()
    daily = daily[daily["minutes"] == 1440].drop(columns="minutes").dropna().reset_index()
    daily["spread_assumed"] = False
    return daily


def daily_evidence(wf, daily: pd.DataFrame, funding, trading: TradingResource,
                   settings: RfDailyConfig) -> common.Evidence:
    """The daily calls traded by the backtest engine on daily bars with the daily strategy's rules
    (daily_swing.engine_rules: the position table, the whole equity per position, no stop): a call made at day d's
    close acts at d+1's open, a position is held while the calls keep its side and closed on HOLD; fees and fixed
    slippage (the engine's volatility slippage is a 1-minute model, so it is off here); funding at settlements.
    What is judged is what the strategy would trade."""
    daily = daily[["open_time", "open", "high", "low", "close", "quote_volume", "spread_bps"]]
    c = trading.costs()
    costs = Costs(taker_fee=c.taker_fee, maker_fee=c.maker_fee, slippage_bps=c.slippage_bps, slippage_vol_mult=0.0)
    risk, _ = ds.engine_rules(1.0, c.taker_fee, trading.risk_config().max_liq_prob)
    rule = settings.rule()
    figures, per_fold = walk_forward_economics(wf.predictions, daily, funding, costs=costs, risk=risk,
                                               initial_equity=trading.notional_usdt, rule=rule, warmup_bars=20)
    why = rule.verdict(figures) if settings.promotion == "after_costs" else []
    return common.Evidence(figures, per_fold, why, settings.promotion)
