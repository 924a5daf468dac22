"""Trading: one decision per closed bar (features -> signal -> target) and the orders sent for it, journaled.

Partitioning: daily, with one event per bar. A run covers the bars that closed since the sensor's previous tick
(tags btc/bars_from .. btc/bars_to); each bar's decision is its own journal row and its own AssetObservation, so
it stays identifiable, while the Dagster run history stays at a size a daily partition can carry (1,440 bars a
day would be 1,440 dynamic partitions a day otherwise).
"""


from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.gold.assets import WARMUP, features_until, load_bars
from btc_assets.defs.models import predict
from btc_assets.defs.models.common import TRADING_FAMILY, model_for_week
from btc_assets.defs.resources import MlflowResource, NotifierResource, TradingResource
from btc_assets.lib import strategy, trading_metrics
from btc_assets.lib.brokers.paper import PaperBroker
from btc_assets.lib.journal import Journal, client_order_id
from btc_assets.lib.kill_switch import KillSwitch, stop_trading
from btc_assets.lib.labels import CLASS_NAMES
from btc_assets.lib.warehouse import read_window

BARS_FROM, BARS_TO = "btc/bars_from", "btc/bars_to"
REQUESTED_AT = "btc/requested_at"  # epoch seconds when the sensor asked for the run: the bars' close on its clock
MINUTE = pd.Timedelta(minutes=1)


def bar_range(context: dg.AssetExecutionContext, conn) -> list[pd.Timestamp]:
    """The bars this run decides: the tagged range (or every bar of the day in silver), less those already decided."""
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    tags = context.run.tags
    done = Journal(conn).decided_bars(start, end)  # a retried run decides nothing twice
    if BARS_FROM in tags:
        lo, hi = pd.Timestamp(tags[BARS_FROM]), pd.Timestamp(tags[BARS_TO])
        if not (start <= lo <= hi < end):
            raise dg.Failure(f"bars {lo}..{hi} are not inside partition {context.partition_key}")
        wanted = list(pd.date_range(lo, hi, freq="1min"))
    else:
        wanted = list(read_window(conn, "silver.klines_1m", "open_time", start, end, ["open_time"])["open_time"])
    return [t for t in wanted if t not in done]


