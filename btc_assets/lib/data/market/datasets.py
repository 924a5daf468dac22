"""The USD-M archive datasets besides klines and funding, by the name their bronze and silver assets carry."""

from __future__ import annotations

from btc_assets.lib.data.archive.files import ArchiveFile, daily_file

# asset name -> (archive dataset, interval, what it is)
DATASETS: dict[str, tuple[str, str | None, str]] = {
    "agg_trades": ("aggTrades", None, "aggregated trades (id, price, quantity, trade-id span, time, side)"),
    "book_depth": ("bookDepth", None, "order-book depth snapshots at ±1..5 % from mid"),
    "metrics": ("metrics", None, "5-minute open interest and long/short ratios"),
    "mark_price_klines": ("markPriceKlines", "1m", "1m mark-price klines"),
    "index_price_klines": ("indexPriceKlines", "1m", "1m index-price klines"),
    "premium_index_klines": ("premiumIndexKlines", "1m", "1m premium-index klines"),
}


def archive_file(asset_name: str, symbol: str, day) -> ArchiveFile:
    dataset, interval, _ = DATASETS[asset_name]
    return daily_file(dataset, symbol, day, interval=interval)
