"""trading/decisions, computed inside the trading_live step: for each closed bar of the run, point-in-time
features -> the promoted model of the bar's week -> signal -> the risk rules' plan from the backtest engine,
journaled in trading.decisions with one AssetObservation per bar."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.defs.trading.market import (
    database_of,
    feature_inputs,
    one_minute,
    live_inputs,
    regime_rules,
    rules_entries,
    rules_inputs,
    tagged_bars,
)
from btc_assets.defs.table_metadata import frame_table
from btc_assets.defs.trading.specs import DECISIONS, REQUESTED_AT
from btc_assets.lib.research.backtest.simulation import decide
from btc_assets.lib.research.features import FEATURES
from btc_assets.lib.research.features.window import WARMUP, features_until, recent_features
from btc_assets.lib.research.labels import CLASS_NAMES, HOLD
from btc_assets.lib.research.models import predict, registry
from btc_assets.lib.trading import trader
from btc_assets.lib.trading.journal import DECISIONS as DECISIONS_TABLE, Journal, client_order_id
from btc_assets.lib.trading.session import SESSION_WARMUP, session_signals, session_start

MINUTE = pd.Timedelta(minutes=1)
NO_MODEL = "none: no promoted model this week (nothing enters)"
RECENT_MAX = 30  # bars a run decides from the shortest history (the live path's new bars); more: the whole window
_SOURCES_OF = {f.name: set(f.sources) for f in FEATURES}


_MODELS: dict = {}  # (database, week, handover) -> (the registry's state, the lookup): the worker's previous runs
# every field of the trading family's registry rows that registry.trading_model reads, as one string
_REGISTRY_STATE = ("SELECT string_agg(concat_ws('|', week_start, family, run_id, model_uri, registered_name, "
                   "model_version, promoted, trained_at, features), ',' ORDER BY week_start, trained_at) FROM {table}")


class JournalState(NamedTuple):
    """What one query tells the decision step about trading.decisions (and the registry) before it decides."""

    rows: int
    first: pd.Timestamp | None  # the first bar ever decided
    last: pd.Timestamp | None  # the last bar decided
    paused_last: bool  # the breaker flag of the last decided bar
    signal_sum: int  # the sum of every journaled signal (with rows and last: is the journal as this process saw it?)
    registry: str | None  # the registry's state (None: no registry table yet)


def journal_state(conn) -> JournalState:
    """One query on the order path: the journal's row count, first and last decided bar and the last bar's breaker
    flag, with the registry's state (week_model looks the week's model up again only when that changed)."""
    table = registry.registry_table(registry.TRADING_FAMILY)
    head = ("SELECT count(*), min(bar_time), max(bar_time), arg_max(breaker_paused, bar_time), "
            "coalesce(sum(signal::BIGINT), 0)")
    try:
        r = conn.execute(f"{head}, ({_REGISTRY_STATE.format(table=table)}) FROM {DECISIONS_TABLE}").fetchone()
    except duckdb.CatalogException:  # no registry table yet
        r = (*conn.execute(f"{head} FROM {DECISIONS_TABLE}").fetchone(), None)
    utc = (lambda t: pd.Timestamp(t, tz="UTC") if t is not None else None)
    return JournalState(int(r[0]), utc(r[1]), utc(r[2]), bool(r[3]) if r[3] is not None else False, int(r[4]),
                        r[5])


@dataclass
class _Signals:
    """The session's journaled signals, kept by the trading worker's process between its runs: valid while the
    journal has exactly the rows this process last saw or wrote (its count and last bar), read again otherwise."""

    rows: int
    last: pd.Timestamp | None
    signal_sum: int
    since: pd.Timestamp  # every journaled bar from this one on is in `signals`
    signals: pd.Series  # bar_time (UTC) -> signal


_SIGNALS: dict[str, _Signals] = {}


def journaled_signals(conn, state: JournalState, session: pd.Timestamp, new: pd.DataFrame) -> pd.Series:
    """session_signals, from this process's memory when the journal is as it last saw it (no query)."""
    key = database_of(conn)
    held = _SIGNALS.get(key)
    new_s = pd.Series(new["signal"].to_numpy(), index=pd.DatetimeIndex(new["bar_time"]))
    if (held is not None and (held.rows, held.last, held.signal_sum) == (state.rows, state.last, state.signal_sum)
            and held.since <= session):
        past = held.signals if held.since == session else held.signals[held.signals.index >= session]
        signals = pd.concat([past, new_s]) if len(past) else new_s
    else:
        signals = session_signals(conn, session, new)
    # what the journal holds once this run's decisions are recorded (the next run's query confirms it)
    last = max([t for t in (state.last, new_s.index.max() if len(new_s) else None) if t is not None], default=None)
    _SIGNALS[key] = _Signals(state.rows + len(new_s), last, state.signal_sum + int(new_s.sum()), session, signals)
    return signals


