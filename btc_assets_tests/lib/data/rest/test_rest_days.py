"""REST days rendered into the archive layout, through the official client against the fake exchange on
127.0.0.1: pagination, weight headers, 429 backoff, 418 stop, timeouts, 5xx and dropped connections."""

from __future__ import annotations

import datetime as dt

import pytest

from btc_assets.lib.data.archive.files import daily_file, monthly_file
from btc_assets.lib.data.archive.layouts import AGG_TRADES, FUNDING_RATE, KLINES
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.rest.errors import BinanceError
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.data.rest.client import PublicRest, RestUnsupported
from btc_assets.lib.data.rest.download import download_file

DAY = dt.date(2024, 1, 1)
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


@pytest.fixture(scope="module")
def fx():
    bars = synthetic_bars(1440 + 60, drift=0.5, t0_ms=T0)  # SYNTHETIC: the day and an hour of the next
    with run_in_thread(bars, "k", "s") as running:
        running.exchange.cursor = len(bars) - 1
        yield running


@pytest.fixture()
def rest(fx):
    fx.faults.clear()
    sleeps: list[float] = []
    client = PublicRest(fx.rest_url, timeout_ms=300, retries=3, backoff_s=0.01, sleep=sleeps.append)
    client.sleeps = sleeps
    return client


def test_kline_day_is_paged_and_reads_like_an_archive_file(fx, rest):
    got = download_file(rest, daily_file("klines", "BTCUSDT", DAY, "1m"), page=500)
    df = read_archive_csv(got.content, got.file.filename, KLINES)
    assert len(df) == 1440 and got.rows == 1440
    assert str(df["open_time"].iloc[0]).startswith("2024-01-01 00:00")
    assert float(df["close"].iloc[-1]) == fx.exchange.bars[1439][4]
    assert rest.stats.requests == 3  # 500 + 500 + 440
    assert rest.stats.max_used_weight >= 2  # the X-MBX-USED-WEIGHT-1M headers were read (window may roll over)
    assert got.checksum_text.startswith(got.sha256) and got.checksum_text.strip().endswith(got.file.filename)


@pytest.mark.parametrize("dataset", ["markPriceKlines", "indexPriceKlines", "premiumIndexKlines"])
def test_price_kline_days(rest, dataset):
    got = download_file(rest, daily_file(dataset, "BTCUSDT", DAY, "1m"))
    assert len(read_archive_csv(got.content, got.file.filename, KLINES)) == 1440


def test_agg_trades_day_pages_by_from_id(rest):
    got = download_file(rest, daily_file("aggTrades", "BTCUSDT", DAY), page=1000)
    df = read_archive_csv(got.content, got.file.filename, AGG_TRADES)
    assert len(df) == 1440 * 4 and df["agg_trade_id"].is_monotonic_increasing
    assert df["agg_trade_id"].diff().dropna().eq(1).all()  # no id lost or repeated at page borders
    assert rest.stats.requests == 1 + 6  # one time-anchored call, then fromId pages


def test_funding_month_so_far(rest):
    got = download_file(rest, monthly_file("fundingRate", "BTCUSDT", DAY))
    df = read_archive_csv(got.content, got.file.filename, FUNDING_RATE)
    assert len(df) == 4 and set(df["funding_interval_hours"]) == {8}  # 3 on Jan 1, 1 at Jan 2 00:00


def test_429_backs_off_then_succeeds(fx, rest):
    fx.faults.rate_limited(retry_after=2, path="/fapi/v1/klines")
    got = download_file(rest, daily_file("klines", "BTCUSDT", DAY, "1m"))
    assert got.rows == 1440 and 2.0 in rest.sleeps and rest.stats.retries == 1


def test_418_stops_at_once(fx, rest):
    fx.faults.banned(retry_after=30, path="/fapi/v1/klines")
    n = len(fx.faults.requests)
    with pytest.raises(BinanceError, match="418.*Stopped") as err:
        download_file(rest, daily_file("klines", "BTCUSDT", DAY, "1m"))
    assert err.value.status == 418 and len(fx.faults.requests) == n + 1  # nothing sent after the ban


def test_timeouts_5xx_and_drops_are_retried(fx, rest):
    fx.faults.timeout(0.6, apply_first=False, path="/fapi/v1/klines")
    fx.faults.server_error(503, path="/fapi/v1/klines")
    fx.faults.drop(path="/fapi/v1/klines")
    got = download_file(rest, daily_file("klines", "BTCUSDT", DAY, "1m"))
    assert got.rows == 1440 and rest.stats.retries == 3 and rest.sleeps == [0.01, 0.02, 0.04]


def test_gives_up_naming_the_call(fx, rest):
    fx.faults.server_error(502, path="/fapi/v1/klines", times=10)
    with pytest.raises(BinanceError, match="klines.*gave up after 4 tries"):
        download_file(rest, daily_file("klines", "BTCUSDT", DAY, "1m"))


def test_limiter_waits_before_crossing_the_weight_limit(fx, rest):
    rest.limiter.observe({"X-MBX-USED-WEIGHT-1M": "2300"})  # another process used most of the minute
    download_file(rest, daily_file("klines", "BTCUSDT", DAY, "1m"))
    assert rest.sleeps and rest.sleeps[0] > 0 and rest.stats.waited_s > 0


def test_book_depth_is_not_rebuilt_from_rest(rest):
    with pytest.raises(RestUnsupported, match="bookDepth"):
        download_file(rest, daily_file("bookDepth", "BTCUSDT", DAY))
