"""The live path end to end: live_trading_sensor (REST feed) -> trading_job -> the Binance broker on the fake
exchange (testnet mode, keys only through dg.EnvVar), bar after bar, with a recognisable fake key and secret
that must appear nowhere: not in Dagster's event logs, MLflow, the journal, or any file written.

The warehouse holds the sample's silver through 2024-01-10; the fake exchange then plays the real bars of
2024-01-11 (which silver does not have), so every decided bar comes from the live feed.
"""

import datetime as dt
import gzip
import json
import os
import time

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import pytest

from btc_assets.defs.resources.trading import LiveFeedResource, TradingResource
from btc_assets.defs.trading.sensors import live_trading_sensor, next_close, trading_job
from btc_assets.lib.research.risk import RiskConfig
from btc_assets.lib.trading import trader
from btc_assets.lib.trading.journal import leg_id
from btc_assets_tests.fakes.binance import Exchange, run_in_thread
from btc_assets_tests.conftest import real_klines
from btc_assets_tests.defs.conftest import ALL_ASSETS, ten_days, train_config

KEY = "CANARY-KEY-1e5b2d4f607f3a9c"
SECRET = "CANARY-SECRET-8f00b204e9800998ecf8427ed41d8cd9"
BARS = 12


@pytest.fixture(scope="module")
def canary_env():
    saved = {k: os.environ.get(k) for k in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BTC_TRADING_MODE")}
    os.environ.update({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "BTC_TRADING_MODE": "testnet"})
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def session(tmp_path_factory, sample_archive, canary_env):
    root = tmp_path_factory.mktemp("live")
    day = real_klines(dt.date(2024, 1, 11))
    bars = [(int(r.open_time.timestamp() * 1000), r.open, r.high, r.low, r.close, r.volume)
            for r in day.iloc[:BARS + 5].itertuples()]
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance, \
            run_in_thread(bars, KEY, SECRET, exchange=Exchange(bars, market_clock=True)) as fx:
        p = ten_days(root / "data", sample_archive, instance)  # the model is trained with the canary in the env
        p.run([["models", "xgb_model"]], partition_key="2024-01-08", run_config=train_config())
        p.resources["trading"] = TradingResource(
            strategy="live_canary", mode="testnet", binance_url=fx.rest_url, api_key=dg.EnvVar("BINANCE_API_KEY"),
            api_secret=dg.EnvVar("BINANCE_API_SECRET"), maker_tries=1, requote_after_s=0.2,
            session_start="2024-01-11T00:00:00", kill_file=str(root / "KILL"),
            metrics_file=str(root / "data" / "metrics" / "trading.prom"))
        p.resources["live_feed"] = LiveFeedResource(source="rest", rest_url=fx.rest_url)
        defs = dg.Definitions(assets=ALL_ASSETS,
                              jobs=[trading_job], resources=p.resources)
        job = defs.resolve_job_def("trading_job")
        cursor, results = None, []
        for _ in range(BARS):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=p.resources)
            for req in live_trading_sensor(ctx):
                results.append((req, job.execute_in_process(
                    instance=instance, partition_key=req.partition_key, raise_on_error=False,
                    tags={**req.tags, "dagster/run_key": req.run_key})))
            cursor = ctx.cursor
            fx.exchange.advance()
        yield p, instance, fx, results, root


def test_each_closed_bar_is_one_run_keyed_by_its_time(session):
    p, _, _, results, _ = session
    assert [r.run_key for r, _ in results] == [f"bar-20240111T00{m:02d}" for m in range(BARS)]
    failed = [str(res.get_step_failure_events()[0].event_specific_data.error) for _, res in results
              if not res.success]
    assert not failed, failed[0]
    (n, lo, hi), = p.sql("SELECT count(*), min(bar_time), max(bar_time) FROM trading.decisions")
    assert n == BARS and str(lo) == "2024-01-11 00:00:00"
    assert p.sql("SELECT count(*) FROM live.klines_1m") == [(BARS,)]  # the bars came from the live feed


