"""Silver bar logic on real sample days, and each bad-input case it refuses."""

import datetime as dt

import pandas as pd
import pytest

from btc_assets.lib.data import bars
from btc_assets_tests.conftest import real_klines

DAY = dt.date(2024, 1, 2)


def test_real_day_is_complete_and_typed():
    out = bars.silver_klines_1m(real_klines(DAY), DAY, "sample")
    assert list(out.bars.columns) == list(bars.SILVER_KLINE_COLUMNS)
    assert len(out.bars) == 1440 and out.missing_minutes == [] and out.duplicates_dropped == 0
    assert str(out.bars["open_time"].dt.tz) == "UTC"
    assert bars.ohlc_violations(out.bars).empty


def test_exact_duplicates_are_dropped_and_counted_unsorted_rows_sorted():
    raw = real_klines(DAY)
    shuffled = pd.concat([raw.iloc[::-1], raw.iloc[:5]], ignore_index=True)
    out = bars.silver_klines_1m(shuffled, DAY, "sample")
    assert out.duplicates_dropped == 5 and out.unsorted_rows > 0
    assert out.bars["open_time"].is_monotonic_increasing and len(out.bars) == 1440


def test_conflicting_duplicate_is_an_error_naming_the_minute():
    raw = real_klines(DAY)
    dup = raw.iloc[[10]].copy()
    dup["close"] += 1.0
    with pytest.raises(bars.BarDataError, match=r"sample.*different values.*2024-01-02 00:10"):
        bars.silver_klines_1m(pd.concat([raw, dup]), DAY, "sample")


def test_rows_of_another_day_are_refused():
    with pytest.raises(bars.BarDataError, match="outside 2024-01-03"):
        bars.silver_klines_1m(real_klines(DAY), dt.date(2024, 1, 3), "BTCUSDT-1m-2024-01-02.zip")


def test_non_1m_close_time_is_refused():
    raw = real_klines(DAY)
    raw.loc[3, "close_time"] += pd.Timedelta(minutes=4)
    with pytest.raises(bars.BarDataError, match="close_time"):
        bars.silver_klines_1m(raw, DAY, "sample")


def test_missing_minutes_are_reported_never_invented():
    raw = real_klines(DAY).drop(index=[100, 101, 700])
    out = bars.silver_klines_1m(raw, DAY, "sample")
    assert len(out.bars) == 1437
    assert [t.strftime("%H:%M") for t in out.missing_minutes] == ["01:40", "01:41", "11:40"]


def test_halt_is_a_flat_zero_trade_candle_and_windows_are_listed():
    raw = real_klines(DAY)
    price = raw.loc[300, "close"]
    for i in range(301, 305):  # a real-looking halt: flat at the last price, no trades, zero volume
        raw.loc[i, ["open", "high", "low", "close"]] = price
        raw.loc[i, ["volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume"]] = 0.0
        raw.loc[i, "count"] = 0
    out = bars.silver_klines_1m(raw, DAY, "sample")
    assert int(out.bars["is_halt"].sum()) == 4
    assert [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in out.halt_windows] == [("05:01", "05:04")]
    assert out.missing_minutes == []


def test_ohlc_violation_detected():
    out = bars.silver_klines_1m(real_klines(DAY), DAY, "sample").bars
    out.loc[5, "high"] = out.loc[5, "low"] - 1
    assert list(bars.ohlc_violations(out).index) == [5]


def test_resample_matches_hand_aggregation_and_counts_minutes():
    one = bars.silver_klines_1m(real_klines(DAY), DAY, "sample").bars
    five = bars.resample_bars(one, "5m")
    assert len(five) == 288 and (five["minutes"] == 5).all()
    first = one.iloc[:5]
    row = five.iloc[0]
    assert row["open"] == first["open"].iloc[0] and row["close"] == first["close"].iloc[-1]
    assert row["high"] == first["high"].max() and row["low"] == first["low"].min()
    assert row["volume"] == pytest.approx(first["volume"].sum()) and row["trades"] == first["trades"].sum()
    hourly = bars.resample_bars(one.drop(index=[61]), "1h")
    assert hourly.loc[1, "minutes"] == 59  # an incomplete bar says so
