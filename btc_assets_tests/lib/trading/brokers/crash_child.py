"""The trading process of the crash tests: one BinanceBroker.submit against the fake exchange, with the journal in
a DuckDB file, that can be told to die at one point of the submission with os._exit — no exception, no finally
block, no DuckDB checkpoint or close, as a SIGKILL or an OOM kill leaves a process.

The tests start it with `run` as a multiprocessing forkserver process (the server has imported this module, so a
child starts in milliseconds instead of the ~2 s the Binance SDK takes to import); by hand it runs as
`python -m btc_assets_tests.lib.trading.brokers.crash_child '<json spec>'` from the repository root. It exits 0 after a
submit that sent the order, NOTHING_SENT when the journal already had it filled, and KILLED when the kill point is
reached. The kill point wraps the broker's own objects in this process only (test code; production code has no
fault hooks):
- {"at": "append", "event": "ACK", "nth": 2}: right after the 2nd ACK event is written to the journal;
- {"at": "before" | "after", "method": "POST", "path": "/fapi/v1/order", "nth": 1}: just before the 1st such
  request is sent, or right after its reply arrived and before the broker reads it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

import duckdb
import pandas as pd

from btc_assets.lib.trading.brokers.binance import BinanceBroker, ExecutionConfig
from btc_assets.lib.trading.brokers.binance_rest import BinanceRest
from btc_assets.lib.trading.journal import Journal, OrderEvent

KILLED = 86  # the exit code of a process that reached its kill point (the tests check it did)
NOTHING_SENT = 3
KEY, SECRET = "crash-key-0123", "crash-secret-4567"
# Short quotes: a few 10 ms polls per quote keep each child run well under a second of trading.
CONFIG = ExecutionConfig(requote_after_s=0.03, poll_s=0.01, maker_tries=3)


def _die() -> None:
    os._exit(KILLED)


def _counter(nth: int) -> Callable[[], bool]:
    seen = [0]

    def hit() -> bool:
        seen[0] += 1
        return seen[0] == nth
    return hit


def install_kill(broker: BinanceBroker, kill: dict) -> None:
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

    def dying_call(method: str, path: str, params: dict | None = None, signed: bool = True):
        armed = method == kill["method"] and path == kill["path"] and hit()
        if armed and kill["at"] == "before":
            _die()
        reply = call(method, path, params, signed)
        if armed and kill["at"] == "after":
            _die()
        return reply
    broker.rest.call = dying_call  # type: ignore[method-assign]


def main(spec: dict) -> bool:
    rest = BinanceRest(KEY, SECRET, spec["url"], env={"BTC_TRADING_MODE": "testnet"},
                       timeout_ms=int(spec.get("timeout_ms", 5_000)))
    conn = duckdb.connect(spec["journal"])
    broker = BinanceBroker(rest, Journal(conn), spec["run_id"], CONFIG)
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


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
