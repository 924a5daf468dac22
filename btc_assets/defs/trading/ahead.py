"""The trading worker's order path, ahead of Dagster's run: a bar's orders leave before the run is created.

A Dagster run costs a few hundred milliseconds before its step starts (the run's creation with its planned events,
then the run, engine, resource and step events written to the instance's storage). An order that waits for them is
acknowledged half a second or more after its bar's close. So the trading worker (`make trade`,
cli/replay.trade_forever), for each run the live sensor requests:

1. picks the run's id;
2. does the run's step work -- live bars, decisions, orders: `trade_bars`, the very functions the step runs --
   under that id (journal rows and exchange orders carry it), on a warehouse connection it opened before the bar
   closed;
3. executes the run with that id. Its step finds the prepared results (`take`) and records them: the three
   assets' materializations, the orders checks, the per-bar observations, the log lines and the alerts. In the UI
   it is an ordinary run of trading_job with the same lineage (trading/orders downstream of the model and the
   bars); its log says which lines were written before the run.

If the worker dies between 2 and 3, the journal holds what was done and no run exists for the run key: the
restarted worker asks for the same bars again (its cursor was not advanced), their decisions are reported from the
journal, and the orders step resumes by client order id as after any crash (a late entry is skipped by age).
The Dagster daemon's sensor path (`dagster dev` with the sensor on) has no worker: its runs do the work in the step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import dagster as dg

log = logging.getLogger("btc_assets.trading")
STEP_RESOURCES = ("warehouse", "live_feed", "streams", "mlflow", "trading", "notifier")


@dataclass
class Prepared:
    """A run's step work done by the worker before the run: its results, decisions, log lines and error."""

    results: list
    decided: Any
    log_lines: list[tuple[str, str]] = field(default_factory=list)
    error: BaseException | None = None
    seconds: float = 0.0


_PREPARED: dict[str, Prepared] = {}  # by run id: filled by OrderPath.prepare, emptied by the run's step


def take(run_id: str) -> Prepared | None:
    """The work prepared for this run by the worker in this process (None: the step does it itself)."""
    return _PREPARED.pop(run_id, None)


class _Lines:
    """context.log for the work before the run: to the process's log now, to the run's log once it exists."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _add(self, level: str, msg: str) -> None:
        self.lines.append((level, str(msg)))
        getattr(log, level)(msg)

    def debug(self, msg) -> None:
        self._add("debug", msg)

    def info(self, msg) -> None:
        self._add("info", msg)

    def warning(self, msg) -> None:
        self._add("warning", msg)

    def error(self, msg) -> None:
        self._add("error", msg)


@dataclass
class StepContext:
    """What the step's functions read from their context, for a run that does not exist yet: its id and tags,
    partition and time window, the instance, the selected assets (all three) and the log."""

    instance: dg.DagsterInstance
    run: SimpleNamespace
    partition_key: str
    partition_time_window: tuple
    selected_asset_keys: set
    log: _Lines


class OrderPath:
    """The worker's step work for the runs it is about to execute: the step's resources built once, the warehouse
    connection opened before a bar closes (`connect`) and closed between bars (`disconnect`, so other processes can
    write the warehouse)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self._stack = contextlib.ExitStack()
        self._conn_stack: contextlib.ExitStack | None = None
        self.resources = None
        self.conn = None

    def __enter__(self) -> "OrderPath":
        available = dict(self.defs.resources or {})
        missing = [n for n in STEP_RESOURCES if n not in available]
        if missing:
            raise ValueError(f"the trading worker needs the resources {missing} in its Definitions")
        self.resources = self._stack.enter_context(
            dg.build_resources({n: available[n] for n in STEP_RESOURCES}, instance=self.instance))
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
        self._stack.close()

    def connect(self) -> None:
        if self.conn is None:
            self._conn_stack = contextlib.ExitStack()
            self.conn = self._conn_stack.enter_context(self.resources.warehouse.get_connection())

    def disconnect(self) -> None:
        if self._conn_stack is not None:
            self._conn_stack.close()
        self._conn_stack, self.conn = None, None

    def prepare(self, job: dg.JobDefinition, partition_key: str, run_id: str, tags: dict) -> Prepared:
        """Do the step's work of the run `run_id` (partition, tags) now; the run's step records it."""
        from btc_assets.defs.trading.assets import Work, trade_bars
        from btc_assets.defs.trading.specs import DECISIONS, LIVE_BARS, ORDERS

        t0 = time.perf_counter()
        window = job.partitions_def.time_window_for_partition_key(partition_key)
        ctx = StepContext(self.instance, SimpleNamespace(run_id=run_id, tags=dict(tags)), partition_key,
                          (window.start, window.end), {LIVE_BARS.key, DECISIONS.key, ORDERS.key}, _Lines())
        r = self.resources
        work, error = Work(), None
        try:
            self.connect()
            trade_bars(ctx, self.conn, r.warehouse, r.live_feed, r.streams, r.mlflow, r.trading, r.notifier, work)
        except Exception as e:  # noqa: BLE001 - recorded by the run's step, which fails with it
            error = e
        prepared = Prepared(work.results, work.decided, ctx.log.lines, error, time.perf_counter() - t0)
        _PREPARED[run_id] = prepared
        return prepared
