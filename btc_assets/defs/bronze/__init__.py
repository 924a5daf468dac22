"""Dagster definitions of the bronze layer."""
