"""Binance's public REST API for the days the archive has not published yet, rendered in the archive's CSV layout."""
