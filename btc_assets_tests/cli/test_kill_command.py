"""`btc-assets kill` engages the kill switch (held until cleared) and `btc-assets kill --clear --reason` clears it,
both journaled in the warehouse; clearing without a reason is refused."""

import duckdb
import pandas as pd
import pytest

from btc_assets.cli.main import main


def test_kill_and_clear_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BTC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("BTC_ENV", raising=False)
    assert main(["kill", "--reason", "exchange maintenance"]) == 0
    assert "held until btc-assets kill --clear" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs --reason"):
        main(["kill", "--clear"])
    assert main(["kill", "--clear", "--reason", "maintenance over"]) == 0
    assert "cleared" in capsys.readouterr().out
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        rows = conn.execute("SELECT event, reasons FROM trading.kill_switch ORDER BY event_time").fetchall()
    assert rows == [("ENGAGED", "engaged by hand: exchange maintenance"), ("CLEARED", "maintenance over")]


def test_with_a_lakehouse_every_engagement_and_clearing_is_in_its_delta_table_at_once(tmp_path, monkeypatch):
    from btc_assets.lib.storage.lakehouse import Lakehouse
    from btc_assets.lib.trading.kill_switch import LATCH

    monkeypatch.setenv("BTC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BTC_LAKEHOUSE_URI", str(tmp_path / "lakehouse"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("BTC_ENV", raising=False)
    assert main(["kill", "--reason", "exchange maintenance"]) == 0
    assert main(["kill", "--clear", "--reason", "maintenance over"]) == 0
    lake = Lakehouse(str(tmp_path / "lakehouse"))
    got = lake.read_window(LATCH, "event_time", pd.Timestamp("2000-01-01", tz="UTC"),
                           pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)).sort_values("event_time")
    assert list(got["event"]) == ["ENGAGED", "CLEARED"] and got["reasons"].iloc[1] == "maintenance over"
    assert {h["operation"] for h in lake.history(LATCH)} <= {"CREATE TABLE", "MERGE"}  # appended, never rewritten
