"""The model registry table of each family (one row per weekly fit: its MLflow run and version, training window,
out-of-sample figures and the promotion verdict) and the one question trading asks it: which promoted model
trades this week."""

from __future__ import annotations

import pandas as pd

from btc_assets.lib.storage.warehouse import ensure_table, read_window, table_exists
from btc_assets.lib.strategies.scalper import STRATEGY as SCALPER

# the promoted family whose predictions become models/signals and trade ("ensemble", ...): the scalper's choice
TRADING_FAMILY = SCALPER.family
REGISTRY_TYPES = {
    "week_start": "TIMESTAMP", "family": "VARCHAR", "run_id": "VARCHAR", "model_uri": "VARCHAR",
    "registered_name": "VARCHAR", "model_version": "VARCHAR", "train_from": "TIMESTAMP", "train_to": "TIMESTAMP",
    "test_accuracy": "DOUBLE", "test_log_loss": "DOUBLE", "test_f1_macro": "DOUBLE", "test_ic": "DOUBLE",
    "baseline_log_loss": "DOUBLE", "beats_baseline": "BOOLEAN", "promoted": "BOOLEAN", "reason": "VARCHAR",
    "trained_at": "TIMESTAMP",
    # the after-cost walk-forward evidence (lib/research/models/economics.py), same names for every family
    "wf_net_return": "DOUBLE", "wf_net_sharpe": "DOUBLE", "wf_psr": "DOUBLE", "wf_trades": "DOUBLE",
    "wf_random_entry_percentile": "DOUBLE", "wf_days": "DOUBLE", "wf_gross_pnl": "DOUBLE", "wf_fees": "DOUBLE",
    "wf_funding": "DOUBLE", "wf_net_pnl": "DOUBLE", "promotion_rule": "VARCHAR",
    # how the model's probabilities become trades (lib/research/models/decision.py): EdgeRule JSON and in words
    "decision_rule": "VARCHAR", "decision": "VARCHAR",
    # the feature columns the model reads (comma-separated) and what it leaves out (lib/research/features/serving)
    "features": "VARCHAR", "features_excluded": "VARCHAR",
}


def registry_table(family: str) -> str:
    return f"models.{family}_models"


class NoModel(LookupError):
    """The week has no model of the family (it was never trained)."""


class NotPromoted(NoModel):
    """The week has a model, but it did not beat its baselines: nothing trades that week."""


def model_for_week(conn, week_start: pd.Timestamp, family: str = TRADING_FAMILY) -> dict:
    """The promoted model of `family` for the week; NoModel / NotPromoted naming the cause otherwise."""
    table = registry_table(family)
    if not table_exists(conn, table):
        ensure_table(conn, table, REGISTRY_TYPES)
    found = read_window(conn, table, "week_start", week_start, week_start + pd.Timedelta(seconds=1))
    if found.empty:
        raise NoModel(f"no {family} model for the week starting {week_start:%Y-%m-%d}: materialize "
                         f"models/{family}_model partition {week_start:%Y-%m-%d} first")
    row = found.iloc[-1].to_dict()
    if not row["promoted"]:
        raise NotPromoted(f"the {family} model of the week starting {week_start:%Y-%m-%d} "
                          f"({row['registered_name']} v{row['model_version']}) is not promoted: {row['reason']}; "
                          "nothing trades that week (retrain or change the model)")
    return row


HANDOVERS = ("until_trained", "until_promoted")


def trading_model(conn, week_start: pd.Timestamp, family: str = TRADING_FAMILY,
                  handover: str = "until_trained") -> tuple[dict, str]:
    """The model that trades the week and what to say about it: the week's promoted model, or, while the week's
    model is not trained yet (Monday before its retrain), the latest earlier promoted model ("handover ...").

    handover="until_promoted" also keeps the earlier model while the week's model is trained but not promoted;
    the default refuses that (newer evidence said no edge: NotPromoted, nothing enters). NoModel when there is no
    promoted model to hand over either.
    """
    if handover not in HANDOVERS:
        raise ValueError(f"model handover {handover!r} is unknown: use one of {HANDOVERS}")
    try:
        return model_for_week(conn, week_start, family), ""
    except NotPromoted:
        if handover != "until_promoted":
            raise
        why = "not promoted"
    except NoModel:
        why = "not trained yet"
    table = registry_table(family)
    earlier = read_window(conn, table, "week_start", week_start - pd.Timedelta(weeks=520), week_start)
    earlier = earlier[earlier["promoted"].astype(bool)] if len(earlier) else earlier
    if earlier.empty:
        raise NoModel(f"no {family} model for the week starting {week_start:%Y-%m-%d} ({why}) and no earlier "
                      f"promoted one to hand over: materialize models/{family}_model partition "
                      f"{week_start:%Y-%m-%d}")
    row = earlier.sort_values("week_start").iloc[-1].to_dict()
    return row, (f"handover: the {family} model of the week starting {week_start:%Y-%m-%d} is {why}; the promoted "
                 f"model of the week starting {pd.Timestamp(row['week_start']):%Y-%m-%d} "
                 f"({row['registered_name']} v{row['model_version']}) keeps trading")
