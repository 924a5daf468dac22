"""Research: point-in-time features, labels, model families with walk-forward evaluation, the backtest engine and
the risk rules it shares with the live trader."""
