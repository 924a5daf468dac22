"""The decision step's memory of the journal between the trading worker's runs (defs/trading/decisions.py): used only
while the journal is exactly as this process saw or wrote it, read again as soon as anything else changed it."""

import duckdb
import pandas as pd
import pytest

from btc_assets.defs.trading import decisions
from btc_assets.lib.trading.journal import Journal

T0 = pd.Timestamp("2024-01-11 00:00", tz="UTC")


def rows(first: int, signals: list[int], paused: bool = False) -> pd.DataFrame:
    times = [T0 + pd.Timedelta(minutes=first + i) for i in range(len(signals))]
    return pd.DataFrame({"decision_id": [f"s-{int(t.timestamp())}-decision" for t in times], "bar_time": times,
                         "decided_at": times, "signal": signals, "breaker_paused": paused, "action": "hold"})


@pytest.fixture
def journal(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield Journal(conn)
    conn.close()


def decide(journal: Journal, new: pd.DataFrame, session=T0) -> pd.Series:
    """One run as decide_bars does it: the state, the session's signals, then the decisions recorded."""
    state = decisions.journal_state(journal.conn)
    signals = decisions.journaled_signals(journal.conn, state, session, new)
    journal.record_decisions(new)
    return signals


def test_the_state_of_an_empty_and_a_filled_journal(journal):
    empty = decisions.journal_state(journal.conn)
    assert (empty.rows, empty.first, empty.last, empty.paused_last, empty.registry) == (0, None, None, False, None)
    journal.record_decisions(rows(0, [0, 2, 1]))
    journal.record_decisions(rows(3, [2], paused=True))
    s = decisions.journal_state(journal.conn)
    assert (s.rows, s.first, s.last, s.paused_last, s.signal_sum) == (4, T0, T0 + pd.Timedelta(minutes=3), True, 5)


def test_the_live_case_reads_nothing_and_any_other_writer_makes_it_read_again(journal, monkeypatch):
    assert decide(journal, rows(0, [1, 2])).tolist() == [1, 2]  # first run: read (nothing journaled yet)
    reads = []
    real = decisions.session_signals
    monkeypatch.setattr(decisions, "session_signals", lambda *a: reads.append(a) or real(*a))
    assert decide(journal, rows(2, [0])).tolist() == [1, 2, 0]  # the journal as this process left it: memory
    assert decide(journal, rows(3, [2])).tolist() == [1, 2, 0, 2]
    assert reads == []
    # another process journals a bar: the count differs, the signals are read again and include it
    Journal(journal.conn).record_decisions(rows(4, [0]))
    assert decide(journal, rows(5, [1])).tolist() == [1, 2, 0, 2, 0, 1]
    assert len(reads) == 1
    # the same count and last bar but another signal (a replaced file): the signals' sum differs, read again
    journal.conn.execute("UPDATE trading.decisions SET signal = 2 WHERE bar_time = ?",
                         [(T0 + pd.Timedelta(minutes=4)).tz_localize(None)])
    assert decide(journal, rows(6, [1])).tolist() == [1, 2, 0, 2, 2, 1, 1]
    assert len(reads) == 2
    # a recorded run that failed to write (the memory expects its rows): read again
    state = decisions.journal_state(journal.conn)
    decisions.journaled_signals(journal.conn, state, T0, rows(7, [2]))  # not recorded
    assert decide(journal, rows(7, [0])).tolist() == [1, 2, 0, 2, 2, 1, 1, 0]
    assert len(reads) == 3


def test_a_later_session_start_is_served_from_memory_an_earlier_one_is_read(journal, monkeypatch):
    decide(journal, rows(0, [1, 2, 0]))
    reads = []
    real = decisions.session_signals
    monkeypatch.setattr(decisions, "session_signals", lambda *a: reads.append(a) or real(*a))
    later = T0 + pd.Timedelta(minutes=2)
    assert decide(journal, rows(3, [2]), session=later).tolist() == [0, 2]
    assert reads == []
    assert decide(journal, rows(4, [1]), session=T0).tolist() == [1, 2, 0, 2, 1]  # earlier than held: read
    assert len(reads) == 1


def test_bar_range_needs_no_query_when_the_bars_are_after_the_last_decided(journal):
    journal.record_decisions(rows(0, [1, 1]))
    state = decisions.journal_state(journal.conn)
    assert state.last == T0 + pd.Timedelta(minutes=1)
    calls = []
    journal.decided_bars = lambda *a: calls.append(a) or set()
    ctx = type("C", (), {})()
    ctx.partition_time_window = (T0.floor("D"), T0.floor("D") + pd.Timedelta(days=1))
    ctx.run = type("R", (), {"tags": {"btc/bars_from": str(T0 + pd.Timedelta(minutes=2)),
                                      "btc/bars_to": str(T0 + pd.Timedelta(minutes=3))}})()
    assert decisions.bar_range(ctx, journal, state) == [T0 + pd.Timedelta(minutes=m) for m in (2, 3)]
    assert calls == []
    ctx.run.tags = {"btc/bars_from": str(T0 + pd.Timedelta(minutes=1)), "btc/bars_to": str(T0 + pd.Timedelta(minutes=3))}
    decisions.bar_range(ctx, journal, state)  # a bar at or before the last decided one: the journal is asked
    assert len(calls) == 1
