"""What the demo built and where to look: table sizes, models, backtest headline, orders, and the paths."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from btc_assets.lib.storage.warehouse import table_exists

TABLES = ("bronze.files", "silver.klines_1m", "silver.klines_5m", "silver.klines_15m", "silver.klines_1h",
          "silver.klines_4h", "silver.klines_1d", "silver.klines_1h_history", "silver.klines_1d_history",
          "silver.funding_rates", "silver.agg_trades", "silver.order_flow_1m", "silver.book_depth", "silver.metrics",
          "silver.mark_price_1m", "gold.features", "gold.labels", "models.xgb_models", "models.lstm_models",
          "models.transformer_models", "models.tft_models", "models.regime_forecast",
          "models.ensemble_models", "models.oos_predictions", "models.signals", "trading.decisions",
          "trading.order_events")
FAMILIES = (("XGBoost", "models.xgb_models"), ("LSTM", "models.lstm_models"),
            ("Transformer", "models.transformer_models"), ("ensemble", "models.ensemble_models"),
            ("daily RF", "models.rf_daily_models"))


def _print_daily_selection() -> None:
    """The latest daily forward selection (models/rf_daily_selection), from its materialization's metadata."""
    import dagster as dg

    try:
        event = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey(["models", "rf_daily_selection"]))
    except Exception:  # noqa: BLE001 - no instance here: nothing to print
        return
    if event is None or event.asset_materialization is None:
        return
    m = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    print(f"\n== Daily strategy: greedy forward selection ({m.get('trials')} trials; hold-out {m.get('holdout')} never "
          f"seen by the selection; 5 bp one way) ==")
    print(f"  chosen: {m.get('chosen_features')}; deflated Sharpe of the selection {m.get('deflated_sharpe')}")
    for name in ("chosen", "fixed", "buy_and_hold"):
        sharpe, ret = m.get(f"holdout_{name}_sharpe"), m.get(f"holdout_{name}_return")
        print(f"  {name.replace('_', ' '):<13} hold-out Sharpe {sharpe}  return "
              f"{ret:+.1%}" if ret is not None else f"  {name}: no figure")


def _print_daily_strategy(root: Path) -> None:
    """The daily swing strategy's out-of-sample backtest headline and its signal log's last lines."""
    import json

    import dagster as dg

    try:
        event = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey(["strategy_daily", "backtest"]))
    except Exception:  # noqa: BLE001 - no instance here: nothing to print
        event = None
    if event is not None and event.asset_materialization is not None:
        m = event.asset_materialization.metadata
        print("\n== Daily swing strategy ==")
        print(f"  {m['headline'].value}")
    log = root / "lake" / "strategy_daily" / "signal_log.jsonl"
    if log.exists():
        for raw in log.read_text().splitlines()[-3:]:
            x = json.loads(raw)
            print(f"  {x['date']}: signal {x['signal']} -> {x['action']} on {x['venue']}, position "
                  f"{x['position_before']:+.4f} -> {x['position_after']:+.4f}" + (f" ({x['note']})" if x['note'] else ""))


def _print_lakehouse(conn) -> None:
    """The Delta tables the run committed (BTC_LAKEHOUSE_URI): commits, rows beside the DuckDB table's."""
    import os

    uri = os.environ.get("BTC_LAKEHOUSE_URI")
    if not uri:
        return
    from btc_assets.lib.storage.lakehouse import Lakehouse

    lake = Lakehouse.at(uri)
    shown = []
    for schema, name in conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                     "ORDER BY 1, 2").fetchall():
        table = f"{schema}.{name}"
        t = lake._table(table) if schema != "main" else None
        if t is None:
            continue
        delta_rows = int(sum(int(n) for n in t.get_add_actions(flatten=True).column("num_records").to_pylist()
                             if n is not None))
        duck_rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        shown.append((table, int(t.version()) + 1, delta_rows, duck_rows))
    if not shown:
        return
    from btc_assets.defs.bronze.assets import MANIFEST_TABLE
    from btc_assets.defs.trading.pnl import BOOKS_HISTORY

    # histories there (a books snapshot per refresh, a manifest row per fetch); DuckDB keeps the latest
    history = {BOOKS_HISTORY, MANIFEST_TABLE}
    same = sum(d == k for t, _, d, k in shown if t not in history)
    print(f"\n== Lakehouse ({uri}: Delta tables, one commit per window; {same} of "
          f"{sum(t not in history for t, *_ in shown)} hold exactly the rows of their DuckDB table) ==")
    for table, commits, d, k in shown:
        print(f"  {table:<28} {commits:>4} commits {d:>10,} rows" + (
            f"  (a history; DuckDB holds the latest, {k:,} rows)" if table in history
            else "" if d == k else f"  (DuckDB {k:,})"))


