"""The daily swing strategy end to end on the bundled years of real daily bars: regimes, the after-cost backtest
of the walk-forward's out-of-sample calls beside buy-and-hold, the daily signal, and the 00:05 schedule's run
through the paper broker with the signal log on the lake and the email received by a local SMTP server."""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.models import assets as models
from btc_assets.defs.resources import local_resources
from btc_assets.defs.resources.trading import NotifierResource
from btc_assets.defs.silver import history
from btc_assets.defs.silver import klines as silver_klines
from btc_assets.defs.strategy_daily import assets as sd
from btc_assets.defs.trading import pnl as trading_pnl
from btc_assets_tests.smtp_server import smtp_server

ASSETS = dg.load_assets_from_modules([bronze, history, silver_klines, models, sd, trading_pnl])
DAY = "2024-02-28"


@pytest.fixture(scope="module")
def daily(tmp_path_factory, sample_archive):
    root = tmp_path_factory.mktemp("daily")
    resources = local_resources(root, archive_url=str(sample_archive))
    with dg.instance_for_test() as instance:
        def run(keys, partition_key=None, tags=None, run_config=None, res=None):
            return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=res or resources,
                                  instance=instance, tags=tags, run_config=run_config, partition_key=partition_key,
                                  raise_on_error=False)
        assert run([["bronze", "klines_history"], ["silver", "klines_1d_history"]],
                   tags={"dagster/asset_partition_range_start": "2019-10-01",
                         "dagster/asset_partition_range_end": "2024-12-01"}).success
        yield run, resources, root


def _meta(res):
    return res.get_asset_materialization_events()[-1].event_specific_data.materialization.metadata


def _log_config(**kw):
    return {"ops": {"strategy_daily__signal_log": {"config": {"require_promoted": False, **kw}}}}


SMALL_SIGNAL = {"ops": {"strategy_daily__signal": {"config": {"n_estimators": 20}}}}


def _both(**log):
    """The signal (20 trees) and the signal log's config in one run."""
    return {"ops": {**SMALL_SIGNAL["ops"], **_log_config(**log)["ops"]}}


def test_regimes_and_the_after_cost_backtest_beside_buy_and_hold(daily):
    run, resources, _root = daily
    assert run([["strategy_daily", "regimes"]]).success
    assert run([["models", "rf_daily_baseline"]], run_config={"ops": {"models__rf_daily_baseline": {"config": {
        "n_estimators": 20, "n_folds": 4}}}}).success
    res = run([["strategy_daily", "backtest"]])
    assert res.success
    m = _meta(res)
    assert m["out_of_sample_days"].value == 80  # four 20-day steps
    assert m["last_day"].value == "2024-12-31"  # the call at 12-30's close, held on the 31st
    for k in ("sharpe", "annualised_return", "max_drawdown", "win_rate", "calmar", "total_return"):
        assert f"strategy_{k}" in m and f"buy_and_hold_{k}" in m
    assert "after costs" in m["headline"].value and "buy-and-hold" in m["headline"].value
    assert m["report_path"].value.endswith("daily_strategy_backtest.html")
    with resources["warehouse"].get_connection() as conn:
        reg = conn.execute("SELECT regime, count(*) FROM strategy_daily.regimes GROUP BY 1").fetchall()
    assert {r for r, _ in reg} == {"bull", "bear", "sideways", None}
    # the rows of the by-regime table are the regimes the traded days had
    assert {r["regime"] for r in (x.data for x in m["by_regime"].value.records)} <= {"bull", "bear", "sideways"}


