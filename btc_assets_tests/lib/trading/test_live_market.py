"""The paper broker against the recorded live market: collector hour files of aggTrade and depth20, written by the
collector's own writer in Binance's WebSocket shapes."""

import json

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading import trader
from btc_assets.lib.trading.brokers.paper import PaperBroker
from btc_assets.lib.data.collector.writer import HourlyWriter
from btc_assets.lib.trading.journal import Journal
from btc_assets.lib.trading.live_market import MarketDataError, RecordedMarket

T0 = pd.Timestamp("2024-03-04 10:00", tz="UTC")  # the bar the entry fills in (decided at its open)
MIN = pd.Timedelta(minutes=1)


def ms(t: pd.Timestamp) -> int:
    return int(t.timestamp() * 1000)


def depth(t: pd.Timestamp, bids, asks) -> dict:
    return {"e": "depthUpdate", "E": ms(t) + 1, "T": ms(t), "s": "BTCUSDT", "U": 1, "u": 2, "pu": 0,
            "b": [[f"{p:.2f}", f"{q:.3f}"] for p, q in bids], "a": [[f"{p:.2f}", f"{q:.3f}"] for p, q in asks]}


def trade(t: pd.Timestamp, price: float, qty: float = 0.01) -> dict:
    return {"e": "aggTrade", "E": ms(t) + 1, "s": "BTCUSDT", "a": ms(t), "p": f"{price:.2f}", "q": f"{qty:.3f}",
            "f": 1, "l": 1, "T": ms(t), "m": False}


def record(root, books=(), trades=()):
    w = HourlyWriter(root)
    for d in books:
        w.record("depth20", "btcusdt@depth20@100ms", d, d["T"] + 20)
    for d in trades:
        w.record("aggTrade", "btcusdt@aggTrade", d, d["T"] + 20)
    w.close()


def files_for(root):
    return lambda kind, day: sorted((root / kind / day).glob(f"{kind}-{day}-*.jsonl.gz"))


