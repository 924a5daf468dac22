"""The daily swing strategy (lib/strategies/daily_swing.py) as assets.

- strategy_daily/regimes: bull / bear / sideways per day over the whole daily history (the stated 200-day rule);
- strategy_daily/backtest: the daily random forest's out-of-sample calls (models/rf_daily_baseline's expanding
  walk-forward) traded through the position table after costs, beside buy-and-hold, by regime and by year, with
  the scalper report's metrics, logged in MLflow (btc_assets.backtest) with its plotly page;
- strategy_daily/signal (daily): the signal decided at the close of the partition's day from the bars up to it,
  the forest fitted on every day labelled by then (table strategy_daily.signals);
- strategy_daily/signal_log (daily, 00:05 UTC): the signal against the venue's position per the position table,
  the orders sent (paper by default, Kraken Futures on explicit opt-in), one JSON line per day appended to
  strategy_daily/signal_log.jsonl on the lake (S3 in production), the notification (email, Telegram, webhook).

A partition is the day whose close the signal is decided at: the position it asks for is held over the next day.
"""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.automation import SCHEDULE_STATUS
from btc_assets.defs.backtest.tracking import EXPERIMENT as BACKTEST_EXPERIMENT
from btc_assets.defs.models.rf_baseline import daily_source
from btc_assets.defs.resources.storage import LakeResource, MlflowResource
from btc_assets.defs.resources.trading import NotifierResource, TradingResource
from btc_assets.defs.silver.history import read_history
from btc_assets.defs.table_metadata import fmt, frame_table, table_metadata
from btc_assets.lib.research.models import rf_daily
from btc_assets.lib.research.models.registry import registry_table
from btc_assets.lib.research.models.tracking import ui_url
from btc_assets.lib.storage.warehouse import read_window, replace_window, table_exists
from btc_assets.lib.strategies import daily_swing as ds
from btc_assets.lib.trading.journal import Journal, client_order_id

GROUP = "strategy_daily"
REGIMES_TYPES = {"open_time": "TIMESTAMP", "close": "DOUBLE", "sma": "DOUBLE", "distance": "DOUBLE",
                 "regime": "VARCHAR"}
SIGNAL_TYPES = {"day": "TIMESTAMP", "decided_for": "TIMESTAMP", "p_sell": "DOUBLE", "p_hold": "DOUBLE",
                "p_buy": "DOUBLE", "signal": "VARCHAR", "direction": "TINYINT", "train_days": "BIGINT",
                "trained_through": "TIMESTAMP", "features": "VARCHAR", "model": "VARCHAR"}
LOG_PATH = "strategy_daily/signal_log.jsonl"
REPORT_PATH = "reports/daily_strategy_backtest.html"
FAR = pd.Timestamp("2000-01-01", tz="UTC")


def _bars_until(conn, end: pd.Timestamp) -> tuple[pd.DataFrame, str]:
    """Daily bars before `end` (silver/history.read_history: 1m-built where complete, the archive's elsewhere)."""
    daily = read_history(conn, "1d", FAR, end)
    daily["open_time"] = pd.to_datetime(daily["open_time"], utc=True)
    return daily.reset_index(drop=True), "silver.klines_1d_history + silver.klines_1d"


def _funding(conn) -> pd.DataFrame | None:
    if not table_exists(conn, "silver.funding_rates"):
        return None
    return read_window(conn, "silver.funding_rates", "funding_time", FAR, pd.Timestamp.now(tz="UTC"),
                       ["funding_time", "rate"])


class RegimeConfig(dg.Config):
    window: int = 200
    band: float = 0.05


