"""The public Binance archive (data.binance.vision): file paths, fetching with checksums, and exact CSV parsing."""
