"""models -> signals -> backtest -> trading on real sample days, in process; the sensor's skip and run paths."""

import json
import logging
import time

import dagster as dg
import mlflow
import pandas as pd
import pytest

from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.trading import LiveFeedResource, ReplayResource, TradingResource
from btc_assets.defs.trading.decisions import NO_MODEL
from btc_assets.defs.trading.market import BARS_FROM, BARS_TO
from btc_assets.defs.trading.specs import REQUESTED_AT
from btc_assets.defs.trading.checks import decisions_match_backtest, live_features_match_batch
from btc_assets.lib.research.features import serving
from btc_assets.defs.trading.sensors import due_bars, live_trading_sensor
from btc_assets_tests.defs.conftest import ALL_ASSETS, train_config
from btc_assets_tests.lib.trading.test_live_bars import gzip_lines, kline

WEEK = "2024-01-08"


@pytest.fixture(scope="module")
def built(model_pipeline):
    return model_pipeline


@pytest.fixture(scope="module")
def instance(model_instance):
    return model_instance


@pytest.fixture(scope="module")
def trained(built):
    res = built.run([["models", "xgb_model"]], partition_key=WEEK, run_config=train_config())
    built.run([["models", "signals"]], first="2024-01-08", last="2024-01-10")
    return built, res


def test_model_is_trained_only_on_earlier_days_and_logged(trained):
    built, res = trained
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    assert pd.Timestamp(meta["test_period"].value.split(" .. ")[1]) < pd.Timestamp(WEEK, tz="UTC")
    for k in ("test_accuracy", "test_log_loss", "majority_log_loss", "persistence_accuracy"):
        assert k in meta
    (uri, version, train_to, promoted), = built.sql("SELECT model_uri, model_version, train_to, promoted "
                                                    "FROM models.xgb_models")
    assert pd.Timestamp(train_to) < pd.Timestamp(WEEK) and promoted
    assert meta["promoted"].value is True and meta["model_version"].value == f"btc_assets_xgb_next3m v{version}"
    mlflow.set_tracking_uri(built.resources["mlflow"].tracking_uri)
    run = mlflow.get_run(meta["mlflow_run"].value.rsplit("/", 1)[1])
    assert {"test_log_loss", "majority_log_loss", "test_f1_macro"} <= set(run.data.metrics)
    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.signature is not None


def test_a_week_without_enough_history_fails_clearly(built):
    res = built.run([["models", "xgb_model"]], partition_key="2024-01-01", run_config=train_config(), raise_on_error=False)
    assert not res.success
    assert "need 3" in str(res.get_step_failure_events()[0].event_specific_data.error)


def test_signals_are_out_of_sample_for_their_week(trained):
    built, _ = trained
    (n, lo, hi, models), = built.sql("SELECT count(*), min(open_time), max(open_time), count(DISTINCT model_version) "
                                     "FROM models.signals")
    assert n == 3 * 1440 and str(lo) == "2024-01-08 00:00:00" and models == 1


def test_backtest_report_has_metrics_and_a_page(trained):
    built, _ = trained
    res = built.run([["backtest", "report"]])
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    for k in ("total_return", "sharpe", "max_drawdown", "n_trades", "win_rate", "buy_and_hold_total_return",
              "random_entry_total_return", "deflated_sharpe", "mlflow_run", "price_for_liquidation_and_funding"):
        assert k in meta
    html = (built.root / "lake" / "reports" / "backtest.html").read_text()
    assert "Buy" in html and "<script src" not in html


