"""The paper account is a ledger of its own (position, average price, balance after each fill), so the paper
reconciliation compares two records instead of the journal with itself; a journal that lost a fill disagrees."""

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading.brokers.paper import PaperAccount, PaperBroker
from btc_assets.lib.trading.journal import Journal, OrderEvent

T = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def fill(cid, side, qty, price, fee=0.0):
    return OrderEvent(cid, "FILLED", T, side, qty, price, fee, "paper", "r")


def test_the_ledger_books_position_average_price_and_realized_pnl():
    acct = PaperAccount(duckdb.connect(), 10_000.0)
    acct.apply(fill("a", "BUY", 0.1, 40_000.0, fee=2.0))
    acct.apply(fill("b", "BUY", 0.1, 42_000.0, fee=2.0))
    assert acct.last() == pytest.approx((0.2, 41_000.0, 9_996.0))
    acct.apply(fill("c", "SELL", 0.15, 43_000.0, fee=3.0))  # realizes 0.15 x 2,000
    pos, avg, bal = acct.last()
    assert pos == pytest.approx(0.05) and avg == pytest.approx(41_000.0) and bal == pytest.approx(10_293.0)
    assert acct.equity(44_000.0) == pytest.approx(10_293.0 + 0.05 * 3_000.0)
    acct.apply(fill("c", "SELL", 0.15, 43_000.0))  # a retried settle: booked once
    assert acct.last()[0] == pytest.approx(0.05)
    acct.apply(fill("d", "SELL", 0.10, 40_000.0))  # through flat to short: the new side's price
    assert acct.last()[:2] == pytest.approx((-0.05, 40_000.0))


def test_a_journal_that_lost_a_fill_no_longer_matches_the_paper_account():
    conn = duckdb.connect()
    journal = Journal(conn)
    broker = PaperBroker(journal, 0.0005, "r", "s", initial_balance=10_000.0)
    broker._event("s-1-entry", "FILLED", T, "BUY", 0.01, 40_000.0, 0.2)
    assert broker.position() == journal.position("paper") == pytest.approx(0.01)
    conn.execute("DELETE FROM trading.order_events WHERE client_order_id = 's-1-entry'")
    assert journal.position("paper") == 0.0 and broker.position() == pytest.approx(0.01)


def test_the_account_breaker_pauses_entries_on_the_accounts_own_drawdown():
    from btc_assets.lib.trading.session import account_breaker
    conn = duckdb.connect()
    day = pd.Timestamp("2024-01-03 00:05", tz="UTC")  # a Wednesday
    assert account_breaker(conn, "paper", 10_000.0, day, 0.05, 0.15) is None  # the day's (and week's) start
    assert account_breaker(conn, "paper", 9_600.0, day + pd.Timedelta(hours=1), 0.05, 0.15) is None  # -4 %
    why = account_breaker(conn, "paper", 9_400.0, day + pd.Timedelta(hours=2), 0.05, 0.15)
    assert why.startswith("account breaker: equity 9,400.00 USDT is -6.00% since the day's start")
    assert account_breaker(conn, "paper", 9_400.0, day + pd.Timedelta(days=1), 0.05, 0.15) is None  # next day
    assert "week" in account_breaker(conn, "paper", 8_400.0, day + pd.Timedelta(days=1, hours=1), 0.5, 0.15)
    assert account_breaker(conn, "binance", 9_000.0, day + pd.Timedelta(hours=3), 0.05, 0.15) is None  # per broker
