"""Deterministic generator of the synthetic part of the bundled sample (run: `python -m btc_assets.lib.data.synthetic`).

From the real 1m klines of each sample day it writes aggTrades, bookDepth, metrics and mark/index/premium
klines in the archive's exact layout, every file marked synthetic (see `archive_writer`). Klines rebuilt from
the generated aggTrades reproduce the real OHLC, volume, taker-buy volume and trade counts exactly.
"""

from btc_assets.lib.data.synthetic.archive_writer import SYNTHETIC_MARKER, is_synthetic_zip

__all__ = ["SYNTHETIC_MARKER", "is_synthetic_zip"]
