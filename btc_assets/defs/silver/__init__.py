"""Dagster definitions of the silver layer."""
