"""The journal and the paper broker on a real DuckDB: idempotent ids, fills as the backtest's fill model says."""

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading import trader
from btc_assets.lib.trading.brokers.paper import PaperBroker
from btc_assets.lib.trading.journal import Journal, client_order_id

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


def plan_at(bar: pd.Timestamp, opened=None, closed=()) -> trader.BarPlan:
    return trader.BarPlan(bar, "hold", 0, 0.0, 0.0, None, (), (), False, 10_000.0, 0.0, opened, tuple(closed))


def test_entry_fills_as_the_fill_model_says_then_protective_legs_close_it(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1", strategy="s")
    entry = trader.entry_id("s", T0)
    assert broker.submit(entry, T0, "BUY", 0.1)
    assert broker.settle(plan_at(T0)) == []  # the bar of the decision itself: nothing fills at its own close
    assert journal.orders()["event"].tolist() == ["NEW"]
    opened = trader.Opened((T0 + MIN).isoformat(), 1, 0.1, 101.0, 99.0, 105.0)
    (fill,) = broker.settle(plan_at(T0 + MIN, opened=opened))
    assert fill.price == 101.0 and fill.fee == pytest.approx(0.1 * 101.0 * 0.0005)
    assert journal.position() == pytest.approx(0.1)
    legs = journal.orders().set_index("client_order_id")
    assert legs.loc[trader.protective_id(entry, "stop"), "event"] == "NEW"
    assert "trigger 99.0" in legs.loc[trader.protective_id(entry, "stop"), "note"]
    assert broker.settle(plan_at(T0 + MIN, opened=opened)) == []  # settled already: no second fill
    stop = trader.Closed((T0 + MIN).isoformat(), "stop", 0.1, 98.9)
    (out,) = broker.settle(plan_at(T0 + 3 * MIN, closed=[stop]))
    assert out.client_order_id == trader.protective_id(entry, "stop") and out.side == "SELL" and out.price == 98.9
    states = journal.orders().set_index("client_order_id")["event"]
    assert states[trader.protective_id(entry, "take_profit")] == "CANCELED"
    assert journal.position() == pytest.approx(0.0)


def test_an_entry_the_fill_model_refused_is_rejected_and_a_market_exit_fills(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1", strategy="s")
    broker.submit(trader.entry_id("s", T0), T0, "SELL", 0.2)
    broker.settle(plan_at(T0 + MIN))  # the next bar came and the model opened nothing
    assert journal.orders()["event"].tolist() == ["REJECTED"] and journal.position() == 0.0
    broker.submit(trader.entry_id("s", T0 + MIN), T0 + MIN, "SELL", 0.2)
    broker.settle(plan_at(T0 + 2 * MIN, opened=trader.Opened((T0 + 2 * MIN).isoformat(), -1, 0.2, 50.0, 51.0, 48.0)))
    broker.submit(trader.exit_id("s", T0 + 5 * MIN), T0 + 5 * MIN, "BUY", 0.2, reduce_only=True)
    time_exit = trader.Closed((T0 + 2 * MIN).isoformat(), "time", 0.2, 49.0)
    (fill,) = broker.settle(plan_at(T0 + 6 * MIN, closed=[time_exit]))
    assert fill.client_order_id == trader.exit_id("s", T0 + 5 * MIN) and fill.price == 49.0
    assert journal.position() == pytest.approx(0.0)


def test_a_retried_submit_sends_nothing_twice(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r1")
    assert broker.submit("id-1-kill", T0, "SELL", 0.2)
    assert not PaperBroker(journal, 0.0005, run_id="r2").submit("id-1-kill", T0, "SELL", 0.2)
    assert broker.fill_unplanned(lambda t: None) == []  # the next bar is not known yet
    broker.fill_unplanned(lambda t: 50.0)
    broker.fill_unplanned(lambda t: 50.0)  # already filled: no second fill
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


def test_a_few_decisions_are_journaled_as_a_batch_would_be():
    """The live path's few-row insert (plain parameters) writes exactly what the batch insert writes: timestamps as
    naive UTC, NaN/NaT/None as NULL, requested_at absent -> NULL; and a retried insert adds nothing."""
    import duckdb
    import numpy as np
    import pandas as pd

    from btc_assets.lib.trading.journal import Journal

    t = pd.date_range("2024-01-11 00:00", periods=6, freq="1min", tz="UTC")
    df = pd.DataFrame({"decision_id": [f"s-{i}-decision" for i in range(6)], "bar_time": t, "run_id": "r",
                       "decided_at": t + pd.Timedelta(seconds=61), "model_version": ["v1", None, "v1", "v1", "v1", "v1"],
                       "p_buy": [0.2, np.nan, 0.3, 0.4, 0.5, 0.6], "signal": np.array([1, 1, 2, 0, 1, 1], "int8"),
                       "action": "hold", "entry_qty": 0.0, "breaker_paused": [False, True, False, False, False, False],
                       "requested_at": [t[0], pd.NaT, t[2], t[3], t[4], t[5]]})
    few, many = Journal(duckdb.connect()), Journal(duckdb.connect())
    for i in range(0, 6, 2):
        few.record_decisions(df.iloc[i:i + 2])
    few.record_decisions(df.iloc[:2])  # retried: nothing twice
    many.record_decisions(df)
    q = "SELECT * FROM trading.decisions ORDER BY bar_time"
    pd.testing.assert_frame_equal(few.conn.execute(q).df(), many.conn.execute(q).df())
    assert few.conn.execute("SELECT count(*) FROM trading.decisions").fetchone()[0] == 6
    row = few.conn.execute("SELECT p_buy, model_version, requested_at FROM trading.decisions WHERE decision_id = "
                           "'s-1-decision'").fetchone()
    assert row == (None, None, None)


def test_open_protective_legs_are_the_brokers_legs_still_new():
    """Only stop/target legs (-sl/-tp, moved -s<n>/-t<n>) of the named broker whose latest event is NEW: not the
    entry, its quotes or market leg, a leg that fired or was cancelled, nor another broker's."""
    import duckdb

    from btc_assets.lib.trading.journal import OrderEvent

    j = Journal(duckdb.connect())
    bar = pd.Timestamp("2024-01-11 00:00", tz="UTC")
    for cid, event, broker in [("s-1-entry", "NEW", "binance"), ("s-1-entry-mk", "NEW", "binance"),
                               ("s-1-entry-sl", "NEW", "binance"), ("s-1-entry-tp", "NEW", "binance"),
                               ("s-1-entry-tp", "CANCELED", "binance"), ("s-1-entry-s1", "NEW", "binance"),
                               ("s-2-entry-sl", "NEW", "binance"), ("s-2-entry-sl", "FILLED", "binance"),
                               ("s-3-entry-sl", "NEW", "paper"), ("s-1-entry-t2", "NEW", "binance")]:
        j.append(OrderEvent(cid, event, bar, "SELL", 0.01, None, 0.0, broker, "r", "trigger 1.0"))
    legs = j.open_protective_legs("binance")
    assert sorted(legs["client_order_id"]) == ["s-1-entry-s1", "s-1-entry-sl", "s-1-entry-t2"]
    assert list(j.open_protective_legs("paper")["client_order_id"]) == ["s-3-entry-sl"]
    assert j.open_protective_legs("kraken").empty


def test_a_clock_reading_with_nanoseconds_is_journaled_to_the_microsecond_without_a_warning():
    import warnings

    from btc_assets.lib.trading.journal import _param

    t = pd.Timestamp("2024-02-29 22:00:00.123456789", tz="UTC")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # to_pydatetime would warn "Discarding nonzero nanoseconds"
        got = _param(t)
    assert got == pd.Timestamp("2024-02-29 22:00:00.123456").to_pydatetime() and got.tzinfo is None
    assert _param(pd.Timestamp("2024-02-29 23:00", tz="Europe/Paris")).hour == 22  # naive UTC
