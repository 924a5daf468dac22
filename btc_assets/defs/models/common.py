"""What every weekly model asset shares: its training rows, walk-forward settings, registry table and promotion.

Two walk-forwards, one inside the other:
* outer: the weekly partitions. The model of week W is fitted on the TRAIN_WEEKS weeks before W, less a purge of
  the label horizon, and trades (models/signals, trading/decisions) only inside W: a rolling window whose test
  window is the week. Training always precedes its test week, so no embargo is needed there.
* inner: folds inside those weeks (lib/models/walk_forward.py: purge >= the label horizon, embargo after each test
  fold). Their pooled out-of-sample metrics, beside the baselines, decide promotion; their predictions are stored
  in models.oos_predictions (the ensemble's evaluation reads them).
A model is promoted only if it beats its baselines after costs (evaluation.beats_baselines, economics); a WARN check
says why in the UI when it is not (the run stays green: "not promoted" is an honest result), and models/signals
and trading use promoted models only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from btc_assets.lib.research.labels import DEFAULT_HORIZON
from btc_assets.lib.research.features import serving
from btc_assets.lib.research.models import decision, leakage, tracking
from btc_assets.lib.research.models.registry import REGISTRY_TYPES, registry_table
from btc_assets.lib.research.models.economics import ECONOMIC_NAMES, PromotionRule, walk_forward_economics
from btc_assets.lib.research.models.evaluation import METRIC_NAMES, beats_baselines
from btc_assets.lib.research.models.walk_forward import WalkForwardConfig, WalkForwardResult, run_walk_forward
from btc_assets.lib.research.models.xgb import chronological_split
from btc_assets.lib.storage import lakehouse
from btc_assets.lib.storage.warehouse import ensure_table, read_window, replace_window, table_exists

TRAIN_WEEKS = 4
train_mapping = dg.TimeWindowPartitionMapping(start_offset=-TRAIN_WEEKS, end_offset=-1,
                                              allow_nonexistent_upstream_partitions=True)
# What a weekly model asset reads: the gold features and labels of the TRAIN_WEEKS before its week.
TRAINING_INS = {
    "features": dg.AssetIn(["gold", "features"], partition_mapping=train_mapping, dagster_type=dg.Nothing),
    "labels": dg.AssetIn(["gold", "labels"], partition_mapping=train_mapping, dagster_type=dg.Nothing)}
same_week = dg.TimeWindowPartitionMapping()
OOS_TYPES = {"week_start": "TIMESTAMP", "family": "VARCHAR", "open_time": "TIMESTAMP", "fold": "SMALLINT",
             "label": "TINYINT", "fwd_return": "DOUBLE", "p_sell": "DOUBLE", "p_hold": "DOUBLE", "p_buy": "DOUBLE",
             "signal": "TINYINT"}




class PromotionSettings(dg.Config):
    """How a model earns promotion. `after_costs` (the default): the classification baselines *and* the pooled
    walk-forward result traded by the backtest engine after every cost (lib/research/models/economics.py).
    `baselines_only` skips the after-cost gate; the registry row and MLflow say so (tests of the trading mechanics
    use it to get a tradable model out of a few synthetic-looking days)."""

    promotion: str = "after_costs"
    min_psr: float = 0.95
    min_random_percentile: float = 0.95
    min_trades: int = 30
    # Cost-aware decisions (lib/research/models/decision.py; families that store them: xgb)
    calibration: str = "isotonic"  # or "platt", "none"
    meta_labelling: bool = False
    decision: str = "edge"  # or "argmax": the most probable class, costs ignored (tests of the trading mechanics)

    def rule(self) -> PromotionRule:
        if self.promotion not in ("after_costs", "baselines_only"):
            raise dg.Failure(f"promotion={self.promotion!r}: use 'after_costs' or 'baselines_only'")
        return PromotionRule(min_psr=self.min_psr, min_random_percentile=self.min_random_percentile,
                             min_trades=self.min_trades)


class WalkForwardSettings(PromotionSettings):
    min_train_days: int = 10
    n_folds: int = 3
    test_days: float = 2.0
    rolling_train_days: float = 0.0  # 0: expanding window
    validation_fraction: float = 0.15
    embargo_minutes: int = 60
    # Walk-forwards re-run on labels moved in blocks (leakage.block_permuted): each must fail its baselines.
    # 0 turns the permutation test off (stated in the registry reason and the metadata).
    permutation_runs: int = 1
    # "live": only the features the live path can serve at decision time (lib/research/features/serving.py), for
    # a model that trades; "all": every gold feature (research: the live path cannot serve some of them).
    features: str = "live"

    def feature_list(self) -> list[str]:
        try:
            return serving.feature_set(self.features)
        except ValueError as e:
            raise dg.Failure(f"model settings: {e}") from None

    def walk_forward(self, horizon: int) -> WalkForwardConfig:
        return WalkForwardConfig(
            n_folds=self.n_folds, test_span=pd.Timedelta(days=self.test_days),
            train_span=pd.Timedelta(days=self.rolling_train_days) if self.rolling_train_days else None,
            validation_fraction=self.validation_fraction, purge=pd.Timedelta(minutes=horizon),
            embargo=pd.Timedelta(minutes=self.embargo_minutes))


def label_horizon(labels: pd.DataFrame) -> int:
    """The longest look-ahead of these gold.labels rows (DEFAULT_HORIZON for rows written before it was stored)."""
    h = labels["horizon_minutes"].max() if "horizon_minutes" in labels and len(labels) else None
    return int(h) if h is not None and pd.notna(h) else DEFAULT_HORIZON


def week_of(context: dg.AssetExecutionContext) -> pd.Timestamp:
    return pd.Timestamp(context.partition_time_window.start)


def load_training_rows(conn, week_start: pd.Timestamp, min_days: int) -> tuple[pd.DataFrame, int]:
    """Warmed-up gold rows with known labels in the TRAIN_WEEKS before the week, the last horizon purged.

    Returns the rows and the label horizon (minutes) they were made with.
    """
    train_from = week_start - pd.Timedelta(weeks=TRAIN_WEEKS)
    labs = read_window(conn, "gold.labels", "open_time", train_from, week_start)
    horizon = label_horizon(labs)
    # The last labels before the week look `horizon` minutes into it: purge them.
    train_to = week_start - pd.Timedelta(minutes=horizon)
    feats = read_window(conn, "gold.features", "open_time", train_from, train_to)
    df = feats.merge(labs.drop(columns=["horizon_minutes"], errors="ignore"), on="open_time", how="inner")
    df = df[df["warmed_up"] & df["label"].notna()].reset_index(drop=True)
    days = df["open_time"].dt.floor("D").nunique() if len(df) else 0
    if days < min_days:
        raise dg.Failure(
            f"week {week_start:%Y-%m-%d}: only {days} days of warmed-up gold rows with labels between {train_from} "
            f"and {train_to} (need {min_days}); materialize gold/features and gold/labels for the {TRAIN_WEEKS} "
            "weeks before it, or pick a later week")
    return df, horizon


@dataclass(frozen=True)
class Evidence:
    """The after-cost walk-forward figures of a fit and what they say about promotion."""

    figures: dict[str, float]
    per_fold: pd.DataFrame
    why_not: list[str]  # empty: the after-cost gate is passed (or off)
    rule: str


def decision_policy(conn, rows: pd.DataFrame, trading, settings: PromotionSettings) -> decision.DecisionPolicy:
    """The decision policy of a fit: the trading settings' round trip (fees, fixed slippage and the volatility
    slippage at the training rows' typical 1m volatility) and the calibration/meta-labelling settings."""
    if settings.calibration not in decision.CALIBRATIONS:
        raise dg.Failure(f"calibration={settings.calibration!r}: use one of {decision.CALIBRATIONS}")
    if settings.decision not in ("edge", "argmax"):
        raise dg.Failure(f"decision={settings.decision!r}: use 'edge' (trade beyond the costs) or 'argmax'")
    close = read_window(conn, "silver.klines_1m", "open_time", rows["open_time"].min(),
                        rows["open_time"].max() + pd.Timedelta(minutes=1), ["open_time", "close"])["close"]
    c = trading.costs()
    cost = decision.round_trip_cost(c.taker_fee, c.slippage_bps, c.slippage_vol_mult,
                                    decision.typical_sigma_1m(close))
    return decision.DecisionPolicy(cost=cost, calibration=settings.calibration,
                                   meta_labelling=settings.meta_labelling, rule=settings.decision)


