"""Data in: the Binance archive (paths, fetch, checksums, CSV parsing), REST for unpublished days, the market
datasets, the live collector, the synthetic sample generator, and the typed bars, funding and schemas of silver."""