def test_a_signal_needs_its_days_bar():
    # partitions exist only where the sample's 1m files do; a day whose bar is missing is refused by name
    from btc_assets.lib.research.models import rf_daily
    from btc_assets.lib.strategies import daily_swing as ds

    bars = pd.DataFrame({"open_time": pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"),
                         "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    with pytest.raises(ValueError, match="daily bar of 2024-01-07 is not there"):
        ds.signal_for_day(bars, pd.Timestamp("2024-01-08", tz="UTC"), rf_daily.RfParams())


def _lines(root):
    return [json.loads(x) for x in (root / "lake" / sd.LOG_PATH).read_text().splitlines()]


def test_the_00_05_schedule_trades_through_paper_logs_and_emails(daily):
    run, resources, root = daily
    # the schedule at 00:05 on the 29th asks for the 28th: its close decides, the position is held on the 29th
    ctx = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 2, 29, 0, 5, tzinfo=dt.timezone.utc))
    (req,) = sd.daily_strategy_schedule.evaluate_tick(ctx).run_requests
    assert req.partition_key == DAY
    # the day before: HOLD on a flat book -> hold, nothing sent (the 20-tree forest's call on these real bars, seed 7)
    quiet = run([["strategy_daily", "signal"], ["strategy_daily", "signal_log"]], partition_key="2024-02-27",
                run_config=_both(notify=False))
    assert quiet.success and _meta(quiet)["action"].value == "hold"
    with smtp_server() as (inbox, port):
        res_email = {**resources, "notifier": NotifierResource(smtp_host="127.0.0.1", smtp_port=port,
                                                               smtp_security="none", smtp_to="desk@example.org")}
        res = run([["strategy_daily", "signal"], ["strategy_daily", "signal_log"]], partition_key=req.partition_key,
                  run_config=_both(), res=res_email)
        assert res.success
        assert len(inbox.messages) == 1 and DAY in inbox.messages[0]["subject"]
        assert "open_short" in inbox.messages[0]["subject"] and "SELL" in inbox.messages[0]["body"]
    sig = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert sig["signal"].value == "SELL"
    assert sig["held_on"].value == "2024-02-29" and sig["trained_through"].value == "2024-02-27"
    first, line = _lines(root)
    assert (first["date"], first["action"], first["orders"]) == ("2024-02-27", "hold", [])
    assert line["date"] == DAY and line["signal"] == "SELL" and line["venue"] == "paper-daily_swing"
    assert set(line["probabilities"]) == {"buy", "hold", "sell"} and line["action"] == "open_short"
    (order,) = line["orders"]
    assert order["result"] == "FILLED" and order["side"] == "SELL" and order["price"] > 0 and order["fee"] > 0
    assert line["position_before"] == 0 and line["position_after"] == pytest.approx(-order["qty"])
    # sized at the exposure (1x) of the paper equity at the reference price, on the step
    assert order["qty"] == pytest.approx(int(10_000 / line["reference_price"] / 0.001) * 0.001)
    with resources["warehouse"].get_connection() as conn:
        fills = conn.execute("SELECT broker, side FROM trading.order_events WHERE event = 'FILLED' AND "
                             "client_order_id LIKE 'daily_swing-%'").fetchall()
    assert fills == [("paper-daily_swing", "SELL")]
    # one journal, separate books: the scalper's account does not count the daily strategy's fill
    from btc_assets.lib.trading import metrics as trading_metrics

    with resources["warehouse"].get_connection() as conn:
        assert trading_metrics.snapshot(conn, 10_000.0).fills == 0
    assert _meta(res)["log_lines"].value == 2 and _meta(res)["notified"].value is True
    # a rerun of the day sends nothing twice and keeps one line per day
    again = run([["strategy_daily", "signal_log"]], partition_key=DAY, run_config=_log_config(notify=False))
    assert again.success
    line2 = _lines(root)[-1]
    assert [o["sent_now"] for o in line2["orders"]] == [False] and _meta(again)["log_lines"].value == 2
    assert line2["position_after"] == line["position_after"]


def test_an_unpromoted_model_takes_the_position_flat(daily):
    run, resources, root = daily
    # the default requires the daily model's promotion; the small walk-forward above did not promote it
    with resources["warehouse"].get_connection() as conn:
        (promoted,) = conn.execute("SELECT promoted FROM models.rf_daily_models ORDER BY trained_at DESC "
                                   "LIMIT 1").fetchone()
    assert not promoted
    res = run([["strategy_daily", "signal"], ["strategy_daily", "signal_log"]], partition_key="2024-02-29",
              run_config={"ops": {**SMALL_SIGNAL["ops"], "strategy_daily__signal_log": {"config": {"notify": False}}}})
    assert res.success
    m = _meta(res)
    assert m["promoted"].value is False and "not promoted" in m["note"].value
    assert m["action"].value == "close" and m["position_after"].value == 0  # the short of the 28th is closed
    line = _lines(root)[-1]
    assert line["target_direction"] == 0 and line["price_source"] == "close of 2024-02-29"
    (order,) = line["orders"]
    assert order["reduce_only"] and order["side"] == "BUY" and order["result"] == "FILLED"


