"""A Binance broker on the official client against the fake exchange (testnet mode, 127.0.0.1), with sleeps
that are recorded instead of waited and broker polls that advance the replay one bar: fast and deterministic."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import pytest

from btc_assets.lib.trading.brokers.binance import BinanceBroker, ExecutionConfig
from btc_assets.lib.trading.brokers.binance_rest import BinanceRest
from btc_assets.lib.data.rest.rate_limit import RateLimiter
from btc_assets_tests.fakes.binance import RunningFakeExchange, run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.trading.journal import Journal

KEY, SECRET = "test-key-abc", "test-secret-xyz"
TESTNET = {"BTC_TRADING_MODE": "testnet"}


@dataclass
class Session:
    fx: RunningFakeExchange
    rest: BinanceRest
    broker: BinanceBroker
    journal: Journal
    waits: list[float] = field(default_factory=list)  # what the REST layer would have slept
    fills_on_poll: bool = True


def make_session(fx: RunningFakeExchange, journal: Journal, key: str = KEY, secret: str = SECRET,
                 timeout_ms: int = 5_000, fills_on_poll: bool = True, run_id: str = "run-1") -> Session:
    waits: list[float] = []
    skipped = [0.0]  # seconds "slept": the limiter's clock moves on without the test waiting

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        skipped[0] += seconds

    limiter = RateLimiter(clock=lambda: time.time() + skipped[0], sleep=sleep)
    rest = BinanceRest(key, secret, fx.rest_url, env=TESTNET, timeout_ms=timeout_ms, max_ban_wait_s=5,
                       limiter=limiter, sleep=sleep)
    session = Session(fx, rest, None, journal, waits, fills_on_poll)  # type: ignore[arg-type]

    def poll_sleep(_: float) -> None:  # the time a quote rests = one replayed bar per poll
        if session.fills_on_poll:
            fx.exchange.advance()

    config = ExecutionConfig(requote_after_s=2.0, poll_s=1.0, maker_tries=3)
    session.broker = BinanceBroker(rest, journal, run_id, config, sleep=poll_sleep)
    return session


@pytest.fixture()
def journal(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield Journal(conn)
    conn.close()


@pytest.fixture()
def fx():
    with run_in_thread(synthetic_bars(200, drift=1.0), KEY, SECRET) as running:
        yield running


@pytest.fixture()
def session(fx, journal) -> Session:
    return make_session(fx, journal)