def print_summary(root: Path, timings: dict[str, float], wall_s: float) -> None:
    db = root / "warehouse.duckdb"
    with duckdb.connect(str(db), read_only=True) as conn:
        print("\n== What was built ==")
        for t in TABLES:
            if table_exists(conn, t):
                print(f"  {t:<24} {conn.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:>9,} rows")
        print("\n== Models (walk-forward out-of-sample inside the weeks before each trading week; the folds' "
              "predictions traded by the backtest engine after every cost) ==")
        promoted_any = False
        for family, table in FAMILIES:
            if not table_exists(conn, table):
                continue
            rows = conn.execute(f"SELECT week_start, test_accuracy, test_log_loss, baseline_log_loss, promoted, "
                                f"reason, wf_net_return, wf_trades, wf_psr, wf_random_entry_percentile, "
                                f"decision_rule FROM {table} ORDER BY week_start").fetchall()
            for w, acc, ll, bll, promoted, reason, net, trades, psr, pct, rule in rows:
                promoted_any |= bool(promoted)
                cost = json.loads(rule)["cost"] if rule else None
                none = ("after costs: no trade (the calibrated expected return never beat the round-trip cost "
                        f"{cost:.3%})" if cost is not None else "after costs: no trade")
                after = (f"after costs {net:+.2%} over {int(trades or 0)} trades, PSR {psr:.2f}, beats "
                         f"{pct:.0%} of random entries" if net is not None and trades else none)
                print(f"  {family:<11} week {w:%Y-%m-%d}  accuracy {acc:.3f}  log-loss {ll:.4f} vs majority {bll:.4f}"
                      f"  {after}\n  {'':<11}   -> {'promoted' if promoted else 'NOT promoted: ' + (reason or '')}")
        if not promoted_any:
            print("  No model earned its costs out of sample: nothing trades (a correct result, not an error).")
        _print_daily_selection()
        _print_daily_strategy(root)
        if table_exists(conn, "models.tft_models"):
            print("\n== Regime forecaster (TFT on the hourly history: quantiles of the 1/7/30-day return, out of "
                  "sample, pinball loss vs naive baselines) ==")
            for w, ll, z, hq, cov, promoted, secs, rows in conn.execute(
                    "SELECT week_start, pinball, zero_pinball, historical_pinball, coverage, promoted, train_seconds, "
                    "train_rows FROM models.tft_models ORDER BY week_start").fetchall():
                print(f"  TFT week {w:%Y-%m-%d}  pinball {ll:.5f} vs zero return {z:.5f}, historical quantiles "
                      f"{hq:.5f}; 10-90 % interval covers {cov:.0%}; final fit {secs:.0f} s on {rows:,} hours"
                      f"\n  {'':<9}-> {'promoted: its forecasts serve models/regime_forecast' if promoted else 'NOT promoted: no regime forecast from it'}")
        _print_lakehouse(conn)
        orders = conn.execute("SELECT count(DISTINCT client_order_id), count(*) FILTER (WHERE event='FILLED') "
                              "FROM trading.order_events").fetchone()
        print(f"\n== Paper trading (replay through the live path) ==\n  {orders[0]} orders journaled, {orders[1]} filled")
        actions = conn.execute("SELECT coalesce(action, 'hold'), count(*) FROM trading.decisions GROUP BY 1 "
                               "ORDER BY 2 DESC").fetchall()
        print("  plans: " + ", ".join(f"{a} {n}" for a, n in actions))
    _print_parity()
    _print_backtest()
    print("\n== Timings ==")
    for k, v in timings.items():
        if k != "replay_runs":
            print(f"  {k:<40} {v:6.1f} s")
    print(f"  {'total':<40} {wall_s:6.1f} s")
    print("\n== Where to look ==")
    report = root / "lake" / "reports" / "backtest.html"
    print(f"  backtest report   {report}" if report.exists() else "  backtest report   not built (skipped: see above)")
    print(f"  live dashboard    {root / 'lake' / 'reports' / 'live_dashboard.html'} (also: trading/dashboard in the UI)")
    print("  model comparison  MLflow experiment btc_assets.model_comparison: a run per week, each family's after-cost "
          "figures side by side, the winner and what was promoted" + _experiment_link())
    print(f"  DuckDB warehouse  {db}")
    print(f"  raw archive files {root / 'lake' / 'bronze'}")
    print(f"  MLflow store      {root / 'mlflow'}")
    print("  make ui           Dagster UI http://127.0.0.1:3000 (asset graph, runs, checks) and "
          "MLflow UI http://127.0.0.1:5000")


