"""Dagster definitions of the models layer."""