def week_model(conn, week: pd.Period, handover: str, state: str | None = None):
    """registry.trading_model for the week (promoted only; while the week's model is not trained yet, the previous
    promoted one), or the NoModel it raised. Looked up again only when the registry changed since this process last
    asked (`state`: the registry's state from journal_state; None: read here, one small query)."""
    table = registry.registry_table(registry.TRADING_FAMILY)
    if state is None:
        try:
            state = conn.execute(_REGISTRY_STATE.format(table=table)).fetchone()[0]
        except duckdb.CatalogException:
            state = None
    key = (database_of(conn), str(week), handover)
    hit = _MODELS.get(key)
    if hit is not None and state is not None and hit[0] == state:
        return hit[1]
    try:
        found = registry.trading_model(conn, week.start_time.tz_localize("UTC"), handover=handover)
    except registry.NoModel as e:
        found = e
    _MODELS[key] = (state, found)
    return found


def sources_read(models: list[dict]) -> set[str] | None:
    """The extra tables (beyond the klines) the deciding models' features read (None: every table, for a model that
    does not state its feature list -- trained before it was stored -- or an ensemble, whose members state theirs)."""
    out: set[str] = set()
    for m in models:
        names = m.get("features") or ""
        if not isinstance(names, str) or not names:
            return None
        for n in names.split(","):
            out |= {s for s in _SOURCES_OF.get(n, set()) if not s.startswith("klines_")}
    return out


class Decided(NamedTuple):
    """The decisions of a run. Their materialization and per-bar observations are built once the orders are out
    (off the order path)."""

    describe: Callable[[], dg.MaterializeResult]  # trading/decisions' materialization
    observe: Callable[[], list]  # one AssetObservation per decided bar
    alerts: list  # (title, text) of breaker trips, sent once the orders are out
    features: tuple = ((), None)  # (decision ids, their feature rows): journaled once the orders are out


