"""The one Definitions object of btc-assets: every layer's assets, checks, jobs, schedules and sensors, and the
resources of the profile chosen by BTC_ENV."""

import dagster as dg

from btc_assets.defs import automation
from btc_assets.defs.backtest import assets as backtest
from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.bronze import market as bronze_market
from btc_assets.defs.bronze import streams as bronze_streams
from btc_assets.defs.bronze.rest_sensor import rest_partitions_now_in_archive
from btc_assets.defs.gold import assets as gold
from btc_assets.defs.models import assets as models
from btc_assets.defs.resources import build_resources
from btc_assets.defs.silver import funding as silver_funding
from btc_assets.defs.silver import history as silver_history
from btc_assets.defs.silver import live as silver_live
from btc_assets.defs.silver import klines as silver_klines
from btc_assets.defs.silver import market as silver_market
from btc_assets.defs.silver import order_flow as silver_order_flow
from btc_assets.defs.strategy_daily import assets as strategy_daily
from btc_assets.defs.trading import assets as trading
from btc_assets.defs.trading import checks as trading_checks
from btc_assets.defs.trading import market as trading_market
from btc_assets.defs.trading import pnl as trading_pnl
from btc_assets.defs.trading.sensors import live_trading_sensor, trading_job

LAYERS = [bronze, bronze_market, bronze_streams, silver_klines, silver_history, silver_market, silver_order_flow,
          silver_funding,
          silver_live, gold, models, backtest, trading_market, trading, trading_pnl, strategy_daily]

defs = dg.Definitions(
    assets=automation.with_eager_downstream(dg.load_assets_from_modules(LAYERS)),
    asset_checks=dg.load_asset_checks_from_modules([*LAYERS, trading_checks]),
    jobs=[trading_job, *automation.JOBS, strategy_daily.daily_strategy_job],
    schedules=[*automation.SCHEDULES, strategy_daily.daily_strategy_schedule],
    sensors=[live_trading_sensor, rest_partitions_now_in_archive, *automation.SENSORS],
    resources=build_resources(),
)
