"""The trading process of the Kraken crash tests: one KrakenFuturesBroker.submit against the fake venue (running in
the test's process), with the journal in a DuckDB file, that can be told to die at one point of the submission with
os._exit — no exception, no finally block, no DuckDB checkpoint or close, as a SIGKILL or an OOM kill leaves it.

The tests start `run` as a multiprocessing forkserver process (the server has imported this module, so a child
starts in milliseconds). It exits 0 after a submit that sent the order, NOTHING_SENT when the journal already had it
done, and KILLED when the kill point is reached. Kill points wrap the broker's own objects in this process only
(test code; the product has no fault hooks):
- {"at": "append", "event": "ACK", "nth": 2}: right after the 2nd ACK event is written to the journal;
- {"at": "before" | "after", "method": "POST", "path": "/derivatives/api/v3/sendorder", "nth": 1}: just before
  the 1st such request is sent, or right after its reply arrived (the exchange accepted it) and before the broker
  reads it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import duckdb
import pandas as pd

from btc_assets.lib.trading.brokers.kraken import KrakenExecution, KrakenFuturesBroker
from btc_assets.lib.trading.brokers.kraken_rest import KrakenRest
from btc_assets.lib.trading.journal import Journal, OrderEvent

KILLED = 86  # the exit code of a process that reached its kill point (the tests check it did)
NOTHING_SENT = 3
KEY = "crash-kraken-key-0123"
SECRET = "Y3Jhc2gta3Jha2VuLXNlY3JldC00NTY3LWNyYXNoLWtyYWtlbi1zZWNyZXQ="  # base64, as Kraken issues them
# Short quotes: a few 10 ms polls per quote keep each child run well under a second of trading.
CONFIG = KrakenExecution(requote_after_s=0.03, poll_s=0.01, maker_tries=3)


def _die() -> None:
    os._exit(KILLED)


def _counter(nth: int) -> Callable[[], bool]:
    seen = [0]

    def hit() -> bool:
        seen[0] += 1
        return seen[0] == nth
    return hit


def install_kill(broker: KrakenFuturesBroker, kill: dict) -> None:
    """Wrap the broker's journal append or REST call so that the process dies at `kill`."""
    hit = _counter(int(kill.get("nth", 1)))
    if kill["at"] == "append":
        append = broker.journal.append

        def dying_append(ev: OrderEvent) -> None:
            append(ev)
            if ev.event == kill["event"] and hit():
                _die()
        broker.journal.append = dying_append  # type: ignore[method-assign]
        return
    call = broker.rest.call

    def dying_call(method: str, path: str, send, *, idempotent: bool):
        armed = method == kill["method"] and path == kill["path"] and hit()
        if armed and kill["at"] == "before":
            _die()
        reply = call(method, path, send, idempotent=idempotent)
        if armed and kill["at"] == "after":
            _die()
        return reply
    broker.rest.call = dying_call  # type: ignore[method-assign]


def main(spec: dict) -> bool:
    rest = KrakenRest(KEY, SECRET, spec["url"], env={"BTC_TRADING_MODE": "testnet"},
                      timeout_s=float(spec.get("timeout_s", 5.0)), backoff_s=0.01)
    conn = duckdb.connect(spec["journal"])
    broker = KrakenFuturesBroker(rest, Journal(conn), spec["run_id"], CONFIG)
    if spec.get("kill"):
        install_kill(broker, spec["kill"])
    broker.start()
    sent = broker.submit(spec["cid"], pd.Timestamp(spec["bar"]), spec["side"], float(spec["qty"]))
    conn.close()
    return sent


def run(spec: dict) -> None:
    """The process entry point: output to spec["log"] (the test shows it when the child fails), then main."""
    with open(spec["log"], "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    sys.exit(0 if main(spec) else NOTHING_SENT)
