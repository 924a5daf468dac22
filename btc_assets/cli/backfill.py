"""`btc-assets backfill`: the data layers (and, asked for, the weekly models) over any date range, in chunks of days,
with a progress bar, against the persistent Dagster instance (every run and materialization shows in the UI).

Two stages, because a day's labels look into the next day: bronze -> silver for every chunk first, then gold
(features, which look back over their warm-up, and labels) chunk by chunk. Each chunk is one single-run backfill
(one Dagster run for its days). Funding and the long 1h/1d history are monthly: one run each. Weekly models take
the whole range of weeks in one run (BackfillPolicy.single_run).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
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
                          (b - a).days + 1))
    if models:
        first_monday = (start + dt.timedelta(days=model_history_days)).isoformat()
        chosen = [w for w in weeks if first_monday <= w <= end.isoformat()]
        if not chosen:
            raise ValueError(f"--models: no Monday within {start}..{end} has {model_history_days} days of the range "
                             "before it (a weekly model trains on the days before its Monday); extend --end")
        n = len(chosen)
        steps.append(Step(f"weekly models {chosen[0]}..{chosen[-1]} ({n} week{'s' * (n > 1)}, 1 run)",
                          _keys(WEEKLY_MODELS), chosen[0], chosen[-1]))
    return steps


def bar(done: int, total: int, width: int = 24) -> str:
    filled = int(round(width * done / total)) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def run(steps: list[Step], execute: Callable[[Step], tuple[bool, str]], out: TextIO = sys.stderr) -> int:
    """Run the steps in order, a progress line after each (bar, step, its time, elapsed, an estimate of what is
    left from the time per day so far). Stops at the first failed run and says which, and what was done."""
    total = len(steps)
    t0, day_s, days_done = time.perf_counter(), 0.0, 0
    days_total = sum(s.days for s in steps)
    for i, s in enumerate(steps, 1):
        t = time.perf_counter()
        print(f"{bar(i - 1, total)} {i - 1}/{total}  running: {s.label}", file=out, flush=True)
        ok, run_id = execute(s)
        took = time.perf_counter() - t
        if not ok:
            print(f"btc-assets backfill: {s.label} failed (run {run_id}): see `make ui` -> Runs. Done before it: "
                  f"{i - 1} of {total} runs; run the same command again to go on (finished partitions are replaced "
                  "by the same data)", file=out, flush=True)
            return 1
        if s.days:
            day_s += took
            days_done += s.days
        left = (days_total - days_done) * day_s / days_done if days_done else 0.0
        eta = f", about {_clock(left)} left in the daily runs" if 0 < days_done < days_total else ""
        print(f"{bar(i, total)} {i}/{total}  {s.label}: {took:.1f} s (run {run_id[:8]}); elapsed "
              f"{_clock(time.perf_counter() - t0)}{eta}", file=out, flush=True)
    print(f"backfill done: {total} runs in {_clock(time.perf_counter() - t0)}", file=out, flush=True)
    return 0


def backfill(start: dt.date, end: dt.date, datasets: tuple[str, ...], chunk_days: int, models: bool,
             out: TextIO = sys.stderr) -> int:
    """Plan from the project's partitions and run each step in process against the persistent instance."""
    import dagster as dg

    from btc_assets.cli import in_process
    from btc_assets.cli.settings import quiet_mlflow_prints, run_logs
    from btc_assets.defs import partitions
    from btc_assets.definitions import defs

    from btc_assets.defs.models.assets import XgbTrainingConfig

    quiet_mlflow_prints()
    days = partitions.daily.get_partition_keys()
    if not days:
        print("btc-assets backfill: no daily partitions (BTC_PARTITIONS_START/BTC_PARTITIONS_END)", file=out)
        return 2
    try:
        steps = plan(start, end, datasets, chunk_days, models, dt.date.fromisoformat(days[0]),
                     dt.date.fromisoformat(days[-1]), partitions.weekly.get_partition_keys(),
                     partitions.monthly.get_partition_keys(), partitions.history_monthly.get_partition_keys(),
                     model_history_days=XgbTrainingConfig().min_train_days + 3)
    except ValueError as e:
        print(f"btc-assets backfill: {e}; nothing was run", file=out)
        return 2
    instance = dg.DagsterInstance.get()
    job_of = defs.resolve_implicit_global_asset_job_def()

    def execute(s: Step) -> tuple[bool, str]:
        job = job_of.get_subset(asset_selection={dg.AssetKey(list(k)) for k in s.keys})
        res = in_process.execute(job, instance, run_config=run_logs(), raise_on_error=False, tags={
            "dagster/asset_partition_range_start": s.first, "dagster/asset_partition_range_end": s.last,
            "dagster/max_retries": "0", "btc/backfill": f"{start}..{end}"})
        return res.success, res.run_id

    print(f"backfill {start}..{end}: datasets {', '.join(datasets)}; {len(steps)} runs "
          f"({chunk_days} days per run)" + ("; then the weekly models" if models else ""), file=out, flush=True)
    return run(steps, execute, out)
