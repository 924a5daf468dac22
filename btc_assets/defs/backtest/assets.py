"""backtest/report: the out-of-sample signals traded by the numba engine and the shared risk rules, reported.

Reads models.signals, silver.klines_1m, silver.funding_rates and, when another layer provides it,
silver.mark_price_1m (otherwise liquidation and funding use the last traded price, and the metadata says so).
Writes a self-contained plotly page to the lake, the metrics to the materialization's metadata, and one MLflow run
in the "btc_assets.backtest" experiment tagged with the model versions it tested.
"""

import dataclasses
import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.backtest.tracking import log_backtest
from btc_assets.defs.resources.storage import LakeResource, MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.backtest import signals_from_classes, simulate
from btc_assets.lib.research.backtest.metrics import evaluate
from btc_assets.lib.research.models import registry
from btc_assets.defs.table_metadata import fmt, frame_table
from btc_assets.lib.research.backtest.report import PERCENT, breakdown, headline, render_report, trade_versions
from btc_assets.lib.storage.warehouse import table_exists

REPORT_PATH = "reports/backtest.html"
HEADLINE = ("total_return", "period_days", "annualised_return", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_days",
            "n_trades", "win_rate", "profit_factor", "expectancy", "avg_r", "exposure", "turnover", "fees_paid",
            "funding_paid", "longest_win_streak", "longest_loss_streak", "probabilistic_sharpe", "deflated_sharpe",
            "final_equity")
COMPARED = ("total_return", "sharpe", "max_drawdown", "n_trades", "win_rate")


def _round(v) -> float:
    v = float(v)
    return round(v, 6) if abs(v) < 1000 else round(v, 2)


def metrics_table(ev) -> dg.MetadataValue:
    """Strategy, buy-and-hold and random entry side by side, formatted (percentages as %, money in USDT)."""
    cols = ("strategy", "buy_and_hold", "random_entry")
    rows = [dg.TableRecord({"metric": k, **{c: fmt(getattr(ev, c).get(k), k in PERCENT) for c in cols}})
            for k in HEADLINE]
    return dg.MetadataValue.table(rows, schema=dg.TableSchema(
        [dg.TableColumn("metric", "string"), *(dg.TableColumn(c, "string") for c in cols)]))


