"""Dagster definitions of the trading layer."""