def test_trading_run_decides_each_bar_once_and_orders_fill_by_the_backtest_fill_model(trained):
    built, _ = trained
    tags = {BARS_FROM: "2024-01-10T18:00:00+00:00", BARS_TO: "2024-01-10T18:59:00+00:00",
            REQUESTED_AT: f"{time.time():.3f}"}
    res = built.run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-10", tags=tags)
    obs = [e for e in res.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert len(obs) == 60  # one identifiable event per bar
    [omat] = [e.event_specific_data.materialization for e in res.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(["trading", "orders"])]
    [dmat] = [e.event_specific_data.materialization for e in res.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(["trading", "decisions"])]
    decided = [r.data for r in dmat.metadata["decisions"].value.records]  # each bar labelled by its own time
    assert len(decided) == 60 and decided[0]["bar_time"] == "2024-01-10 18:00" and decided[-1]["bar_time"] == \
        "2024-01-10 18:59" and len({r["decision_id"] for r in decided}) == 60
    assert {r["signal"] for r in decided} <= {"BUY", "SELL", "HOLD"}
    table = [r.data for r in omat.metadata["orders"].value.records]  # a real table, not a Markdown dialog
    filled = [r for r in table if r["state"] == "FILLED"]
    assert filled and all(r["price"] not in ("n/a", "market", "nan") and r["decision_id"] != "n/a"
                          and r["model_version"] not in ("n/a", "none") for r in filled)
    assert any(r["realised_pnl_usdt"] for r in filled if not r["client_order_id"].endswith("-entry"))
    orders_before = built.sql("SELECT count(DISTINCT client_order_id) FROM trading.order_events")
    built.run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-10", tags=tags)  # a retry
    # ...after fills have changed the position: it must send nothing new
    assert built.sql("SELECT count(DISTINCT client_order_id) FROM trading.order_events") == orders_before
    assert built.sql("SELECT count(*), count(DISTINCT decision_id) FROM trading.decisions") == [(60, 60)]
    # every entry fills at the price the backtest's fill model gave at the next bar's open (next open + slippage)
    fills = built.sql("SELECT e.price, d.opened FROM trading.order_events e JOIN trading.decisions d "
                      "ON d.bar_time = e.bar_time + INTERVAL 1 MINUTE WHERE e.event = 'FILLED' "
                      "AND e.client_order_id LIKE '%-entry'")
    assert fills and all(price == json.loads(opened)["price"] for price, opened in fills)
    planned = built.sql("SELECT count(*) FROM trading.decisions WHERE action LIKE '%enter_%' "
                        "AND bar_time < '2024-01-10 18:59:00'")[0][0]
    assert planned == len(fills)  # every entry planned before the last bar filled (the last one fills next run)
    ids = built.sql("SELECT client_order_id, count(*) FILTER (WHERE event='NEW') FROM trading.order_events GROUP BY 1")
    assert all(n == 1 for _, n in ids)
    # The live path's signals equal the batch out-of-sample signals for the same bars (same model, same features).
    mismatch = built.sql("SELECT count(*) FROM trading.decisions d JOIN models.signals s ON s.open_time = d.bar_time "
                         "WHERE s.signal <> d.signal OR abs(s.p_buy - d.p_buy) > 1e-9")
    assert mismatch == [(0,)]
    parity = decisions_match_backtest(warehouse=built.resources["warehouse"], trading=built.resources["trading"])
    assert parity.passed and parity.metadata["bars_compared"].value == 60, parity.metadata
    assert parity.metadata["entries_live"].value == parity.metadata["entries_backtest"].value > 0
    built.sql("UPDATE trading.decisions SET signal = (signal + 1) % 3 WHERE bar_time = '2024-01-10 18:30:00'")
    drift = decisions_match_backtest(warehouse=built.resources["warehouse"], trading=built.resources["trading"])
    assert not drift.passed and drift.metadata["signals_differing"].value == 1
    built.sql("UPDATE trading.decisions SET signal = (signal + 2) % 3 WHERE bar_time = '2024-01-10 18:30:00'")
    # without the batch signals of those bars (models/signals not run yet, as in every live run) it cannot compare:
    # it says so, as a WARN failure, instead of passing over zero bars
    built.sql("CREATE TABLE models.signals_kept AS SELECT * FROM models.signals")
    built.sql("DELETE FROM models.signals WHERE open_time >= '2024-01-10 18:40:00'")
    try:
        blind = decisions_match_backtest(warehouse=built.resources["warehouse"], trading=built.resources["trading"])
    finally:
        built.sql("DELETE FROM models.signals")
        built.sql("INSERT INTO models.signals SELECT * FROM models.signals_kept")
        built.sql("DROP TABLE models.signals_kept")
    assert not blind.passed and blind.severity == dg.AssetCheckSeverity.WARN
    assert blind.description.startswith("could not compare the live path with the backtest: 20 of 60 decided bars")
    day = built.run([["trading", "pnl"]], partition_key="2024-01-10")
    meta = day.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    fills, fees = built.sql("SELECT count(*), coalesce(sum(fee), 0) FROM trading.order_events WHERE event = 'FILLED' "
                            "AND bar_time >= '2024-01-10'")[0]
    assert meta["fills"].value == fills and meta["fees"].value == pytest.approx(fees)
    assert meta["pnl"].value == pytest.approx(meta["equity_end"].value - meta["equity_start"].value)
    board = built.run([["trading", "dashboard"]])
    meta = board.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["equity_usdt"].value == pytest.approx(day_equity := meta["equity_usdt"].value) and day_equity > 0
    assert meta["closing_fills"].value >= 1 and "/artifactPath/live_dashboard.html" in meta["dashboard"].value
    page = (built.root / "lake" / "reports" / "live_dashboard.html").read_text()
    assert "Rolling Sharpe" in page and "Recent orders" in page and "<script src" not in page
    again = built.run([["trading", "dashboard"]])  # refreshed: the same MLflow run, its page replaced
    assert again.get_asset_materialization_events()[0].event_specific_data.materialization.metadata[
        "dashboard"].value == meta["dashboard"].value
    prom = (built.root / "metrics" / "trading.prom").read_text()  # the trader's Prometheus snapshot
    assert "btc_equity_usdt" in prom and 'stage="decision"' in prom


def test_kill_switch_file_cancels_flattens_and_stops(trained):
    built, _ = trained
    tags = {BARS_FROM: "2024-01-10T12:00:00+00:00", BARS_TO: "2024-01-10T12:29:00+00:00"}
    kill = built.root / "KILL"
    kill.write_text("test: stop now")
    try:
        res = built.run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-10", tags=tags)
    finally:
        kill.unlink()
    meta = [e for e in res.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(["trading", "orders"])][0].event_specific_data.materialization.metadata
    assert "stop now" in str(meta["kill_switch"].value) and meta["orders_sent_this_run"].value == 0
    assert meta["open_orders"].value == 0 and abs(meta["position_btc"].value) < 1e-9
    entries = built.sql("SELECT count(*) FROM trading.order_events WHERE client_order_id LIKE '%-entry' "
                        "AND bar_time >= '2024-01-10 12:00:00' AND bar_time < '2024-01-10 12:30:00'")
    assert entries == [(0,)]
    # the file is gone, the switch is not: it holds until a person clears it, journaled
    tags2 = {BARS_FROM: "2024-01-10T12:30:00+00:00", BARS_TO: "2024-01-10T12:34:00+00:00"}
    res = built.run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-10", tags=tags2)
    meta = [e for e in res.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(["trading", "orders"])][0].event_specific_data.materialization.metadata
    assert any("held until a person clears it" in k for k in meta["kill_switch"].value)
    assert meta["orders_sent_this_run"].value == 0
    from btc_assets.lib.trading import kill_switch
    with built.resources["warehouse"].get_connection() as conn:
        with pytest.raises(ValueError, match="needs --reason"):
            kill_switch.clear(conn, "")
        assert kill_switch.clear(conn, "test: the cause was understood", by="tester")
        assert kill_switch.latched(conn) is None
    events = built.sql("SELECT event, actor FROM trading.kill_switch ORDER BY event_time")
    assert events[-2][0] == "ENGAGED" and events[-1] == ("CLEARED", "tester")


def test_a_breaker_trip_pauses_entries_and_alerts(trained, caplog):
    built, _ = trained
    caplog.set_level(logging.INFO, logger="btc_assets.lib.trading.notify")
    tight = TradingResource(strategy="breaker", daily_drawdown=1e-6, session_start="2024-01-10T20:00:00")
    tags = {BARS_FROM: "2024-01-10T20:00:00+00:00", BARS_TO: "2024-01-10T20:59:00+00:00"}
    dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(["trading", "decisions"])], partition_key="2024-01-10",
                   resources={**built.resources, "trading": tight}, instance=built.instance, tags=tags)
    rows = built.sql("SELECT action, breaker_paused FROM trading.decisions WHERE bar_time >= '2024-01-10 20:00' "
                     "AND bar_time < '2024-01-10 21:00' ORDER BY bar_time")
    first_paused = next(i for i, (_, paused) in enumerate(rows) if paused)  # after the first entry's fee
    assert all(paused for _, paused in rows[first_paused:])  # until the next UTC day
    assert not any("enter_" in action for action, _ in rows[first_paused:])
    assert "skip:breaker" in {a for a, _ in rows[first_paused:]} or len(rows) - first_paused < 3
    assert caplog.text.count("drawdown breaker tripped") == 1


