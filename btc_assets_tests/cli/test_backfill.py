"""`btc-assets backfill`: the plan of runs for a range (chunks, two stages, monthly and weekly steps), refusals that
name the setting, the progress lines, a failed run that stops it and says what was done, and a real backfill of
sample days into a fresh data directory and instance."""

import datetime as dt
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from btc_assets.cli import backfill as bf
from btc_assets.defs.resources.sources import SAMPLE_ARCHIVE

D = dt.date


def plan(start, end, datasets=("klines",), chunk_days=2, models=False):
    weeks = ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]
    return bf.plan(start, end, datasets, chunk_days, models, D(2024, 1, 1), D(2024, 2, 29), weeks,
                   ["2024-01-01", "2024-02-01"], ["2019-10-01", "2019-11-01"])


def test_the_plan_runs_silver_for_every_chunk_before_any_gold():
    steps = plan(D(2024, 1, 1), D(2024, 1, 5))
    labels = [s.label for s in steps]
    assert labels == ["klines bronze->silver 2024-01-01..2024-01-02", "klines bronze->silver 2024-01-03..2024-01-04",
                      "klines bronze->silver 2024-01-05..2024-01-05", "gold features+labels 2024-01-01..2024-01-02",
                      "gold features+labels 2024-01-03..2024-01-04", "gold features+labels 2024-01-05..2024-01-05"]
    assert [(s.first, s.last, s.days) for s in steps[:3]] == [
        ("2024-01-01", "2024-01-02", 2), ("2024-01-03", "2024-01-04", 2), ("2024-01-05", "2024-01-05", 1)]
    assert ("silver", "klines_4h") in steps[0].keys and steps[3].keys == (("gold", "features"), ("gold", "labels"))


def test_the_plan_adds_funding_market_history_and_the_weekly_models_when_asked():
    steps = plan(D(2024, 1, 1), D(2024, 1, 20), ("klines", "funding", "market", "history"), chunk_days=10,
                 models=True)  # 13 days of history before a model's Monday: the weeks of 01-15 on
    labels = [s.label for s in steps]
    assert labels[0] == "funding 2024-01..2024-01" and steps[0].first == steps[0].last == "2024-01-01"
    assert "long 1h/1d history 2019-10..2019-11" in labels
    assert [x for x in labels if x.startswith("market")] == ["market bronze->silver 2024-01-01..2024-01-10",
                                                             "market bronze->silver 2024-01-11..2024-01-20"]
    last = steps[-1]
    assert last.label == "weekly models 2024-01-15..2024-01-15 (1 week, 1 run)"
    assert (last.first, last.last) == ("2024-01-15", "2024-01-15") and ("models", "ensemble") in last.keys
    assert plan(D(2024, 1, 1), D(2024, 1, 25), models=True)[-1].label == \
        "weekly models 2024-01-15..2024-01-22 (2 weeks, 1 run)"
    # market silver after every klines chunk (its order-flow check compares with silver klines), gold after both
    assert labels.index("market bronze->silver 2024-01-01..2024-01-10") > labels.index(
        "klines bronze->silver 2024-01-11..2024-01-20")
    assert labels.index("gold features+labels 2024-01-01..2024-01-10") > labels.index(
        "market bronze->silver 2024-01-11..2024-01-20")


@pytest.mark.parametrize("args, said", [
    ((D(2024, 1, 5), D(2024, 1, 1)), "--end 2024-01-01 is before --start 2024-01-05"),
    ((D(2023, 12, 30), D(2024, 1, 3)), "is not inside the daily partitions 2024-01-01..2024-02-29: change "
                                       "--start/--end, or BTC_PARTITIONS_START/BTC_PARTITIONS_END"),
    ((D(2024, 1, 1), D(2024, 3, 2)), "is not inside the daily partitions"),
])
def test_a_range_that_cannot_run_is_refused_naming_the_setting(args, said):
    with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        plan(*args)


def test_chunk_days_and_models_without_a_monday_are_refused():
    with pytest.raises(ValueError, match="--chunk-days 0"):
        plan(D(2024, 1, 1), D(2024, 1, 3), chunk_days=0)
    with pytest.raises(ValueError, match="--models: no Monday within 2024-01-01..2024-01-10 has 13 days of the range"):
        plan(D(2024, 1, 1), D(2024, 1, 10), models=True)


