"""Protection always: a protective leg the exchange refused is placed again until it is there or the position is
closed; the kill switch flattens reduce-only at market; a latched kill switch holds until cleared."""

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading import kill_switch
from btc_assets.lib.trading.kill_switch import stop_trading
from btc_assets.lib.trading.notify import Notifier
from btc_assets_tests.lib.trading.brokers.conftest import make_session

BAR = pd.Timestamp("2024-01-01 00:00", tz="UTC")
CID = "prot-1704067200-entry"


def test_a_refused_protective_leg_is_placed_again_until_it_is_there(fx, journal):
    s = make_session(fx, journal)
    s.broker.start()
    fx.faults.error(-1008, "server busy", method="POST", path="/fapi/v1/algoOrder", times=2)
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)  # filled, unprotected
    assert s.broker.position() == pytest.approx(0.01)
    assert len(s.broker.reconcile().open_algo_orders) < 2
    legs = journal.open_protective_legs("binance")
    assert set(legs["client_order_id"]) == {f"{CID}-sl", f"{CID}-tp"}  # journaled with their triggers
    placed = s.broker.ensure_protection()
    assert placed and len(s.broker.reconcile().open_algo_orders) == 2
    assert s.broker.ensure_protection() == []  # both there: nothing more to place


def test_the_legs_of_a_flat_account_are_closed_out_not_placed(fx, journal):
    s = make_session(fx, journal)
    s.broker.start()
    fx.faults.error(-1008, "server busy", method="POST", path="/fapi/v1/algoOrder", times=2)
    s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    s.broker.submit("prot-1704067260-exit", BAR + pd.Timedelta(minutes=1), "SELL", 0.01, reduce_only=True)
    assert s.broker.ensure_protection() == []
    assert journal.open_protective_legs("binance").empty


def test_the_kill_switch_flattens_reduce_only_at_market(fx, journal):
    s = make_session(fx, journal)
    s.broker.start()
    s.broker.submit("open-long", BAR, "BUY", 0.01)
    report = stop_trading(s.broker, ["test"], strategy="s", bar_time=BAR + pd.Timedelta(minutes=1),
                          notifier=Notifier())
    flatten = [o for o in fx.exchange.orders.values() if o.client_order_id.startswith(report.flatten_order)]
    assert flatten and all(o.reduce_only and o.type == "MARKET" for o in flatten)  # no post-only quote
    assert s.broker.position() == pytest.approx(0.0)


def test_a_latched_kill_switch_holds_until_a_person_clears_it():
    conn = duckdb.connect()
    assert kill_switch.latched(conn) is None
    assert kill_switch.latch(conn, ["reconciliation failed"], "run-1")
    assert not kill_switch.latch(conn, ["again"], "run-2")  # already engaged: one event
    assert "reconciliation failed" in kill_switch.latched(conn) and "btc-assets kill --clear" in kill_switch.latched(conn)
    with pytest.raises(ValueError, match="needs --reason"):
        kill_switch.clear(conn, "  ")
    assert kill_switch.clear(conn, "exchange position repaired by hand", by="ops")
    assert kill_switch.latched(conn) is None and not kill_switch.clear(conn, "twice")
    assert conn.execute("SELECT event, actor FROM trading.kill_switch ORDER BY event_time").fetchall() == [
        ("ENGAGED", "trading run"), ("CLEARED", "ops")]


def test_leverage_and_margin_are_one_setting_verified_from_the_exchange_every_run(fx, journal):
    s = make_session(fx, journal)
    s.broker.start()
    p = fx.exchange.account.position("BTCUSDT")
    assert (p.leverage, p.margin_type) == (s.broker.config.leverage, s.broker.config.margin_type)
    p.leverage = 10  # changed behind the trader's back (by hand on the exchange)
    again = make_session(fx, journal)
    with pytest.raises(Exception, match="trades at leverage 10 with ISOLATED margin, but the trading settings size "
                                        "for leverage 2"):
        again.broker.start()  # warm start of the same account: still verified


def test_the_rules_size_with_the_exchange_leverage():
    from btc_assets.defs.resources.trading import TradingResource
    t = TradingResource(leverage=3)
    assert t.risk_config().leverage == 3.0
    with pytest.raises(ValueError, match="leverage from 1 to 125"):
        TradingResource(leverage=0)
    assert TradingResource(max_liquidation_probability=0.2).risk_config().max_liq_prob == 0.2
    with pytest.raises(ValueError, match="max_liquidation_probability 2.0: a probability from 0 to 1"):
        TradingResource(max_liquidation_probability=2.0)