def test_the_schedule_trades_through_the_fake_kraken_futures_venue(daily, monkeypatch):
    from btc_assets.defs.resources.trading import TradingResource
    from btc_assets_tests.fakes.kraken import run_in_thread
    from btc_assets_tests.fakes.test_kraken.conftest import KEY, SECRET

    run, resources, root = daily
    with run_in_thread(KEY, SECRET) as kx:
        for k, v in {"BTC_TRADING_MODE": "testnet", "KRAKEN_FUTURES_API_KEY": KEY, "KRAKEN_FUTURES_API_SECRET": SECRET,
                     "KRAKEN_FUTURES_URL": kx.url}.items():
            monkeypatch.setenv(k, v)
        fast = {**resources, "trading": TradingResource(maker_tries=1, requote_after_s=0.05)}
        res = run([["strategy_daily", "signal_log"]], partition_key=DAY, res=fast,
                  run_config=_log_config(venue="kraken", notify=False))
        assert res.success, res.get_step_failure_events()
        (line,) = [x for x in _lines(root) if x["venue"] == "kraken-demo"]
        assert line["date"] == DAY and line["action"] == "open_short"
        (order,) = line["orders"]
        assert order["result"] == "FILLED" and order["client_order_id"].startswith("daily_swing-")
        # the exchange holds what the log says, sized from the Kraken account's equity
        assert line["position_after"] == pytest.approx(-order["qty"]) and line["equity_before"] == pytest.approx(
            10_000.0)
        assert float(kx.exchange.position("PF_XBTUSD").size) == pytest.approx(line["position_after"])
        assert kx.exchange.leverage.get("PF_XBTUSD") == 2.0  # the trading resource's one leverage, set at start
        # a rerun sends nothing twice
        sent = len(kx.exchange.orders)
        again = run([["strategy_daily", "signal_log"]], partition_key=DAY, res=fast,
                    run_config=_log_config(venue="kraken", notify=False))
        assert again.success and len(kx.exchange.orders) == sent
        (line2,) = [x for x in _lines(root) if x["venue"] == "kraken-demo"]
        assert [o["sent_now"] for o in line2["orders"]] == [False] and line2["orders"][0]["result"] == "FILLED"
    with resources["warehouse"].get_connection() as conn:
        venues = dict(conn.execute("SELECT broker, count(*) FROM trading.order_events WHERE event = 'FILLED' AND "
                                   "client_order_id LIKE 'daily_swing-%' GROUP BY 1").fetchall())
    assert set(venues) == {"paper-daily_swing", "kraken-demo"}  # both venues in the one journal
    # ... and the books show them apart and together
    res = run([["trading", "books"]])
    assert res.success
    with resources["warehouse"].get_connection() as conn:
        rows = conn.execute("SELECT strategy, venue, fills, fees, net_pnl, position FROM trading.books").fetchall()
    by = {(r[0], r[1]): r for r in rows}
    assert set(by) == {("daily_swing", "paper-daily_swing"), ("daily_swing", "kraken-demo"), ("all", "all")}
    paper, kraken, total = by[("daily_swing", "paper-daily_swing")], by[("daily_swing", "kraken-demo")], by[("all", "all")]
    assert paper[2] == 2 and paper[5] == pytest.approx(0.0)  # the short of the 28th, closed on the 29th
    assert kraken[2] == 1 and kraken[5] < 0 and kraken[4] == pytest.approx(-kraken[3])  # open: only its fee realised
    assert total[2] == 3 and total[3] == pytest.approx(paper[3] + kraken[3])
    assert total[4] == pytest.approx(paper[4] + kraken[4])
    # the open Kraken short is marked at the warehouse's latest close (its unrealised P&L in the total)
    with resources["warehouse"].get_connection() as conn:
        (cost, mark, unrealised, net, whole), = conn.execute(
            "SELECT avg_cost, mark_price, unrealised_pnl, net_pnl, total_pnl FROM trading.books "
            "WHERE venue = 'kraken-demo'").fetchall()
    assert mark > 0 and unrealised == pytest.approx(kraken[5] * (mark - cost)) and whole == pytest.approx(net + unrealised)
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["marked_at"].value.startswith("Binance USD-M BTCUSDT")
    # with a lakehouse, each refresh appends its snapshot (as_of): the books' history, not one replaced table
    from btc_assets.defs.trading.pnl import BOOKS_HISTORY
    from btc_assets.lib.storage.lakehouse import Lakehouse

    lake_uri = str(root / "books_lakehouse")
    from btc_assets.defs.resources.storage import WarehouseResource

    with_lake = {**resources, "warehouse": WarehouseResource(database=resources["warehouse"].database,
                                                             lakehouse_uri=lake_uri)}
    assert run([["trading", "books"]], res=with_lake).success and run([["trading", "books"]], res=with_lake).success
    history = Lakehouse(lake_uri).read_window(BOOKS_HISTORY, "as_of", pd.Timestamp("2000-01-01", tz="UTC"),
                                              pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))
    assert history["as_of"].nunique() == 2 and len(history) == 2 * len(rows)
    assert set(zip(history["strategy"], history["venue"])) == set(by)


