"""Silver bookDepth, metrics and mark/index/premium bars, parsed from archive-layout CSVs (string timestamps)."""

import datetime as dt

import pandas as pd
import pytest

from btc_assets.lib.data.archive.layouts import BOOK_DEPTH, KLINES, METRICS
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.bars import BarDataError
from btc_assets.lib.data.market import MarketDataError
from btc_assets.lib.data.market.book_depth import LEVELS, silver_book_depth
from btc_assets.lib.data.market.metrics import silver_metrics
from btc_assets.lib.data.market.price_klines import mark_last_divergence, ohlc_violations, silver_price_klines
from btc_assets_tests.conftest import zip_csv

DAY = dt.date(2024, 1, 2)


def depth_csv(snapshots=("00:00:07", "00:01:09"), skip=(), extra=()):
    lines = ["timestamp,percentage,depth,notional"]
    for s in snapshots:
        for p in LEVELS:
            if (s, p) not in skip:
                lines.append(f"2024-01-02 {s},{p},{100 * abs(p)}.5,{4_400_000 * abs(p)}.25")
    return "\n".join([*lines, *extra]) + "\n"


def parse(text, layout, name="BTCUSDT-x-2024-01-02.zip"):
    return read_archive_csv(zip_csv(name.replace(".zip", ".csv"), text), name, layout)


def test_book_depth_typed_sorted_and_complete():
    got = silver_book_depth(parse(depth_csv(extra=["2024-01-02 00:00:07,-5,500.5,22000000.25"]), BOOK_DEPTH),
                            DAY, "d.zip")
    df = got.depth
    assert str(df["snapshot_time"].dtype) == "datetime64[ns, UTC]" and df["percentage"].dtype == "int32"
    assert got.snapshots == 2 and got.duplicates_dropped == 1 and got.incomplete == [] and got.not_cumulative == 0
    assert df["snapshot_time"].iloc[0] == pd.Timestamp("2024-01-02 00:00:07", tz="UTC")


def test_missing_depth_levels_are_listed_per_snapshot():
    got = silver_book_depth(parse(depth_csv(skip={("00:01:09", 3), ("00:01:09", -1)}), BOOK_DEPTH), DAY, "d.zip")
    assert got.incomplete == [(pd.Timestamp("2024-01-02 00:01:09", tz="UTC"), [-1, 3])]


@pytest.mark.parametrize("extra, message", [
    ("2024-01-02 00:00:07,0,1,1", "percentage that is not one of"),
    ("2024-01-02 00:00:07,2.5,1,1", "percentage that is not one of"),
    ("2024-01-03 00:00:00,1,1,1", "outside 2024-01-02"),
    ("2024-01-02 00:00:07,1,99,99", "different depths for one snapshot and level"),
])
def test_bad_depth_rows_are_errors(extra, message):
    with pytest.raises(MarketDataError, match=f"d.zip.*{message}"):
        silver_book_depth(parse(depth_csv(extra=[extra]), BOOK_DEPTH), DAY, "d.zip")


def metrics_csv(times, symbol="BTCUSDT"):
    head = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
            "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
    return "\n".join([head, *(f"2024-01-02 {t},{symbol},80000.5,3.5e9,1.2,1.1,1.3,0.9" for t in times)]) + "\n"


ALL = [f"{h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, 5)]


def test_metrics_sorted_deduplicated_and_complete():
    times = ALL[:10] + [ALL[11], ALL[10]] + ALL[12:] + [ALL[5]]
    got = silver_metrics(parse(metrics_csv(times), METRICS), DAY, "m.zip", "BTCUSDT")
    assert len(got.metrics) == 288 and got.metrics["create_time"].is_monotonic_increasing
    assert (got.unsorted_rows, got.duplicates_dropped, got.missing_slots) == (2, 1, [])


def test_missing_metrics_slots_are_listed():
    got = silver_metrics(parse(metrics_csv(ALL[:100] + ALL[101:]), METRICS), DAY, "m.zip", "BTCUSDT")
    assert got.missing_slots == [pd.Timestamp("2024-01-02 08:20", tz="UTC")]


@pytest.mark.parametrize("times, symbol, message", [
    (["00:00:00", "00:07:00"], "BTCUSDT", "off the 5-minute grid"),
    (["00:00:00"], "ETHUSDT", "another symbol than BTCUSDT"),
])
def test_bad_metrics_rows_are_errors(times, symbol, message):
    with pytest.raises(MarketDataError, match=f"m.zip.*{message}"):
        silver_metrics(parse(metrics_csv(times, symbol), METRICS), DAY, "m.zip", "BTCUSDT")


def test_conflicting_metrics_rows_are_an_error():
    text = metrics_csv(ALL) + "2024-01-02 00:05:00,BTCUSDT,1,1,1,1,1,1\n"
    with pytest.raises(MarketDataError, match="different values.*00:05"):
        silver_metrics(parse(text, METRICS), DAY, "m.zip", "BTCUSDT")


def price_csv(values):
    t0 = int(pd.Timestamp("2024-01-02", tz="UTC").timestamp() * 1000)
    head = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
            "taker_buy_quote_volume,ignore")
    rows = [f"{t0 + 60_000 * i},{o},{h},{l},{c},0,{t0 + 60_000 * i + 59_999},0,60,0,0,0"
            for i, (o, h, l, c) in enumerate(values)]
    return "\n".join([head, *rows]) + "\n"


def test_premium_bars_may_be_negative_and_minutes_are_checked():
    got = silver_price_klines(parse(price_csv([(-0.0001, 0.0002, -0.0003, 0.0001)] * 3), KLINES), DAY, "p.zip")
    assert list(got.bars.columns) == ["open_time", "open", "high", "low", "close"]
    assert ohlc_violations(got.bars).empty and len(got.missing_minutes) == 1437
    bad = got.bars.assign(high=-0.001)
    assert len(ohlc_violations(bad)) == 3
    text = price_csv([(1, 2, 0.5, 1)])
    clash = text.splitlines()[1].replace(",1,0,", ",1.5,0,")  # same minute, another close
    with pytest.raises(BarDataError, match="p.zip: 1 minutes appear with different values"):
        silver_price_klines(parse(text + clash + "\n", KLINES), DAY, "p.zip")


def test_mark_far_from_last_is_reported():
    t = pd.date_range("2024-01-02", periods=3, freq="1min", tz="UTC")
    mark = pd.DataFrame({"open_time": t, "close": [100.0, 100.5, 103.0]})
    last = pd.DataFrame({"open_time": t[:2].append(t[2:]), "close": [100.0, 100.0, 100.0]})
    compared, far = mark_last_divergence(mark, last)
    assert compared == 3 and list(far["open_time"]) == [t[2]] and far["divergence"].iloc[0] == pytest.approx(0.03)
