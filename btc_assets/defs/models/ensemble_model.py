"""models/ensemble: the week's signal models (XGBoost, LSTM and the Transformer by default), trading only where all
agree; evaluated on the members' walk-forward out-of-sample predictions (models.oos_predictions), so it needs no
training of its own."""


import time

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.models import ensemble as ens
from btc_assets.lib.research.models import leakage
from btc_assets.lib.research.models import tracking
from btc_assets.lib.research.models.evaluation import majority_proba
from btc_assets.lib.research.models.walk_forward import WalkForwardResult, evaluate

KEY = ["models", "ensemble"]
MEMBERS = ens.FAMILIES  # the families that can be members (each an upstream asset); the config picks them
P = list(ens.CLASSES)


def member_predictions(conn, week_start: pd.Timestamp,
                       members: tuple[str, ...] = MEMBERS) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The members' out-of-sample rows all of them predicted (inner join on open_time) and their registry rows."""
    rows, both = {}, None
    for fam in members:
        found = conn.execute(f"SELECT * FROM {common.registry_table(fam)} WHERE week_start = ?",
                             [week_start.tz_localize(None)]).df() if _exists(conn, fam) else pd.DataFrame()
        if found.empty:
            raise dg.Failure(f"ensemble week {week_start:%Y-%m-%d}: no {fam} model; materialize models/{fam}_model "
                             f"partition {week_start:%Y-%m-%d} first (or leave {fam} out of the ensemble's members)")
        rows[fam] = found.iloc[-1].to_dict()
        p = conn.execute("SELECT open_time, fold, label, fwd_return, p_sell, p_hold, p_buy FROM "
                         "models.oos_predictions WHERE week_start = ? AND family = ? ORDER BY open_time",
                         [week_start.tz_localize(None), fam]).df().rename(columns={c: f"{fam}_{c}" for c in P})
        both = p if both is None else both.merge(p[["open_time", *[f"{fam}_{c}" for c in P]]], on="open_time",
                                                 how="inner")
    return both, rows


def _exists(conn, family: str) -> bool:
    name = common.registry_table(family).split(".")[1]
    return bool(conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'models' "
                             "AND table_name = ?", [name]).fetchone()[0])


class EnsembleConfig(common.PromotionSettings):
    """The ensemble is promoted like any family (after costs by default). `members`: two or more of xgb, lstm and
    transformer, each trained for the week (models/<family>_model)."""

    members: list[str] = list(MEMBERS)

    def chosen(self) -> tuple[str, ...]:
        unknown = [m for m in self.members if m not in MEMBERS]
        if unknown or len(set(self.members)) < 2 or len(set(self.members)) != len(self.members):
            raise dg.Failure(f"ensemble members={self.members}: pick two or more distinct families of "
                             f"{', '.join(MEMBERS)}")
        return tuple(m for m in MEMBERS if m in self.members)  # canonical order: the model_uri's and MLflow's


@dg.asset(
    key=KEY,
    ins={m: dg.AssetIn(["models", f"{m}_model"], partition_mapping=common.same_week, dagster_type=dg.Nothing)
         for m in MEMBERS},
    group_name="models",
    partitions_def=partitions.weekly,
    backfill_policy=dg.BackfillPolicy.single_run(),  # a range of weeks in one run (common.each_week)
    pool="training",
    kinds={"mlflow"},
    check_specs=[common.promotion_spec("ensemble", KEY, partitions.weekly)],
    description="The week's XGBoost, LSTM and Transformer (setting `members`, two or more): mean probabilities, "
    "signal only where all agree (else HOLD). Evaluated on the members' walk-forward out-of-sample rows beside the "
    "baselines; promoted only if it beats them and every member is promoted (an unpromoted member makes the "
    "ensemble unpromoted, and says so).",
)
def ensemble(context: dg.AssetExecutionContext, config: EnsembleConfig, warehouse: DuckDBResource,
             mlflow: MlflowResource, trading: TradingResource):
    yield from common.each_week(context, "ensemble",
                                lambda week_start: ensemble_week(context, week_start, config, warehouse, mlflow, trading))