def market_inputs(conn, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame | None,
                                                                     pd.DataFrame | None]:
    """What the backtest engine trades a window [lo, hi) on: silver 1m bars, funding (from a day before, so the
    window's first settlement is known) and the mark price where silver has it."""
    bars = read_window(conn, "silver.klines_1m", "open_time", lo, hi,
                       ["open_time", "open", "high", "low", "close", "quote_volume"])
    funding = (read_window(conn, "silver.funding_rates", "funding_time", lo - pd.Timedelta(days=1), hi,
                           ["funding_time", "rate"]) if table_exists(conn, "silver.funding_rates") else None)
    mark = (read_window(conn, "silver.mark_price_1m", "open_time", lo, hi, ["open_time", "open", "high", "low", "close"])
            if table_exists(conn, "silver.mark_price_1m") else None)
    return bars, funding, mark


def economic_evidence(conn, wf: WalkForwardResult, trading, settings: PromotionSettings) -> Evidence:
    """Trade the fit's out-of-sample predictions fold by fold with the backtest engine and the trading resource's
    rules and costs (market_inputs), pooled."""
    p = wf.predictions
    bars, funding, mark = market_inputs(conn, p["open_time"].min(), p["open_time"].max() + pd.Timedelta(minutes=2))
    rule = settings.rule()
    figures, per_fold = walk_forward_economics(p, bars, funding, mark=mark, costs=trading.costs(),
                                               risk=trading.risk_config(), initial_equity=trading.notional_usdt,
                                               rule=rule)
    why = rule.verdict(figures) if settings.promotion == "after_costs" else []
    return Evidence(figures, per_fold, why, settings.promotion)


