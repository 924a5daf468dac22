"""Live/backtest parity: the live path's decisions must equal the batch out-of-sample signals of the same bars.

Both paths call the same feature code, the same model of the week and the same strategy function, so any
difference is a bug (a look-ahead in batch, a stale model or missing history live). The check reports the drift:
bars compared, signals that differ, the largest probability difference, and the target positions that differ
from the strategy applied to the batch signals.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.resources import TradingResource
from btc_assets.lib import strategy
from btc_assets.lib.warehouse import table_exists

PROBA_TOLERANCE = 1e-6


@dg.asset_check(asset=["trading", "decisions"], description=__doc__.split("\n\n")[0])
def decisions_match_backtest_signals(warehouse: DuckDBResource, trading: TradingResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as conn:
        if not (table_exists(conn, "trading.decisions") and table_exists(conn, "models.signals")):
            return dg.AssetCheckResult(passed=True, metadata={"bars_compared": 0, "note": "nothing to compare yet"})
        live = conn.execute(
            "SELECT d.bar_time, d.signal AS live_signal, d.p_buy AS live_p_buy, d.target_position, "
            "s.signal AS batch_signal, s.p_buy AS batch_p_buy, d.model_version = s.model_version AS same_model "
            "FROM trading.decisions d JOIN models.signals s ON s.open_time = d.bar_time ORDER BY d.bar_time").df()
        lo = live["bar_time"].min() - pd.Timedelta(minutes=trading.hold_bars) if len(live) else None
        batch = conn.execute("SELECT open_time, signal FROM models.signals WHERE open_time >= ? AND open_time <= ?",
                             [lo, live["bar_time"].max()]).df() if len(live) else pd.DataFrame()
    other_model = int((~live["same_model"].astype(bool)).sum())  # retrained since: not comparable
    live = live[live["same_model"].astype(bool)].reset_index(drop=True)
    if live.empty:
        return dg.AssetCheckResult(passed=True, metadata={"bars_compared": 0, "bars_on_another_model_version":
                                                          other_model, "note": "no comparable bar"})
    batch_target = strategy.target_positions(batch.set_index(pd.DatetimeIndex(batch["open_time"]))["signal"],
                                             trading.hold_bars)
    live["batch_target"] = batch_target.reindex(pd.DatetimeIndex(live["bar_time"])).to_numpy()
    differ = live[(live["live_signal"] != live["batch_signal"])
                  | ((live["live_p_buy"] - live["batch_p_buy"]).abs() > PROBA_TOLERANCE)]
    target_differ = live[live["target_position"] != live["batch_target"]]
    return dg.AssetCheckResult(
        passed=differ.empty and target_differ.empty,
        metadata={
            "bars_compared": len(live),
            "signals_differing": len(differ),
            "targets_differing": len(target_differ),
            "max_p_buy_difference": float((live["live_p_buy"] - live["batch_p_buy"]).abs().max()),
            "bars_on_another_model_version": other_model,
            "first_differences": [str(t) for t in pd.concat([differ, target_differ])["bar_time"].head(10)],
        },
        description=None if differ.empty and target_differ.empty else
        "live decisions drifted from the batch signals: compare their features for the bars listed",
    )
