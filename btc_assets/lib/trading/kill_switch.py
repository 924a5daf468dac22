"""The kill switch: when engaged, cancel every open order, flatten the position and stop deciding.

It is engaged by any of: a file (default `$BTC_DATA_DIR/KILL`, so `touch data/KILL` stops trading without a deploy),
the environment variable BTC_KILL_SWITCH set to anything but 0/false/empty, or a failed blocking check upstream
(bad data or a model that must not trade). Flattening is an ordinary order through the same broker, with the
deterministic client order id `<strategy>-<bar>-kill`, so a retried run never flattens twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from btc_assets.lib.trading.brokers.base import Broker
from btc_assets.lib.trading.journal import client_order_id
from btc_assets.lib.trading.notify import Notifier

ENV_VAR = "BTC_KILL_SWITCH"


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
        broker.submit(order_id, bar_time, "SELL" if position > 0 else "BUY", abs(position))
    alerted = notifier.send("kill switch engaged", f"{strategy}: {'; '.join(reasons)}\n"
                            f"open orders cancelled; position {position:+.3f} BTC "
                            f"{'flattened by ' + order_id if order_id else 'was already flat'}", level="critical")
    return KillReport(reasons, position, order_id, alerted)
