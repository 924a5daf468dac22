"""Plain-Python logic of the platform (no Dagster): archive reader, bars, features, models, backtest, brokers."""