def record(conn, family: str, week_start: pd.Timestamp, logged, wf: WalkForwardResult, rows: pd.DataFrame,
           blockers: list[str] | None = None, evidence: Evidence | None = None,
           decided: dict | None = None, features: list[str] | None = None) -> dict:
    """Decide promotion, write the registry row and the out-of-sample predictions; return the registry row.

    `blockers`: further reasons not to promote (the ensemble's members that are not promoted).
    `decided`: the final model's decision ({"rule": EdgeRule JSON, "text": what it does}), when it stores one.
    `features`: the feature columns the model reads (None: the members' own, an ensemble).
    """
    m = wf.overall
    beats, why = beats_baselines(m)
    why = [*why, *(evidence.why_not if evidence else []), *(blockers or [])]
    promoted = not why
    gate = ("after costs and the baselines" if evidence is None or evidence.rule == "after_costs"
            else "the classification baselines only (promotion=baselines_only: the after-cost gate is off)")
    row = {
        "week_start": week_start, "family": family, "run_id": logged.run_id, "model_uri": logged.model_uri,
        "registered_name": logged.registered_name, "model_version": logged.version,
        "train_from": rows["open_time"].min(), "train_to": rows["open_time"].max(),
        "test_accuracy": m["accuracy"], "test_log_loss": m["log_loss"], "test_f1_macro": m["f1_macro"],
        "test_ic": m["ic"], "baseline_log_loss": m["majority_log_loss"], "beats_baseline": beats,
        "promoted": promoted,
        "reason": f"promoted on {gate}" if promoted else "; ".join(why),
        "trained_at": pd.Timestamp.now(tz="UTC"),
        **{k: (evidence.figures[k] if evidence else float("nan")) for k in ECONOMIC_NAMES},
        "promotion_rule": evidence.rule if evidence else "after_costs",
        "decision_rule": (decided.get("rule") or "") if decided else "",
        "decision": decided.get("text", "most probable class") if decided else "most probable class",
        "features": ",".join(features) if features is not None else "",
        "features_excluded": serving.excluded_text(features) if features is not None else "",
    }
    week_end = week_start + pd.Timedelta(weeks=1)
    ensure_table(conn, registry_table(family), REGISTRY_TYPES)
    replace_window(conn, registry_table(family), REGISTRY_TYPES, pd.DataFrame([row]), "week_start", week_start,
                   week_end)
    oos = wf.predictions.assign(week_start=week_start, family=family)
    if "signal" not in oos:
        oos["signal"] = oos[["p_sell", "p_hold", "p_buy"]].to_numpy().argmax(axis=1)
    oos = oos[list(OOS_TYPES)]
    ensure_table(conn, "models.oos_predictions", OOS_TYPES)
    conn.execute("DELETE FROM models.oos_predictions WHERE week_start = ? AND family = ?",
                 [week_start.tz_localize(None), family])
    conn.register("_oos", oos.assign(week_start=oos["week_start"].dt.tz_localize(None),
                                     open_time=oos["open_time"].dt.tz_localize(None)))
    conn.execute(f"INSERT INTO models.oos_predictions SELECT {', '.join(OOS_TYPES)} FROM _oos")
    conn.unregister("_oos")
    lake = lakehouse.ACTIVE.get()
    if lake is not None:  # BTC_LAKEHOUSE_URI: the family's predictions of the week, one commit
        lake.replace_window("models.oos_predictions", OOS_TYPES, oos, "week_start", week_start, week_end,
                            where={"family": family})
    return row


