"""A fake Binance USD-M futures exchange for tests: REST and WebSocket on 127.0.0.1, HMAC-checked, matching orders
against replayed 1m bars, with error injection. Start it with `run_in_thread(bars, api_key, api_secret)`."""

from btc_assets_tests.fakes.binance.engine import Exchange
from btc_assets_tests.fakes.binance.faults import Faults
from btc_assets_tests.fakes.binance.runner import RunningFakeExchange, run_in_thread

__all__ = ["Exchange", "Faults", "RunningFakeExchange", "run_in_thread"]
