"""Silver aggTrades: fast path, duplicates, unsorted rows, conflicting rows, id gaps; and the 1m order flow."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.data.market import MarketDataError
from btc_assets.lib.data.market.agg_trades import TYPES, silver_agg_trades
from btc_assets.lib.data.market.order_flow import TABLE, build_order_flow, compare_with_klines
from btc_assets.lib.storage.warehouse import replace_window

DAY = dt.date(2024, 1, 2)
T0 = pd.Timestamp("2024-01-02", tz="UTC")


def trades(n=6, first_id=10, first_trade=100):
    """n aggTrades, 2 exchange trades each, 20 s apart, alternating sides."""
    return pd.DataFrame({
        "agg_trade_id": range(first_id, first_id + n),
        "price": [100.0 + i for i in range(n)],
        "quantity": [0.5] * n,
        "first_trade_id": [first_trade + 2 * i for i in range(n)],
        "last_trade_id": [first_trade + 2 * i + 1 for i in range(n)],
        "transact_time": [T0 + pd.Timedelta(seconds=20 * i) for i in range(n)],
        "is_buyer_maker": [i % 2 == 1 for i in range(n)],
    })


def test_a_clean_file_passes_untouched():
    got = silver_agg_trades(trades(), DAY, "f.zip", previous=(9, 99))
    assert (got.duplicates_dropped, got.unsorted_rows, got.gaps) == (0, 0, [])
    assert got.last_ids == (15, 111)


def test_duplicates_are_counted_and_unsorted_rows_sorted():
    raw = trades()
    raw = pd.concat([raw.iloc[[0, 2, 1]], raw.iloc[[2]], raw.iloc[3:]], ignore_index=True)
    got = silver_agg_trades(raw, DAY, "f.zip")
    assert got.duplicates_dropped == 1 and got.unsorted_rows == 1 and got.gaps == []
    assert list(got.trades["agg_trade_id"]) == list(range(10, 16))


def test_conflicting_duplicates_are_an_error_naming_the_file():
    raw = trades()
    raw.loc[len(raw)] = raw.iloc[2].to_dict() | {"price": 999.0}
    with pytest.raises(MarketDataError, match=r"f\.zip.*share an agg_trade_id"):
        silver_agg_trades(raw, DAY, "f.zip")


def test_id_gaps_are_reported_with_their_size_also_at_the_day_boundary():
    raw = trades().drop(index=[3]).reset_index(drop=True)  # agg 13 and trades 106..107 missing
    got = silver_agg_trades(raw, DAY, "f.zip", previous=(7, 95))
    text = [str(g) for g in got.gaps]
    assert "agg_trade_id: 2 missing after agg_trade_id 7 (expected 8, found 10)" in text
    assert "agg_trade_id: 1 missing after agg_trade_id 12 (expected 13, found 14)" in text
    assert "trade_id: 4 missing after agg_trade_id 7 (expected 96, found 100)" in text
    assert "trade_id: 2 missing after agg_trade_id 12 (expected 106, found 108)" in text


@pytest.mark.parametrize("change, message", [
    ({"transact_time": T0 - pd.Timedelta(seconds=1)}, "outside 2024-01-02"),
    ({"quantity": 0.0}, "price or quantity <= 0"),
    ({"last_trade_id": 0}, "last_trade_id < first_trade_id"),
])
def test_impossible_rows_are_errors_naming_the_row(change, message):
    raw = trades()
    for k, v in change.items():
        raw.loc[4, k] = v
    with pytest.raises(MarketDataError, match=f"f.zip: 1 rows have .*{message}.*data row 5"):
        silver_agg_trades(raw, DAY, "f.zip")


def test_order_flow_aggregates_each_minute_and_restarts_cvd_each_day():
    day2 = trades(1, first_id=15, first_trade=110)
    day2["transact_time"] += pd.Timedelta(days=1)
    df = pd.concat([trades(5), day2], ignore_index=True)
    conn = duckdb.connect()
    replace_window(conn, "silver.agg_trades", TYPES, df, "transact_time", T0, T0 + pd.Timedelta(days=2))
    assert build_order_flow(conn, T0, T0 + pd.Timedelta(days=2)) == 3
    assert build_order_flow(conn, T0, T0 + pd.Timedelta(days=2)) == 3  # idempotent
    flow = conn.execute(f"SELECT * FROM {TABLE} ORDER BY open_time").df()
    first = flow.iloc[0]  # trades 10, 11, 12: buy, sell, buy at 100, 101, 102
    assert (first["open"], first["high"], first["low"], first["close"]) == (100, 102, 100, 102)
    assert (first["buy_volume"], first["sell_volume"], first["trades"], first["trade_count"]) == (1.0, 0.5, 3, 6)
    assert first["vwap"] == pytest.approx(101) and first["buy_quote"] == pytest.approx(101)
    assert list(flow["delta"]) == [0.5, 0.0, 0.5]
    assert list(flow["cvd"]) == [0.5, 0.5, 0.5]  # day 2 starts from its own delta (else 1.0)


def test_klines_rebuilt_from_agg_trades_are_compared_with_silver_klines():
    conn = duckdb.connect()
    replace_window(conn, "silver.agg_trades", TYPES, trades(), "transact_time", T0, T0 + pd.Timedelta(days=1))
    build_order_flow(conn, T0, T0 + pd.Timedelta(days=1))
    conn.execute("CREATE TABLE silver.klines_1m (open_time TIMESTAMP, open DOUBLE, high DOUBLE, low DOUBLE, "
                 "close DOUBLE, volume DOUBLE, taker_buy_volume DOUBLE, trades BIGINT)")
    conn.execute("INSERT INTO silver.klines_1m VALUES ('2024-01-02 00:00', 100, 102, 100, 102, 1.5, 1.0, 6), "
                 "('2024-01-02 00:01', 103, 105, 103, 105, 1.5, 0.5, 7), ('2024-01-02 00:02', 1, 1, 1, 1, 1, 1, 1)")
    compared, bad = compare_with_klines(conn, T0, T0 + pd.Timedelta(days=1))
    assert compared == 3
    # 00:01 has 6 trades not 7; 00:02 has kline trades but no aggTrades at all
    assert [str(t) for t in bad["open_time"]] == ["2024-01-02 00:01:00", "2024-01-02 00:02:00"]


@pytest.mark.slow
def test_a_real_density_day_goes_to_order_flow_that_rebuilds_the_real_klines(tmp_path):
    """>= 2M generated aggTrades for a real day: silver, order flow in DuckDB, and the klines comparison all agree."""
    from btc_assets.lib.data.archive.layouts import AGG_TRADES
    from btc_assets.lib.data.archive.csv_reader import read_archive_csv
    from btc_assets.lib.data.synthetic.agg_trades import IdState, agg_trades_for_klines
    from btc_assets.lib.data.synthetic.archive_writer import agg_trades_csv, zip_bytes
    from btc_assets.lib.data.synthetic.generate import sample_density
    from btc_assets_tests.conftest import real_klines

    k = real_klines(DAY)
    generated, _ = agg_trades_for_klines(k, IdState(1, 1), 5, sample_density(2))
    assert len(generated) >= 2_000_000
    raw = read_archive_csv(zip_bytes("a.csv", agg_trades_csv(generated), DAY), "a.zip", AGG_TRADES)
    day = silver_agg_trades(raw, DAY, "a.zip")
    assert day.gaps == [] and day.duplicates_dropped == 0
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    replace_window(conn, "silver.agg_trades", TYPES, day.trades, "transact_time", T0, T0 + pd.Timedelta(days=1))
    assert build_order_flow(conn, T0, T0 + pd.Timedelta(days=1)) == 1440
    klines = k.rename(columns={"count": "trades"}).assign(open_time=k["open_time"].dt.tz_localize(None))
    conn.execute("CREATE TABLE silver.klines_1m AS SELECT open_time, open, high, low, close, volume, "
                 "taker_buy_volume, trades FROM klines")
    compared, bad = compare_with_klines(conn, T0, T0 + pd.Timedelta(days=1))
    assert compared == 1440 and bad.empty


def test_with_a_lakehouse_the_published_order_flow_is_committed_there_too(tmp_path):
    from btc_assets.lib.storage.lakehouse import Lakehouse, committing

    lake = Lakehouse(str(tmp_path / "lakehouse"))
    conn = duckdb.connect()
    with committing(lake):
        replace_window(conn, "silver.agg_trades", TYPES, trades(5), "transact_time", T0, T0 + pd.Timedelta(days=1))
        assert build_order_flow(conn, T0, T0 + pd.Timedelta(days=1)) == 2
    flow = conn.execute(f"SELECT * FROM {TABLE} ORDER BY open_time").df()
    delta = lake.read_window(TABLE, "open_time", T0, T0 + pd.Timedelta(days=1))
    assert len(delta) == len(flow) == 2 and list(delta["cvd"]) == list(flow["cvd"])
    assert len(lake.read_window("silver.agg_trades", "transact_time", T0, T0 + pd.Timedelta(days=1))) == len(trades(5))
