"""Run the fake Kraken Futures venue on 127.0.0.1 in a background thread: `with run_in_thread(key, secret) as fx`.

The server takes a free port, is reachable at fx.url (give it to the SDK as `url=`), and stops (thread joined)
when the context exits, also when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from btc_assets_tests.fakes.kraken.auth import Credentials
from btc_assets_tests.fakes.kraken.engine import KrakenExchange
from btc_assets_tests.fakes.kraken.faults import Faults
from btc_assets_tests.fakes.kraken.server import FakeKrakenApp
from btc_assets_tests.fakes.serving import HOST, serve_in_thread


@dataclass
class RunningFakeKraken:
    exchange: KrakenExchange
    faults: Faults
    app: FakeKrakenApp
    credentials: Credentials
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextmanager
def run_in_thread(api_key: str, api_secret: str, exchange: KrakenExchange | None = None) -> Iterator[RunningFakeKraken]:
    """Start the fake venue for one (api_key, base64 api_secret) account; stop it on exit."""
    ex = exchange or KrakenExchange()
    creds = Credentials(api_key, api_secret)
    app = FakeKrakenApp(ex, creds, Faults())
    with serve_in_thread(app.build(), "fake-kraken") as (port, _loop):
        yield RunningFakeKraken(ex, app.faults, app, creds, port)