class Laps:
    """Milliseconds spent in each part of the decision step (its materialization's `step_ms`)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._t = self._t0 = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.ms[part] = self.ms.get(part, 0.0) + (now - self._t) * 1000
        self._t = now

    @property
    def total_s(self) -> float:
        return self._t - self._t0


def bar_range(context: dg.AssetExecutionContext, journal: Journal,
              state: JournalState | None = None) -> list[pd.Timestamp]:
    """The bars this run decides: the tagged range (or every bar of the day in silver), less those already decided
    (no query when `state` says the journal's last bar is before them: the live case)."""
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    tagged = tagged_bars(context)
    if tagged is not None:
        lo, hi = tagged
        if not (start <= lo <= hi < end):
            raise dg.Failure(f"bars {lo}..{hi} are not inside partition {context.partition_key}")
        wanted = list(pd.date_range(lo, hi, freq="1min"))
    else:
        wanted = list(one_minute(journal.conn, start, end, ["open_time"])["open_time"])
    if not wanted:
        return []
    if state is not None and (state.last is None or state.last < wanted[0]):
        return wanted
    done = journal.decided_bars(wanted[0], wanted[-1] + MINUTE)  # a retried run decides nothing twice
    return [t for t in wanted if t not in done]


def decide_bars(context: dg.AssetExecutionContext, journal: Journal, mlflow: MlflowResource,
                trading: TradingResource) -> Decided:
    """trading/decisions (computed in the trading_live step): the plan of each bar of the run, journaled."""
    laps = Laps()
    conn = journal.conn
    state = journal_state(conn)
    bars_to_decide = bar_range(context, journal, state)
    if not bars_to_decide:
        return decided_before(context, journal)
    first, last = bars_to_decide[0], bars_to_decide[-1]
    weeks = pd.DatetimeIndex(bars_to_decide).tz_localize(None).to_period("W-SUN")
    models: dict = {}
    for week in weeks.unique():
        models[week] = week_model(conn, week, trading.model_handover, state.registry)
    laps.lap("bars_and_model")
    if len(bars_to_decide) <= RECENT_MAX:
        # the new bar(s): their rows from the shortest history the features need, not the whole warm-up window
        from_ = first - predict.CONTEXT
        one, higher, since, updated = live_inputs(conn, from_, last + MINUTE, sources_read(
            [m[0] for m in models.values() if not isinstance(m, Exception)]))
        laps.lap("inputs")
        feats = recent_features(one, higher, from_, last + MINUTE, history_start=since)
        history = (f"recent: the shortest history the features need ({len(one)} 1m bars"
                   + (", the previous run's inputs updated with the new bars)" if updated else ", read afresh)"))
    else:  # a backlog or a manual run over a day: the whole window at once
        one, higher = feature_inputs(conn, first - WARMUP, last + MINUTE)
        laps.lap("inputs")
        feats = features_until(one, higher, last + MINUTE)  # time-sorted: rows are found by position, not copied
        history = f"window: the whole warm-up ({len(one)} 1m bars)"
    times = pd.DatetimeIndex(feats["open_time"])
    missing = [t for t in bars_to_decide if t not in times]
    if missing:
        raise dg.Failure(f"bars not in silver or live.klines_1m yet: {', '.join(map(str, missing[:5]))}; "
                         "materialize silver/klines_1m (or trading/live_bars) for them first")
    rows = feats.iloc[times.get_indexer(bars_to_decide)].reset_index(drop=True)
    laps.lap("features")
    frames, infer_ms, unpromoted, handovers = [], [], [], []
    for week, week_rows in rows.groupby(rows["open_time"].dt.tz_localize(None).dt.to_period("W-SUN")):
        found = models[week]
        if isinstance(found, registry.NoModel):
            # Nothing promoted to trade the week (refused, or nothing trained and nothing to hand over): no signal,
            # no entry; the rules still decide the exits of what is open — a missing model never blocks an exit.
            # Stated on every decision of the week (model_version) and in the metadata.
            context.log.warning(str(found))
            unpromoted.append(str(found))
            infer_ms += [0.0] * len(week_rows)
            frames.append(pd.DataFrame({
                "bar_time": week_rows["open_time"].array, "model_version": NO_MODEL,
                "p_sell": float("nan"), "p_hold": float("nan"), "p_buy": float("nan"),
                "signal": np.full(len(week_rows), HOLD, dtype="int8")}))
            continue
        model, handover = found
        if handover:
            context.log.warning(handover)
            handovers.append(handover)
        context_rows = feats.iloc[:times.searchsorted(week_rows["open_time"].min())]
        t0 = time.perf_counter()
        proba, chosen = predict.predict_signal(mlflow, model, week_rows, context_rows)
        infer_ms += [(time.perf_counter() - t0) * 1000 / len(week_rows)] * len(week_rows)
        frames.append(pd.DataFrame({
            "bar_time": week_rows["open_time"].array,
            "model_version": predict.version_label(model) + (f" ({handover})" if handover else ""),
            "p_sell": proba[:, 0], "p_hold": proba[:, 1], "p_buy": proba[:, 2],
            "signal": chosen,
        }))
    new = pd.concat(frames, ignore_index=True)
    laps.lap("inference")
    session = session_start(conn, trading.session_start, first, state.first if state.rows else None)
    signals = journaled_signals(conn, state, session, new)
    k, funding, mark = rules_inputs(conn, session - SESSION_WARMUP, last + MINUTE)
    laps.lap("rules_inputs")
    plans = []
    if state.last is None or state.last < first:  # the live case: the flag of the journal's last bar
        was_paused = [(state.paused_last,)] if state.last is not None else []
    else:
        was_paused = conn.execute("SELECT breaker_paused FROM trading.decisions WHERE bar_time < ? "
                                  "ORDER BY bar_time DESC LIMIT 1", [first.tz_localize(None)]).fetchall()
    # the backtest's regime filter and sizing, on the same forecasts (models/regime_forecast)
    regime = regime_rules(conn, k, rules_entries(signals, k), trading.regime_filter, trading.regime_sizing)
    entries, rules = regime.entries, {**trading.rules(), **regime.rules}
    k_last = k["open_time"].iloc[-1] if len(k) else None
    mark_last = mark["open_time"].max() if mark is not None and len(mark) else None
    for i, t in enumerate(bars_to_decide):
        t0 = time.perf_counter()
        if k_last == t:  # the live case, the session's last bar: the session as it is (no copy)
            k_t, entries_t = k, entries
        else:
            upto = k["open_time"] <= t
            k_t, entries_t = k[upto], entries[upto.to_numpy()]
        mark_t = mark if mark is None or mark_last is None or mark_last <= t else mark[mark["open_time"] <= t]
        res, last_decision = decide(k_t, entries_t, funding, mark=mark_t, **rules)
        plans.append(trader.plan(res, last_decision))
        infer_ms[i] += (time.perf_counter() - t0) * 1000
    laps.lap("rules")
    new = pd.concat([new, pd.DataFrame([p.row() for p in plans])], axis=1)
    new["target_position"] = [p.sim_position for p in plans]  # the rules' net position at this close
    new["price"] = one.set_index("open_time").loc[new["bar_time"], "close"].to_numpy()
    new["decision_id"] = [client_order_id(trading.strategy, t, "decision") for t in new["bar_time"]]
    new["decided_at"] = pd.Timestamp.now(tz="UTC")
    new["decide_ms"] = infer_ms
    requested = context.run.tags.get(REQUESTED_AT)
    new["requested_at"] = pd.Timestamp(float(requested), unit="s", tz="UTC") if requested else pd.NaT
    new["run_id"] = context.run.run_id
    journal.record_decisions(new)
    laps.lap("journal")
    seconds = laps.total_s
    previously = bool(was_paused[0][0]) if was_paused and was_paused[0][0] is not None else False
    alerts = []
    for p in plans:
        if p.paused and not previously:
            alerts.append(("drawdown breaker tripped", f"{trading.strategy}: no new entries from {p.bar_time} "
                           f"(rules' equity {p.sim_equity:,.2f} USDT); it resets at the next UTC day or week"))
        previously = p.paused

    def describe() -> dg.MaterializeResult:
        return dg.MaterializeResult(asset_key=DECISIONS.key, metadata={
            "bars": len(new), "first_bar": str(first), "last_bar": str(last), "session_start": str(session),
            "models": sorted(new["model_version"].unique().tolist()), "feature_history": history,
            "weeks_without_promoted_model": unpromoted, "model_handovers": handovers,
            "signals": {CLASS_NAMES[k]: int(v) for k, v in new["signal"].value_counts().items()},
            "actions": {str(k): int(v) for k, v in new["action"].value_counts().items()},
            "breaker_paused_bars": int(sum(p.paused for p in plans)),
            "decisions": decisions_table(new),
            "decide_ms_p50": float(pd.Series(infer_ms).median()),
            "seconds": round(seconds, 4),  # the decision step, up to its journal row (the orders are sent next)
            "step_ms": {k: round(v, 2) for k, v in laps.ms.items()},
        })

    return Decided(describe, lambda: [_observation(context, row) for row in new.itertuples()], alerts,
                   (list(new["decision_id"]), rows))


def decided_before(context: dg.AssetExecutionContext, journal: Journal) -> Decided:
    """trading/decisions of a run whose bars were all decided already (a retried run, or a trading worker that died
    after deciding, before its run was recorded): the journaled decisions of the run's bars, reported as they are
    (never decided twice). Their per-bar observations are logged when the run that decided them does not exist."""
    tagged = tagged_bars(context)
    if tagged is None:
        return Decided(lambda: dg.MaterializeResult(asset_key=DECISIONS.key, metadata={
            "bars": 0, "note": "nothing new to decide"}), list, [])
    lo, hi = tagged
    rows = journal.conn.execute("SELECT * FROM trading.decisions WHERE bar_time >= ? AND bar_time <= ? "
                                "ORDER BY bar_time", [lo.tz_localize(None), hi.tz_localize(None)]).df()
    runs = sorted(set(rows["run_id"].dropna()))
    orphaned = {r for r in runs if r != context.run.run_id and context.instance.get_run_by_id(r) is None}
    observations = [_observation(context, row) for row in rows.itertuples() if row.run_id in orphaned]
    return Decided(lambda: dg.MaterializeResult(asset_key=DECISIONS.key, metadata={
        "bars": len(rows), "first_bar": str(lo), "last_bar": str(hi),
        "note": f"decided before this run (runs {', '.join(r[:8] for r in runs)}): reported from the journal, "
                "not decided again" + (f"; {len(orphaned)} of them have no Dagster run (the worker stopped after "
                                       "deciding), their per-bar events are logged here" if orphaned else ""),
        "models": sorted(rows["model_version"].dropna().unique().tolist()),
        "decisions": decisions_table(rows.assign(bar_time=pd.to_datetime(rows["bar_time"]).dt.tz_localize("UTC"))),
    }), lambda: observations, [])


def _observation(context, row) -> dg.AssetObservation:
    """The per-bar event of one decision (trading/decisions), labelled by its decision id and bar time."""
    return dg.AssetObservation(
        asset_key=DECISIONS.key, partition=context.partition_key,
        # the event's own time is when it was logged (Dagster sets it); the bar it decides is its label
        description=f"bar {pd.Timestamp(row.bar_time):%Y-%m-%d %H:%M} UTC: {CLASS_NAMES[row.signal]} -> {row.action}",
        metadata={"decision_id": row.decision_id, "bar_time": str(row.bar_time), "signal": CLASS_NAMES[row.signal],
                  "p_buy": float(row.p_buy), "p_sell": float(row.p_sell), "action": row.action,
                  "entry_qty": float(row.entry_qty), "model_version": row.model_version})


DECISIONS_SHOWN = 60


def decisions_table(new: pd.DataFrame) -> dg.MetadataValue:
    """The run's decisions (the last DECISIONS_SHOWN), one row per bar labelled by its bar time, not the run's."""
    cols = ["bar_time", "decision_id", "model_version", "signal", "p_buy", "p_sell", "action", "entry_qty",
            "skip_reason", "breaker_paused"]
    shown = new.reindex(columns=cols).tail(DECISIONS_SHOWN).copy()
    shown["bar_time"] = pd.to_datetime(shown["bar_time"])
    shown["signal"] = shown["signal"].map(lambda v: CLASS_NAMES.get(int(v), str(v)) if pd.notna(v) else "none")
    shown["model_version"] = shown["model_version"].fillna("none (nothing promoted)")
    shown["skip_reason"] = shown["skip_reason"].fillna("")
    return frame_table(shown)