def _experiment_link() -> str:
    """The comparison experiment's runs table on its headline view, once `make ui` serves MLflow ('' if the
    experiment is not there)."""
    import mlflow

    from btc_assets.lib.research.models.tracking import COMPARISON_EXPERIMENT, experiment_url

    try:
        exp = mlflow.get_experiment_by_name(COMPARISON_EXPERIMENT)
    except Exception:  # noqa: BLE001 - a summary line, never a failure
        return ""
    return f"\n                    {experiment_url(exp.experiment_id)}" if exp is not None else ""


def _print_parity() -> None:
    import dagster as dg

    key = dg.AssetCheckKey(dg.AssetKey(["trading", "decisions"]), "decisions_match_backtest")
    rec = dg.DagsterInstance.get().event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    if rec is None or rec.event is None:
        return
    evaluation = rec.event.dagster_event.event_specific_data
    m = {k: v.value for k, v in evaluation.metadata.items()}
    if not m.get("bars_compared"):
        print(f"  live vs backtest parity: nothing comparable ({m.get('note', '')})")
        return
    print(f"  live vs backtest parity: {'PASSED' if evaluation.passed else 'FAILED'} over {m.get('bars_compared')} "
          f"bars (entries live {m.get('entries_live')}, backtest {m.get('entries_backtest')}; signals differing "
          f"{m.get('signals_differing')})")


def _print_backtest() -> None:
    import dagster as dg

    event = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey(["backtest", "report"]))
    if event is None or event.asset_materialization is None:
        return
    m = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    print(f"\n== Backtest (out-of-sample signals, after fees, slippage and funding; Sharpe from daily returns) ==\n"
          f"  {m['period']}\n  {m.get('headline', '')}")
    if "costs_waterfall_usdt" in m:
        print("  costs: " + ", ".join(f"{k} {v:+,.0f}" for k, v in m["costs_waterfall_usdt"].items()) + " USDT")
    print(f"  strategy      return {m['total_return']:+.2%}  Sharpe {m['sharpe']:+.2f}  max drawdown "
          f"{m['max_drawdown']:.2%}  trades {int(m['n_trades'])}  win rate {m['win_rate']:.1%}")
    print(f"  buy-and-hold  return {m['buy_and_hold_total_return']:+.2%}  Sharpe {m['buy_and_hold_sharpe']:+.2f}  "
          f"max drawdown {m['buy_and_hold_max_drawdown']:.2%}")
    print(f"  random entry  return {m['random_entry_total_return']:+.2%}  Sharpe {m['random_entry_sharpe']:+.2f}  "
          f"trades {int(m['random_entry_n_trades'])}")