def test_exchange_and_journal_agree_and_nothing_was_sent_twice(session):
    p, instance, fx, results, _ = session
    ex = fx.exchange
    journal_pos = p.sql("SELECT coalesce(sum(CASE side WHEN 'BUY' THEN qty ELSE -qty END), 0) "
                        "FROM trading.order_events WHERE event = 'FILLED' AND broker = 'binance'")[0][0]
    assert ex.account.position("BTCUSDT").amount == pytest.approx(journal_pos, abs=1e-9)
    placed = [o.client_order_id for o in ex.orders.values()]
    assert len(placed) == len(set(placed))  # no client order id reached the exchange twice
    entries = p.sql("SELECT client_order_id FROM trading.order_events WHERE event = 'FILLED' "
                    "AND client_order_id LIKE '%-entry'")
    planned = p.sql("SELECT count(*) FROM trading.decisions WHERE action LIKE '%enter_%'")[0][0]
    assert len(entries) == planned > 0, "the sample's bars should give the model at least one entry"
    # every entry is journaled with its chance of reaching the liquidation price within the holding horizon
    p_liq = p.sql("SELECT liquidation_probability FROM trading.decisions WHERE action LIKE '%enter_%'")
    assert len(p_liq) == planned and all(0 <= v <= RiskConfig().max_liq_prob for (v,) in p_liq)
    algo = {a.client_algo_id for a in ex.algo_orders.values()}
    assert all(f"{cid[:32]}-sl" in algo and f"{cid[:32]}-tp" in algo for (cid,) in entries)
    # a retried run of the last bar sends nothing new
    req, _ = results[-1]
    before = len(ex.orders)
    defs = dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job],
                          resources=p.resources)
    again = defs.resolve_job_def("trading_job").execute_in_process(instance=instance, partition_key=req.partition_key,
                                                              tags=req.tags)
    assert again.success and len(ex.orders) == before
    checks = [e.event_specific_data for e in again.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {c.check_name: c.passed for c in checks}["orders_reconciled_with_broker"]


def _texts_of_files(root) -> list[tuple[str, str]]:
    out = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        out.append((str(path), raw.decode("latin-1")))
    return out


def test_the_keys_appear_nowhere(session):
    p, instance, _, results, root = session
    texts = _texts_of_files(root)  # DAGSTER_HOME (event log sqlite, compute logs), MLflow store, lake, metrics
    assert any("dagster_home" in path for path, _ in texts) and any("mlflow" in path for path, _ in texts)
    for _, res in results:
        texts += [(f"event log {res.run_id}", str(rec)) for rec in instance.all_logs(res.run_id)]
        texts.append((f"run {res.run_id}", json.dumps(instance.get_run_by_id(res.run_id).run_config, default=str)))
    with duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True) as conn:  # compressed on disk
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        for schema, table in tables:
            texts.append((f"{schema}.{table}", conn.execute(f'SELECT * FROM "{schema}"."{table}"').df()
                          .to_csv(index=False)))
    mlflow.set_tracking_uri(p.resources["mlflow"].tracking_uri)
    for run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
        texts.append((f"mlflow run {run.info.run_id}", json.dumps([run.data.params, run.data.tags])))
    assert any(name.startswith("trading.order_events") for name, _ in texts)
    for secret in (KEY, SECRET):
        leaks = [name for name, text in texts if secret in text]
        assert not leaks, f"the secret leaked into {leaks[:5]}"
    # the test would see a leak: the canary is in this process's environment, and the scan reads what it claims to
    assert os.environ["BINANCE_API_KEY"] == KEY


def test_decide_latency_and_rate_limit_headroom_are_recorded(session):
    p, *_ = session
    ms = pd.Series([r[0] for r in p.sql("SELECT decide_ms FROM trading.decisions")])
    assert len(ms) == BARS and (ms > 0).all()
    prom = (p.root / "metrics" / "trading.prom").read_text()  # the exchange's weight headers, as headroom
    weight = [ln for ln in prom.splitlines() if ln.startswith("btc_rate_limit_headroom_ratio") and "WEIGHT" in ln]
    assert weight and 0.0 < float(weight[0].rsplit(" ", 1)[1]) < 1.0


def test_every_bar_is_tagged_with_its_own_close_on_this_machines_clock(session):
    """The sensor stamps each run with when its bar closed (the feed's clock less the measured offset), not with
    the tick's time: the age the orders step measures is the bar's own."""
    _, _, _, results, _ = session
    for req, _ in results:
        bar_close = pd.Timestamp(req.tags["btc/bars_to"]) + pd.Timedelta(minutes=1)
        assert abs(float(req.tags["btc/requested_at"]) - time.time()) < 600  # this machine's clock, not 2024's
        assert req.tags["btc/clock_speed"] == "1" and bar_close.year == 2024


