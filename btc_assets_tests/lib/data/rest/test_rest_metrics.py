"""The metrics file of a day the archive has not published, rebuilt from the five /futures/data statistics through
the official client against the fake exchange on 127.0.0.1, which serves the bundled sample's metrics of that day
(synthetic values in the archive's layout): the REST day must read like the archive's file, a value a series does
not have stays empty, and a day older than Binance's 30-day window is refused naming the day."""

from __future__ import annotations

import datetime as dt
import io
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.data.archive.files import daily_file
from btc_assets.lib.data.archive.layouts import METRICS
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.market_stats import sample_metrics, serve_metrics
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.data.market.metrics import VALUE_COLUMNS
from btc_assets.lib.data.rest.client import PublicRest, RestUnsupported
from btc_assets.lib.data.rest.download import download_file
from btc_assets_tests.conftest import SAMPLE

DAY = dt.date(2024, 1, 2)
T0 = 1_704_153_600_000  # 2024-01-02 00:00 UTC
DAY_MS = 86_400_000
ENDPOINTS = {"/futures/data/openInterestHist", "/futures/data/topLongShortAccountRatio",
             "/futures/data/topLongShortPositionRatio", "/futures/data/globalLongShortAccountRatio",
             "/futures/data/takerlongshortRatio"}


@pytest.fixture(scope="module")
def archived() -> pd.DataFrame:
    """The sample's metrics of DAY, sorted (the file is not time-sorted, like real ones)."""
    return sample_metrics(SAMPLE, [DAY]).sort_values("create_time").reset_index(drop=True)


@pytest.fixture()
def fx(archived):
    with run_in_thread(synthetic_bars(1440 + 60, t0_ms=T0), "k", "s") as running:
        running.exchange.cursor = 1440 + 59
        running.exchange.clock_skew_ms = T0 + DAY_MS + 6 * 3_600_000 - int(time.time() * 1000)  # the next morning
        serve_metrics(running.exchange, archived)
        yield running


def _rest(fx) -> PublicRest:
    return PublicRest(fx.rest_url, timeout_ms=2000, retries=1, backoff_s=0.01)


def _csv_lines(content: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        return zf.read(zf.namelist()[0]).decode().splitlines()


def test_rest_day_reads_like_the_archive_file(fx, archived):
    rest = _rest(fx)
    got = download_file(rest, daily_file("metrics", "BTCUSDT", DAY), page=100)
    df = read_archive_csv(got.content, got.file.filename, METRICS)
    assert got.rows == len(df) == 288
    assert (df["create_time"] == archived["create_time"]).all() and set(df["symbol"]) == {"BTCUSDT"}
    np.testing.assert_allclose(df[list(VALUE_COLUMNS)].to_numpy(), archived[list(VALUE_COLUMNS)].to_numpy(),
                               rtol=1e-12)
    served = [p for _, p in fx.faults.requests]
    assert set(served) - {"/fapi/v1/time"} == ENDPOINTS
    assert all(served.count(p) == 3 for p in ENDPOINTS)  # 288 slots in windows of 100: three pages each
    assert _csv_lines(got.content)[0] == ",".join(METRICS.columns)


def test_a_value_missing_from_a_series_stays_empty(fx, archived):
    holes = archived.copy()
    holes.loc[[0, 100], "sum_taker_long_short_vol_ratio"] = np.nan  # takerlongshortRatio has no row then
    holes.loc[[5], ["sum_open_interest", "sum_open_interest_value"]] = np.nan
    holes.loc[[7], list(VALUE_COLUMNS)] = np.nan  # no series at all: no row
    serve_metrics(fx.exchange, holes)
    got = download_file(_rest(fx), daily_file("metrics", "BTCUSDT", DAY))
    lines = _csv_lines(got.content)[1:]
    assert len(lines) == 287 and not any(ln.startswith("2024-01-02 00:35:00") for ln in lines)
    assert lines[0].endswith(",") and lines[0].startswith("2024-01-02 00:00:00,BTCUSDT,")
    assert lines[5].split(",")[2:4] == ["", ""] and all(lines[5].split(",")[4:])
    df = read_archive_csv(got.content, got.file.filename, METRICS).set_index("create_time")
    want = holes.set_index("create_time").drop(index=holes["create_time"][7])
    assert df[list(VALUE_COLUMNS)].isna().sum().sum() == 4
    np.testing.assert_allclose(df[list(VALUE_COLUMNS)].to_numpy(), want[list(VALUE_COLUMNS)].to_numpy(),
                               rtol=1e-12)  # NaN where the series had no row, never a neighbour's value


def test_a_day_older_than_30_days_is_refused_naming_the_day(fx):
    fx.exchange.clock_skew_ms += 31 * DAY_MS
    with pytest.raises(RestUnsupported, match=r"2024-01-02.*last 30 days.*archive"):
        download_file(_rest(fx), daily_file("metrics", "BTCUSDT", DAY))
    assert not ENDPOINTS & {p for _, p in fx.faults.requests}  # refused before fetching anything


def test_the_servers_refusal_of_an_old_window_says_the_same(fx, monkeypatch):
    # the client's clock check passes (a server clock that disagrees with the window it accepts):
    # Binance's -1130 "parameter 'startTime' is invalid." still becomes the day's message
    fx.exchange.clock_skew_ms += 31 * DAY_MS
    rest = _rest(fx)
    real_get = rest.get
    monkeypatch.setattr(rest, "get", lambda path, params, weight=1: {"serverTime": T0 + DAY_MS}
                        if path == "/fapi/v1/time" else real_get(path, params, weight))
    with pytest.raises(RestUnsupported, match=r"2024-01-02.*last 30 days.*refused.*startTime"):
        download_file(rest, daily_file("metrics", "BTCUSDT", DAY))