def test_kraken_needs_the_opt_in(daily, monkeypatch):
    run, _resources, _root = daily
    monkeypatch.delenv("BTC_TRADING_MODE", raising=False)
    res = run([["strategy_daily", "signal_log"]], partition_key=DAY, run_config=_log_config(venue="kraken"))
    assert not res.success
    err = str(res.get_step_failure_events()[0].event_specific_data.error)
    assert "Kraken Futures broker" in err and "BTC_TRADING_MODE" in err


def test_a_missing_signal_is_refused_by_name(daily):
    run, _resources, _root = daily
    res = run([["strategy_daily", "signal_log"]], partition_key="2024-02-20", run_config=_log_config())
    assert not res.success
    err = str(res.get_step_failure_events()[0].event_specific_data.error)
    assert "no signal for the day: materialize strategy_daily/signal" in err


def test_the_00_05_job_builds_the_days_bar_before_it_decides(daily):
    """At 00:05 the monthly archive file of the current month does not exist yet: the day's bar must come from its
    1m bars, which the job itself fetches (archive, else REST) and aggregates before the signal reads it."""
    run, resources, _root = daily
    job_keys = {tuple(k.path) for k in sd.daily_strategy_job.selection.resolve(ASSETS)}
    assert {("bronze", "klines_1m"), ("silver", "klines_1m"), ("silver", "klines_1d"),
            ("strategy_daily", "signal"), ("strategy_daily", "signal_log")} == job_keys
    day = "2024-02-26"
    with resources["warehouse"].get_connection() as conn:  # the month not published yet: no history from the 20th
        conn.execute("CREATE TABLE silver.kept_history AS SELECT * FROM silver.klines_1d_history "
                     "WHERE open_time >= '2024-02-20'")
        conn.execute("DELETE FROM silver.klines_1d_history WHERE open_time >= '2024-02-20'")
        had_1d = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'silver' "
                              "AND table_name = 'klines_1d'").fetchone()[0]
        if had_1d:
            conn.execute("DELETE FROM silver.klines_1d WHERE open_time::DATE = ?", [day])
    try:
        alone = run([["strategy_daily", "signal"]], partition_key=day, run_config=SMALL_SIGNAL)
        assert not alone.success  # the signal alone: the day's bar is not there
        assert "daily bar of 2024-02-26 is not there" in str(alone.get_step_failure_events()[0].event_specific_data.error)
        res = run([list(k) for k in sorted(job_keys - {("strategy_daily", "signal_log")})], partition_key=day,
                  run_config=SMALL_SIGNAL)
        assert res.success
        sig = next(e.event_specific_data.materialization.metadata for e in res.get_asset_materialization_events()
                   if e.event_specific_data.materialization.asset_key.path == ["strategy_daily", "signal"])
        assert sig["held_on"].value == "2024-02-27"
    finally:
        with resources["warehouse"].get_connection() as conn:
            conn.execute("INSERT INTO silver.klines_1d_history SELECT * FROM silver.kept_history")
            conn.execute("DROP TABLE silver.kept_history")
