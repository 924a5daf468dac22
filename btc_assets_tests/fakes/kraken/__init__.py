"""A fake Kraken Futures venue for tests: the derivatives REST API v3 on 127.0.0.1, with Kraken's signature and
nonce checks, a flex account, positions, orders, fills, a settable price and fault injection. Start it with
`run_in_thread(api_key, api_secret)`. Product code never imports it."""

from btc_assets_tests.fakes.kraken.engine import PF_XBTUSD, PI_XBTUSD, KrakenExchange, Spec
from btc_assets_tests.fakes.kraken.faults import Faults
from btc_assets_tests.fakes.kraken.runner import RunningFakeKraken, run_in_thread

__all__ = ["PF_XBTUSD", "PI_XBTUSD", "Faults", "KrakenExchange", "RunningFakeKraken", "Spec", "run_in_thread"]