@dg.asset(
    key=[GROUP, "regimes"],
    deps=[dg.AssetDep(["silver", "klines_1d_history"], partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(["silver", "klines_1d"], partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    kinds={"duckdb"},
    description="Market regime of every day of the daily history: bull when the close is more than `band` (5 %) "
    "above its `window`-day (200) simple moving average, bear when more than `band` below, sideways between; none "
    "before the average exists. Known at the day's close. Table strategy_daily.regimes.",
)
def regimes(context: dg.AssetExecutionContext, config: RegimeConfig, warehouse: DuckDBResource):
    with warehouse.get_connection() as conn:
        daily, source = daily_source(conn)
        reg = ds.regimes(daily, config.window, config.band)
        out = reg.assign(open_time=pd.to_datetime(reg["open_time"], utc=True))
        replace_window(conn, "strategy_daily.regimes", REGIMES_TYPES, out, "open_time", FAR,
                       pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))
    counts = out["regime"].fillna("none").value_counts()
    runs = out["regime"].fillna("none")
    spells = int((runs != runs.shift()).sum())
    return dg.MaterializeResult(metadata={
        "days": len(out), "daily_bars": source, "rule": f"close vs SMA({config.window}) beyond ±{config.band:.0%}",
        **{f"days_{k}": int(counts.get(k, 0)) for k in ("bull", "bear", "sideways", "none")}, "spells": spells,
        "first_day": f"{out['open_time'].min():%Y-%m-%d}", "last_day": f"{out['open_time'].max():%Y-%m-%d}",
        **table_metadata(out)})


class DailyBacktestConfig(dg.Config):
    exposure: float = 1.0  # notional of a new position as a fraction of equity
    cost_bps_one_way: float = 5.0
    initial_equity: float = 10_000.0
    max_liq_prob: float = 0.01  # refuse an entry more likely than this to be liquidated within a month


def oos_predictions(conn) -> pd.DataFrame:
    """The latest rf_daily walk-forward's out-of-sample daily calls (models.oos_predictions)."""
    if not table_exists(conn, "models.oos_predictions"):
        raise dg.Failure("no out-of-sample predictions: materialize models/rf_daily_baseline first")
    df = conn.execute(
        "SELECT open_time, p_sell, p_hold, p_buy, signal FROM models.oos_predictions WHERE family = 'rf_daily' "
        "AND week_start = (SELECT max(week_start) FROM models.oos_predictions WHERE family = 'rf_daily') "
        "ORDER BY open_time").df()
    if df.empty:
        raise dg.Failure("models.oos_predictions has no rf_daily rows: materialize models/rf_daily_baseline first")
    df["open_time"] = pd.to_datetime(df["open_time"]).dt.tz_localize("UTC")
    return df


@dg.asset(
    key=[GROUP, "backtest"],
    deps=[dg.AssetKey(["models", "rf_daily_baseline"]), dg.AssetKey([GROUP, "regimes"])],
    group_name=GROUP,
    kinds={"plotly", "mlflow"},
    description="The daily strategy after costs: the random forest's out-of-sample calls of the expanding "
    "walk-forward (models/rf_daily_baseline: 1,250 days to start, 20-day steps) traded through the position table "
    "(hold / open / close / reverse; a call at day d's close is held over d+1) on the shared backtest engine (the "
    "scalper's compiled loop with the table's rules: exposure sizing, no stop, flat on HOLD, the liquidation "
    "probability guard), 5 bp one way on traded notional, "
    "funding at settlements; beside buy-and-hold over the same days; Sharpe (daily returns, 365-day year), annual "
    "return, max drawdown, win rate, Calmar; by regime and by year; MLflow run in btc_assets.backtest with the page.",
)
def daily_backtest(context: dg.AssetExecutionContext, config: DailyBacktestConfig, warehouse: DuckDBResource,
                   mlflow: MlflowResource, lake: LakeResource):
    import mlflow as ml

    with warehouse.get_connection() as conn:
        daily, source = daily_source(conn)
        oos = oos_predictions(conn)
        funding = _funding(conn)
        reg = (conn.execute("SELECT * FROM strategy_daily.regimes ORDER BY open_time").df()
               if table_exists(conn, "strategy_daily.regimes") else None)
    if reg is not None:
        reg["open_time"] = pd.to_datetime(reg["open_time"]).dt.tz_localize("UTC")
    directions = pd.Series(oos["signal"].map(ds.DIRECTION).to_numpy(),
                           index=pd.DatetimeIndex(oos["open_time"]) + ds.DAY)  # decided at d's close, held on d+1
    bt = ds.backtest(daily, directions, funding, initial_equity=config.initial_equity, exposure=config.exposure,
                     cost_one_way=config.cost_bps_one_way / 1e4, regime=reg, max_liq_prob=config.max_liq_prob)
    period = (bt.days["open_time"].min(), bt.days["open_time"].max())
    html = _report_html(bt, period)
    names = ["total_return", "annualised_return", "sharpe", "max_drawdown", "win_rate", "calmar", "n_trades",
             "fees_paid", "funding_paid", "probabilistic_sharpe", "exposure", "period_days"]
    exp = mlflow.activate(BACKTEST_EXPERIMENT)
    with ml.start_run(experiment_id=exp, run_name=f"daily_swing {period[0]:%Y-%m-%d}..{period[1]:%Y-%m-%d}",
                      tags={"strategy": ds.NAME, "model_versions": "rf_daily (walk-forward, out of sample)",
                            "daily_bars": source}) as run:
        ml.log_params({**config.model_dump(), "decision": "position table", "min_train_days": "per rf_daily"})
        ml.log_metrics({**{k: float(v) for k, v in bt.strategy.items() if k in names and np.isfinite(v)},
                        **{f"buy_and_hold.{k}": float(v) for k, v in bt.buy_and_hold.items()
                           if k in names and np.isfinite(v)}})
        ml.log_text(html, "daily_backtest.html")
        run_url = ui_url(exp, run.info.run_id)
        report_url = ui_url(exp, run.info.run_id, "daily_backtest.html")
    path = lake.write_bytes(REPORT_PATH, html.encode())
    pct = {"total_return", "annualised_return", "max_drawdown", "win_rate", "exposure"}
    table = pd.DataFrame([{"metric": k, "strategy": fmt(bt.strategy[k], k in pct),
                           "buy_and_hold": fmt(bt.buy_and_hold[k], k in pct)} for k in names])
    s, b = bt.strategy, bt.buy_and_hold
    headline = (f"daily swing {period[0]:%Y-%m-%d}..{period[1]:%Y-%m-%d} (out of sample, after costs): "
                f"{s['total_return']:+.1%}, Sharpe {s['sharpe']:.2f}, max drawdown {s['max_drawdown']:.1%} over "
                f"{int(s['n_trades'])} trades; buy-and-hold {b['total_return']:+.1%}, Sharpe {b['sharpe']:.2f}, "
                f"max drawdown {b['max_drawdown']:.1%}")
    context.log.info(headline)
    return dg.MaterializeResult(metadata={
        "headline": headline, "metrics": frame_table(table), "by_regime": frame_table(
            bt.by_regime, percent=("strategy_return", "buy_and_hold_return", "win_rate", "long_share")),
        "by_year": frame_table(bt.by_year, percent=("strategy_return", "buy_and_hold_return", "win_rate",
                                                    "long_share")),
        "trades": frame_table(bt.trades.tail(200)), "out_of_sample_days": len(bt.days),
        "signals_not_traded": bt.skipped or "none (every change of direction was traded)",
        "first_day": f"{period[0]:%Y-%m-%d}", "last_day": f"{period[1]:%Y-%m-%d}",
        "mlflow_run": dg.MetadataValue.url(run_url), "report": dg.MetadataValue.url(report_url),
        "report_path": path, **{f"strategy_{k}": float(v) for k, v in s.items() if k in names},
        **{f"buy_and_hold_{k}": float(v) for k, v in b.items() if k in names}})


def _report_html(bt: ds.DailyBacktest, period) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    d = bt.days
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.55, 0.25, 0.2],
                        subplot_titles=("equity after costs vs buy-and-hold", "drawdown", "position held"))
    fig.add_trace(go.Scatter(x=d["open_time"], y=d["equity"], name="daily swing"), row=1, col=1)
    fig.add_trace(go.Scatter(x=d["open_time"], y=d["buy_and_hold_equity"], name="buy and hold"), row=1, col=1)
    dd = d["equity"] / d["equity"].cummax() - 1
    fig.add_trace(go.Scatter(x=d["open_time"], y=dd, name="drawdown", fill="tozeroy"), row=2, col=1)
    fig.add_trace(go.Scatter(x=d["open_time"], y=d["direction"], name="position", line_shape="hv"), row=3, col=1)
    fig.update_layout(height=800, title=f"Daily swing strategy, out of sample {period[0]:%Y-%m-%d} .. "
                      f"{period[1]:%Y-%m-%d}")
    pct = ("strategy_return", "buy_and_hold_return", "win_rate", "long_share")
    def tab(df):
        return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", formatters={
            c: (lambda v: "n/a" if pd.isna(v) else f"{v:.1%}") for c in pct if c in df})
    metrics = pd.DataFrame({"strategy": bt.strategy, "buy_and_hold": bt.buy_and_hold})
    return ("<html><head><meta charset='utf-8'><title>daily swing backtest</title></head><body>"
            + fig.to_html(full_html=False, include_plotlyjs="cdn")
            + "<h3>metrics (Sharpe from daily returns, 365-day year)</h3>" + metrics.to_html(float_format="%.4g")
            + "<h3>by regime (the regime known at the decision)</h3>" + tab(bt.by_regime)
            + "<h3>by year</h3>" + tab(bt.by_year)
            + "<h3>trades</h3>" + bt.trades.to_html(index=False, float_format=lambda v: f"{v:.6g}")
            + "</body></html>")