def _load(conn, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    end = hi + pd.Timedelta(minutes=1)
    for table, asset in (("silver.klines_1m", "silver/klines_1m"), ("silver.funding_rates", "silver/funding_rates")):
        if not table_exists(conn, table):
            raise dg.Failure(f"{table} does not exist: materialize {asset} for the backtest's period first")
    bars = conn.execute("SELECT open_time, open, high, low, close, quote_volume FROM silver.klines_1m "
                        "WHERE open_time >= ? AND open_time <= ? ORDER BY open_time", [lo, end]).df()
    funding = conn.execute("SELECT funding_time, rate FROM silver.funding_rates WHERE funding_time >= ? AND "
                           "funding_time <= ?", [lo, end]).df()
    mark = None
    if table_exists(conn, "silver.mark_price_1m"):
        mark = conn.execute("SELECT open_time, open, high, low, close FROM silver.mark_price_1m WHERE open_time >= ? "
                            "AND open_time <= ? ORDER BY open_time", [lo, end]).df()
        mark["open_time"] = pd.to_datetime(mark["open_time"]).dt.tz_localize("UTC")
    for df, col in ((bars, "open_time"), (funding, "funding_time")):
        df[col] = pd.to_datetime(df[col]).dt.tz_localize("UTC")
    return bars, funding, mark


@dg.asset(
    key=["backtest", "report"],
    deps=[dg.AssetKey(["models", "signals"]), dg.AssetKey(["silver", "klines_1m"]),
          dg.AssetKey(["silver", "funding_rates"]), dg.AssetKey(["silver", "mark_price_1m"])],
    group_name="backtest",
    kinds={"plotly", "numba", "mlflow"},
    description="Every out-of-sample signal in models.signals traded by the numba engine with the shared risk rules "
    "(fills on the next bar, fees, slippage, real funding, liquidation, breakers), beside buy-and-hold and random "
    "entry; a self-contained plotly page, metrics in metadata, an MLflow run per materialization.",
)
def report(context: dg.AssetExecutionContext, warehouse: DuckDBResource, lake: LakeResource,
           trading: TradingResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "models.signals"):
            raise dg.Failure("models.signals does not exist: materialize models/signals first")
        sig = conn.execute("SELECT open_time, signal, model_version FROM models.signals ORDER BY open_time").df()
        no_model = ""
        if sig.empty:
            # No promoted model in any week: a correct outcome. The report shows it over the weeks that were
            # trained: nothing traded, beside buy-and-hold and (with no trade) random entry.
            table = registry.registry_table(registry.TRADING_FAMILY)
            weeks = (conn.execute(f"SELECT min(week_start), max(week_start) FROM {table}").fetchone()
                     if table_exists(conn, table) else (None, None))
            if weeks[0] is None:
                raise dg.Failure("models.signals is empty and no model was trained: materialize the model assets "
                                 "and models/signals for the days to backtest")
            lo = pd.Timestamp(weeks[0])
            hi = pd.Timestamp(weeks[1]) + pd.Timedelta(weeks=1) - pd.Timedelta(minutes=1)
            no_model = (f"no promoted {registry.TRADING_FAMILY} model in the weeks {lo:%Y-%m-%d} .. {hi:%Y-%m-%d}: "
                        "nothing traded (see the models' promotion checks for why)")
        else:
            lo, hi = sig["open_time"].min(), sig["open_time"].max()
        bars, funding, mark = _load(conn, lo, hi)
    if len(bars) < 2:
        raise dg.Failure(f"silver.klines_1m has {len(bars)} bars in {lo} .. {hi}: materialize silver/klines_1m there")
    last = pd.Timestamp(bars["open_time"].max())
    hi = min(hi, last.tz_localize(None) if pd.Timestamp(hi).tzinfo is None else last)  # weeks may reach past the data
    sig["open_time"] = pd.to_datetime(sig["open_time"]).dt.tz_localize("UTC")
    entries = signals_from_classes(sig.set_index("open_time")["signal"])
    # A signal for a minute silver lacks cannot be traded; a bar without a signal (no model yet) gets no entry.
    entries = entries[entries.index.isin(pd.DatetimeIndex(bars["open_time"]))]
    from btc_assets.defs.trading.market import regime_rules

    with warehouse.get_connection() as conn:  # the live decisions' regime filter and sizing, exactly
        entries, extra, regime, sizing = regime_rules(conn, bars, entries, trading.regime_filter,
                                                      trading.regime_sizing)
    models = sorted(sig["model_version"].unique())
    costs, risk = trading.costs(), trading.risk_config()  # the live trader's rules, exactly
    t0 = time.perf_counter()
    result = simulate(bars, entries, funding, mark=mark, costs=costs, risk=risk, initial_equity=trading.notional_usdt,
                      **extra)
    ev = evaluate(result, bars, funding, mark=mark, n_trials=max(len(models), 1))
    t1 = time.perf_counter()
    # What slippage cost: the same signals through the same rules without it (slippage lives in the fill prices).
    frictionless = simulate(bars, entries, funding, mark=mark, risk=risk, initial_equity=trading.notional_usdt,
                            costs=dataclasses.replace(costs, slippage_bps=0.0, slippage_vol_mult=0.0), **extra)
    slippage_impact = frictionless.final_equity - result.final_equity
    if result.mark_source != "mark":
        context.log.warning(f"mark price: {result.mark_source} — silver.mark_price_1m is missing or incomplete, "
                            "liquidation and funding use the last traded price there")
    versions = sig.set_index("open_time")["model_version"]
    html = render_report(result, ev, title=f"Backtest: {trading.strategy}", slippage_impact=slippage_impact,
                         versions=versions,
                         subtitle=f"{lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC · {len(bars):,} bars · "
                                  + (no_model or f"out-of-sample signals of {len(models)} model version(s): "
                                                 f"{', '.join(models)}"))
    uri = lake.write_bytes(REPORT_PATH, html.encode("utf-8"))  # a local file or an S3 object, per profile
    run_url, report_url = log_backtest(mlflow, result, ev, models, html, period=(lo, hi))
    m, b, r = ev.strategy, ev.buy_and_hold, ev.random_entry
    text, waterfall = headline(ev, slippage_impact)
    return dg.MaterializeResult(metadata={
        "headline": (no_model + ". " if no_model else "") + text + (
            f" Regime filter '{regime['regime_filter']}': {regime['kept']} of {regime['entries']} entry signals kept "
            f"({regime['dropped_against_forecast']} against the day's 1-day TFT forecast, "
            f"{regime['dropped_without_forecast']} on days without one)." if regime["regime_filter"] != "none" else "")
        + (f" Regime sizing 'spread': entries scaled on {sizing['days_scaled']} of {sizing['days']} days (mean factor "
           f"{sizing['mean_factor']:.2f}; {sizing['days_without_factor']} days without one keep full size)."
           if sizing["regime_sizing"] != "none" else ""),
        **{f"regime_{k}": v for k, v in regime.items()},
        **{f"sizing_{k}": v for k, v in sizing.items()},
        "metrics": metrics_table(ev),
        "costs_waterfall": dg.MetadataValue.table(
            [dg.TableRecord({"step": k, "usdt": f"{v:+,.2f}"}) for k, v in waterfall.items()],
            schema=dg.TableSchema([dg.TableColumn("step", "string"), dg.TableColumn("usdt", "string")])),
        "by_regime": frame_table(ev.by_regime.reset_index(), percent=("share_of_time", "strategy_return",
                                 "buy_and_hold_return", "random_entry_return", "win_rate")),
        "by_model_version": frame_table(breakdown(result.trades, trade_versions(result.trades, versions))
                                        .rename_axis("model_version").reset_index(), percent=("win_rate",)),
        "slippage_impact_usdt": round(slippage_impact, 2),
        "long_trades": int((result.trades["side"] == "long").sum()),
        "short_trades": int((result.trades["side"] == "short").sum()),
        # The same figures as numbers (rounded), so the UI can plot them across materializations.
        **{k: _round(m[k]) for k in HEADLINE},
        **{f"buy_and_hold_{k}": _round(b[k]) for k in COMPARED},
        **{f"random_entry_{k}": _round(r[k]) for k in COMPARED},
        **{f"skipped_{k}": v for k, v in result.skipped.items()},
        "bars": len(bars), "period": f"{lo} .. {hi}", "models": models,
        "price_for_liquidation_and_funding": result.mark_source, "exchange_rules": result.rules.version,
        "engine_and_metrics_seconds": round(t1 - t0, 3),
        "report": dg.MetadataValue.url(report_url),  # opens the page in the MLflow UI (a browser refuses file://)
        "report_path": dg.MetadataValue.path(uri),
        "mlflow_run": dg.MetadataValue.url(run_url),
    })