def metadata(logged, wf: WalkForwardResult, row: dict, extra: dict) -> dict:
    """What the UI shows for a model: run link, version, promotion and the metrics beside the baselines."""
    m = wf.overall
    p = wf.predictions["open_time"]
    return {
        "mlflow_run": dg.MetadataValue.url(logged.run_url), "model_uri": logged.model_uri,
        **({"mlflow_runs_table": dg.MetadataValue.url(logged.experiment_url)} if logged.experiment_url else {}),
        "model_version": f"{logged.registered_name} v{logged.version}" if logged.version else logged.registered_name,
        "promoted": bool(row["promoted"]), "promotion_reason": row["reason"], "folds": len(wf.fold_metrics),
        "test_period": f"{p.min()} .. {p.max()}",
        **{f"test_{k}": m[k] for k in METRIC_NAMES}, **{f"majority_{k}": m[f"majority_{k}"] for k in METRIC_NAMES},
        **{f"persistence_{k}": m.get(f"persistence_{k}", float("nan")) for k in METRIC_NAMES},
        "per_fold": dg.MetadataValue.md(pd.DataFrame(wf.fold_metrics).reindex(columns=[
            "n_test", "accuracy", "majority_accuracy", "persistence_accuracy", "f1_macro", "log_loss",
            "majority_log_loss", "brier", "ic"]).round(4).to_markdown()),
        **extra,
    }


@dataclass(frozen=True)
class FinalModel:
    """A family's model fitted on every training week (its last slice for early stopping), ready to log."""

    params: dict[str, Any]  # logged to MLflow beside the walk-forward settings
    log_model: Callable  # tracking.*_logger
    metadata: dict[str, Any] = field(default_factory=dict)  # shown in Dagster
    overall: dict[str, float] = field(default_factory=dict)  # extra MLflow metrics
    decided: dict = field(default_factory=dict)  # the stored decision: {"rule": EdgeRule JSON, "text": ...}