class DailySignalConfig(dg.Config):
    n_estimators: int = 300
    max_depth: int = 4
    min_train_days: int = 250  # the forest needs at least this many labelled days before the signal's day
    seed: int = 7


@dg.asset(
    key=[GROUP, "signal"],
    deps=[dg.AssetKey(["silver", "klines_1d"]),
          dg.AssetDep(["silver", "klines_1d_history"], partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    partitions_def=partitions.daily,
    kinds={"scikitlearn", "duckdb"},
    description="The daily strategy's signal decided at the close of the partition's day (run at 00:05 UTC the "
    "next day): the random forest on the four daily features fitted on every day labelled by then (the last "
    "label needs that close) and applied to the day's features; BUY / SELL / HOLD with the probabilities. No bar "
    "after the day is read. Table strategy_daily.signals.",
)
def daily_signal(context: dg.AssetExecutionContext, config: DailySignalConfig, warehouse: DuckDBResource):
    day = pd.Timestamp(context.partition_key, tz="UTC")
    with warehouse.get_connection() as conn:
        daily, source = _bars_until(conn, day + ds.DAY)
    p = rf_daily.RfParams(n_estimators=config.n_estimators, max_depth=config.max_depth, seed=config.seed)
    try:
        sig = ds.signal_for_day(daily, day + ds.DAY, p, config.min_train_days)
    except ValueError as exc:
        raise dg.Failure(f"strategy_daily/signal partition {context.partition_key}: {exc}") from None
    row = pd.DataFrame([{"day": day, "decided_for": sig.day, "p_sell": sig.p_sell, "p_hold": sig.p_hold,
                         "p_buy": sig.p_buy, "signal": sig.signal, "direction": sig.direction,
                         "train_days": sig.train_days, "trained_through": sig.trained_through,
                         "features": json.dumps(sig.features), "model": f"rf_daily {p.as_dict()}"}])
    with warehouse.get_connection() as conn:
        replace_window(conn, "strategy_daily.signals", SIGNAL_TYPES, row, "day", day, day + ds.DAY)
    return dg.MaterializeResult(metadata={
        "signal": sig.signal, "p_buy": round(sig.p_buy, 4), "p_hold": round(sig.p_hold, 4),
        "p_sell": round(sig.p_sell, 4), "held_on": f"{sig.day:%Y-%m-%d}", "train_days": sig.train_days,
        "trained_through": f"{sig.trained_through:%Y-%m-%d}", "daily_bars": source,
        **{k: round(v, 5) for k, v in sig.features.items()}, **table_metadata(row)})


class SignalLogConfig(dg.Config):
    venue: str = "paper"  # paper | kraken (Kraken Futures: BTC_TRADING_MODE testnet = demo, live with BTC_LIVE_CONFIRM)
    exposure: float = 1.0  # notional of a new position as a fraction of the account's equity
    require_promoted: bool = True  # trade only while the latest rf_daily verdict promotes the model
    slippage_bps: float = 2.0  # paper fills: the reference price moved this much against the order
    notify: bool = True


def _promotion(conn) -> tuple[bool, str]:
    table = registry_table("rf_daily")
    if not table_exists(conn, table):
        return False, "no rf_daily verdict yet: materialize models/rf_daily_baseline"
    row = conn.execute(f"SELECT promoted, reason, model_version FROM {table} ORDER BY trained_at DESC LIMIT 1"
                       ).fetchall()
    if not row:
        return False, "no rf_daily verdict yet: materialize models/rf_daily_baseline"
    promoted, reason, version = row[0]
    return bool(promoted), f"rf_daily v{version}: {reason}"


def _reference_price(conn, day: pd.Timestamp) -> tuple[float, str]:
    """The price the day's orders are worked at: the first 1m bar's open of the held day when it exists, else the
    decided day's close."""
    held = day + ds.DAY
    if table_exists(conn, "silver.klines_1m"):
        first = read_window(conn, "silver.klines_1m", "open_time", held, held + pd.Timedelta(minutes=1),
                            ["open_time", "open"])
        if len(first):
            return float(first["open"].iloc[0]), f"open of {held:%Y-%m-%d} 00:00 (silver 1m)"
    bar = read_history(conn, "1d", day, day + ds.DAY)
    if bar.empty:
        raise dg.Failure(f"strategy_daily/signal_log {day:%Y-%m-%d}: no daily bar of the day to price the orders at: "
                         "materialize silver/klines_1d (or silver/klines_1d_history) for it")
    return float(bar["close"].iloc[0]), f"close of {day:%Y-%m-%d}"


def build_broker(config: SignalLogConfig, trading: TradingResource, journal: Journal, run_id: str):
    if config.venue == "paper":
        from btc_assets.lib.trading.brokers.paper_daily import DailyPaperBroker

        return DailyPaperBroker(journal, ds.NAME, run_id, taker_fee=trading.taker_fee,
                                slippage_bps=config.slippage_bps, initial_balance=trading.notional_usdt)
    if config.venue == "kraken":
        return trading.kraken_broker(journal, run_id)
    raise dg.Failure(f"strategy_daily/signal_log: venue {config.venue!r} is unknown: use paper or kraken")


@dg.asset(
    key=[GROUP, "signal_log"],
    deps=[dg.AssetKey([GROUP, "signal"])],
    group_name=GROUP,
    partitions_def=partitions.daily,
    kinds={"duckdb"},
    description="The daily strategy live: the day's signal against the venue's position per the position table "
    "(hold / open / close / reverse), the orders sent (paper by default; Kraken Futures PF_XBTUSD on explicit "
    "opt-in) and journaled in trading.order_events with the venue, one JSON line per day (date, signal, "
    "probabilities, position before/after, orders and their result) in strategy_daily/signal_log.jsonl on the "
    "lake (one per date and venue), and the notification (email / Telegram / webhook). Rerunning a day sends nothing twice.",
)
def signal_log(context: dg.AssetExecutionContext, config: SignalLogConfig, warehouse: DuckDBResource,
               trading: TradingResource, notifier: NotifierResource, lake: LakeResource):
    day = pd.Timestamp(context.partition_key, tz="UTC")
    with warehouse.get_connection() as conn:
        sig = read_window(conn, "strategy_daily.signals", "day", day, day + ds.DAY) \
            if table_exists(conn, "strategy_daily.signals") else pd.DataFrame()
        if sig.empty:
            raise dg.Failure(f"strategy_daily/signal_log {context.partition_key}: no signal for the day: "
                             "materialize strategy_daily/signal for it first")
        s = sig.iloc[-1]
        promoted, verdict = _promotion(conn)
        price, price_source = _reference_price(conn, day)
        journal = Journal(conn)
        broker = build_broker(config, trading, journal, context.run.run_id)
        if hasattr(broker, "reference_price"):
            broker.reference_price = price
        # The position the day started from: the venue's, less what this day's orders already filled (a rerun of
        # the day decides the same orders, finds them sent, and logs the same record)
        day_ids = [client_order_id(ds.NAME, day, f"{config.venue}-{leg}") for leg in ("close", "open")]
        before = broker.position() - _filled(conn, day_ids)
        direction = int(s["direction"])
        why = ""
        if config.require_promoted and not promoted:
            direction, why = 0, f"not promoted, the target is flat ({verdict})"
        equity = _equity(broker, price)
        exposure = min(config.exposure, float(trading.leverage))
        qty = ds.target_qty(equity, price, exposure, trading.step_size)
        action, orders = ds.position_change(before, direction, qty, tol=trading.step_size / 2)
        sent = []
        for od in orders:
            cid = client_order_id(ds.NAME, day, f"{config.venue}-{od.leg}")  # one id per day, venue and leg
            new = broker.submit(cid, day, od.side, od.qty, reduce_only=od.reduce_only)
            sent.append({"client_order_id": cid, "leg": od.leg, "side": od.side, "qty": od.qty,
                         "reduce_only": od.reduce_only, "sent_now": bool(new)})
        results = order_results(conn, [o["client_order_id"] for o in sent])
        for o in sent:
            r = results.get(o["client_order_id"], {})
            o.update(result=r.get("event", "unknown"), price=_num(r.get("price")), fee=_num(r.get("fee")),
                     note=r.get("note") or "")
        after = broker.position()
        equity_after = _equity(broker, price)
    line = {"date": context.partition_key, "held_on": f"{day + ds.DAY:%Y-%m-%d}", "signal": s["signal"],
            "probabilities": {"sell": round(float(s["p_sell"]), 4), "hold": round(float(s["p_hold"]), 4),
                              "buy": round(float(s["p_buy"]), 4)},
            "promoted": promoted, "verdict": verdict, "target_direction": direction, "action": action,
            "position_before": round(before, 8), "position_after": round(after, 8), "reference_price": price,
            "price_source": price_source, "venue": broker.name, "orders": sent, "note": why,
            "equity_before": round(equity, 2), "equity_after": round(equity_after, 2),
            "logged_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    uri, lines = append_log_line(lake, line)
    text = (f"{context.partition_key}: signal {s['signal']} (buy {s['p_buy']:.2f} / hold {s['p_hold']:.2f} / sell "
            f"{s['p_sell']:.2f}) -> {action}; position {before:+.4f} -> {after:+.4f} BTC on {broker.name}"
            + (f"; {why}" if why else "") + "".join(f"\n{o['leg']} {o['side']} {o['qty']:.4f}: {o['result']}"
                                                    f"{' @ ' + format(o['price'], '.2f') if o['price'] else ''}"
                                                    for o in sent))
    notified = notifier.notifier().send(f"daily swing {context.partition_key}: {action}", text) if config.notify \
        else False
    return dg.MaterializeResult(metadata={
        "signal": s["signal"], "action": action, "position_before": before, "position_after": after,
        "venue": broker.name, "promoted": promoted, "verdict": verdict, "reference_price": price,
        "equity_before": equity, "equity_after": equity_after,
        "orders": frame_table(pd.DataFrame(sent)) if sent else "none (hold)", "signal_log": uri,
        "log_lines": lines, "notified": notified, "note": why or "none"})


def _equity(broker, price: float) -> float:
    """The account's equity: the paper ledger marked at the price, or the exchange account's (Kraken: flex)."""
    if hasattr(broker, "equity"):
        return float(broker.equity(price))
    return float(broker.account()[0])


def _filled(conn, cids: list[str]) -> float:
    """Signed base quantity the journal has FILLED for these orders."""
    marks = ", ".join("?" * len(cids))
    return float(conn.execute(
        "SELECT coalesce(sum(CASE side WHEN 'BUY' THEN qty ELSE -qty END), 0) FROM trading.order_events "
        f"WHERE event = 'FILLED' AND client_order_id IN ({marks})", cids).fetchone()[0])


def order_results(conn, cids: list[str]) -> dict[str, dict]:
    """Each order's final journal event (FILLED / REJECTED / ...; ACKs are legs), its price, fee and note."""
    if not cids:
        return {}
    marks = ", ".join("?" * len(cids))
    df = conn.execute(
        "SELECT client_order_id, arg_max(event, seq) AS event, arg_max(price, seq) AS price, arg_max(fee, seq) AS fee, "
        f"arg_max(note, seq) AS note FROM trading.order_events WHERE client_order_id IN ({marks}) AND event <> 'ACK' "
        "GROUP BY 1", cids).df()
    return {r["client_order_id"]: r for r in df.to_dict("records")}


def _num(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)


def append_log_line(lake, line: dict) -> tuple[str, int]:
    """Append the day's line to the JSON-lines log (a rerun of the day on the same venue replaces its line: one per
    date and venue)."""
    try:
        existing = lake.read_bytes(LOG_PATH).decode().splitlines()
    except FileNotFoundError:
        existing = []

    def key(x: dict) -> tuple[str, str]:
        return x.get("date", ""), x.get("venue", "")
    kept = [x for x in existing if x.strip() and key(json.loads(x)) != key(line)]
    kept.append(json.dumps(line, default=str, sort_keys=True))
    kept.sort(key=lambda x: key(json.loads(x)))
    return lake.write_bytes(LOG_PATH, ("\n".join(kept) + "\n").encode()), len(kept)


# At 00:05 the day that just closed is in no archive file yet (the daily file comes hours later, the monthly one after
# the month): the job builds its bar first, from its 1m bars (bronze falls back to the REST API in the archive's
# layout when the archive lacks the day, and the REST sensor swaps the archive's file in later), then decides.
DAY_BAR = (["bronze", "klines_1m"], ["silver", "klines_1m"], ["silver", "klines_1d"])
daily_strategy_job = dg.define_asset_job(
    "daily_strategy_job", selection=dg.AssetSelection.assets(*DAY_BAR, [GROUP, "signal"], [GROUP, "signal_log"]),
    partitions_def=partitions.daily, tags={"dagster/max_retries": "0"})
# 00:05 UTC: the day that just closed is the partition (its close decides; the position is held over today).
daily_strategy_schedule = dg.build_schedule_from_partitioned_job(
    daily_strategy_job, hour_of_day=0, minute_of_hour=5,
    default_status=SCHEDULE_STATUS)