def test_a_week_not_trained_yet_is_traded_by_the_previous_promoted_model_and_says_so(trained):
    """Monday before the retrain: the previous promoted model keeps trading, stated on every decision; with no
    promoted model at all the bars still get decided (no entry, exits allowed) instead of the run failing."""
    built, _ = trained
    handover = TradingResource(strategy="handover", session_start="2024-01-10T16:00:00")
    tags = {BARS_FROM: "2024-01-10T16:00:00+00:00", BARS_TO: "2024-01-10T16:09:00+00:00"}
    built.sql("UPDATE models.xgb_models SET week_start = '2024-01-01'")  # week 01-08's model not trained yet
    try:
        res = dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(["trading", "decisions"])],
                             partition_key="2024-01-10", resources={**built.resources, "trading": handover},
                             instance=built.instance, tags=tags)
        versions = {r[0] for r in built.sql("SELECT model_version FROM trading.decisions WHERE bar_time >= "
                                            "'2024-01-10 16:00' AND bar_time < '2024-01-10 16:10'")}
        assert len(versions) == 1 and "handover: the xgb model of the week starting 2024-01-08 is not trained " \
            "yet; the promoted model of the week starting 2024-01-01" in versions.pop()
        meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
        assert meta["model_handovers"].value
        built.sql("UPDATE models.xgb_models SET week_start = '2024-01-15'")  # nothing earlier to hand over
        tags2 = {BARS_FROM: "2024-01-10T16:10:00+00:00", BARS_TO: "2024-01-10T16:14:00+00:00"}
        res = dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(["trading", "decisions"])],
                             partition_key="2024-01-10", resources={**built.resources, "trading": handover},
                             instance=built.instance, tags=tags2)
        assert res.success
        rows = built.sql("SELECT model_version, signal FROM trading.decisions WHERE bar_time >= '2024-01-10 16:10' "
                         "AND bar_time < '2024-01-10 16:15'")
        assert len(rows) == 5 and {r[0] for r in rows} == {NO_MODEL} and {r[1] for r in rows} == {1}
    finally:
        built.sql("UPDATE models.xgb_models SET week_start = '2024-01-08'")


