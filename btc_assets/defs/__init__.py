"""Dagster wiring: assets, checks, sensors, schedules and resources, one folder per layer."""
