"""A trading process killed mid-order (os._exit or SIGKILL in a real child process, journal in a DuckDB file on
disk) and restarted with the same decision: nothing lost, nothing traded twice, the journal readable after the crash.

Each run is a separate process forked from a multiprocessing forkserver that has imported the broker (so it
starts in milliseconds); it dies by os._exit inside the process (crash_child.py) or by SIGKILL from here.
The fake exchange runs in this process and outlives the children; its replay moves one bar each time a resting
order is polled (when `market.fills`), so post-only quotes fill on their first poll, or never (then the remainder
goes MARKET). After each crash the journal is read read-only, which replays DuckDB's write-ahead log without
checkpointing it, so the restarted process recovers from the same log.
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import signal
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.trading.brokers.binance import leg_id
from btc_assets.lib.trading.brokers.binance_rest import BinanceRest
from btc_assets_tests.fakes.binance import RunningFakeExchange, run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.trading.journal import Journal, client_order_id
from btc_assets_tests.lib.trading.brokers import crash_child
from btc_assets_tests.lib.trading.brokers.crash_child import KEY, KILLED, NOTHING_SENT, SECRET

PROCESSES = multiprocessing.get_context("forkserver")
PROCESSES.set_forkserver_preload([crash_child.__name__])
BAR = pd.Timestamp("2024-01-01 00:05", tz="UTC")
CID = client_order_id("xgb_next3m", BAR, "entry")
QTY = 0.01
ORDER = ("POST", "/fapi/v1/order")


class Market:
    """The fake exchange whose market moves on (one bar) whenever a resting order is polled, if `fills`."""

    def __init__(self, fx: RunningFakeExchange):
        self.fx, self.fills = fx, True
        query, *rest = fx.app.routes[("GET", "/fapi/v1/order")]

        def query_while_time_passes(ex, p):
            if self.fills and ex.find(p.get("orderId"), p.get("origClientOrderId")).status == "NEW":
                ex.advance()  # the next bar trades through a quote at the touch
            return query(ex, p)
        fx.app.routes[("GET", "/fapi/v1/order")] = (query_while_time_passes, *rest)

    def legs(self) -> dict[str, tuple[str, float]]:
        return {o.client_order_id: (o.status, o.executed_qty) for o in self.fx.exchange.orders.values()}


@pytest.fixture()
def market():
    with run_in_thread(synthetic_bars(300, drift=1.0), KEY, SECRET) as fx:
        yield Market(fx)


def start(market: Market, journal: Path, run_id: str, side: str = "BUY", kill: dict | None = None):
    """The trading process, submitting the decision (CID, BUY or SELL QTY) with its journal at `journal`."""
    spec = {"url": market.fx.rest_url, "journal": str(journal), "log": str(journal.with_suffix(".log")),
            "run_id": run_id, "cid": CID, "bar": BAR.isoformat(), "side": side, "qty": QTY, "kill": kill}
    child = PROCESSES.Process(target=crash_child.run, args=(spec,), name=f"trader-{run_id}")
    child.start()
    return child


def finished(child) -> int:
    child.join(timeout=60)
    if child.exitcode is None:
        child.kill()
        pytest.fail(f"{child.name} still running after 60 s (killed)")
    return child.exitcode


def output(journal: Path) -> str:
    return journal.with_suffix(".log").read_text() if journal.with_suffix(".log").exists() else ""


def crash(market: Market, journal: Path, kill: dict, side: str = "BUY") -> None:
    """Run the trading process until it dies at `kill` (it must get there)."""
    code = finished(start(market, journal, "run-1", side, kill))
    assert code == KILLED, f"the child did not reach its kill point {kill} (exit {code}):\n{output(journal)}"


def restart(market: Market, journal: Path, side: str = "BUY", run_id: str = "run-2") -> bool:
    """A new process, same journal, same decision: what a retried run does. Returns whether it sent anything."""
    code = finished(start(market, journal, run_id, side))
    assert code in (0, NOTHING_SENT), f"the restarted run failed (exit {code}):\n{output(journal)}"
    return code == 0


def events(journal: Path) -> pd.DataFrame:
    """The journal's order events, as a reader sees them after the crash (WAL replayed, not checkpointed)."""
    with duckdb.connect(str(journal), read_only=True) as conn:
        return conn.execute("SELECT * FROM trading.order_events ORDER BY rowid").df()