def test_a_failed_decision_sends_nothing_and_keeps_the_live_bars(trained):
    """The three trading assets share one step: a decision that fails stops the orders, while the live bars taken
    before it stay materialized, and the failure names its cause."""
    built, _ = trained
    tags = {BARS_FROM: "2024-01-10T22:00:00+00:00", BARS_TO: "2024-01-10T22:01:00+00:00",
            REQUESTED_AT: f"{time.time():.3f}"}
    # The week's registered model cannot be loaded: the decision cannot be made, and says why. (A week without a
    # promoted model decides "no entry" instead, exits allowed: test_promotion_after_costs.py and the handover.)
    built.sql("CREATE TABLE models.xgb_models_kept AS SELECT * FROM models.xgb_models")
    built.sql("UPDATE models.xgb_models SET model_uri = 'models:/btc_assets_gone/7'")
    try:
        res = built.run([["trading", "live_bars"], ["trading", "decisions"], ["trading", "orders"]],
                        partition_key="2024-01-10", tags=tags, raise_on_error=False)
    finally:
        built.sql("DELETE FROM models.xgb_models")
        built.sql("INSERT INTO models.xgb_models SELECT * FROM models.xgb_models_kept")
        built.sql("DROP TABLE models.xgb_models_kept")
    assert not res.success
    assert "btc_assets_gone" in str(res.get_step_failure_events()[0].event_specific_data.error)
    materialized = {e.asset_key.path[-1] for e in res.get_asset_materialization_events()}
    assert materialized == {"live_bars"}
    assert built.sql("SELECT count(*) FROM trading.decisions WHERE bar_time >= '2024-01-10 22:00'") == [(0,)]
    assert built.sql("SELECT count(*) FROM trading.order_events WHERE bar_time >= '2024-01-10 22:00'") == [(0,)]


