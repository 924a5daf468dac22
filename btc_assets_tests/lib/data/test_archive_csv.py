"""Tests of parsing archive CSVs: the genuine bundled files, formatting variants, and every kind of bad input
(built in memory from the real sample file) with checks that errors name the file, line, column and value."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.data.archive.errors import ArchiveError, CorruptArchive, MalformedCsv
from btc_assets.lib.data.archive.layouts import AGG_TRADES, BOOK_DEPTH, FUNDING_RATE, KLINES, METRICS, CsvLayout
from btc_assets.lib.data.archive.layouts import LAYOUTS
from btc_assets.lib.data.archive.csv_reader import parse_csv_bytes, read_archive_csv

MIRROR = Path(__file__).resolve().parents[3] / "btc_assets" / "sample_data" / "archive"
UM_ZIP = MIRROR / "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip"
SPOT_ZIP = MIRROR / "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip"
FUNDING_ZIP = MIRROR / "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-04.zip"
NAME = "BTCUSDT-1m-2024-01-01.zip"
HEADER = ",".join(KLINES.columns)


def _csv_text(zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.read(zf.namelist()[0]).decode()


UM_TEXT = _csv_text(UM_ZIP)
UM_LINES = UM_TEXT.splitlines()  # UM_LINES[0] is the header, UM_LINES[k] is file line k + 1


def make_zip(text: str | bytes, member: str = NAME[:-4] + ".csv", *, extra: dict[str, bytes] | None = None,
             stored: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text if isinstance(text, bytes) else text.encode())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def with_line(line_no: int, new_line: str, lines: list[str] = UM_LINES) -> str:
    """The real UM file with file line `line_no` (1-based, header = 1) replaced."""
    out = list(lines)
    out[line_no - 1] = new_line
    return "\n".join(out) + "\n"


def set_field(line_no: int, column: str, value: str) -> str:
    fields = UM_LINES[line_no - 1].split(",")
    fields[KLINES.columns.index(column)] = value
    return with_line(line_no, ",".join(fields))


def expect_malformed(content: bytes, row: int | None, column: str | None = None, *fragments: str,
                     layout: CsvLayout = KLINES, name: str = NAME) -> MalformedCsv:
    with pytest.raises(MalformedCsv) as err:
        read_archive_csv(content, name, layout)
    e, msg = err.value, str(err.value)
    assert name in msg and e.path == name
    assert e.row == row
    if row is not None:
        assert f"line {row}" in msg
    if column is not None:
        assert e.column == column and repr(column) in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return e


# -- genuine files ------------------------------------------------------------------------------------------

def test_real_um_klines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="btc_assets.lib.data.archive.csv_reader"):
        df = read_archive_csv(UM_ZIP.read_bytes(), NAME, KLINES)
    assert not caplog.records  # the real file must take the fast path
    assert list(df.columns) == list(KLINES.columns) and len(df) == 1440
    assert str(df["open_time"].dtype) == "datetime64[ns, UTC]" and df["count"].dtype == np.int64
    assert all(df[c].dtype == np.float64 for c in KLINES.float_columns)
    assert df["open_time"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert df["close_time"].iloc[0] == pd.Timestamp("2024-01-01T00:00:59.999Z")
    assert (df["open_time"].diff().dropna() == pd.Timedelta(minutes=1)).all()
    reference = pd.read_csv(io.StringIO(UM_TEXT))  # independent reader for the numeric values
    for col in KLINES.float_columns + KLINES.int_columns:
        np.testing.assert_array_equal(df[col].to_numpy(), reference[col].to_numpy())
    assert (df["open_time"].astype("int64") // 10**6 == reference["open_time"]).all()


def test_real_spot_file_without_header() -> None:
    df = read_archive_csv(SPOT_ZIP.read_bytes(), SPOT_ZIP.name, KLINES)
    assert len(df) == 1440
    assert df["open_time"].iloc[0] == pd.Timestamp("2020-01-01T00:00:00Z")
    assert df["open"].iloc[0] == 7195.24 and df["count"].iloc[0] == 493


def test_microsecond_spot_variant_is_detected() -> None:
    lines = []
    for line in _csv_text(SPOT_ZIP).splitlines():
        f = line.split(",")
        f[0], f[6] = str(int(f[0]) * 1000), str(int(f[6]) * 1000)
        lines.append(",".join(f))
    assert len(lines[0].split(",")[0]) == 16
    df_us = read_archive_csv(make_zip("\n".join(lines) + "\n"), NAME, KLINES)
    df_ms = read_archive_csv(SPOT_ZIP.read_bytes(), SPOT_ZIP.name, KLINES)
    pd.testing.assert_frame_equal(df_us, df_ms)


def test_real_funding_rate_file() -> None:
    df = read_archive_csv(FUNDING_ZIP.read_bytes(), FUNDING_ZIP.name, FUNDING_RATE)
    assert list(df.columns) == ["calc_time", "funding_interval_hours", "last_funding_rate"] and len(df) == 90
    assert df["funding_interval_hours"].dtype == np.int64 and (df["funding_interval_hours"] == 8).all()
    assert df["last_funding_rate"].iloc[0] == -0.00003449
    assert df["calc_time"].iloc[3] == pd.Timestamp("2026-04-02T00:00:00.003Z")  # genuine ms jitter kept


# -- formatting variants ----------------------------------------------------------------------------------------

MIXED = [
    HEADER,
    "1694476800000,27013,27033.20,27000,27013.5,569,1694476859999,1364394.05200,10,0.000,0,0",
    "1694476860000, 27033.20 ,27040,27010.0,27020,1.5e-05,1694476919999,0.40500,0,0,0.00000,0.0",
    "1694476920000,+27020,27025,27015,27015,1E2,1694476979999,.5,7,5.,0,0",
]


def test_numbers_in_mixed_formatting() -> None:
    df = read_archive_csv(make_zip("\n".join(MIXED) + "\n"), NAME, KLINES)
    assert df["open"].tolist() == [27013.0, 27033.2, 27020.0]
    assert df["volume"].tolist() == [569.0, 1.5e-05, 100.0]
    assert df["quote_volume"].tolist() == [1364394.052, 0.405, 0.5]
    assert df["count"].tolist() == [10, 0, 7]


def test_slow_path_accepts_integral_floats_in_int_columns(caplog: pytest.LogCaptureFixture) -> None:
    lines = list(MIXED)
    lines[1] = lines[1].replace(",10,", ",10.0,")
    with caplog.at_level(logging.INFO, logger="btc_assets.lib.data.archive.csv_reader"):
        df = read_archive_csv(make_zip("\r\n".join(lines) + "\r\n\r\n"), NAME, KLINES)
    assert df["count"].tolist() == [10, 0, 7] and df["count"].dtype == np.int64
    assert any("line by line" in r.getMessage() for r in caplog.records)


def test_crlf_bom_and_no_final_newline_are_fine() -> None:
    expected = read_archive_csv(UM_ZIP.read_bytes(), NAME, KLINES)
    for text in ("\r\n".join(UM_LINES) + "\r\n", "\ufeff" + UM_TEXT, UM_TEXT.rstrip("\n")):
        pd.testing.assert_frame_equal(read_archive_csv(make_zip(text), NAME, KLINES), expected)
    pd.testing.assert_frame_equal(parse_csv_bytes(UM_TEXT.encode(), NAME, KLINES), expected)


# Synthetic rows (not market data) in the layouts documented in FORMATS.md; real files are not bundled.
SYNTH_AGG = ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
             "2011091801,42314.00,0.010,4441436800,4441436801,1704067200012,true\n"
             "2011091802,42314.10,1.234,4441436802,4441436802,1704067200345,False\n")
SYNTH_DEPTH = "2024-01-01 00:00:08,-5.00,1234.567,52000000.12\n2024-01-01 00:00:08,1.00,99.5,4200000.5\n"
SYNTH_METRICS = (",".join(METRICS.columns) + "\n"
                 "2024-01-01 00:05:00,BTCUSDT,80000.5,3.4e9,1.7,1.5,1.3,0.95\n")


def test_synthetic_agg_trades_book_depth_metrics() -> None:
    agg = read_archive_csv(make_zip(SYNTH_AGG), "x.zip", AGG_TRADES)
    assert agg["is_buyer_maker"].tolist() == [True, False] and agg["is_buyer_maker"].dtype == bool
    assert agg["last_trade_id"].dtype == np.int64 and agg["last_trade_id"].iloc[0] == 4441436801
    assert agg["transact_time"].iloc[1] == pd.Timestamp("2024-01-01T00:00:00.345Z")
    no_header = read_archive_csv(make_zip(SYNTH_AGG.split("\n", 1)[1]), "x.zip", AGG_TRADES)
    pd.testing.assert_frame_equal(no_header, agg)
    depth = read_archive_csv(make_zip(SYNTH_DEPTH), "x.zip", BOOK_DEPTH)  # no header: sniffed as a datetime
    assert len(depth) == 2 and str(depth["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert depth["timestamp"].iloc[0] == pd.Timestamp("2024-01-01T00:00:08Z")
    assert depth["percentage"].tolist() == [-5.0, 1.0]
    with_header = read_archive_csv(make_zip("timestamp,percentage,depth,notional\n" + SYNTH_DEPTH), "x.zip",
                                   BOOK_DEPTH)
    pd.testing.assert_frame_equal(with_header, depth)
    metrics = read_archive_csv(make_zip(SYNTH_METRICS), "x.zip", METRICS)
    assert metrics["symbol"].tolist() == ["BTCUSDT"] and metrics["sum_open_interest_value"].iloc[0] == 3.4e9
    assert LAYOUTS["markPriceKlines"] is KLINES and LAYOUTS["metrics"] is METRICS


def test_layout_must_type_every_column() -> None:
    with pytest.raises(ValueError, match="untyped"):
        CsvLayout("x", ("a", "b"), int_columns=("a",), float_columns=(), time_columns=())
    with pytest.raises(ValueError, match="typed twice"):
        CsvLayout("x", ("a",), int_columns=("a",), float_columns=("a",), time_columns=())


# -- broken zips -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"hello, not a zip", b"", UM_ZIP.read_bytes()[:-40],
                                     UM_ZIP.read_bytes()[: len(UM_ZIP.read_bytes()) // 2]],
                         ids=["text", "empty", "cut-end", "half"])
def test_not_a_readable_zip(content: bytes) -> None:
    with pytest.raises(CorruptArchive, match="not a readable zip.*re-fetch") as err:
        read_archive_csv(content, NAME, KLINES)
    assert NAME in str(err.value) and err.value.path == NAME


def test_crc_error() -> None:
    content = bytearray(make_zip(UM_TEXT, stored=True))
    i = content.find(UM_LINES[700].encode())
    content[i] = ord("9") if content[i] != ord("9") else ord("8")
    with pytest.raises(CorruptArchive, match="CRC") as err:
        read_archive_csv(bytes(content), NAME, KLINES)
    assert NAME in str(err.value)


@pytest.mark.parametrize("extra, member", [({"BTCUSDT-1m-2024-01-02.csv": b"1,2"}, None), ({}, "readme.txt")],
                         ids=["two-csv", "no-csv"])
def test_zip_must_hold_exactly_one_csv(extra: dict[str, bytes], member: str | None) -> None:
    content = make_zip(UM_TEXT, member or NAME[:-4] + ".csv", extra=extra)
    with pytest.raises(CorruptArchive, match="exactly one .csv") as err:
        read_archive_csv(content, NAME, KLINES)
    for listed in [member or NAME[:-4] + ".csv", *extra]:
        assert listed in str(err.value)


# -- malformed CSVs ------------------------------------------------------------------------------------------

def test_wrong_header_names() -> None:
    e = expect_malformed(make_zip(with_line(1, HEADER.replace("count", "trades"))), 1, None,
                         "count", "trades", "expected")
    assert isinstance(e, ArchiveError)


def test_wrong_column_count_on_a_middle_row() -> None:
    fields = UM_LINES[499].split(",")
    e = expect_malformed(make_zip(with_line(500, ",".join(fields[:-1]))), 500, None, "11 fields", "expected 12")
    assert "truncated" not in str(e)
    expect_malformed(make_zip(with_line(501, UM_LINES[500] + ",0")), 501, None, "13 fields")


def test_blank_line_in_the_middle() -> None:
    expect_malformed(make_zip(with_line(42, "")), 42, None, "1 fields")


def test_truncated_last_line() -> None:
    cut = UM_TEXT.rstrip("\n")[:-30]  # ends mid-row, no final newline
    expect_malformed(make_zip(cut), 1441, None, "truncated")
    cut_in_number = UM_TEXT.rstrip("\n")[:-1] + "x"
    expect_malformed(make_zip(cut_in_number), 1441, "ignore", "truncated")


def test_non_numeric_field() -> None:
    expect_malformed(make_zip(set_field(700, "high", "42x35.80")), 700, "high", "'42x35.80'", "not a number")
    expect_malformed(make_zip(set_field(9, "count", "12.5")), 9, "count", "'12.5'", "not an integer")
    expect_malformed(make_zip(set_field(9, "open_time", "1_704_067_200_000")), 9, "open_time", "1_704")


def test_empty_numeric_field() -> None:
    expect_malformed(make_zip(set_field(10, "volume", "")), 10, "volume", "empty")
    expect_malformed(make_zip(set_field(11, "count", " ")), 11, "count", "empty")


def test_non_finite_number() -> None:
    expect_malformed(make_zip(set_field(1200, "close", "nan")), 1200, "close", "finite")
    expect_malformed(make_zip(set_field(3, "volume", "inf")), 3, "volume", "finite")


def test_mixed_time_units() -> None:
    us = str(int(UM_LINES[799].split(",")[0]) * 1000)
    expect_malformed(make_zip(set_field(800, "open_time", us)), 800, "open_time", us, "one unit")
    expect_malformed(make_zip(set_field(5, "close_time", us)), 5, "close_time", "one unit")


def test_implausible_epoch_values() -> None:
    expect_malformed(make_zip(set_field(6, "open_time", "1704067500")), 6, "open_time", "plausible")


def test_bad_boolean() -> None:
    bad = SYNTH_AGG.replace("False", "no")
    expect_malformed(make_zip(bad), 3, "is_buyer_maker", "'no'", layout=AGG_TRADES)


def test_bad_datetime_string() -> None:
    bad = SYNTH_DEPTH.replace("2024-01-01 00:00:08,1.00", "2024-13-01 00:00:08,1.00")
    expect_malformed(make_zip(bad), 2, "timestamp", "2024-13-01", layout=BOOK_DEPTH)


def test_not_utf8() -> None:
    line = UM_LINES[20].encode()
    expect_malformed(make_zip(UM_TEXT.encode().replace(line, b"\xff" + line[1:])), 21, None, "UTF-8")


@pytest.mark.parametrize("text, row", [("", None), ("\n\n", None), (HEADER + "\n", 2)],
                         ids=["empty", "blank", "header-only"])
def test_no_data_rows(text: str, row: int | None) -> None:
    expect_malformed(make_zip(text), row, None, "no data rows")


def test_a_microsecond_kline_file_in_the_spot_2025_layout_makes_the_same_silver_day() -> None:
    """The spot archive from 2025-01-01: open_time and close_time in microseconds, close_time the minute's last
    microsecond (`1735689659999999`); a real file rewritten in that layout gives the very same silver bars."""
    import datetime as dt

    from btc_assets.lib.data import bars

    lines = []
    for line in _csv_text(SPOT_ZIP).splitlines():
        f = line.split(",")
        open_us = int(f[0]) * 1000
        f[0], f[6] = str(open_us), str(open_us + 59_999_999)
        lines.append(",".join(f))
    assert lines[0].split(",")[6].endswith("59999999")
    day = dt.date(2020, 1, 1)
    us = bars.silver_klines_1m(read_archive_csv(make_zip("\n".join(lines) + "\n"), NAME, KLINES), day, NAME)
    ms = bars.silver_klines_1m(read_archive_csv(SPOT_ZIP.read_bytes(), SPOT_ZIP.name, KLINES), day, SPOT_ZIP.name)
    pd.testing.assert_frame_equal(us.bars, ms.bars)
    assert len(us.bars) == 1440 and us.bars["open_time"].iloc[1] == pd.Timestamp("2020-01-01 00:01", tz="UTC")
    # a close_time that ends the minute in neither unit is still refused, naming the file
    f = lines[5].split(",")
    f[6] = str(int(f[6]) - 1)
    bad = lines[:5] + [",".join(f)] + lines[6:]
    with pytest.raises(bars.BarDataError, match="does not end the minute"):
        bars.silver_klines_1m(read_archive_csv(make_zip("\n".join(bad) + "\n"), NAME, KLINES), day, NAME)