def assert_traded_once(market: Market, journal: Path, side: str = "BUY", refused: int = 0) -> None:
    """The exchange traded QTY once, every leg it knows is journaled with its final state, one FILLED at the end."""
    legs = market.legs()
    assert all(c.startswith(CID) for c in legs), legs
    assert sum(q for _, q in legs.values()) == pytest.approx(QTY), legs
    # nothing was sent twice: one POST per leg the exchange holds, plus the ones it refused before taking effect
    assert market.fx.faults.requests.count(ORDER) == len(legs) + refused
    rest = BinanceRest(KEY, SECRET, market.fx.rest_url, env={"BTC_TRADING_MODE": "testnet"})
    history = rest.call("GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"})
    assert sum(float(o["executedQty"]) for o in history) == pytest.approx(QTY)
    (pos,) = rest.call("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    assert float(pos["positionAmt"]) == pytest.approx(QTY if side == "BUY" else -QTY)

    ev = events(journal)
    assert (ev["client_order_id"] == CID).all()
    assert (ev["event"] == "NEW").sum() == 1 and ev["event"].iloc[0] == "NEW"
    assert (ev["event"] == "FILLED").sum() == 1 and ev["event"].iloc[-1] == "FILLED", ev["event"].tolist()
    filled = ev.iloc[-1]
    notional = sum(o.cum_quote for o in market.fx.exchange.orders.values())
    assert (filled["side"], filled["qty"]) == (side, pytest.approx(QTY))
    assert filled["price"] == pytest.approx(notional / QTY)
    acks = {}  # leg -> its last journaled state: a retried run may restate a leg, never contradict it
    for note, qty in ev.loc[ev["event"] == "ACK", ["note", "qty"]].itertuples(index=False):
        leg, status = re.match(r"leg (\S+): (\w+) ", note).groups()
        acks[leg] = (status, qty)
    assert acks == {leg: (status, pytest.approx(q)) for leg, (status, q) in legs.items()}


def finish_and_check(market: Market, journal: Path, side: str = "BUY", refused: int = 0) -> None:
    assert Path(f"{journal}.wal").exists()  # the crash left the log unapplied: the restart has to recover it
    assert restart(market, journal, side)
    assert_traded_once(market, journal, side, refused)


# -- (a) killed after NEW is journaled, before the order request is sent -------------------------------------------
@pytest.mark.parametrize("kill", [{"at": "append", "event": "NEW"}, {"at": "before", "method": "POST",
                                                                      "path": "/fapi/v1/order"}],
                         ids=["right-after-NEW", "just-before-POST"])
def test_killed_after_new_before_the_order_is_sent(market, tmp_path, kill):
    journal = tmp_path / "journal.duckdb"
    crash(market, journal, kill)
    assert events(journal)["event"].tolist() == ["NEW"] and market.legs() == {}
    finish_and_check(market, journal)
    assert not restart(market, journal, run_id="run-3")  # a third run: filled in the journal, nothing sent
    assert market.fx.faults.requests.count(ORDER) == 1


# -- (b) killed after the exchange accepted the order, before its reply is read ------------------------------------
@pytest.mark.parametrize(("fills", "nth", "side", "on_exchange", "journaled"), [
    (True, 1, "BUY", {"m0": "NEW"}, ["NEW"]),  # a quote resting on the book
    (False, 4, "SELL", {"m0": "CANCELED", "m1": "CANCELED", "m2": "CANCELED", "mk": "FILLED"},
     ["NEW", "ACK", "ACK", "ACK"]),  # the market remainder, already traded
], ids=["maker-quote", "market-remainder"])
def test_killed_after_the_exchange_accepted_before_the_reply_is_read(market, tmp_path, fills, nth, side,
                                                                     on_exchange, journaled):
    journal = tmp_path / "journal.duckdb"
    market.fills = fills
    crash(market, journal, {"at": "after", "method": "POST", "path": "/fapi/v1/order", "nth": nth}, side)
    assert {c: s for c, (s, _) in market.legs().items()} == {leg_id(CID, k): s for k, s in on_exchange.items()}
    assert events(journal)["event"].tolist() == journaled
    finish_and_check(market, journal, side)


def test_sigkilled_while_the_acknowledgement_is_in_flight(market, tmp_path):
    journal = tmp_path / "journal.duckdb"
    market.fx.faults.timeout(1.0, apply_first=True, method="POST", path="/fapi/v1/order")  # accepted, reply late
    child = start(market, journal, "run-1")
    deadline = time.monotonic() + 30
    while leg_id(CID, "m0") not in market.fx.exchange.by_client_id:
        assert child.is_alive() and time.monotonic() < deadline, f"no quote was placed:\n{output(journal)}"
        time.sleep(0.01)
    child.kill()  # SIGKILL while it waits for the reply
    assert finished(child) == -signal.SIGKILL
    assert events(journal)["event"].tolist() == ["NEW"]
    finish_and_check(market, journal)


# -- (c) killed after a leg is journaled (ACK), before FILLED; and between maker quotes -----------------------------
@pytest.mark.parametrize(("fills", "kill", "journaled"), [
    (True, {"at": "append", "event": "ACK", "nth": 1}, ["NEW", "ACK"]),  # the quote filled
    (False, {"at": "append", "event": "ACK", "nth": 4}, ["NEW", "ACK", "ACK", "ACK", "ACK"]),  # market leg filled
    (False, {"at": "append", "event": "ACK", "nth": 1}, ["NEW", "ACK"]),  # quote 0 cancelled, quote 1 not placed
    (False, {"at": "after", "method": "DELETE", "path": "/fapi/v1/order", "nth": 1}, ["NEW"]),  # cancel not journaled
], ids=["ack-of-filled-quote", "ack-of-market-leg", "ack-of-cancelled-quote", "right-after-cancel"])
def test_killed_between_legs_or_before_filled(market, tmp_path, fills, kill, journaled):
    journal = tmp_path / "journal.duckdb"
    market.fills = fills
    crash(market, journal, kill)
    assert events(journal)["event"].tolist() == journaled
    finish_and_check(market, journal)


def test_a_restart_does_not_quote_again_a_leg_the_exchange_refused(market, tmp_path):
    """Quote 0 is refused post-only (the book moved), quote 1 fills, the process dies before FILLED: the restart
    must not place quote 0 now, on top of quote 1's fill."""
    journal = tmp_path / "journal.duckdb"
    market.fx.faults.error(-5022, "Due to the order could not be executed as maker, the Post Only order will be "
                           "rejected.", method="POST", path="/fapi/v1/order")
    crash(market, journal, {"at": "append", "event": "ACK", "nth": 1})
    assert market.legs() == {leg_id(CID, "m1"): ("FILLED", QTY)}
    finish_and_check(market, journal, refused=1)


def test_an_order_killed_after_its_first_leg_still_counts_in_the_journaled_position(market, tmp_path):
    """Until the restart finishes it, the crashed order is open (NEW, its full quantity) for the next bar's sizing:
    a leg's ACK is not the order's state (its qty is that leg's fill, 0 for a cancelled quote)."""
    journal = tmp_path / "journal.duckdb"
    market.fills = False
    crash(market, journal, {"at": "append", "event": "ACK", "nth": 1})  # quote 0 cancelled unfilled
    copy = tmp_path / "copy.duckdb"  # a writable copy (Journal() may migrate), this one left for the restart's WAL
    shutil.copy(journal, copy)
    shutil.copy(f"{journal}.wal", f"{copy}.wal")
    with duckdb.connect(str(copy)) as conn:
        j = Journal(conn)
        assert j.orders()[["client_order_id", "event", "qty"]].values.tolist() == [[CID, "NEW", QTY]]
    finish_and_check(market, journal)