def test_a_collector_run_reads_the_recorded_bars_and_paper_fills_against_the_recorded_market(trained, tmp_path):
    built, _ = trained
    t = pd.Timestamp("2024-01-10 21:30", tz="UTC")
    path = tmp_path / "kline_1m" / "2024-01-10" / "kline_1m-2024-01-10-21.jsonl.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip_lines([kline(t, False), kline(t, True), kline(t + pd.Timedelta(minutes=1), True)]))
    resources = {**built.resources, "live_feed": LiveFeedResource(source="collector"),
                 "streams": StreamRecordingsResource(root=str(tmp_path))}
    tags = {BARS_FROM: t.isoformat(), BARS_TO: (t + pd.Timedelta(minutes=1)).isoformat(),
            REQUESTED_AT: f"{time.time():.3f}"}
    res = dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(["trading", k]) for k in ("live_bars", "decisions",
                                                                                        "orders")],
                         partition_key="2024-01-10", resources=resources, instance=built.instance, tags=tags)
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in res.get_asset_materialization_events()}
    assert meta["live_bars"]["source"].value == "collector" and meta["live_bars"]["written_to_live_table"].value == 2
    assert meta["decisions"]["bars"].value == 2
    assert meta["orders"]["paper_fill_prices"].value == "recorded book and trades (collector)"


def test_trading_run_refuses_bars_outside_its_partition(trained):
    built, _ = trained
    tags = {BARS_FROM: "2024-01-09T10:00:00+00:00", BARS_TO: "2024-01-09T10:05:00+00:00"}
    res = built.run([["trading", "decisions"]], partition_key="2024-01-10", tags=tags, raise_on_error=False)
    assert "not inside partition 2024-01-10" in str(res.get_step_failure_events()[0].event_specific_data.error)


def sensor_ctx(built, instance, cursor=None):
    resources = {**built.resources, "replay": ReplayResource(start="2024-01-10T23:00:00", end="2024-01-11T00:00:00",
                                                             speed=60.0)}
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)


def test_sensor_skips_when_no_bar_has_closed(built, instance):
    ctx = sensor_ctx(built, instance)
    result = live_trading_sensor(ctx)
    assert isinstance(result, dg.SkipReason) and "no bar closed" in result.skip_message
    assert json.loads(ctx.cursor)["last_bar"] is None


def test_sensor_requests_one_run_per_day_keyed_by_bar_times(built, instance):
    cursor = {"start": "2024-01-10T23:50:00+00:00", "end": "2024-01-11T00:10:00+00:00",
              "anchor": time.time() - 600, "speed": 60.0, "last_bar": "2024-01-10T23:54:00+00:00"}
    ctx = sensor_ctx(built, instance, json.dumps(cursor))
    reqs = live_trading_sensor(ctx)
    assert [r.partition_key for r in reqs] == ["2024-01-10", "2024-01-11"]
    assert reqs[0].tags[BARS_FROM].startswith("2024-01-10T23:55") and reqs[0].tags[BARS_TO].startswith("2024-01-10T23:59")
    assert reqs[0].run_key == "replay-20240110T2355-20240110T2359"
    assert json.loads(ctx.cursor)["last_bar"].startswith("2024-01-11T00:09")
    again = live_trading_sensor(sensor_ctx(built, instance, ctx.cursor))
    assert isinstance(again, dg.SkipReason) and "finished" in again.skip_message


def test_due_bars_follow_the_replay_clock():
    c = {"start": "2024-01-10T10:00:00+00:00", "end": "2024-01-10T12:00:00+00:00", "anchor": 1000.0,
         "speed": 60.0, "last_bar": None}
    # speed 60: one wall-clock second is one replayed minute
    assert due_bars(c, 1000.0 + 0.9) == []  # the first bar closes one replayed minute after the start
    assert [t.strftime("%H:%M") for t in due_bars(c, 1000.0 + 3)] == ["10:00", "10:01", "10:02"]
    assert len(due_bars(c, 1000.0 + 10**6)) == 120  # never past the end of the window