def test_entries_are_sized_for_the_account_that_trades_them(fx, journal):
    from btc_assets.lib.trading.session import account_sized
    qty, note = account_sized(0.100, 10_000.0, 5_000.0, 5_000.0, 2.0, 40_000.0, 0.001)
    assert qty == pytest.approx(0.050) and "x0.500" in note  # half the plan's equity: half the size
    qty, note = account_sized(0.100, 10_000.0, 20_000.0, 1_000.0, 2.0, 40_000.0, 0.001)
    assert qty == pytest.approx(0.047) and "capped by available margin" in note  # 1,000 x 2 x 0.95 / 40,000
    s = make_session(fx, journal)
    s.broker.start()
    equity, available = s.broker.account()  # what the exchange reports, not a configured notional
    wallet = fx.exchange.account.wallet
    assert equity == pytest.approx(wallet) and 0 < available <= equity


def test_a_position_the_plan_does_not_hold_is_closed_and_a_missing_one_is_not_opened(fx, journal):
    from btc_assets.lib.trading.session import repair_against_plan
    s = make_session(fx, journal)
    s.broker.start()
    assert repair_against_plan(s.broker, "rep", BAR, 0, 0.001) == ""  # both flat
    s.broker.submit("rep-1704067200-entry", BAR, "BUY", 0.01)
    said = repair_against_plan(s.broker, "rep", BAR + pd.Timedelta(minutes=1), 0, 0.001)  # the plan exited
    assert said.startswith("repaired: the exchange held +0.010 BTC while the plan is flat")
    assert s.broker.position() == pytest.approx(0.0)
    repair = [o for o in fx.exchange.orders.values() if "-repair" in o.client_order_id]
    assert repair and all(o.reduce_only for o in repair)
    before = len(fx.exchange.orders)
    said = repair_against_plan(s.broker, "rep", BAR + pd.Timedelta(minutes=2), 1, 0.001)  # plan long, exchange flat
    assert "not opened now" in said and len(fx.exchange.orders) == before


def test_a_refused_exit_leaves_the_position_protected_and_the_run_going(fx, journal):
    """Found by the soak: the protection was cancelled before the exit was sent, so a refused exit left the position
    naked for good. Now the legs go only once the exit is out, and the refusal does not stop the run."""
    import json
    from types import SimpleNamespace

    from btc_assets.lib.trading import trader
    from btc_assets.lib.trading.session import send_bar_orders
    s = make_session(fx, journal)
    s.broker.start()
    entry_bar = BAR
    cid = trader.entry_id("prot", entry_bar)
    s.broker.submit(cid, entry_bar, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    assert len(s.broker.reconcile().open_algo_orders) == 2
    exit_bar = BAR + pd.Timedelta(minutes=5)
    row = SimpleNamespace(bar_time=exit_bar, action="exit", entry_qty=0.0, stop_distance=0.0,
                          exits=json.dumps([{"entry_time": str(entry_bar + pd.Timedelta(minutes=1)), "reason": "time"}]))
    fx.faults.error(-2019, "injected", method="POST", path="/fapi/v1/order")
    assert send_bar_orders(s.broker, journal, "prot", 0.001, 2.0, row) == 0  # refused, no exception
    assert s.broker.position() == pytest.approx(0.01)
    assert len(s.broker.reconcile().open_algo_orders) == 2  # still protected
    assert not journal.open_protective_legs("binance").empty


def test_an_entry_the_exchange_refuses_is_journaled_and_the_run_goes_on(fx, journal):
    from types import SimpleNamespace

    from btc_assets.lib.trading.session import send_bar_orders
    s = make_session(fx, journal)
    s.broker.start()
    row = SimpleNamespace(bar_time=BAR, action="enter_long", entry_qty=0.01, stop_distance=500.0, exits=None)
    fx.faults.error(-2019, "Margin is insufficient.", method="POST", path="/fapi/v1/order")
    assert send_bar_orders(s.broker, journal, "ref", 0.001, 2.0, row) == 0  # no exception out of the bar
    (state,) = journal.orders()["event"].tolist()
    assert state == "REJECTED" and s.broker.position() == 0.0


def test_protection_moved_to_the_plan_can_be_moved_again(fx, journal):
    """The plan's stop and target move the exchange's legs (-s1/-t1); a later plan price moves them again (-s2/-t2)
    reading the moved legs' journaled triggers, and the old legs are cancelled after the new ones are on."""
    s = make_session(fx, journal)
    s.broker.start()
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    legs = {r.client_order_id: r for r in journal.open_protective_legs("binance").itertuples()}
    first_stop = float(legs[f"{CID}-sl"].note.rsplit("trigger ", 1)[1].split()[0])
    done = s.broker.align_protection(CID, BAR, first_stop - 50.0, first_stop + 2_000.0)
    assert "(the plan's)" in done
    done = s.broker.align_protection(CID, BAR, first_stop - 80.0, first_stop + 2_100.0)
    assert f"{first_stop - 50.0:.1f} -> {first_stop - 80.0:.1f}" in done, done
    open_legs = {a["clientAlgoId"]: float(a["triggerPrice"]) for a in s.broker.reconcile().open_algo_orders}
    assert open_legs == {f"{CID}-s2": pytest.approx(first_stop - 80.0), f"{CID}-t2": pytest.approx(first_stop + 2_100.0)}
    assert s.broker.align_protection(CID, BAR, first_stop - 80.0, first_stop + 2_100.0) == ""  # already the plan's


def test_a_refused_moved_leg_is_placed_again_at_its_moved_trigger(fx, journal):
    s = make_session(fx, journal)
    s.broker.start()
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=2.0)
    stop = float(s.broker.reconcile().open_algo_orders[0]["triggerPrice"])
    fx.faults.error(-1008, "server busy", method="POST", path="/fapi/v1/algoOrder", times=1)
    with pytest.raises(Exception):
        s.broker.align_protection(CID, BAR, stop - 40.0, stop + 3_000.0)  # the new stop is refused
    assert f"{CID}-s1" in s.broker.ensure_protection()  # ... and placed again at its journaled (moved) trigger
    on = {a["clientAlgoId"]: float(a["triggerPrice"]) for a in s.broker.reconcile().open_algo_orders}
    assert on[f"{CID}-s1"] == pytest.approx(stop - 40.0)