@dg.asset(
    key=["trading", "decisions"],
    ins={
        "k1m": dg.AssetIn(["silver", "klines_1m"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "model": dg.AssetIn(["models", "ensemble" if TRADING_FAMILY == "ensemble" else f"{TRADING_FAMILY}_model"],
                            partition_mapping=dg.TimeWindowPartitionMapping(),
                            dagster_type=dg.Nothing),
    },
    group_name="trading",
    partitions_def=partitions.daily,
    pool="duckdb",
    kinds={"duckdb"},
    description="One decision per closed 1m bar: point-in-time features -> promoted model of the week -> signal -> "
    "target position. Journal table trading.decisions. A week without a promoted model fails the run (no fallback).",
)
def decisions(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource, trading: TradingResource
) -> dg.MaterializeResult:
    with warehouse.get_connection() as conn:
        bars_to_decide = bar_range(context, conn)
        if not bars_to_decide:
            return dg.MaterializeResult(metadata={"bars": 0, "note": "nothing new to decide"})
        first, last = bars_to_decide[0], bars_to_decide[-1]
        one, higher = load_bars(conn, first - WARMUP, last + MINUTE)
        feats = features_until(one, higher, last + MINUTE).set_index("open_time")
        missing = [t for t in bars_to_decide if t not in feats.index]
        if missing:
            raise dg.Failure(f"bars not in silver yet: {', '.join(map(str, missing[:5]))}; materialize "
                             "silver/klines_1m for them first")
        rows = feats.loc[bars_to_decide]
        journal = Journal(conn)
        history = conn.execute(
            "SELECT bar_time, signal FROM trading.decisions WHERE bar_time >= ? AND bar_time < ?",
            [(first - trading.hold_bars * MINUTE).tz_localize(None), first.tz_localize(None)],
        ).df()
        frames = []
        for week, week_rows in rows.groupby(rows.index.tz_localize(None).to_period("W-SUN")):
            model = model_for_week(conn, week.start_time.tz_localize("UTC"))  # promoted only, else dg.Failure
            context_rows = feats[feats.index < week_rows.index.min()].reset_index()
            proba = predict.predict(mlflow, model, week_rows.reset_index(), context_rows)
            frames.append(pd.DataFrame({
                "bar_time": week_rows.index, "model_version": predict.version_label(model),
                "p_sell": proba[:, 0], "p_hold": proba[:, 1], "p_buy": proba[:, 2],
                "signal": proba.argmax(axis=1).astype("int8"),
            }))
        new = pd.concat(frames, ignore_index=True)
        past = pd.Series(history["signal"].to_numpy(), index=pd.to_datetime(history["bar_time"]).dt.tz_localize("UTC"))
        all_signals = pd.concat([past, pd.Series(new["signal"].to_numpy(), index=new["bar_time"])])
        new["target_position"] = strategy.target_positions(all_signals, trading.hold_bars).loc[new["bar_time"]].to_numpy()
        new["price"] = one.set_index("open_time").loc[new["bar_time"], "close"].to_numpy()
        new["decision_id"] = [client_order_id(trading.strategy, t, "decision") for t in new["bar_time"]]
        new["decided_at"] = pd.Timestamp.now(tz="UTC")
        requested = context.run.tags.get(REQUESTED_AT)
        new["requested_at"] = pd.Timestamp(float(requested), unit="s", tz="UTC") if requested else pd.NaT
        new["run_id"] = context.run.run_id
        journal.record_decisions(new)
    for row in new.itertuples():
        context.log_event(dg.AssetObservation(
            asset_key=["trading", "decisions"], partition=context.partition_key,
            metadata={"decision_id": row.decision_id, "bar_time": str(row.bar_time), "signal": CLASS_NAMES[row.signal],
                      "p_buy": float(row.p_buy), "p_sell": float(row.p_sell), "target_position": row.target_position,
                      "model_version": row.model_version},
        ))
    return dg.MaterializeResult(metadata={
        "bars": len(new), "first_bar": str(first), "last_bar": str(last),
        "models": sorted(new["model_version"].unique().tolist()),
        "signals": {CLASS_NAMES[k]: int(v) for k, v in new["signal"].value_counts().items()},
    })


@dg.asset(
    key=["trading", "orders"],
    deps=[dg.AssetKey(["trading", "decisions"])],
    group_name="trading",
    partitions_def=partitions.daily,
    pool="duckdb",
    kinds={"duckdb"},
    check_specs=[dg.AssetCheckSpec("orders_fill_after_their_decision", asset=["trading", "orders"],
                                   description="Every fill is priced at the open of the bar after its decision.")],
    description="Orders sent for the run's decisions through the paper broker (fill at the next bar's open plus the "
    "taker fee), from the append-only journal trading.order_events.",
)
def orders(context: dg.AssetExecutionContext, warehouse: DuckDBResource, trading: TradingResource,
           notifier: NotifierResource):
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    kill = KillSwitch(Path(trading.kill_file) if trading.kill_file else None).reasons(
        failed_data_checks(context.instance))
    with warehouse.get_connection() as conn:
        journal = Journal(conn)
        broker = PaperBroker(journal, trading.taker_fee, context.run.run_id)
        opens = read_window(conn, "silver.klines_1m", "open_time", start - WARMUP, end + MINUTE,
                            ["open_time", "open"]).set_index("open_time")["open"]

        def open_at(t: pd.Timestamp) -> float | None:
            return float(opens[t]) if t in opens.index else None

        fills = broker.fill_pending(open_at)
        if kill:  # cancel, flatten, alert; no new order this run
            last_bar = conn.execute("SELECT max(bar_time) FROM trading.decisions WHERE bar_time < ?",
                                    [end.tz_localize(None)]).fetchone()[0]
            stop_trading(broker, kill, strategy=trading.strategy, notifier=notifier.notifier(),
                         bar_time=pd.Timestamp(last_bar, tz="UTC") if last_bar else start, step=trading.step_size)
            fills += broker.fill_pending(open_at)
        decided = conn.execute(
            "SELECT bar_time, target_position, price FROM trading.decisions WHERE bar_time >= ? AND bar_time < ? "
            "ORDER BY bar_time", [start.tz_localize(None), end.tz_localize(None)]).df()
        decided["bar_time"] = pd.to_datetime(decided["bar_time"]).dt.tz_localize("UTC")
        sent = 0
        for row in decided.itertuples() if not kill else ():
            cid = client_order_id(trading.strategy, row.bar_time, "entry")
            if journal.has_order(cid):
                continue
            current = journal.position_before(row.bar_time)
            want = strategy.round_step(row.target_position * trading.notional_usdt / row.price, trading.step_size)
            delta = want - current
            if abs(delta) * row.price < trading.min_notional:
                continue
            sent += broker.submit(cid, row.bar_time, "BUY" if delta > 0 else "SELL", abs(delta))
            fills += broker.fill_pending(open_at)
        day = journal.orders(start, end)
        metrics = trading_metrics.snapshot(conn, initial_equity=trading.notional_usdt)
    if trading.metrics_file:
        trading_metrics.write_textfile(Path(trading.metrics_file), trading_metrics.render(metrics, trading.strategy))
    if fills:
        notifier.notifier().send(f"{len(fills)} fill(s) ({trading.strategy}, {trading.mode})", "\n".join(
            f"{f.side} {f.qty:.3f} @ {f.price:,.1f} (bar {f.bar_time:%Y-%m-%d %H:%M}, fee {f.fee:.2f})" for f in fills))
    filled = day[day["event"] == "FILLED"]
    on_time = [open_at(t + MINUTE) == p for t, p in zip(filled["bar_time"], filled["price"])]
    late = filled.loc[~pd.Series(on_time, index=filled.index, dtype=bool)]
    yield dg.MaterializeResult(metadata={
        "orders_sent_this_run": sent, "fills_this_run": len(fills), "kill_switch": kill, "orders_today": len(day),
        "open_orders": int((day["event"] == "NEW").sum()), "position_btc": metrics.position_btc,
        "paper_equity_usdt": metrics.equity_usdt, "paper_pnl_usdt": metrics.pnl_usdt,
        "fees_today_usdt": float(filled["fee"].sum()),
        "orders": dg.MetadataValue.md(day.tail(20).drop(columns=["run_id"]).to_markdown(index=False)) if len(day) else "",
    })
    yield dg.AssetCheckResult(check_name="orders_fill_after_their_decision", passed=late.empty,
                              metadata={"fills_checked": len(filled), "mismatched": late["client_order_id"].tolist()})


# A failed data-quality check upstream stops trading (the model promotion checks do not: an unpromoted model
# already trades nothing).
KILL_ON_CHECKS = [dg.AssetCheckKey(dg.AssetKey(["silver", "klines_1m"]), name) for name in
                  ("klines_1m_has_every_minute", "klines_1m_ohlc_consistent", "klines_1m_matches_schema")] + [
    dg.AssetCheckKey(dg.AssetKey(["gold", "features"]), name) for name in
    ("features_point_in_time", "features_finite_after_warmup", "features_match_schema")]


def failed_data_checks(instance: dg.DagsterInstance) -> list[str]:
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(KILL_ON_CHECKS)
    return [f"{key.asset_key.to_user_string()}: {key.name}" for key, rec in latest.items()
            if rec is not None and rec.status.value == "FAILED"]

