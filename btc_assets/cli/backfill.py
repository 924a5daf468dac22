"""`btc-assets backfill`: the data layers (and, asked for, the weekly models) over any date range, in chunks of days,
with a progress bar, against the persistent Dagster instance (every run and materialization shows in the UI).

Two stages, because a day's labels look into the next day: bronze -> silver for every chunk first, then gold
(features, which look back over their warm-up, and labels) chunk by chunk. Each chunk is one single-run backfill
(one Dagster run for its days). Funding and the long 1h/1d history are monthly: one run each. Weekly models take
the whole range of weeks in one run (BackfillPolicy.single_run).

With `--workers N` the runs go to N worker processes, each run in its own process as Dagster's run launchers start
them, N at a time, each as soon as what it reads is done (a gold chunk: the monthly data and the bronze -> silver
chunks of its warm-up and of its next day; `needs`). No pool queues them: each
asset holds the DuckDB warehouse only to read its inputs and to write its result (a run that finds it held waits,
defs/resources/storage.py), and the Delta commits of different days need no lock at all.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, TextIO

KLINES = [["bronze", "klines_1m"], ["silver", "klines_1m"], ["silver", "klines_5m"], ["silver", "klines_15m"],
          ["silver", "klines_1h"], ["silver", "klines_4h"], ["silver", "klines_1d"]]
MARKET_SILVER = ["agg_trades", "order_flow_1m", "book_depth", "metrics", "mark_price_1m", "index_price_1m",
                 "premium_index_1m"]
GOLD = [["gold", "features"], ["gold", "labels"]]
FUNDING = [["bronze", "funding_rates"], ["silver", "funding_rates"]]
HISTORY = [["bronze", "klines_history"], ["silver", "klines_1h_history"], ["silver", "klines_1d_history"]]
WEEKLY_MODELS = [["models", n] for n in ("xgb_model", "lstm_model", "transformer_model", "ensemble")]
DATASETS = ("klines", "funding", "history", "market")


@dataclass(frozen=True)
class Step:
    """One Dagster run of the backfill: these assets over the partition range [first, last]."""

    label: str
    keys: tuple[tuple[str, ...], ...]
    first: str
    last: str
    days: int = 0  # the days it fills (0: monthly or weekly)
    stage: int = 0  # 0: bronze -> silver (and the monthly data), 1: gold, 2: the weekly models (what a run
    #                 reads: `needs`)


def chunks(start: dt.date, end: dt.date, chunk_days: int) -> list[tuple[dt.date, dt.date]]:
    out, day = [], start
    while day <= end:
        last = min(day + dt.timedelta(days=chunk_days - 1), end)
        out.append((day, last))
        day = last + dt.timedelta(days=1)
    return out


def _keys(keys) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(k) for k in keys)


def plan(start: dt.date, end: dt.date, datasets: tuple[str, ...], chunk_days: int, models: bool,
         first_day: dt.date, last_day: dt.date, weeks: list[str], months: list[str],
         history_months: list[str], model_history_days: int = 13) -> list[Step]:
    """The runs of a backfill, in order. `first_day`/`last_day`: the daily partitions that exist (the configured
    archive's span); `weeks`, `months`, `history_months`: the weekly/monthly partition keys (for the models, the
    funding and the long history); `model_history_days`: the days of the range a week's model needs before its
    Monday (its minimum training days and the features' warm-up). Raises ValueError naming the setting when the
    range cannot be run."""
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    if chunk_days < 1:
        raise ValueError(f"--chunk-days {chunk_days}: give 1 or more days per run")
    if start < first_day or end > last_day:
        raise ValueError(f"{start}..{end} is not inside the daily partitions {first_day}..{last_day}: change "
                         "--start/--end, or BTC_PARTITIONS_START/BTC_PARTITIONS_END (the partitions start at the first "
                         "day the configured archive has)")
    from btc_assets.lib.data.market.datasets import DATASETS as MARKET_BRONZE

    steps: list[Step] = []
    month_keys = [m for m in months if f"{start:%Y-%m}-01" <= m <= f"{end:%Y-%m}-01"]
    if "funding" in datasets and month_keys:
        steps.append(Step(f"funding {month_keys[0][:7]}..{month_keys[-1][:7]}", _keys(FUNDING), month_keys[0],
                          month_keys[-1]))
    spans = chunks(start, end, chunk_days)
    for a, b in spans:
        n = (b - a).days + 1
        steps.append(Step(f"klines bronze->silver {a}..{b}", _keys(KLINES), a.isoformat(), b.isoformat(), n))
    if "history" in datasets and history_months:
        steps.append(Step(f"long 1h/1d history {history_months[0][:7]}..{history_months[-1][:7]}", _keys(HISTORY),
                          history_months[0], history_months[-1]))
    if "market" in datasets:
        market = [["bronze", n] for n in MARKET_BRONZE] + [["silver", n] for n in MARKET_SILVER]
        for a, b in spans:
            steps.append(Step(f"market bronze->silver {a}..{b}", _keys(market), a.isoformat(), b.isoformat(),
                              (b - a).days + 1))
    for a, b in spans:
        steps.append(Step(f"gold features+labels {a}..{b}", _keys(GOLD), a.isoformat(), b.isoformat(),
                          (b - a).days + 1, stage=1))
    if models:
        first_monday = (start + dt.timedelta(days=model_history_days)).isoformat()
        chosen = [w for w in weeks if first_monday <= w <= end.isoformat()]
        if not chosen:
            raise ValueError(f"--models: no Monday within {start}..{end} has {model_history_days} days of the range "
                             "before it (a weekly model trains on the days before its Monday); extend --end")
        n = len(chosen)
        steps.append(Step(f"weekly models {chosen[0]}..{chosen[-1]} ({n} week{'s' * (n > 1)}, 1 run)",
                          _keys(WEEKLY_MODELS), chosen[0], chosen[-1], stage=2))
    return steps


def bar(done: int, total: int, width: int = 24) -> str:
    filled = int(round(width * done / total)) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def needs(steps: list[Step], i: int, lookback_days: int) -> set[int]:
    """The steps that must be done before steps[i] starts: a gold chunk needs the monthly data and every
    bronze -> silver chunk from `lookback_days` before it (its features' warm-up) to the day after it (its
    labels); the models need everything before them; a bronze -> silver chunk needs nothing."""
    s = steps[i]
    if s.stage == 0:
        return set()
    if s.stage == 1:
        lo = (dt.date.fromisoformat(s.first) - dt.timedelta(days=lookback_days)).isoformat()
        hi = (dt.date.fromisoformat(s.last) + dt.timedelta(days=1)).isoformat()
        return {j for j, o in enumerate(steps) if o.stage == 0 and (not o.days or (o.first <= hi and o.last >= lo))}
    return {j for j, o in enumerate(steps) if o.stage < s.stage}


def _priority(s: Step) -> tuple:
    """Which ready run starts first: the monthly data, then day order (a gold chunk as soon as it can), the longer
    run first among runs of the same days (market data takes about 3x the klines)."""
    weight = 3 if s.label.startswith("market") else 1
    return (0 if not s.days and s.stage == 0 else 1, s.stage == 2, s.first, -s.stage, -weight)


def run(steps: list[Step], execute: Callable[[Step], tuple[bool, str]], out: TextIO = sys.stderr,
        workers: int = 1, submit: Callable[[Step], Future] | None = None, lookback_days: int = 35) -> int:
    """Run the steps, a progress line after each (bar, step, its time, elapsed, an estimate of what is left from
    the days per second so far). Stops at the first failed run and says which, and what was done.

    workers = 1: in order, through `execute`. workers > 1: through `submit` (a future per run), at most `workers`
    running, each run once the runs it reads are done (`needs`, with the gold features' `lookback_days`); after a
    failure nothing new starts and the runs already started are waited for."""
    total = len(steps)
    t0, day_s, days_done, done = time.perf_counter(), 0.0, 0, 0
    days_total = sum(s.days for s in steps)

    def finished(s: Step, ok: bool, run_id: str, took: float) -> bool:
        nonlocal day_s, days_done, done
        if not ok:
            print(f"btc-assets backfill: {s.label} failed (run {run_id}): see `make ui` -> Runs. Done before it: "
                  f"{done} of {total} runs; run the same command again to go on (finished partitions are replaced "
                  "by the same data)", file=out, flush=True)
            return False
        done += 1
        if s.days:
            day_s += took
            days_done += s.days
        wall = time.perf_counter() - t0
        # sequential: the daily runs' own time per day; in parallel: wall time per day (runs overlap)
        rate = ((day_s if workers == 1 else wall) / days_done) if days_done else 0.0
        left = (days_total - days_done) * rate
        eta = f", about {_clock(left)} left in the daily runs" if 0 < days_done < days_total else ""
        print(f"{bar(done, total)} {done}/{total}  {s.label}: {took:.1f} s (run {run_id[:8]}); elapsed "
              f"{_clock(wall)}{eta}", file=out, flush=True)
        return True

    if workers == 1:
        for i, s in enumerate(steps, 1):
            t = time.perf_counter()
            print(f"{bar(i - 1, total)} {i - 1}/{total}  running: {s.label}", file=out, flush=True)
            ok, run_id = execute(s)
            if not finished(s, ok, run_id, time.perf_counter() - t):
                return 1
    else:
        assert submit is not None, "workers > 1 needs submit"
        order = sorted(range(total), key=lambda i: _priority(steps[i]))
        deps = {i: needs(steps, i, lookback_days) for i in range(total)}
        ok_done: set[int] = set()
        running: dict[Future, tuple[int, float]] = {}
        failed = False
        while order or running:
            ready = [i for i in order if deps[i] <= ok_done]
            while ready and len(running) < workers and not failed:
                i = ready.pop(0)
                order.remove(i)
                running[submit(steps[i])] = (i, time.perf_counter())
                print(f"{bar(done, total)} {done}/{total}  started: {steps[i].label} ({len(running)} running)",
                      file=out, flush=True)
            if not running:
                break
            finished_now, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished_now:
                i, t = running.pop(fut)
                try:
                    ok, run_id = fut.result()
                except Exception as exc:  # the worker process itself died (not a failed run)
                    ok, run_id = False, f"none: the worker failed: {type(exc).__name__}: {exc}"
                if failed:
                    continue
                if finished(steps[i], ok, run_id, time.perf_counter() - t):
                    ok_done.add(i)
                else:
                    failed = True  # nothing new starts; the runs already started finish
        if failed:
            return 1
    print(f"backfill done: {total} runs in {_clock(time.perf_counter() - t0)}", file=out, flush=True)
    return 0


def _job_of(keys: tuple[tuple[str, ...], ...]):
    import dagster as dg

    from btc_assets.definitions import defs

    return defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(list(k)) for k in keys})


_QUIET = False


def execute_step(s: Step, label: str) -> tuple[bool, str]:
    """One step as one Dagster run in this process, against the persistent instance (DAGSTER_HOME)."""
    import dagster as dg

    from btc_assets.cli import in_process
    from btc_assets.cli.settings import run_logs

    _quiet_once()
    res = in_process.execute(_job_of(s.keys), dg.DagsterInstance.get(), run_config=run_logs(), raise_on_error=False,
                             tags={"dagster/asset_partition_range_start": s.first,
                                   "dagster/asset_partition_range_end": s.last,
                                   "dagster/max_retries": "0", "btc/backfill": label})
    return res.success, res.run_id


def _quiet_once() -> None:
    """The command line's output settings, once per process (a worker is a fresh interpreter)."""
    global _QUIET
    if not _QUIET:
        from btc_assets.cli.settings import quiet_libraries, quiet_mlflow_prints

        quiet_libraries()
        quiet_mlflow_prints()
        _QUIET = True


def _warm() -> None:
    """A worker's start: the definitions imported while the parent plans (not in the first run's time)."""
    _quiet_once()
    import btc_assets.definitions  # noqa: F401


def backfill(start: dt.date, end: dt.date, datasets: tuple[str, ...], chunk_days: int, models: bool,
             out: TextIO = sys.stderr, workers: int = 1) -> int:
    """Plan from the project's partitions and run each step against the persistent instance: in this process
    (workers = 1) or in `workers` worker processes (then this process only schedules: the plan is made by a
    worker, which has the definitions loaded anyway)."""
    label = f"{start}..{end}"
    if workers == 1:
        steps, error, lookback = make_plan(start, end, datasets, chunk_days, models)
        if error:
            print(f"btc-assets backfill: {error}", file=out)
            return 2
        _say(start, end, datasets, chunk_days, models, steps, workers, out)
        return run(steps, lambda s: execute_step(s, label), out)
    # spawn: a fresh interpreter per worker (no forked DuckDB, Dagster or torch state), as a run launcher starts one
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        planned = pool.submit(make_plan, start, end, datasets, chunk_days, models, True)
        for _ in range(workers - 1):
            pool.submit(_warm)  # the other workers import the definitions meanwhile
        steps, error, lookback = planned.result()
        if error:
            print(f"btc-assets backfill: {error}", file=out)
            return 2
        _say(start, end, datasets, chunk_days, models, steps, workers, out)
        return run(steps, lambda s: execute_step(s, label), out, workers=workers,
                   submit=lambda s: pool.submit(execute_step, s, label), lookback_days=lookback)


def _say(start, end, datasets, chunk_days, models, steps, workers, out) -> None:
    print(f"backfill {start}..{end}: datasets {', '.join(datasets)}; {len(steps)} runs "
          f"({chunk_days} days per run" + (f", up to {workers} at once" if workers > 1 else "") + ")"
          + ("; then the weekly models" if models else ""), file=out, flush=True)


def make_plan(start: dt.date, end: dt.date, datasets: tuple[str, ...], chunk_days: int, models: bool,
              init_instance: bool = False) -> tuple[list[Step], str, int]:
    """(steps, "" or why the range cannot run, the gold features' look-back in days) from the project's
    partitions; `init_instance`: create the instance's storage now (once, before workers record runs in it)."""
    _warm()
    import dagster as dg

    from btc_assets.defs import partitions
    from btc_assets.defs.models.assets import XgbTrainingConfig

    lookback = 2 * partitions.WARMUP_DAYS + 1  # gold reads twice its warm-up (the warm-up check's history)
    days = partitions.daily.get_partition_keys()
    if not days:
        return [], "no daily partitions (BTC_PARTITIONS_START/BTC_PARTITIONS_END)", lookback
    try:
        steps = plan(start, end, datasets, chunk_days, models, dt.date.fromisoformat(days[0]),
                     dt.date.fromisoformat(days[-1]), partitions.weekly.get_partition_keys(),
                     partitions.monthly.get_partition_keys(), partitions.history_monthly.get_partition_keys(),
                     model_history_days=XgbTrainingConfig().min_train_days + 3)
    except ValueError as e:
        return [], f"{e}; nothing was run", lookback
    if init_instance:
        dg.DagsterInstance.get().get_runs(limit=1)
    return steps, "", lookback