def week_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The weeks of the run, in order: the week of a one-week run, every week of a range (a single-run backfill)."""
    return list(context.partition_keys)


def each_week(context: dg.AssetExecutionContext, family: str,
              train_week: Callable[[pd.Timestamp], tuple[dict, dict]]) -> Iterator:
    """A weekly model asset's run over one week or a range of weeks (BackfillPolicy.single_run: one run for a
    backfill of many Mondays). `train_week(week_start)` trains, logs and records one week and returns its
    materialization metadata and registry row. A one-week run reports as before; a range gives every week its own
    metadata and its own promotion verdict (the check evaluation of that week's partition), plus a summary.
    A week that fails stops the run and says which weeks of the range were trained before it."""
    check_name = f"{family}_model_beats_baselines"
    keys = week_keys(context)
    if context.has_partition_key and len(keys) == 1:
        meta, row = train_week(pd.Timestamp(keys[0], tz="UTC"))
        yield dg.MaterializeResult(metadata=meta)
        yield promotion_check(check_name, row)
        return
    done: list[tuple[str, dict]] = []
    for key in keys:
        try:
            meta, row = train_week(pd.Timestamp(key, tz="UTC"))
        except Exception as e:
            trained = ", ".join(k for k, _ in done) or "none"
            raise dg.Failure(f"{family} week {key} of the range {keys[0]}..{keys[-1]} failed: {e}. Weeks trained "
                             f"before it (in MLflow and the registry, not materialized by this failed run): "
                             f"{trained}; run the range again (each week is retrained and recorded again)") from e
        context.add_asset_metadata(meta, partition_key=key)
        done.append((key, row))
    summary = pd.DataFrame([{"week": k, "promoted": bool(r["promoted"]), "reason": r["reason"]} for k, r in done])
    yield dg.MaterializeResult(metadata={
        "range_weeks": len(done), "range_promoted_weeks": int(summary["promoted"].sum()),
        "range_verdicts": dg.MetadataValue.md(summary.to_markdown(index=False))})
    for key, row in done:
        r = promotion_check(check_name, row)
        yield dg.AssetCheckEvaluation(asset_key=context.assets_def.key, check_name=check_name, passed=r.passed,
                                      metadata=r.metadata, severity=r.severity, description=r.description,
                                      partition=key)
    # every week's verdict is evaluated above, by partition; the check's own output carries no second verdict
    yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(
        dg.AssetCheckKey(context.assets_def.key, check_name)))


def train_family(context: dg.AssetExecutionContext, family: str, config: WalkForwardSettings, warehouse, mlflow,
                 trading, fold_fit_predict: Callable, fit_final: Callable[[Any], FinalModel],
                 policy_aware: bool = False) -> Iterator:
    """The weekly model asset of one family, for each week of the run (each_week): its training rows, the
    walk-forward evaluation (fold_fit_predict per fold), the after-cost trading of its out-of-sample predictions,
    the final fit on every row (fit_final(split)), the MLflow run and registration, the registry row with the
    promotion decision, then the materialization and the promotion check."""
    yield from each_week(context, family, lambda week_start: train_week(
        context, week_start, family, config, warehouse, mlflow, trading, fold_fit_predict, fit_final, policy_aware))


def train_week(context: dg.AssetExecutionContext, week_start: pd.Timestamp, family: str, config: WalkForwardSettings,
               warehouse, mlflow, trading, fold_fit_predict: Callable, fit_final: Callable[[Any], FinalModel],
               policy_aware: bool) -> tuple[dict, dict]:
    """One week of train_family: its materialization metadata and registry row."""
    started = time.time()
    with warehouse.get_connection() as conn:
        rows, horizon = load_training_rows(conn, week_start, config.min_train_days)
        policy = decision_policy(conn, rows, trading, config) if policy_aware else None
    if policy is not None:  # the family's callbacks decide with the policy (calibrated, beyond the costs)
        fold_fit_predict, fit_final = fold_fit_predict(policy), (lambda split, f=fit_final: f(split, policy))
    features = config.feature_list()
    leaks = leakage.too_informative(rows, features)  # a feature that knows the label: refused, named
    wf = run_walk_forward(rows, fold_fit_predict, config.walk_forward(horizon), horizon)
    leaks += leakage.beyond_oracle(wf.overall, wf.predictions)
    checks_run = permutation_test(rows, fold_fit_predict, config, horizon)
    leaks += checks_run.pop("why")
    checks_run["oracle_f1"] = leakage.oracle_f1(wf.predictions)
    with warehouse.get_connection() as conn:
        evidence = economic_evidence(conn, wf, trading, config)
    split = chronological_split(rows, validation_fraction=config.validation_fraction, test_fraction=0.0,
                                purge_minutes=horizon)
    final = fit_final(split)
    logged = tracking.log_run(
        mlflow, family, params={**final.params, **config.model_dump(), "n_features": len(features),
                                "label_horizon_minutes": horizon, "train_rows": len(rows),
                                "train_first_bar": f"{rows['open_time'].min():%Y-%m-%d %H:%M}",
                                "train_last_bar": f"{rows['open_time'].max():%Y-%m-%d %H:%M}"},
        overall={**wf.overall, **final.overall, **evidence.figures, **checks_run}, fold_metrics=wf.fold_metrics,
        tags={"week_start": f"{week_start:%Y-%m-%d}", "dagster_run_id": context.run.run_id},
        log_model=final.log_model, started_at=started, predictions=wf.predictions)
    with warehouse.get_connection() as conn:
        row = record(conn, family, week_start, logged, wf, rows, blockers=leaks, evidence=evidence,
                     decided=final.decided, features=features)
    tracking.record_verdict(mlflow, logged, row, dagster_run_id=context.run.run_id)
    context.log.info(f"{family} week {week_start:%Y-%m-%d}: {'promoted' if row['promoted'] else 'NOT promoted'} "
                     f"({row['reason']})")
    return metadata(logged, wf, row, {
        "train_rows": len(split.train), "validation_rows": len(split.validation), **final.metadata,
        **economic_metadata(evidence), **checks_run, "decision": row["decision"],
        "features_used": len(features), "features_excluded": row["features_excluded"],
        "oos_signals_traded": float((wf.predictions["signal"] != 1).mean()) if len(wf.predictions) else 0.0}), row


def permutation_test(rows: pd.DataFrame, fold_fit_predict: Callable, config: WalkForwardSettings,
                     horizon: int) -> dict:
    """The same walk-forward on labels moved in blocks (config.permutation_runs times, seeds 0..): every run must
    fail its baselines. Returns the figures (permuted_*) and, under "why", the reasons to refuse promotion."""
    out: dict = {"permutation_runs": config.permutation_runs, "oracle_ic": leakage.ORACLE_IC}
    why: list[str] = []
    for seed in range(config.permutation_runs):
        perm = run_walk_forward(leakage.block_permuted(rows, seed=seed), fold_fit_predict,
                                config.walk_forward(horizon), horizon)
        beats = leakage.learns(perm.overall)
        out |= {"permuted_log_loss": perm.overall["log_loss"],
                "permuted_majority_log_loss": perm.overall["majority_log_loss"],
                "permuted_accuracy": perm.overall["accuracy"], "permuted_skill": leakage.skill(perm.overall),
                "permuted_beats_majority": float(beats)}
        why += leakage.permutation_verdict(perm.overall)
        if why:
            break
    out["why"] = why
    return out


def economic_metadata(evidence: Evidence) -> dict:
    """The after-cost figures as the UI shows them (the same names in the registry and MLflow)."""
    f = evidence.figures
    return {**{k: float(f[k]) for k in ECONOMIC_NAMES}, "promotion_rule": evidence.rule,
            "after_cost_per_fold": dg.MetadataValue.md(evidence.per_fold.round(4).to_markdown(index=False)
                                                       if len(evidence.per_fold) else "no fold")}


def promotion_check(check_name: str, row: dict) -> dg.AssetCheckResult:
    """The promotion verdict, at WARN: a model that is not promoted is a correct, successful outcome (trained, logged
    in MLflow, registered with promoted=false) and the check says why. What must not happen -- signals or trading
    from it -- is refused where it would happen (registry.trading_model reads `promoted`)."""
    text = ("promoted: " if row["promoted"] else "NOT promoted (trained and logged in MLflow, kept out of "
            "trading): ") + row["reason"]
    return dg.AssetCheckResult(check_name=check_name, passed=bool(row["promoted"]), severity=dg.AssetCheckSeverity.WARN,
                               description=text, metadata={
                                   "verdict": text, "promoted": bool(row["promoted"]),
                                   "test_log_loss": row["test_log_loss"],
                                   "majority_log_loss": row["baseline_log_loss"], "test_accuracy": row["test_accuracy"],
                                   **{k: float(row[k]) for k in ECONOMIC_NAMES if k in row},
                                   "promotion_rule": row.get("promotion_rule", "after_costs")})


def promotion_spec(family: str, key: list[str], partitions_def=None) -> dg.AssetCheckSpec:
    """The promotion check; partitioned like a weekly model, so that each evaluation belongs to the week it judges
    (the UI lists and plots it by week, not by when the run happened). Partitioned checks are a preview feature of
    Dagster; the version is pinned exactly (constraints.txt), so a change arrives only with a deliberate upgrade."""
    return dg.AssetCheckSpec(f"{family}_model_beats_baselines", asset=key, partitions_def=partitions_def,
                             description="Pooled walk-forward out-of-sample log-loss and Brier below the majority "
                             "class's, accuracy above persistence, and the folds' predictions traded by the backtest "
                             "engine after every cost: net P&L > 0, probabilistic Sharpe of daily returns >= 0.95 and "
                             "above 95 % of random-entry runs; otherwise not promoted (WARN: the model is registered with "
                             "promoted=false and nothing trades it).")



