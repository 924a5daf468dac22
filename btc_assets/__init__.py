"""btc-assets: BTCUSDT perpetual futures research and trading as one Dagster asset graph."""
