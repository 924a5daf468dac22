"""A Binance-realistic backtester for the BTCUSDT USD-M perpetual on 1m bars.

* ``simulate(bars, signals, funding, mark=None, costs=Costs(), risk=RiskConfig(), rules=None)``: the compiled event
  loop (engine.py) with isolated margin, up to ``RiskConfig.max_positions`` concurrent positions, fills on the bar
  after the decision, taker/maker fees, slippage, real funding and liquidation from the dated tier table;
* ``evaluate(result)``: the metrics beside buy-and-hold and a random-entry strategy, by regime (metrics.py);
* ``render_report(result, evaluation)``: one self-contained plotly page (report.py).
The risk rules live in ``btc_assets.lib.research.risk`` and are the ones the live trader calls.
"""

from btc_assets.lib.research.backtest.exchange import SNAPSHOTS, ExchangeRules, rules_for
from btc_assets.lib.research.backtest.fills import Costs
from btc_assets.lib.research.backtest.simulation import TRADE_COLUMNS, BacktestResult, signals_from_classes, simulate

__all__ = ["SNAPSHOTS", "TRADE_COLUMNS", "BacktestResult", "Costs", "ExchangeRules", "rules_for",
           "signals_from_classes", "simulate"]
