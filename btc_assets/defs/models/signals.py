"""models/signals: the out-of-sample predictions that the backtest (and the live path's parity test) read.

Every bar of a day is predicted by the promoted model of its week (TRADING_FAMILY), which never saw that
week. A week whose model is not promoted gets no signals (the backtest trades nothing there), and the metadata says
why; there is no fallback to another model.
"""


import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.table_metadata import per_partition, table_metadata
from btc_assets.lib.research.labels import CLASS_NAMES
from btc_assets.lib.research.models import predict, registry
from btc_assets.lib.research.models.registry import TRADING_FAMILY
from btc_assets.lib.storage.warehouse import read_window, replace_window

SIGNAL_TYPES = {"open_time": "TIMESTAMP", "model_version": "VARCHAR", "p_sell": "DOUBLE", "p_hold": "DOUBLE",
                "p_buy": "DOUBLE", "signal": "TINYINT"}


def signal_frame(times: pd.Series, proba: np.ndarray, model_version: str,
                 signal: np.ndarray | None = None) -> pd.DataFrame:
    """One row per bar; `signal` is the model's stored decision (predict.predict_signal), argmax without one."""
    return pd.DataFrame({"open_time": times.reset_index(drop=True), "model_version": model_version,
                         "p_sell": proba[:, 0], "p_hold": proba[:, 1], "p_buy": proba[:, 2],
                         "signal": (proba.argmax(axis=1) if signal is None else signal).astype("int8")})


@dg.asset(
    key=["models", "signals"],
    ins={"features": dg.AssetIn(["gold", "features"], dagster_type=dg.Nothing),
         "model": dg.AssetIn(["models", f"{TRADING_FAMILY}_model"] if TRADING_FAMILY != "ensemble"
                             else ["models", "ensemble"], partition_mapping=common.same_week,
                             dagster_type=dg.Nothing)},
    group_name="models",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    description=f"Out-of-sample class probabilities and signal (0 SELL, 1 HOLD, 2 BUY) per warmed-up bar from the "
    f"promoted {TRADING_FAMILY} model of the bar's week; none for a week without a promoted model. "
    "Table models.signals: the input of the backtest.",
)
def signals(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource):
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    frames, skipped = [], {}
    with warehouse.get_connection() as conn:
        all_feats = read_window(conn, "gold.features", "open_time", start - predict.CONTEXT, end)
        feats = all_feats[all_feats["warmed_up"] & (all_feats["open_time"] >= start)]
        for week, rows in feats.groupby(feats["open_time"].dt.tz_localize(None).dt.to_period("W-SUN")):
            week_start = week.start_time.tz_localize("UTC")
            try:
                model = registry.model_for_week(conn, week_start)
            except registry.NotPromoted as e:
                skipped[f"{week_start:%Y-%m-%d}"] = str(e)
                context.log.warning(str(e))
                continue
            except registry.NoModel as e:
                raise dg.Failure(str(e)) from e
            before = all_feats[all_feats["open_time"] < rows["open_time"].min()]
            proba, chosen = predict.predict_signal(mlflow, model, rows, before)
            frames.append(signal_frame(rows["open_time"], proba, predict.version_label(model), chosen))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(SIGNAL_TYPES))
        written = replace_window(conn, "models.signals", SIGNAL_TYPES, out, "open_time", start, end)
    counts = out["signal"].astype(int).map(CLASS_NAMES).value_counts().to_dict() if written else {}
    per_partition(context, out, "open_time", True)
    return dg.MaterializeResult(metadata={
        **table_metadata(out), "rows": written, "family": TRADING_FAMILY, "models": sorted(out["model_version"].unique().tolist()),
        "weeks_without_promoted_model": dg.MetadataValue.json(skipped),
        **{f"signals_{k}": int(v) for k, v in counts.items()}})
