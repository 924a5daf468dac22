"""The kill switch: when engaged, cancel every open order, flatten the position and stop deciding.

It is engaged by any of: a file (default `$BTC_DATA_DIR/KILL`, so `touch data/KILL` stops trading without a deploy),
the environment variable BTC_KILL_SWITCH set to anything but 0/false/empty, or a failed blocking check upstream
(bad data or a model that must not trade). Flattening is a reduce-only market order through the same broker, with
the deterministic client order id `<strategy>-<bar>-kill`, so a retried run never flattens twice.

Once engaged it stays engaged (latched in the journal table trading.kill_switch) until a person clears it with
`btc-assets kill --clear`, journaled with who and why: a cause that goes away by itself (a reconciliation that
matches again, a file removed) never restarts trading on its own.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.journal import client_order_id
from btc_assets.lib.trading.notify import Notifier

ENV_VAR = "BTC_KILL_SWITCH"
LATCH = "trading.kill_switch"
LATCH_TYPES = {"event_time": "TIMESTAMP", "event": "VARCHAR", "reasons": "VARCHAR", "actor": "VARCHAR",
               "run_id": "VARCHAR"}


def _latch_table(conn: duckdb.DuckDBPyConnection) -> None:
    from btc_assets.lib.storage.warehouse import ensure_table

    ensure_table(conn, LATCH, LATCH_TYPES)


def latched(conn: duckdb.DuckDBPyConnection) -> str | None:
    """Why the kill switch is still engaged (its last ENGAGED event, not cleared since), None if it is not."""
    _latch_table(conn)
    row = conn.execute(f"SELECT event, event_time, reasons FROM {LATCH} ORDER BY event_time DESC, rowid DESC LIMIT 1").fetchall()
    if not row or row[0][0] != "ENGAGED":
        return None
    return (f"kill switch engaged at {row[0][1]:%Y-%m-%d %H:%M:%S} UTC ({row[0][2]}) and held until a person "
            "clears it: btc-assets kill --clear --reason '...'")


def latch(conn: duckdb.DuckDBPyConnection, reasons: Sequence[str], run_id: str = "", by: str = "trading run") -> bool:
    """Journal ENGAGED with the reasons unless already engaged; True if it was newly engaged."""
    if latched(conn) is not None:
        return False
    conn.execute(f"INSERT INTO {LATCH} VALUES (?, 'ENGAGED', ?, ?, ?)",
                 [pd.Timestamp.now(tz="UTC").tz_localize(None), "; ".join(reasons)[:1000], by, run_id])
    return True


def clear(conn: duckdb.DuckDBPyConnection, reason: str, by: str | None = None) -> bool:
    """A person clears the engaged kill switch (journaled CLEARED with who and why); False if it was not engaged."""
    if not reason.strip():
        raise ValueError("btc-assets kill --clear needs --reason: say why trading may resume (journaled)")
    if latched(conn) is None:
        return False
    conn.execute(f"INSERT INTO {LATCH} VALUES (?, 'CLEARED', ?, ?, '')",
                 [pd.Timestamp.now(tz="UTC").tz_localize(None), reason[:1000], by or getpass.getuser()])
    return True


@dataclass(frozen=True)
class KillSwitch:
    file: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def reasons(self, failed_checks: Sequence[str] = ()) -> list[str]:
        """Why trading must stop now (empty: it may go on)."""
        out = []
        if self.file is not None and self.file.exists():
            text = self.file.read_text(errors="replace").strip()[:200]
            out.append(f"kill file {self.file} exists" + (f": {text}" if text else ""))
        flag = self.env.get(ENV_VAR, "").strip().lower()
        if flag not in ("", "0", "false", "no"):
            out.append(f"{ENV_VAR}={flag}")
        out += [f"blocking check failed upstream: {c}" for c in failed_checks]
        return out


@dataclass(frozen=True)
class KillReport:
    reasons: list[str]
    position_before: float
    flatten_order: str | None
    alerted: bool


def stop_trading(broker: Broker, reasons: list[str], *, strategy: str, bar_time: pd.Timestamp,
                 notifier: Notifier, step: float = 0.001) -> KillReport:
    """Cancel all open orders, send one reduce-to-flat market order, and alert. Safe to call again."""
    broker.cancel_all()
    position = broker.position()
    order_id = None
    if abs(position) >= step / 2:
        order_id = client_order_id(strategy, bar_time, "kill")
        # a reduce-only market order at once: no post-only quotes once the protection is cancelled
        broker.submit(order_id, bar_time, "SELL" if position > 0 else "BUY", abs(position), reduce_only=True)
    alerted = notifier.send("kill switch engaged", f"{strategy}: {'; '.join(reasons)}\n"
                            f"open orders cancelled; position {position:+.3f} BTC "
                            f"{'flattened by ' + order_id if order_id else 'was already flat'}", level="critical")
    return KillReport(reasons, position, order_id, alerted)
