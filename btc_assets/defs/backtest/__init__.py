"""Dagster definitions of the backtest layer."""
