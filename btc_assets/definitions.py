"""The one Definitions object of btc-assets: every layer's assets, checks, jobs and sensors, and the resources."""

import dagster as dg

from btc_assets.defs.backtest import assets as backtest
from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.gold import assets as gold
from btc_assets.defs.models import assets as models
from btc_assets.defs.resources import build_resources
from btc_assets.defs.silver import funding as silver_funding
from btc_assets.defs.silver import klines as silver_klines
from btc_assets.defs.trading import assets as trading
from btc_assets.defs.trading.sensors import replay_trading_sensor, trading_job

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([bronze, silver_klines, silver_funding, gold, models, backtest, trading]),
    asset_checks=dg.load_asset_checks_from_modules([bronze, silver_klines, silver_funding, gold, models, backtest,
                                                    trading]),
    jobs=[trading_job],
    sensors=[replay_trading_sensor],
    resources=build_resources(),
)