def test_an_entry_skipped_once_is_never_sent_on_a_rerun(fx, journal):
    """Found in review: an entry journaled SKIPPED (too late, or below one lot) was taken for a started order on a
    rerun of its bar and sent to the exchange with the skipped quantity."""
    from types import SimpleNamespace

    from btc_assets.lib.trading.session import send_bar_orders
    s = make_session(fx, journal)
    s.broker.start()
    row = SimpleNamespace(bar_time=BAR, action="enter_long", entry_qty=0.01, stop_distance=500.0, exits=None)
    assert send_bar_orders(s.broker, journal, "skp", 0.001, 2.0, row, skip_entry="the bar is 9 min old") == 0
    assert journal.orders()["event"].tolist() == ["SKIPPED"]
    assert send_bar_orders(s.broker, journal, "skp", 0.001, 2.0, row) == 0  # the rerun, no longer told to skip
    assert send_bar_orders(s.broker, journal, "skp", 0.001, 2.0, row, resume_only=True) == 0
    assert journal.orders()["event"].tolist() == ["SKIPPED"]
    assert s.broker.position() == 0.0 and not s.broker.reconcile().open_algo_orders
    # and the broker itself refuses to send an id its journal has skipped
    assert s.broker.submit("skp-1704067200-entry", BAR, "BUY", 0.01) is False
    assert s.broker.position() == 0.0


def test_a_leg_that_fires_while_the_protection_is_moved_keeps_its_fill(fx, journal):
    """Found in a slowed-down live bench: the target fired on the exchange after the run's look at its legs and
    before the protection was moved to the plan's prices. The cancel of the fired leg was refused (-2013) and the
    leg journaled CANCELED anyway: its fill was lost, the journal held a position the exchange did not, and
    reconciliation engaged the kill switch. Now a leg the exchange says fired is left to settle(), which journals
    its fill and cancels what is left (the new legs included)."""
    s = make_session(fx, journal)
    s.broker.start()
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=0.001)
    legs = {r.client_order_id: r for r in journal.open_protective_legs("binance").itertuples()}
    stop = float(legs[f"{CID}-sl"].note.rsplit("trigger ", 1)[1].split()[0])
    fx.exchange.advance()  # the target (0.5 above the fill) fires on the exchange: the position is closed there
    assert fx.exchange.account.position("BTCUSDT").amount == pytest.approx(0.0)
    s.broker.align_protection(CID, BAR, stop - 50.0, stop + 2_000.0)  # the run had not seen it yet
    states = journal.orders().groupby("client_order_id")["event"].last()
    assert states[f"{CID}-tp"] == "FILLED", states.to_dict()
    assert journal.position("binance") == pytest.approx(0.0) == s.broker.position()
    assert s.broker.reconcile().open_algo_orders == [] and journal.open_protective_legs("binance").empty
    assert s.broker.reconcile(expected_position=0.0).matches


def test_a_leg_that_fires_before_a_flat_account_is_cleaned_up_keeps_its_fill(fx, journal):
    """The same race in ensure_protection: the position is flat because a leg fired; that leg is settle()'s (its
    fill), never closed out as CANCELED."""
    s = make_session(fx, journal)
    s.broker.start()
    assert s.broker.submit(CID, BAR, "BUY", 0.01, stop_distance=500.0, take_profit_r=0.001)
    fx.exchange.advance()
    s.broker.ensure_protection()
    s.broker.settle()
    states = journal.orders().groupby("client_order_id")["event"].last()
    assert states[f"{CID}-tp"] == "FILLED" and states[f"{CID}-sl"] == "CANCELED", states.to_dict()
    assert journal.position("binance") == pytest.approx(0.0) == s.broker.position()
