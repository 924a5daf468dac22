"""The trading journal on a local S3 API (moto): mirrored by day of bar_time, rebuilt row for row by restore(),
and never thinned by a mirror run from a DuckDB file that lost rows (the order events are append-only)."""

import boto3
import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading.journal import DECISIONS, ORDER_EVENTS, Journal, OrderEvent, mirror_journal
from btc_assets.lib.storage.table_mirror import S3TableMirror, mirroring, restore
from btc_assets.lib.storage.warehouse import replace_window

D1 = pd.Timestamp("2024-01-01", tz="UTC")
DAY, M = pd.Timedelta(days=1), pd.Timedelta(minutes=1)


@pytest.fixture()
def mirror(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    return S3TableMirror(client, "btc-assets-test", prefix=f"jm-{pd.Timestamp.now().value}")


def decisions(bars, requested=True):
    return pd.DataFrame([{
        "decision_id": f"s-{int(t.timestamp())}-decision", "bar_time": t, "decided_at": t + M + pd.Timedelta(seconds=1),
        "run_id": "r1", "model_version": "xgb/3", "p_sell": 0.2, "p_hold": 0.3, "p_buy": 0.5, "signal": 2,
        "target_position": 0.01, "price": 42000.5 + i, "requested_at": (t + M) if requested else None,
    } for i, t in enumerate(bars)])


def trade(journal, bar, qty=0.01, note=""):
    oid = f"s-{int(bar.timestamp())}-entry"
    journal.append(OrderEvent(oid, "NEW", bar, "BUY", qty, None, 0.0, "paper", "r1", note))
    journal.append(OrderEvent(oid, "FILLED", bar, "BUY", qty, 42001.0, 0.0168, "paper", "r1", note))


def table(conn, name):
    return conn.execute(f"SELECT * FROM {name} ORDER BY ALL").df()


def objects(mirror):
    listing = mirror.client.list_objects_v2(Bucket=mirror.bucket, Prefix=mirror.prefix)
    return sorted(o["Key"].removeprefix(mirror.prefix + "/") for o in listing.get("Contents", []))


def test_journal_mirrored_by_day_and_restored_row_for_row(tmp_path, mirror):
    path = tmp_path / "warehouse.duckdb"
    conn = duckdb.connect(str(path))
    journal = Journal(conn)
    bars = [D1 + 23 * pd.Timedelta(hours=1) + 58 * M, D1 + DAY - M, D1 + DAY, D1 + DAY + 5 * M]  # across midnight
    journal.record_decisions(decisions(bars[:1], requested=False))  # a manual run: requested_at is NULL
    journal.record_decisions(decisions(bars[1:]))
    for bar in bars:
        trade(journal, bar, note="it's" if bar == bars[0] else "")
    journal.append(OrderEvent("s-x-exit", "REJECTED", bars[-1], "SELL", 0.01, None, 0.0, "paper", "r1", "-2019"))
    # a warehouse table written through replace_window shares the mirror: restore brings back both kinds
    with mirroring(mirror):
        replace_window(conn, "silver.k", {"open_time": "TIMESTAMP", "close": "DOUBLE"},
                       pd.DataFrame({"open_time": [D1], "close": [1.0]}), "open_time", D1, D1 + DAY)

    # the bar range of one run, anywhere inside its days: both whole days are mirrored
    written = mirror_journal(conn, mirror, bars[0], bars[-1])
    assert written == {DECISIONS: 4, ORDER_EVENTS: 9}
    assert objects(mirror) == [
        "silver/k/date=2024-01-01.parquet",
        "trading/decisions/date=2024-01-01.parquet", "trading/decisions/date=2024-01-02.parquet",
        "trading/order_events/date=2024-01-01.parquet", "trading/order_events/date=2024-01-02.parquet"]
    before = {t: table(conn, t) for t in (DECISIONS, ORDER_EVENTS)}
    position = journal.position()
    conn.close()
    path.unlink()  # the volume is gone

    fresh = duckdb.connect(str(path))
    assert restore(fresh, mirror) == {"silver.k": 1, DECISIONS: 4, ORDER_EVENTS: 9}
    for name, frame in before.items():
        pd.testing.assert_frame_equal(table(fresh, name), frame, check_dtype=True)
    restored = Journal(fresh)  # the trader carries on from the restored journal
    assert restored.position() == pytest.approx(position)
    assert restored.decided_bars(D1, D1 + 2 * DAY) == set(bars)


def test_remirroring_keeps_every_event_even_from_a_duckdb_that_lost_rows(tmp_path, mirror, caplog):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    journal = Journal(conn)
    journal.record_decisions(decisions([D1 + 10 * M]))
    trade(journal, D1 + 10 * M)
    assert mirror_journal(conn, mirror, D1, D1 + DAY) == {DECISIONS: 1, ORDER_EVENTS: 2}
    key = mirror.key(ORDER_EVENTS, D1.tz_localize(None))
    first = mirror.client.get_object(Bucket=mirror.bucket, Key=key)["Body"].read()
    assert mirror_journal(conn, mirror, D1, D1 + DAY) == {DECISIONS: 1, ORDER_EVENTS: 2}  # idempotent
    assert mirror.client.get_object(Bucket=mirror.bucket, Key=key)["Body"].read() == first

    trade(journal, D1 + 11 * M)  # appended later the same day: the day's object is replaced with all four
    assert mirror_journal(conn, mirror, D1 + 11 * M, D1 + 12 * M) == {DECISIONS: 1, ORDER_EVENTS: 4}

    # a new, empty DuckDB (volume replaced, restore forgotten) journals one more order and mirrors the day
    lost = duckdb.connect(str(tmp_path / "b.duckdb"))
    j2 = Journal(lost)
    j2.record_decisions(decisions([D1 + 10 * M, D1 + 12 * M]))  # bar 10 decided again: same decision_id
    trade(j2, D1 + 12 * M)
    with caplog.at_level("WARNING"):
        assert mirror_journal(lost, mirror, D1, D1 + DAY) == {DECISIONS: 2, ORDER_EVENTS: 6}
    assert "S3 holds 4 rows that DuckDB lacks" in caplog.text

    rebuilt = duckdb.connect(str(tmp_path / "c.duckdb"))
    assert restore(rebuilt, mirror) == {DECISIONS: 2, ORDER_EVENTS: 6}
    expected = pd.concat([table(conn, ORDER_EVENTS), table(lost, ORDER_EVENTS)])
    pd.testing.assert_frame_equal(table(rebuilt, ORDER_EVENTS),
                                  expected.sort_values(list(expected.columns)).reset_index(drop=True))
    assert Journal(rebuilt).position() == pytest.approx(0.03)


def test_an_object_older_than_a_column_is_merged_with_nulls(tmp_path, mirror):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    conn.execute("CREATE SCHEMA trading")
    conn.execute(f"CREATE TABLE {ORDER_EVENTS} (client_order_id VARCHAR, event VARCHAR, bar_time TIMESTAMP)")
    conn.execute(f"INSERT INTO {ORDER_EVENTS} VALUES ('o1', 'NEW', '2024-01-01 00:03')")
    mirror_journal(conn, mirror, D1, D1 + DAY)
    Journal(conn)  # the journal's columns arrive (null in the old row); a new event carries them
    trade(Journal(conn), D1 + 4 * M)
    assert mirror_journal(conn, mirror, D1, D1 + DAY)[ORDER_EVENTS] == 3
    rebuilt = duckdb.connect(str(tmp_path / "b.duckdb"))
    restore(rebuilt, mirror)
    pd.testing.assert_frame_equal(table(rebuilt, ORDER_EVENTS), table(conn, ORDER_EVENTS))


def test_without_a_mirror_nothing_is_written(tmp_path, mirror):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    assert mirror_journal(conn, None, D1, D1 + DAY) == {}
    with pytest.raises(ValueError, match="before it starts"):
        mirror_journal(conn, mirror, D1 + DAY, D1)
    assert objects(mirror) == []


def test_the_journal_is_appended_to_its_delta_tables_and_never_thinned_or_rewritten(tmp_path):
    from btc_assets.lib.storage.lakehouse import Lakehouse
    from btc_assets.lib.trading.journal import journal_to_lakehouse

    lake = Lakehouse(str(tmp_path / "lakehouse"))
    assert journal_to_lakehouse(duckdb.connect(), None, D1, D1 + DAY) == {}  # no lakehouse: nothing
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    journal = Journal(conn)
    journal.record_decisions(decisions([D1 + 10 * M, D1 + DAY + M]))  # two days
    trade(journal, D1 + 10 * M)
    assert journal_to_lakehouse(conn, lake, D1 + 10 * M, D1 + DAY + 2 * M, note={"run_id": "r1"}) == {
        DECISIONS: 2, ORDER_EVENTS: 2}
    versions = {t: lake.version(t) for t in (DECISIONS, ORDER_EVENTS)}
    assert journal_to_lakehouse(conn, lake, D1, D1 + DAY) == {DECISIONS: 0, ORDER_EVENTS: 0}  # nothing new:
    assert {t: lake.version(t) for t in versions} == versions  # no commit at all
    assert lake.history(ORDER_EVENTS, limit=1)[0]["note"] == {"run_id": "r1"}
    # a new, empty DuckDB (volume replaced, restore forgotten) decides bar 10 again with other numbers and trades
    lost = duckdb.connect(str(tmp_path / "b.duckdb"))
    j2 = Journal(lost)
    j2.record_decisions(decisions([D1 + 10 * M]).assign(price=1.0))
    trade(j2, D1 + 12 * M)
    assert journal_to_lakehouse(lost, lake, D1, D1 + DAY) == {DECISIONS: 0, ORDER_EVENTS: 2}
    got = lake.read_window(ORDER_EVENTS, "bar_time", D1, D1 + 2 * DAY)
    assert len(got) == 4 and sorted(got["client_order_id"].unique()) == [
        f"s-{int((D1 + 10 * M).timestamp())}-entry", f"s-{int((D1 + 12 * M).timestamp())}-entry"]
    kept = lake.read_window(DECISIONS, "bar_time", D1, D1 + 2 * DAY)
    assert len(kept) == 2 and kept["price"].iloc[0] == 42000.5  # the first decision of bar 10 stays as it was
    assert {h["operation"] for h in lake.history(DECISIONS)} <= {"CREATE TABLE", "MERGE"}


def test_the_kill_switch_latch_and_the_account_equity_are_appended_to_delta_too(tmp_path):
    from btc_assets.lib.storage.lakehouse import Lakehouse
    from btc_assets.lib.trading import kill_switch
    from btc_assets.lib.trading.journal import events_to_lakehouse, journal_to_lakehouse
    from btc_assets.lib.trading.session import EQUITY, account_breaker

    lake = Lakehouse(str(tmp_path / "lakehouse"))
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    assert events_to_lakehouse(conn, lake) == {}  # neither table exists yet: nothing to append
    now = pd.Timestamp.now(tz="UTC")
    account_breaker(conn, "paper", 10_000.0, now - pd.Timedelta(days=5), 0.05, 0.15, "old")  # outside the window
    account_breaker(conn, "paper", 10_000.0, now - pd.Timedelta(minutes=2), 0.05, 0.15, "r1")
    account_breaker(conn, "paper", 9_990.0, now - pd.Timedelta(minutes=1), 0.05, 0.15, "r2")
    assert kill_switch.latch(conn, ["reconciliation failed"], "r2")
    Journal(conn).record_decisions(decisions([D1 + M]))
    got = journal_to_lakehouse(conn, lake, D1, D1 + DAY)  # every trading run appends the events with the journal
    assert got[kill_switch.LATCH] == 1 and got[EQUITY] == 2 and got[DECISIONS] == 1
    assert kill_switch.clear(conn, "exchange and journal agree again", by="ops")
    assert events_to_lakehouse(conn, lake) == {kill_switch.LATCH: 1, EQUITY: 0}  # only what is new
    version = lake.version(EQUITY)
    assert events_to_lakehouse(conn, lake) == {kill_switch.LATCH: 0, EQUITY: 0} and lake.version(EQUITY) == version
    far, soon = pd.Timestamp("2000-01-01", tz="UTC"), now + DAY
    latch = lake.read_window(kill_switch.LATCH, "event_time", far, soon).sort_values("event_time")
    assert list(latch["event"]) == ["ENGAGED", "CLEARED"] and list(latch["actor"]) == ["trading run", "ops"]
    assert sorted(lake.read_window(EQUITY, "event_time", far, soon)["run_id"]) == ["r1", "r2"]
