"""Backtest: the out-of-sample signals traded with taker fees and the real funding rates, against buy-and-hold."""


import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.resources import LakeResource, TradingResource
from btc_assets.lib import strategy
from btc_assets.lib.backtest import Costs, simulate
from btc_assets.lib.report import render_report
from btc_assets.lib.warehouse import table_exists

REPORT_PATH = "reports/backtest.html"
HEADLINE = ("total_return", "annualised_return", "sharpe", "max_drawdown", "n_trades", "win_rate", "fees_paid",
            "funding_paid", "exposure", "final_equity")


@dg.asset(
    key=["backtest", "report"],
    deps=[dg.AssetKey(["models", "signals"]), dg.AssetKey(["silver", "klines_1m"]),
          dg.AssetKey(["silver", "funding_rates"])],
    group_name="backtest",
    pool="duckdb",
    kinds={"plotly"},
    description="Every out-of-sample signal in models.signals traded by the strategy (fill at the next bar's open, "
    "taker fee, real funding), beside buy-and-hold over the same bars; a self-contained plotly HTML page.",
)
def report(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource, lake: LakeResource, trading: TradingResource
) -> dg.MaterializeResult:
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "models.signals"):
            raise dg.Failure("models.signals does not exist: materialize models/signals first")
        sig = conn.execute("SELECT open_time, signal, model_version FROM models.signals ORDER BY open_time").df()
        if sig.empty:
            raise dg.Failure("models.signals is empty: materialize models/signals for the days to backtest")
        lo, hi = sig["open_time"].min(), sig["open_time"].max()
        bars = conn.execute("SELECT open_time, open, high, low, close FROM silver.klines_1m WHERE open_time >= ? "
                            "AND open_time <= ? ORDER BY open_time", [lo, hi + pd.Timedelta(minutes=1)]).df()
        funding = conn.execute("SELECT funding_time, rate FROM silver.funding_rates WHERE funding_time >= ? AND "
                               "funding_time <= ?", [lo, hi + pd.Timedelta(minutes=1)]).df()
    for df, col in ((sig, "open_time"), (bars, "open_time"), (funding, "funding_time")):
        df[col] = pd.to_datetime(df[col]).dt.tz_localize("UTC")
    target = strategy.target_positions(sig.set_index("open_time")["signal"], trading.hold_bars)
    # A bar without a signal (no model for its week, not warmed up) is flat: never hold a stale decision.
    target = target.reindex(pd.DatetimeIndex(bars["open_time"])).fillna(0.0)
    result = simulate(bars, target, funding, costs=Costs(taker_fee=trading.taker_fee))
    models = sorted(sig["model_version"].unique())
    html = render_report(
        result, title=f"Backtest: {trading.strategy}",
        subtitle=f"{lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC · {len(bars):,} bars · out-of-sample signals of "
                 f"{len(models)} weekly models · taker {trading.taker_fee:.2%} · real funding",
    )
    uri = lake.write_bytes(REPORT_PATH, html.encode("utf-8"))
    m, b = result.metrics, result.benchmark_metrics
    return dg.MaterializeResult(metadata={
        **{k: float(m[k]) for k in HEADLINE},
        **{f"buy_and_hold_{k}": float(b[k]) for k in ("total_return", "sharpe", "max_drawdown")},
        "bars": len(bars), "period": f"{lo} .. {hi}", "models": models,
        "report": dg.MetadataValue.url(uri),
    })