def test_progress_lines_and_a_failed_run_that_stops_the_backfill():
    steps = plan(D(2024, 1, 1), D(2024, 1, 6))
    out = io.StringIO()
    assert bf.run(steps, lambda s: (True, "0123456789abcdef"), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("[####--------------------] 1/6  klines bronze->silver 2024-01-01..2024-01-02: ")
    assert "(run 01234567); elapsed 0:00, about 0:00 left in the daily runs" in lines[1]
    assert lines[-1].startswith("backfill done: 6 runs in ")
    out = io.StringIO()
    calls = []
    assert bf.run(steps, lambda s: (calls.append(s) or len(calls) < 3, "feedbeef00"), out) == 1
    assert len(calls) == 3  # nothing after the failed run
    assert ("btc-assets backfill: klines bronze->silver 2024-01-05..2024-01-06 failed (run feedbeef00): see `make "
            "ui` -> Runs. Done before it: 2 of 6 runs") in out.getvalue()


def _cli(tmp_path, *args, archive=str(SAMPLE_ARCHIVE), timeout=600, extra_env=None):
    env = {**os.environ, "BTC_DATA_DIR": str(tmp_path / "data"), "BINANCE_ARCHIVE_URL": archive, **(extra_env or {})}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "btc_assets.cli.main", "backfill", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_dead_network_is_said_at_once_and_nothing_is_backfilled(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _cli(tmp_path, "--start", "2024-01-01", "--end", "2024-01-02", archive=f"http://127.0.0.1:{port}/",
               timeout=120)
    assert res.returncode != 0
    assert f"btc-assets backfill: BINANCE_ARCHIVE_URL=http://127.0.0.1:{port}/ cannot be reached" in res.stderr
    assert "nothing was run" in res.stderr and not (tmp_path / "data").exists()


def test_a_backfill_of_sample_days_fills_silver_and_gold_with_progress(tmp_path):
    res = _cli(tmp_path, "--start", "2024-01-01", "--end", "2024-01-03", "--datasets", "klines", "--chunk-days", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "backfill 2024-01-01..2024-01-03: datasets klines; 4 runs (2 days per run)" in res.stderr
    assert "4/4  gold features+labels 2024-01-03..2024-01-03" in res.stderr and "backfill done: 4 runs" in res.stderr
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        days = conn.execute("SELECT CAST(open_time AS DATE) d, count(*) FROM silver.klines_1m GROUP BY d ORDER BY d"
                            ).fetchall()
        assert [(str(d), n) for d, n in days] == [("2024-01-01", 1440), ("2024-01-02", 1440), ("2024-01-03", 1440)]
        assert conn.execute("SELECT count(*) FROM gold.features").fetchone()[0] == 3 * 1440
    # every run is in the instance the UI reads
    runs = list((tmp_path / "data" / "dagster_home").glob("**/runs.db"))
    assert runs, "the runs are recorded in $BTC_DATA_DIR/dagster_home"


def test_a_monthly_run_first_prints_no_estimate_yet():
    steps = plan(D(2024, 1, 1), D(2024, 1, 2), datasets=("klines", "funding"))
    assert steps[0].days == 0  # funding: monthly
    out = io.StringIO()
    assert bf.run(steps, lambda s: (True, "0123456789abcdef"), out) == 0
    assert "1/3  funding 2024-01..2024-01: " in out.getvalue()


def test_a_gold_chunk_needs_the_silver_chunks_of_its_warm_up_and_next_day_and_the_monthly_data():
    steps = plan(D(2024, 1, 1), D(2024, 2, 29), datasets=("klines", "funding"), chunk_days=15)
    labels = [s.label for s in steps]
    gold = labels.index("gold features+labels 2024-01-31..2024-02-14")
    got = sorted(labels[j] for j in bf.needs(steps, gold, lookback_days=10))  # from 01-21 to 02-15
    assert got == ["funding 2024-01..2024-02", "klines bronze->silver 2024-01-16..2024-01-30",
                   "klines bronze->silver 2024-01-31..2024-02-14", "klines bronze->silver 2024-02-15..2024-02-29"]
    assert bf.needs(steps, labels.index("klines bronze->silver 2024-01-01..2024-01-15"), 20) == set()


def test_in_parallel_runs_overlap_and_each_starts_only_after_what_it_reads():
    from concurrent.futures import ThreadPoolExecutor

    steps = plan(D(2024, 1, 1), D(2024, 1, 12), chunk_days=2)  # 6 silver chunks (stage 0), 6 gold chunks
    events, out, lock = [], io.StringIO(), threading.Lock()

    def execute(s):
        with lock:
            events.append(("start", s.label))
        time.sleep(0.05)
        with lock:
            events.append(("end", s.label))
        return True, "abcdef0123456789"

    with ThreadPoolExecutor(3) as pool:
        assert bf.run(steps, execute, out, workers=3, submit=lambda s: pool.submit(execute, s), lookback_days=2) == 0
    at = {e: i for i, e in enumerate(events)}
    silver = [s.label for s in steps if s.stage == 0]
    assert at[("start", silver[1])] < at[("end", silver[0])]  # silver runs overlap
    for i, s in enumerate(steps):
        for j in bf.needs(steps, i, 2):
            assert at[("end", steps[j].label)] < at[("start", s.label)], (s.label, steps[j].label)
    # a gold chunk ran before the last silver chunk was done: no barrier between the layers
    first_gold = min(at[("start", s.label)] for s in steps if s.stage == 1)
    assert first_gold < at[("end", silver[-1])]
    assert "backfill done: 12 runs in " in out.getvalue()


def test_in_parallel_a_failed_run_starts_nothing_new_and_says_what_was_done():
    from concurrent.futures import ThreadPoolExecutor

    steps = plan(D(2024, 1, 1), D(2024, 1, 6))
    calls, out = [], io.StringIO()

    def execute(s):
        calls.append(s)
        return not s.label.endswith("2024-01-03..2024-01-04"), "badc0ffee"

    with ThreadPoolExecutor(1) as pool:
        assert bf.run(steps, execute, out, workers=2, submit=lambda s: pool.submit(execute, s)) == 1
    assert {s.stage for s in calls} == {0}  # no gold run started after the failed silver run
    assert "klines bronze->silver 2024-01-03..2024-01-04 failed (run badc0ffee)" in out.getvalue()
    # the runs that finished before it (1 or 2: the third may finish while the failure is read) are counted
    assert re.search(r"Done before it: [12] of 6 runs", out.getvalue())


def test_workers_must_be_one_or_more():
    from btc_assets.cli.main import _workers

    assert _workers("2") == 2
    with pytest.raises(Exception, match="give 1 or more worker processes"):
        _workers("0")


def test_two_worker_processes_backfill_the_same_tables_at_once(tmp_path):
    """No pool: two runs write silver and gold (DuckDB and Delta) at the same time, every day lands in both."""
    import dagster as dg
    from btc_assets.lib.storage.lakehouse import Lakehouse

    lake = tmp_path / "data" / "lakehouse"
    env = {"BTC_LAKEHOUSE_URI": str(lake)}
    res = _cli(tmp_path, "--start", "2024-01-01", "--end", "2024-01-04", "--datasets", "klines", "--chunk-days", "1",
               "--workers", "2", extra_env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "up to 2 at once" in res.stderr and "backfill done: 8 runs" in res.stderr
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        for table in ("silver.klines_1m", "gold.features", "gold.labels"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 4 * 1440, table
    delta = Lakehouse.at(str(lake))
    for table in ("silver.klines_1m", "gold.features"):
        assert len(delta.history(table)) >= 4  # a commit per run
        rows = delta.read_window(table, "open_time", "2024-01-01", "2024-01-05", ["open_time"])
        assert len(rows) == 4 * 1440 and rows["open_time"].is_unique
    # the runs did overlap: some run started before another had ended
    instance = dg.DagsterInstance.from_config(str(tmp_path / "data" / "dagster_home"))
    runs = [r for r in instance.get_run_records() if r.dagster_run.tags.get("btc/backfill")]
    assert len(runs) == 8 and all(r.dagster_run.is_success for r in runs)
    spans = sorted((r.start_time, r.end_time) for r in runs)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
