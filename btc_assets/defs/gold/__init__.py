"""Dagster definitions of the gold layer."""
