"""The journal and the paper broker on a real DuckDB: idempotent ids, fills only at the next bar's open."""

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.brokers.paper import PaperBroker
from btc_assets.lib.journal import Journal, client_order_id

T0 = pd.Timestamp("2024-02-29 22:00", tz="UTC")
MIN = pd.Timedelta(minutes=1)


@pytest.fixture()
def journal(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield Journal(conn)
    conn.close()


def test_client_order_id_is_deterministic_and_fits_binance():
    a = client_order_id("xgb_next3m", T0, "entry")
    assert a == client_order_id("xgb_next3m", T0, "entry") and len(a) <= 36
    assert a != client_order_id("xgb_next3m", T0 + MIN, "entry")
    assert a != client_order_id("xgb_next3m", T0, "stop")


def test_order_fills_at_next_bar_open_with_fee_and_not_before(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1")
    assert broker.submit("id-1", T0, "BUY", 0.1)
    opens = {T0: 100.0}
    assert broker.fill_pending(lambda t: opens.get(t)) == []  # the next bar is not known yet
    assert journal.orders()["event"].tolist() == ["NEW"]
    opens[T0 + MIN] = 101.0
    (fill,) = broker.fill_pending(lambda t: opens.get(t))
    assert fill.price == 101.0 and fill.fee == pytest.approx(0.1 * 101.0 * 0.0005)
    assert journal.position() == pytest.approx(0.1)
    assert journal.orders()["event"].tolist() == ["FILLED"]


def test_a_retried_submit_sends_nothing_twice(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1")
    assert broker.submit("id-1", T0, "SELL", 0.2)
    assert not PaperBroker(journal, 0.0005, run_id="r2").submit("id-1", T0, "SELL", 0.2)
    broker.fill_pending(lambda t: 50.0)
    broker.fill_pending(lambda t: 50.0)  # already filled: no second fill
    assert journal.position() == pytest.approx(-0.2)
    events = journal.conn.execute("SELECT event FROM trading.order_events ORDER BY event").fetchall()
    assert events == [("FILLED",), ("NEW",)]  # append-only: the NEW row is still there


def test_bad_orders_are_refused(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1")
    with pytest.raises(ValueError, match="side must be BUY/SELL"):
        broker.submit("x", T0, "HOLD", 1.0)
    with pytest.raises(ValueError, match="qty > 0"):
        broker.submit("x", T0, "BUY", 0.0)


def test_decisions_are_journaled_once(journal):
    row = {"decision_id": "d1", "bar_time": T0, "decided_at": T0, "run_id": "r", "model_version": "m/1",
           "p_sell": 0.1, "p_hold": 0.8, "p_buy": 0.1, "signal": 1, "target_position": 0.0, "price": 100.0}
    journal.record_decisions(pd.DataFrame([row]))
    journal.record_decisions(pd.DataFrame([row]))
    assert journal.decided_bars(T0, T0 + MIN) == {T0}
    assert journal.conn.execute("SELECT count(*) FROM trading.decisions").fetchone()[0] == 1


def test_position_before_a_bar_is_what_the_journal_committed_to_then(journal):
    """Sizing a bar against the position as of that bar (not now) makes a retried run send nothing new."""
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1")
    broker.submit("a", T0, "BUY", 0.3)
    broker.fill_pending(lambda t: 100.0)  # filled
    broker.submit("b", T0 + MIN, "SELL", 0.1)  # still NEW: committed to
    broker.submit("c", T0 + 2 * MIN, "BUY", 0.5)
    broker.cancel_all()  # b and c cancelled: no longer committed
    broker.submit("d", T0 + 3 * MIN, "SELL", 0.2)  # NEW, later bar
    assert journal.position_before(T0) == pytest.approx(0.0)
    assert journal.position_before(T0 + MIN) == pytest.approx(0.3)
    assert journal.position_before(T0 + 3 * MIN) == pytest.approx(0.3)  # b and c were cancelled
    assert journal.position_before(T0 + 4 * MIN) == pytest.approx(0.1)  # d counts once its bar is past
    broker.fill_pending(lambda t: 101.0)
    assert journal.position_before(T0 + MIN) == pytest.approx(0.3)  # later fills never change an earlier bar
