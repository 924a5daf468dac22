"""Long history from the archive's monthly 1h/1d kline files: typed exactly, refused by name when wrong, and equal
to the bars built from the real 1m files wherever both exist."""

import datetime as dt

import pandas as pd
import pytest

from btc_assets.lib.data import bars
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.archive.layouts import KLINES
from btc_assets_tests.conftest import SAMPLE, real_klines, zip_csv

MONTHLY = SAMPLE / "data" / "futures" / "um" / "monthly" / "klines" / "BTCUSDT"
HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume," \
         "taker_buy_quote_volume,ignore"


def monthly(interval: str, month: str) -> pd.DataFrame:
    name = f"BTCUSDT-{interval}-{month}.zip"
    return read_archive_csv((MONTHLY / interval / name).read_bytes(), name, KLINES)


@pytest.mark.parametrize("interval, bars_in_january", [("1h", 744), ("1d", 31)])
def test_the_archives_monthly_bars_equal_the_bars_built_from_the_real_1m_files(interval, bars_in_january):
    month = bars.silver_klines_history(monthly(interval, "2024-01"), dt.date(2024, 1, 1), interval, "test")
    assert len(month.bars) == bars_in_january and month.missing_bars == [] and month.duplicates_dropped == 0
    one_minute = pd.concat([bars.silver_klines_1m(real_klines(dt.date(2024, 1, d)), dt.date(2024, 1, d), "t").bars
                            for d in (1, 2, 3)], ignore_index=True)
    built = bars.resample_bars(one_minute, interval)
    diff = bars.disagreements(month.bars, built, interval)
    assert diff.empty and diff.attrs["bars_compared"] == (72 if interval == "1h" else 3)


def test_a_changed_bar_is_named_with_its_column_and_both_values():
    month = bars.silver_klines_history(monthly("1h", "2024-01"), dt.date(2024, 1, 1), "1h", "test").bars
    one_minute = bars.silver_klines_1m(real_klines(dt.date(2024, 1, 2)), dt.date(2024, 1, 2), "t").bars
    built = bars.resample_bars(one_minute, "1h")
    built.loc[5, "close"] += 0.1
    diff = bars.disagreements(month, built, "1h")
    assert diff.attrs["bars_compared"] == 24
    assert diff[["open_time", "column"]].values.tolist() == [[pd.Timestamp("2024-01-02 05:00", tz="UTC"), "close"]]
    # an incomplete bar built from 1m (a minute missing upstream) is not compared
    built.loc[5, "minutes"] = 59
    assert bars.disagreements(month, built, "1h").empty
    # nothing built from 1m at all (the table does not exist yet): nothing compared, said as 0
    none = bars.disagreements(month, pd.DataFrame(columns=["open_time", "minutes"]), "1h")
    assert none.empty and none.attrs["bars_compared"] == 0


def _file(rows: list[str], name: str = "BTCUSDT-1h-2024-01.zip") -> pd.DataFrame:
    return read_archive_csv(zip_csv(name[:-4] + ".csv", "\n".join([HEADER, *rows]) + "\n"), name, KLINES)


def _row(open_ms: int, close_ms: int, close: str = "42300.0") -> str:
    return f"{open_ms},42000.0,42500.0,41900.0,{close},10.0,{close_ms},420000.0,100,5.0,210000.0,0"


JAN = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
HOUR = 3_600_000


def test_bad_monthly_files_are_refused_naming_the_file_and_the_fix():
    with pytest.raises(bars.BarDataError, match=r"BTCUSDT-1h-2024-01.zip.*not on the 1h grid"):
        bars.silver_klines_history(_file([_row(JAN + 60_000, JAN + HOUR + 59_999)]), dt.date(2024, 1, 1), "1h",
                                   "BTCUSDT-1h-2024-01.zip")
    with pytest.raises(bars.BarDataError, match=r"does not end the 1h bar.*check the interval"):
        bars.silver_klines_history(_file([_row(JAN, JAN + 60_000 - 1)]), dt.date(2024, 1, 1), "1h", "f")
    with pytest.raises(bars.BarDataError, match=r"outside 2024-02.*does not belong to this partition"):
        bars.silver_klines_history(_file([_row(JAN, JAN + HOUR - 1)]), dt.date(2024, 2, 1), "1h", "f")
    with pytest.raises(bars.BarDataError, match=r"1 1h bars appear with different values"):
        bars.silver_klines_history(_file([_row(JAN, JAN + HOUR - 1), _row(JAN, JAN + HOUR - 1, "42301.0")]),
                                   dt.date(2024, 1, 1), "1h", "f")
    with pytest.raises(bars.BarDataError, match=r"not read as history"):
        bars.silver_klines_history(_file([_row(JAN, JAN + HOUR - 1)]), dt.date(2024, 1, 1), "4h", "f")


def test_missing_bars_are_listed_never_invented_and_duplicates_counted():
    rows = [_row(JAN + i * HOUR, JAN + (i + 1) * HOUR - 1) for i in range(744) if i != 10]
    month = bars.silver_klines_history(_file(rows + [rows[0]]), dt.date(2024, 1, 1), "1h", "f")
    assert month.missing_bars == [pd.Timestamp("2024-01-01 10:00", tz="UTC")]
    assert len(month.bars) == 743 and month.duplicates_dropped == 1
    # before the instrument existed nothing can be missing
    late = bars.silver_klines_history(_file(rows[-24:]), dt.date(2024, 1, 1), "1h", "f",
                                      available_from=pd.Timestamp("2024-01-31", tz="UTC"))
    assert late.missing_bars == []


def test_a_microsecond_close_time_ends_the_bar_too():
    """The archive writes microseconds in newer files: the bar's last microsecond closes it."""
    us = JAN * 1000
    row = f"{us},42000.0,42500.0,41900.0,42300.0,10.0,{us + HOUR * 1000 - 1},420000.0,100,5.0,210000.0,0"
    month = bars.silver_klines_history(_file([row]), dt.date(2024, 1, 1), "1h", "f")
    assert month.bars["open_time"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
