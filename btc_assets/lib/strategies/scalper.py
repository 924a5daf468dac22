"""The 1-minute ML scalper: 1m bars, the point-in-time gold features the live path can serve, the promoted model of
the trading family (XGBoost by default), the calibrated edge rule, the shared risk rules (fractional Kelly, ATR
stop, 2R target, 15-minute time exit, breakers, liquidation guard), Binance USD-M. Its pipeline is gold/features →
models/<family>_model → models/signals → backtest/report and trading/decisions → trading/orders."""

from btc_assets.lib.research.features.serving import servable
from btc_assets.lib.strategies.base import Strategy

# The source of the scalper's choices: the trading family (models.registry.TRADING_FAMILY, hence models/signals,
# backtest/report and trading/decisions), the journal's strategy name and the time exit (the trading resource's
# defaults) and the feature set of its models (the servable features) are read from here.
STRATEGY = Strategy(
    name="xgb_next3m", bars="1m", features=tuple(servable()), family="xgb",
    decision="calibrated class probabilities x the training rows' class returns must beat the round-trip cost "
             "(lib/research/models/decision.py, decision=edge)",
    risk="fractional Kelly <= 1 % risk, 1.5xATR stop, 2R target, 15-bar time exit, 5 %/15 % day/week breakers, "
         "liquidation-probability guard (lib/research/risk.py)",
    venue="binance", horizon_bars=15)
