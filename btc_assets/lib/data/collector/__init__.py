"""The live market-data collector: records Binance USD-M WebSocket streams (kline_1m, aggTrade, depth20@100ms,
markPrice@1s, forceOrder) into hourly-rolled gzip JSON-lines bronze files, with gap records and a dead-letter
file, reconnecting on drops and flushing everything on SIGINT/SIGTERM. Entry point: `main()` (cli.py collect)."""

from btc_assets.lib.data.collector.records import STREAM_KINDS, MalformedMessage, parse_message
from btc_assets.lib.data.collector.session import Collector, CollectorConfig
from btc_assets.lib.data.collector.writer import HourlyWriter

__all__ = ["STREAM_KINDS", "Collector", "CollectorConfig", "HourlyWriter", "MalformedMessage", "parse_message"]