def test_a_stale_entry_is_never_sent_and_is_journaled_as_skipped(session):
    """A bar decided long after its close (an outage): its entry is journaled SKIPPED with the reason and never
    reaches the exchange, exits would still go."""
    from btc_assets.lib.trading.session import entry_late_reason
    p, instance, fx, results, _ = session
    entered = [(req, r) for req, r in results if any(
        "enter_" in str(a) for (a,) in p.sql("SELECT action FROM trading.decisions WHERE bar_time = ?",
                                              [pd.Timestamp(req.tags["btc/bars_to"]).tz_localize(None)]))]
    last = pd.Timestamp("2024-01-11 10:00", tz="UTC")
    assert entry_late_reason("binance-testnet", 1000.0, 1.0, last, last, 60.0, now=1030.0) is None
    why = entry_late_reason("binance-testnet", 1000.0, 1.0, last - pd.Timedelta(minutes=5), last, 60.0, now=1030.0)
    assert why.startswith("entry of bar 2024-01-11 09:55 skipped: 330 s after the bar's close")
    assert entry_late_reason("paper", 0.0, 1.0, last, last, 60.0, now=1e9) is None
    if not entered:
        pytest.skip("no bar of the session planned an entry")  # the lib-level cases above still ran
    req, _ = entered[-1]
    bar = pd.Timestamp(req.tags["btc/bars_to"])
    cid_like = f"%-{int(bar.timestamp())}-entry"
    p.sql("DELETE FROM trading.order_events WHERE client_order_id LIKE ?", [cid_like])  # as if never sent
    before = len(fx.exchange.orders)
    stale = {**req.tags, "btc/requested_at": f"{float(req.tags['btc/requested_at']) - 3600:.3f}"}
    job = dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], resources=p.resources).resolve_job_def("trading_job")
    res = job.execute_in_process(instance=instance, partition_key=req.partition_key, tags=stale,
                                 asset_selection=[dg.AssetKey(["trading", "orders"])], raise_on_error=False)
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["entries_skipped_late"].value == 1 and "a late entry is another trade" in \
        meta["entries_skipped_reasons"].value[0]
    new = list(fx.exchange.orders.values())[before:]
    assert not [o for o in new if o.client_order_id.startswith(cid_like[1:].split("-entry")[0].lstrip("-"))]
    (event, note), = p.sql("SELECT event, note FROM trading.order_events WHERE client_order_id LIKE ?", [cid_like])
    assert event == "SKIPPED" and "skipped" in note


def test_the_trading_worker_runs_the_next_bar_and_resumes_from_its_cursor(session, tmp_path):
    from btc_assets.cli.replay import trade_forever

    p, instance, fx, _, _ = session
    defs = dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], resources=p.resources)
    cursor = tmp_path / "cursor.json"
    newest = pd.Timestamp(fx.exchange.bar[0], unit="ms", tz="UTC")  # closed, not decided yet
    out = trade_forever(defs, instance, cursor, tick_seconds=0.01, max_ticks=2, max_wait_s=0.2)
    assert out == {"ticks": 2, "runs": 1, "failed_runs": 0}
    assert p.sql("SELECT count(*) FROM trading.decisions WHERE bar_time = ?", [newest.tz_localize(None)]) == [(1,)]
    state = json.loads(cursor.read_text())
    assert state["last_bar"] == newest.isoformat()
    # the fake exchange replays 2024 on a clock that follows its market (just after the current bar's close), as a
    # venue's does: the feed's clock offset is measured, and the next bar closes within a minute on this machine
    server_now = fx.exchange.now_ms() / 1000
    assert abs(state["clock_offset"] - (server_now - time.time())) < 5
    assert next_close(state) - time.time() < 61
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": f"bar-{newest:%Y%m%dT%H%M}"}))
    assert run.tags["dagster/sensor_name"] == "live_trading_sensor"
    assert trade_forever(defs, instance, cursor, tick_seconds=0.01, max_ticks=1)["runs"] == 0  # resumed, no repeat