def ensemble_week(context: dg.AssetExecutionContext, week_start: pd.Timestamp, config: EnsembleConfig,
                  warehouse: DuckDBResource, mlflow: MlflowResource, trading: TradingResource) -> tuple[dict, dict]:
    """One week of the ensemble: its materialization metadata and registry row."""
    started = time.time()
    chosen = config.chosen()
    with warehouse.get_connection() as conn:
        both, members = member_predictions(conn, week_start, chosen)
        labels = conn.execute("SELECT open_time, label, horizon_minutes FROM gold.labels WHERE open_time >= ? AND open_time < ? "
                              "AND label IS NOT NULL", [(week_start - pd.Timedelta(weeks=common.TRAIN_WEEKS))
                                                        .tz_localize(None), week_start.tz_localize(None)]).df()
    if both.empty:
        raise dg.Failure(f"ensemble week {week_start:%Y-%m-%d}: the {' and '.join(chosen)} walk-forward test rows do "
                         "not overlap; train them with the same test_days and n_folds")
    horizon = common.label_horizon(labels)  # the members were purged by the same stored horizon
    member_proba = [both[[f"{m}_{c}" for c in P]].to_numpy() for m in chosen]
    proba = ens.signal_proba(*member_proba)
    preds = pd.DataFrame({"open_time": pd.to_datetime(both["open_time"]).dt.tz_localize("UTC"), "fold": both["fold"],
                          "label": both["label"].astype(int), "fwd_return": both["fwd_return"],
                          "p_sell": proba[:, 0], "p_hold": proba[:, 1], "p_buy": proba[:, 2]})
    lab_t = pd.to_datetime(labels["open_time"]).dt.tz_localize("UTC")
    folds, majority = [], []
    for _, f in preds.groupby("fold"):
        # The majority baseline of a fold: the class frequencies known before its test window.
        prior = labels["label"][lab_t < f["open_time"].min() - pd.Timedelta(minutes=horizon)].astype(int).to_numpy()
        majority.append(majority_proba(prior, len(f)))
        folds.append(evaluate(f["label"].to_numpy(), f[P].to_numpy(), f["fwd_return"].to_numpy(), majority[-1],
                              horizon))
    overall = evaluate(preds["label"].to_numpy(), preds[P].to_numpy(), preds["fwd_return"].to_numpy(),
                       np.vstack(majority), horizon)
    wf = WalkForwardResult(predictions=preds, fold_metrics=folds, overall=overall)
    with warehouse.get_connection() as conn:
        evidence = common.economic_evidence(conn, wf, trading, config)
    versions = {f: f"{m['registered_name']}/{m['model_version']}" for f, m in members.items()}
    logged = tracking.log_run(
        mlflow, "ensemble", params={"rule": f"trade only when {', '.join(chosen)} all agree",
                                    "members": ",".join(chosen), **versions},
        overall={**overall, **evidence.figures}, fold_metrics=folds,
        tags={"week_start": f"{week_start:%Y-%m-%d}", "dagster_run_id": context.run.run_id,
              **{f"{f}_model_uri": m["model_uri"] for f, m in members.items()}},
        log_model=tracking.ensemble_logger(both.head(5)), started_at=started)
    registered, combiner = f"{logged.registered_name} v{logged.version}", logged
    # Trading the ensemble loads its members (the combiner above is the registered model of the rule itself).
    logged = tracking.LoggedModel(run_id=logged.run_id, registered_name="ensemble", run_url=logged.run_url,
                                  model_uri="|".join(f"{f}={members[f]['model_uri']}" for f in chosen),
                                  version=" + ".join(versions[f] for f in chosen))
    agree = float((ens.agree_signal(*member_proba) != 1).mean())
    with warehouse.get_connection() as conn:
        # Trading the ensemble trades its members' models: each must be promoted itself.
        blockers = [f"member {f} ({versions[f]}) is not promoted" for f, m in members.items() if not m["promoted"]]
        # Its members passed their own permutation tests; the combined score must still stay under the oracle.
        blockers += leakage.beyond_oracle(overall, preds)
        row = common.record(conn, "ensemble", week_start, logged, wf, preds, blockers, evidence)
    tracking.record_verdict(mlflow, combiner, row, dagster_run_id=context.run.run_id)
    return common.metadata(logged, wf, row, {
        "members": dg.MetadataValue.json(versions), "share_of_bars_traded": agree,
        "registered_combiner": registered,
        "members_promoted": {f: bool(m["promoted"]) for f, m in members.items()},
        **common.economic_metadata(evidence)}), row
