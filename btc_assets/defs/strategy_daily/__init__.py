"""The daily swing strategy: regimes, backtest, the daily signal and its log (lib/strategies/daily_swing)."""