def test_the_exchange_stop_and_target_are_moved_to_the_plans_prices(session):
    """The entry fills on the exchange at its own price; the plan's stop and target are around its fill model's
    price. The run after the fill moves the exchange's legs onto the plan's prices (new legs first, then the old
    ones cancelled), so that the plan's stop exits are the exchange's."""
    p, _, fx, _, _ = session
    tick = 0.1
    algo = {a.client_algo_id: a for a in fx.exchange.algo_orders.values()}
    opened = [json.loads(r[0]) for r in p.sql("SELECT opened FROM trading.decisions WHERE opened IS NOT NULL")]
    assert opened, "the sample's bars should open at least one position"
    moved = 0
    for o in opened:
        entry = trader.entry_of("live_canary", o["entry_time"])
        first_stop, first_target = algo[leg_id(entry, "sl")], algo[leg_id(entry, "tp")]
        plan_stop, plan_target = round(o["stop"] / tick) * tick, round(o["target"] / tick) * tick
        if abs(first_stop.trigger_price - plan_stop) < tick / 2 and abs(first_target.trigger_price - plan_target) < tick / 2:
            continue  # placed at the plan's prices already
        stop, target = algo[leg_id(entry, "s1")], algo[leg_id(entry, "t1")]
        assert stop.trigger_price == pytest.approx(plan_stop) and target.trigger_price == pytest.approx(plan_target)
        assert first_stop.status == "CANCELED" and first_target.status == "CANCELED"
        moved += 1
    assert moved, "the real fills should differ from the fill model's: nothing was moved"
    notes = p.sql("SELECT note FROM trading.order_events WHERE event = 'NEW' AND client_order_id LIKE '%-s1'")
    assert notes and all("moved to the plan's price" in n for (n,) in notes)


def _worker_defs(p):
    return dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], resources=p.resources)


def test_the_worker_sends_a_bars_orders_before_dagster_creates_its_run(session, tmp_path):
    """The trading worker's order path runs ahead of the run (defs/trading/ahead.py): the bar's decision and orders
    are journaled under the run's id before the run exists; the run then records them, with the assets' lineage."""
    from btc_assets.cli.replay import trade_forever

    p, instance, fx, _, _ = session
    fx.exchange.advance()
    newest = pd.Timestamp(fx.exchange.bar[0], unit="ms", tz="UTC")
    assert trade_forever(_worker_defs(p), instance, tmp_path / "c.json", tick_seconds=0.01, max_ticks=1)["runs"] == 1
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": f"bar-{newest:%Y%m%dT%H%M}"}))
    created = instance.get_run_record_by_id(run.run_id).create_timestamp.replace(tzinfo=None)
    (decided_at, run_id), = p.sql("SELECT decided_at, run_id FROM trading.decisions WHERE bar_time = ?",
                                  [newest.tz_localize(None)])
    assert run_id == run.run_id and decided_at.replace(tzinfo=None) < created
    events = p.sql("SELECT event_time FROM trading.order_events WHERE bar_time = ? AND run_id = ?",
                   [newest.tz_localize(None), run.run_id])
    assert all(t.replace(tzinfo=None) < created for (t,) in events)
    mats = {tuple(e.asset_key.path): e for e in instance.get_records_for_run(run.run_id).records
            if e.event_log_entry.dagster_event and e.event_log_entry.dagster_event.is_step_materialization
            for e in [e.event_log_entry.dagster_event]}
    assert {("trading", "live_bars"), ("trading", "decisions"), ("trading", "orders")} <= set(mats)
    meta = mats[("trading", "decisions")].event_specific_data.materialization.metadata
    assert meta["bars"].value == 1 and set(meta["step_ms"].value) >= {"features", "inference", "rules", "journal"}
    assert run.tags["btc/worker_pid"] == str(os.getpid())


def test_a_worker_that_died_after_sending_leaves_its_bar_to_the_next_worker(session, tmp_path):
    """The worker decided and sent a bar, then died before Dagster created the run: the next worker asks for the
    same bar (the cursor was not advanced), reports its decision from the journal, resumes its orders by client id
    (nothing sent twice) and logs the bar's per-bar event, since no run recorded it."""
    from dagster._core.utils import make_new_run_id

    from btc_assets.cli.replay import sensor_tags, trade_forever
    from btc_assets.defs.trading import ahead

    p, instance, fx, _, _ = session
    defs = _worker_defs(p)
    job = defs.resolve_job_def("trading_job")
    fx.exchange.advance()
    newest = pd.Timestamp(fx.exchange.bar[0], unit="ms", tz="UTC")
    ctx = dg.build_sensor_context(instance=instance, cursor=None, resources=p.resources)
    (req,) = live_trading_sensor(ctx)
    cursor = tmp_path / "c.json"
    before = {**json.loads(ctx.cursor), "last_bar": (newest - pd.Timedelta(minutes=1)).isoformat()}
    cursor.write_text(json.dumps(before))  # the cursor as the dead worker left it
    dead_run = make_new_run_id()
    with ahead.OrderPath(defs, instance) as path:
        path.prepare(job, req.partition_key, dead_run, sensor_tags(req, worker=True))
    assert ahead.take(dead_run) is not None  # ... and the process died: nobody records it
    sent = sorted(o.client_order_id for o in fx.exchange.orders.values())
    assert p.sql("SELECT run_id FROM trading.decisions WHERE bar_time = ?", [newest.tz_localize(None)]) == [(dead_run,)]
    assert trade_forever(defs, instance, cursor, tick_seconds=0.01, max_ticks=1) == {
        "ticks": 1, "runs": 1, "failed_runs": 0}
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": req.run_key}))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    ids = [o.client_order_id for o in fx.exchange.orders.values()]
    assert set(sent) <= set(ids)
    assert len(ids) == len(set(ids)), "an order id was sent twice"
    recs = instance.get_records_for_run(run.run_id).records
    mats = [r.event_log_entry.dagster_event.event_specific_data.materialization for r in recs
            if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.is_step_materialization]
    (decisions,) = [m for m in mats if m.asset_key.path == ["trading", "decisions"]]
    assert "decided before this run" in decisions.metadata["note"].value and "no Dagster run" in \
        decisions.metadata["note"].value
    observed = [r.event_log_entry.dagster_event.event_specific_data.asset_observation for r in recs
                if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.event_type_value ==
                "ASSET_OBSERVATION"]
    assert [o.metadata["bar_time"].value for o in observed] == [str(newest.tz_localize(None))]
    assert observed[0].description.startswith(f"bar {newest:%Y-%m-%d %H:%M} UTC: ")  # labelled by its bar


