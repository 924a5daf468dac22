"""The kill switch: engaged by a file, an env var or a failed check; cancels, flattens once, alerts."""

import pandas as pd
import pytest

from btc_assets.lib.trading import trader
from btc_assets.lib.trading.brokers.paper import PaperBroker
from btc_assets.lib.trading.kill_switch import KillSwitch, stop_trading
from btc_assets.lib.trading.notify import Notifier
from btc_assets_tests.lib.trading.brokers.conftest import make_session

T0 = pd.Timestamp("2024-02-29 22:00", tz="UTC")


def test_reasons_from_file_env_and_checks(tmp_path):
    kill = tmp_path / "KILL"
    assert KillSwitch(kill, env={}).reasons() == []
    assert KillSwitch(kill, env={"BTC_KILL_SWITCH": "0"}).reasons() == []
    kill.write_text("funding spike, stop now")
    env = {"BTC_KILL_SWITCH": "1"}
    reasons = KillSwitch(kill, env=env).reasons(["silver/klines_1m: klines_1m_has_every_minute"])
    assert len(reasons) == 3 and "funding spike" in reasons[0] and "BTC_KILL_SWITCH=1" in reasons[1]
    assert "klines_1m_has_every_minute" in reasons[2]


def test_paper_cancel_flatten_once(journal):
    broker = PaperBroker(journal, taker_fee=0.0005, run_id="r", strategy="s")
    entry = trader.entry_id("s", T0 - pd.Timedelta(minutes=5))
    broker.submit(entry, T0 - pd.Timedelta(minutes=5), "BUY", 0.02)
    opened = trader.Opened((T0 - pd.Timedelta(minutes=4)).isoformat(), 1, 0.02, 100.0, 98.0, 104.0)
    broker.settle(trader.BarPlan(T0 - pd.Timedelta(minutes=4), "hold", 0, 0.0, 0.0, None, (), (), False, 0.0, 0.0,
                                 opened))
    broker.submit("pending", T0 - pd.Timedelta(minutes=1), "BUY", 0.01)  # not filled yet
    report = stop_trading(broker, ["test"], strategy="s", bar_time=T0, notifier=Notifier())
    assert report.position_before == pytest.approx(0.02) and report.flatten_order
    states = journal.orders().set_index("client_order_id")["event"].to_dict()
    assert states["pending"] == "CANCELED" and states[report.flatten_order] == "NEW"
    assert states[trader.protective_id(entry, "stop")] == "CANCELED"  # the stop must not fire after the flatten
    broker.fill_unplanned(lambda t: 101.0)
    assert journal.position() == pytest.approx(0.0)
    again = stop_trading(broker, ["test"], strategy="s", bar_time=T0, notifier=Notifier())
    assert again.flatten_order is None  # already flat: nothing more is sent


def test_binance_cancel_and_flatten_on_the_fake_exchange(fx, journal):
    s = make_session(fx, journal)
    s.broker.start()
    s.broker.submit("open-long", T0, "BUY", 0.01)
    assert s.broker.position() == pytest.approx(0.01)
    report = stop_trading(s.broker, ["BTC_KILL_SWITCH=1"], strategy="s", bar_time=T0 + pd.Timedelta(minutes=1),
                          notifier=Notifier())
    assert report.flatten_order and s.broker.position() == pytest.approx(0.0)