@pytest.fixture()
def journal(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield Journal(conn)
    conn.close()


def sent_at(journal: Journal, cid: str, t: pd.Timestamp) -> None:
    """The order left at `t` (the journal stamps NEW with the wall clock; these bars are from the past)."""
    journal.conn.execute("UPDATE trading.order_events SET event_time = ? WHERE client_order_id = ?",
                         [t.tz_localize(None), cid])


def test_a_market_order_takes_the_levels_of_the_first_book_after_it_was_sent(tmp_path):
    before = depth(T0 + pd.Timedelta(seconds=1), [(99.0, 5.0)], [(100.0, 5.0)])  # before the order: not used
    after = depth(T0 + pd.Timedelta(seconds=2.5), [(101.0, 0.1), (100.5, 1.0)], [(102.0, 0.1), (102.5, 0.2)])
    record(tmp_path, books=[before, after])
    market = RecordedMarket(files_for(tmp_path))
    buy = market.market_fill("BUY", 0.25, T0 + pd.Timedelta(seconds=2), T0 + MIN)
    assert buy.price == pytest.approx((0.1 * 102.0 + 0.15 * 102.5) / 0.25) and buy.levels == 2
    assert buy.time == T0 + pd.Timedelta(seconds=2.5) and buy.note == ""
    sell = market.market_fill("SELL", 0.05, T0 + pd.Timedelta(seconds=2), T0 + MIN)
    assert sell.price == pytest.approx(101.0) and sell.levels == 1
    thin = market.market_fill("BUY", 1.0, T0 + pd.Timedelta(seconds=2), T0 + MIN)
    assert thin.price == pytest.approx((0.1 * 102.0 + 0.9 * 102.5) / 1.0) and "held 0.300 of 1.000" in thin.note
    assert market.market_fill("BUY", 0.1, T0 + pd.Timedelta(seconds=3), T0 + MIN) is None  # nothing recorded after


def test_the_first_trade_through_a_trigger(tmp_path):
    record(tmp_path, trades=[trade(T0 + pd.Timedelta(seconds=s), p) for s, p in ((1, 100.0), (5, 98.9), (9, 98.0))])
    market = RecordedMarket(files_for(tmp_path))
    assert market.first_trade_through(99.0, True, T0, T0 + MIN) == T0 + pd.Timedelta(seconds=5)
    assert market.first_trade_through(99.0, True, T0 + pd.Timedelta(seconds=6), T0 + MIN) == T0 + pd.Timedelta(
        seconds=9)
    assert market.first_trade_through(100.0, False, T0, T0 + MIN) == T0 + pd.Timedelta(seconds=1)
    assert market.first_trade_through(101.0, False, T0, T0 + MIN) is None


def test_a_record_without_a_transaction_time_is_named(tmp_path):
    bad = trade(T0 + pd.Timedelta(seconds=1), 100.0)
    del bad["T"]
    w = HourlyWriter(tmp_path)
    w.record("aggTrade", "btcusdt@aggTrade", bad, ms(T0) + 1000)
    w.close()
    with pytest.raises(MarketDataError, match=r"aggTrade-2024-03-04-10\.jsonl\.gz line 1: not a aggTrade record"):
        RecordedMarket(files_for(tmp_path)).first_trade_through(99.0, True, T0, T0 + MIN)


def test_paper_fills_at_the_recorded_book_and_its_stop_at_the_trade_through_it(tmp_path, journal):
    decided = T0 - MIN
    entry = trader.entry_id("s", decided)
    record(tmp_path,
           books=[depth(T0 + pd.Timedelta(seconds=1.2), [(100.9, 1.0)], [(101.2, 0.05), (101.3, 1.0)]),
                  depth(T0 + MIN + pd.Timedelta(seconds=30.1), [(98.7, 0.3)], [(98.8, 1.0)])],
           trades=[trade(T0 + MIN + pd.Timedelta(seconds=10), 99.5), trade(T0 + MIN + pd.Timedelta(seconds=30), 98.9)])
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1", strategy="s",
                         market=RecordedMarket(files_for(tmp_path)))
    broker.submit(entry, decided, "BUY", 0.1)
    sent_at(journal, entry, T0 + pd.Timedelta(seconds=1))
    opened = trader.Opened(T0.isoformat(), 1, 0.1, 101.0, 99.0, 105.0)  # the fill model: next open + slippage
    journal.conn.execute("INSERT INTO trading.decisions (bar_time, opened) VALUES (?, ?)",  # the decided plan
                         [T0.tz_localize(None), json.dumps(opened.__dict__)])
    (fill,) = broker.settle(trader.BarPlan(T0, "hold", 0, 0.0, 0.0, None, (), (), False, 1e4, 0.1, opened))
    assert fill.price == pytest.approx((0.05 * 101.2 + 0.05 * 101.3) / 0.1)  # the book, not the model's 101.0
    assert fill.fee == pytest.approx(0.1 * fill.price * 0.0005)
    assert "live book at 2024-03-04 10:00:01.200" in fill.note
    stop = trader.Closed(T0.isoformat(), "stop", 0.1, 98.95)
    (out,) = broker.settle(trader.BarPlan(T0 + MIN, "hold", 0, 0.0, 0.0, None, (), (), False, 1e4, 0.0, None,
                                          (stop,)))
    assert out.client_order_id == trader.protective_id(entry, "stop") and out.price == pytest.approx(98.7)
    assert "triggered by the trade at 10:01:30.000" in out.note
    assert journal.position() == pytest.approx(0.0)


def test_without_recordings_for_the_moment_the_fill_model_prices_it_and_says_so(tmp_path, journal):
    decided = T0 - MIN
    entry = trader.entry_id("s", decided)
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1", strategy="s",
                         market=RecordedMarket(files_for(tmp_path)))
    broker.submit(entry, decided, "SELL", 0.2)
    sent_at(journal, entry, T0 + pd.Timedelta(seconds=1))
    opened = trader.Opened(T0.isoformat(), -1, 0.2, 50.0, 51.0, 48.0)
    (fill,) = broker.settle(trader.BarPlan(T0, "hold", 0, 0.0, 0.0, None, (), (), False, 1e4, -0.2, opened))
    assert fill.price == 50.0 and "no recorded book between" in fill.note