def test_a_run_left_unfinished_by_a_killed_worker_is_failed_and_its_bar_run_again(session, tmp_path):
    """A worker killed mid-run leaves the run STARTED forever: the next worker reports it failed (saying why) and
    runs the bar again; a run of a worker that is still alive, or of the daemon, is left alone."""
    from btc_assets.cli.replay import WORKER_PID, sensor_tags, trade_forever

    p, instance, fx, _, _ = session
    defs = _worker_defs(p)
    job = defs.resolve_job_def("trading_job")
    fx.exchange.advance()
    ctx = dg.build_sensor_context(instance=instance, cursor=None, resources=p.resources)
    (req,) = live_trading_sensor(ctx)
    dead = instance.create_run_for_job(job, tags={**sensor_tags(req), WORKER_PID: "999999999"},
                                       status=dg.DagsterRunStatus.STARTED)
    assert trade_forever(defs, instance, tmp_path / "c.json", tick_seconds=0.01, max_ticks=1)["runs"] == 1
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": req.run_key}))
    assert sorted(r.status.value for r in runs) == ["FAILURE", "SUCCESS"]
    failure = [e for e in instance.all_logs(dead.run_id) if e.dagster_event and e.dagster_event.is_run_failure]
    assert "stopped during this run" in failure[0].message
    # the daemon's unfinished run (no worker pid) is not touched
    fx.exchange.advance()
    ctx = dg.build_sensor_context(instance=instance, cursor=None, resources=p.resources)
    (req,) = live_trading_sensor(ctx)
    daemons = instance.create_run_for_job(job, tags=sensor_tags(req), status=dg.DagsterRunStatus.STARTED)
    assert trade_forever(defs, instance, tmp_path / "d.json", tick_seconds=0.01, max_ticks=1)["runs"] == 0
    assert instance.get_run_by_id(daemons.run_id).status == dg.DagsterRunStatus.STARTED


def test_the_rules_entries_align_by_time_whatever_the_units():
    """rules_entries aligns the session's signals with its bars by position; the journal hands times back in
    microseconds, the bars in nanoseconds (found when the parity check failed on a first version)."""
    import numpy as np

    from btc_assets.defs.trading.market import rules_entries
    t = pd.date_range("2024-01-01", periods=10, freq="min", tz="UTC")
    signals = pd.Series([2.0, 0.0, 1.0, np.nan], index=pd.DatetimeIndex(t[[3, 7, 8, 9]]).as_unit("us"))
    for bars in (pd.DataFrame({"open_time": t}), pd.DataFrame({"open_time": t.as_unit("us")})):
        got = rules_entries(signals, bars)
        assert got.tolist() == [0, 0, 0, 1, 0, 0, 0, -1, 0, 0] and got.dtype == "int8"
    outside = pd.Series([2.0], index=pd.DatetimeIndex([t[-1] + pd.Timedelta(minutes=1)]))
    assert rules_entries(outside, pd.DataFrame({"open_time": t})).sum() == 0  # not a bar of k: not used
    with pytest.raises(ValueError, match="duplicate bar times"):
        rules_entries(pd.Series([2.0, 0.0], index=pd.DatetimeIndex([t[1], t[1]])), pd.DataFrame({"open_time": t}))