def test_a_few_new_bars_are_decided_from_the_shortest_history_and_their_features_checked_against_batch(trained):
    """The live path's usual run (a bar or a few): features from about a day of 1m bars instead of the warm-up
    window, journaled per decision, equal to gold's once gold has the day -- and the check names a difference."""
    built, _ = trained
    tags = {BARS_FROM: "2024-01-10T19:00:00+00:00", BARS_TO: "2024-01-10T19:04:00+00:00",
            REQUESTED_AT: f"{time.time():.3f}"}
    res = built.run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-10", tags=tags)
    meta = next(e.event_specific_data.materialization.metadata for e in res.get_asset_materialization_events()
                if e.event_specific_data.materialization.asset_key.path == ["trading", "decisions"])
    assert meta["bars"].value == 5 and meta["feature_history"].value.startswith("recent")
    assert built.sql("SELECT count(*) FROM trading.decisions d JOIN models.signals s ON s.open_time = d.bar_time "
                     "WHERE d.bar_time >= '2024-01-10 19:00:00' AND (s.signal <> d.signal "
                     "OR abs(s.p_buy - d.p_buy) > 1e-9)") == [(0,)]
    # the next bars one by one, as the trading worker runs them: the previous run's inputs updated with the new
    # bar (the 19:10 close rebuilds the 19:05 5m bar from them)
    for m in range(5, 10):
        one_bar = {BARS_FROM: f"2024-01-10T19:0{m}:00+00:00", BARS_TO: f"2024-01-10T19:0{m}:00+00:00",
                   REQUESTED_AT: f"{time.time():.3f}"}
        res = built.run([["trading", "decisions"], ["trading", "orders"]], partition_key="2024-01-10", tags=one_bar)
        meta = next(e.event_specific_data.materialization.metadata for e in res.get_asset_materialization_events()
                    if e.event_specific_data.materialization.asset_key.path == ["trading", "decisions"])
        assert "previous run's inputs updated" in meta["feature_history"].value
    assert built.sql("SELECT count(*) FROM trading.decisions d JOIN models.signals s ON s.open_time = d.bar_time "
                     "WHERE d.bar_time >= '2024-01-10 19:00:00' AND (s.signal <> d.signal "
                     "OR abs(s.p_buy - d.p_buy) > 1e-9)") == [(0,)]
    wh = built.resources["warehouse"]
    ok = live_features_match_batch(warehouse=wh)
    assert ok.passed and ok.metadata["minutes_compared"].value >= 10, ok.metadata
    assert ok.metadata["features_compared"].value == len(serving.servable())  # the model reads only those
    name = serving.servable()[3]
    built.sql(f'UPDATE trading.live_features SET "{name}" = "{name}" + 1 WHERE bar_time = \'2024-01-10 19:02:00\'')
    bad = live_features_match_batch(warehouse=wh)
    built.sql(f'UPDATE trading.live_features SET "{name}" = "{name}" - 1 WHERE bar_time = \'2024-01-10 19:02:00\'')
    assert not bad.passed and bad.metadata["features_differing"].value == {name: 1}
    assert name in bad.description and "2024-01-10 19:02:00" in bad.metadata["first_differences"].value[0]
    # before the archive has the day (every live minute, at first), it says it could not compare
    built.sql("CREATE TABLE gold.features_kept AS SELECT * FROM gold.features WHERE open_time >= '2024-01-10'")
    built.sql("DELETE FROM gold.features WHERE open_time >= '2024-01-10'")
    try:
        blind = live_features_match_batch(warehouse=wh)
    finally:
        built.sql("INSERT INTO gold.features SELECT * FROM gold.features_kept")
        built.sql("DROP TABLE gold.features_kept")
    assert not blind.passed and blind.severity == dg.AssetCheckSeverity.WARN
    assert blind.description.startswith("could not compare the live features with batch: gold/features has none")


def test_the_live_decisions_apply_the_regime_filter_as_the_backtest_does(trained):
    """regime_filter=direction with no TFT forecast for the day: the model still signals, but no signal reaches the
    rules (each such bar is a plain hold, not an entry nor a skip with a reason), as lib/research/regime.py filters
    the backtest's entries."""
    built, _ = trained
    tags = {BARS_FROM: "2024-01-10T14:00:00+00:00", BARS_TO: "2024-01-10T14:59:00+00:00"}
    picky = TradingResource(strategy="regime", regime_filter="direction", session_start="2024-01-10T14:00:00")
    dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(["trading", "decisions"])], partition_key="2024-01-10",
                   resources={**built.resources, "trading": picky}, instance=built.instance, tags=tags)
    rows = built.sql("SELECT action, signal FROM trading.decisions WHERE bar_time >= '2024-01-10 14:00' "
                     "AND bar_time < '2024-01-10 15:00'")
    assert len(rows) == 60
    signalled = [a for a, s in rows if s != 1]
    assert signalled, "the model should signal in this hour"
    assert set(signalled) == {"hold"}  # filtered before the rules: no entry, no skip:<reason>
