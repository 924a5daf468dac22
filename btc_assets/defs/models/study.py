"""models/study: a study for a trading week that counts its trials (lib/research/models/study.py).

On models/xgb_model's training rows (the TRAIN_WEEKS before the week), an Optuna search over label threshold,
XGBoost hyper-parameters, decision threshold and stop/target/time exit, or a greedy forward feature selection
(kind="forward_selection"), each trial scored by its inner walk-forward traded by the backtest engine after every
cost and logged as an MLflow child run under the study's parent run. The last `final_test_days` before the week
are a hold-out the study never sees: the chosen configuration trades it once, beside buy-and-hold. The deflated
Sharpe counts every trial run; the PBO comes from the trials' daily returns. A WARN check says when the result
looks like luck. Nothing downstream reads the study: it informs the next choice of a model's settings.
"""

# No `from __future__ import annotations` here: Dagster reads the asset's parameter annotations (the config class,
# the resources) at decoration time and cannot resolve them from strings.
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.features import FEATURE_NAMES
from btc_assets.lib.research.models import study as lib
from btc_assets.lib.research.models.tracking import ui_url
from btc_assets.lib.research.models.xgb import XgbParams

KEY = ["models", "study"]
CHECK = "study_not_overfit"
EXPERIMENT = "btc_assets.study"  # named like tracking.FAMILIES' experiments
TRIAL_COLUMNS = {"number": "int", "state": "string", "value": "float", "inner_sharpe_daily": "float",
                 "inner_net_return": "float", "inner_trades": "int", "params": "string", "note": "string"}


class StudySettings(common.WalkForwardSettings):
    """The study's settings; the inner walk-forward's are the models' (the promotion and permutation fields
    inherited from WalkForwardSettings are not used: a study promotes nothing)."""

    kind: str = "params"  # or "forward_selection"
    n_trials: int = 12  # kind="params"; forward selection runs one trial per candidate it evaluates
    final_test_days: float = 1.0
    seed: int = 0
    n_jobs: int = 1
    min_label_threshold: float = 0.0005  # the label's BUY/SELL return threshold searched (log scale)
    max_label_threshold: float = 0.003
    min_rounds: int = 20  # boosting rounds searched (early stopping may use fewer)
    max_rounds: int = 300
    unit: str = "family"  # forward selection: add a feature "family" or a single "feature" at a time
    max_steps: int = 3
    random_seeds: int = 50  # random-entry runs per trial in the after-cost figures

    def study_config(self, horizon: int) -> lib.StudyConfig:
        if (self.kind not in ("params", "forward_selection") or not 1 <= self.min_rounds <= self.max_rounds
                or not 0 < self.min_label_threshold <= self.max_label_threshold):
            raise dg.Failure(f"study settings: kind={self.kind!r} (use 'params' or 'forward_selection'), rounds "
                             f"{self.min_rounds}..{self.max_rounds} (need 1 <= min_rounds <= max_rounds), label "
                             f"threshold {self.min_label_threshold}..{self.max_label_threshold} (need 0 < min <= max)")
        return lib.StudyConfig(
            kind=self.kind, n_trials=self.n_trials, seed=self.seed, final_test_days=self.final_test_days,
            walk_forward=self.walk_forward(horizon), space=lib.SearchSpace(
                label_threshold=(self.min_label_threshold, self.max_label_threshold),
                n_estimators=(self.min_rounds, self.max_rounds)),
            base_xgb=XgbParams(n_estimators=self.max_rounds, seed=self.seed, n_jobs=self.n_jobs), unit=self.unit,
            max_steps=self.max_steps, random_seeds=self.random_seeds, validation_fraction=self.validation_fraction)


def _market(conn, rows: pd.DataFrame, horizon: int, trading: TradingResource) -> lib.Market:
    """Silver 1m bars over the rows and their labels' look-ahead, funding and mark price, with the trading rules."""
    bars, funding, mark = common.market_inputs(conn, rows["open_time"].min(),
                                               rows["open_time"].max() + pd.Timedelta(minutes=horizon + 2))
    return lib.Market(bars, funding, mark, trading.costs(), trading.risk_config(), trading.notional_usdt)


@dataclass(frozen=True)
class StudyRun:
    """The study's MLflow parent run: `trial` logs a child run per trial (lib's on_trial hook), `summary` the
    study's figures on the parent."""

    experiment_id: str
    run_id: str
    run_url: str

    def trial(self, rec: lib.TrialRecord) -> None:
        import mlflow

        with mlflow.start_run(experiment_id=self.experiment_id, run_name=f"trial {rec.number}", nested=True):
            mlflow.set_tags({"state": rec.state, "note": rec.note[:500]})
            mlflow.log_params({k: str(v)[:500] for k, v in rec.params.items()})
            mlflow.log_metrics({"inner_sharpe_daily": rec.inner_sharpe_daily, "inner_net_return": rec.inner_net_return,
                                "inner_trades": float(rec.inner_trades)})

    def summary(self, res: lib.StudyResult) -> None:
        import mlflow

        h = res.holdout
        mlflow.log_params({f"best_{k}": str(v)[:500] for k, v in res.best_params.items()})
        metrics = {"dsr": res.dsr["dsr"], "pbo": res.pbo["pbo"], "n_trials": len(res.trials),
                   "n_failed": res.dsr["n_failed"], "trials_per_minute": res.trials_per_minute,
                   "inner_sharpe_daily": res.inner["sharpe_daily"], "holdout_net_return": h["net_return"],
                   "holdout_sharpe_daily": h["sharpe_daily"], "holdout_trades": h["trades"],
                   "buy_and_hold_return": h["buy_and_hold_return"]}
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if not math.isinf(float(v))})  # NaN is kept


@contextmanager
def study_run(store: MlflowResource, kind: str, tags: dict[str, str]) -> Iterator[StudyRun]:
    """The parent run (tag kind) that every trial's run nests under (mlflow's nested=True: tag mlflow.parentRunId)."""
    import mlflow

    exp = store.activate(EXPERIMENT)
    with mlflow.start_run(experiment_id=exp, run_name=f"study {kind} {tags['week_start']}") as run:
        mlflow.set_tags({"kind": kind, **tags})
        yield StudyRun(exp, run.info.run_id, ui_url(exp, run.info.run_id))


def _plain(d: dict) -> dict:
    """JSON-safe: NaN as null, numbers rounded, CSCV's per-combination logits left out (one per combination: too long for the UI)."""
    def v(x):
        if isinstance(x, float):
            return None if not math.isfinite(x) else round(x, 6)
        return x if isinstance(x, (int, str, bool, type(None), list)) else str(x)
    return {k: v(x) for k, x in d.items() if k != "logits"}


def _trials_table(trials: pd.DataFrame) -> dg.MetadataValue:
    records = [dg.TableRecord({k: (None if isinstance(r[k], float) and not math.isfinite(r[k]) else
                                   round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in TRIAL_COLUMNS})
               for r in trials.astype({"number": int, "inner_trades": int}).to_dict("records")]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(
        columns=[dg.TableColumn(k, t) for k, t in TRIAL_COLUMNS.items()]))


def _metadata(res: lib.StudyResult, run: StudyRun) -> dict:
    h, r = res.holdout, lambda x: round(float(x), 4)
    return {
        "kind": res.kind, "mlflow_parent_run": dg.MetadataValue.url(run.run_url), "mlflow_run_id": run.run_id,
        "n_trials": len(res.trials), "n_completed": int(res.dsr["n_completed"]), "n_failed": int(res.dsr["n_failed"]),
        "trials_per_minute": r(res.trials_per_minute), "best_trial": res.best_number,
        "best_params": dg.MetadataValue.json(_plain(res.best_params)),
        "study_rows": f"{res.seen['rows_from'].min()} .. {res.seen['rows_to'].max()} (bars to "
                      f"{res.seen['bars_to'].max()}; the hold-out is never seen)",
        "inner_sharpe_daily": r(res.inner["sharpe_daily"]), "inner_net_return": r(res.inner["net_return"]),
        "inner_trades": int(res.inner["trades"]), "inner_periods": int(res.inner["periods"]),
        "holdout_period": f"{h['from']} .. {h['to']}", "holdout_net_return": r(h["net_return"]),
        "holdout_sharpe_daily": r(h["sharpe_daily"]), "holdout_trades": int(h["trades"]),
        "holdout_net_pnl_usdt": round(float(h["net_pnl"]), 2), "holdout_fees_usdt": round(float(h["fees"]), 2),
        "buy_and_hold_return": r(h["buy_and_hold_return"]),
        "buy_and_hold_sharpe_daily": r(h["buy_and_hold_sharpe_daily"]),
        "dsr": r(res.dsr["dsr"]), "dsr_detail": dg.MetadataValue.json(_plain(res.dsr)),
        "pbo": r(res.pbo["pbo"]), "pbo_detail": dg.MetadataValue.json(_plain(res.pbo)),
        "dsr_note": res.dsr.get("reason", f"deflated over {res.dsr['n_trials']} trials ({res.dsr['counted']})"),
        "pbo_note": res.pbo.get("reason", f"CSCV over {res.pbo.get('n_periods')} daily periods in "
                                f"{res.pbo.get('n_splits')} splits"),
        "trials": _trials_table(res.trials),
    }


@dg.asset(
    key=KEY,
    ins=common.TRAINING_INS,
    group_name="models",
    partitions_def=partitions.weekly,
    pool="training",
    kinds={"optuna", "xgboost", "mlflow"},
    check_specs=[dg.AssetCheckSpec(
        CHECK, asset=KEY, blocking=False,
        description=f"The chosen configuration's deflated Sharpe (its inner daily returns against the best of every "
        f"trial run) is >= {lib.MIN_DSR} and the probability of backtest overfitting (CSCV over the trials' daily "
        f"returns) is <= {lib.MAX_PBO}; either one not computable (too few days or trials) fails it too. WARN: a "
        "study promotes nothing.")],
    description="An Optuna study (or greedy forward feature selection) on the training weeks before the week: "
    "nested walk-forward after costs, every trial an MLflow child run, a hold-out the study never sees traded "
    "once beside buy-and-hold, the deflated Sharpe over the trials run and the PBO.",
)
def study(context: dg.AssetExecutionContext, config: StudySettings, warehouse: DuckDBResource,
          mlflow: MlflowResource, trading: TradingResource):
    week_start = common.week_of(context)
    with warehouse.get_connection() as conn:
        rows, horizon = common.load_training_rows(conn, week_start, config.min_train_days)
        market = _market(conn, rows, horizon, trading)
    cfg = config.study_config(horizon)
    tags = {"week_start": f"{week_start:%Y-%m-%d}", "dagster_run_id": context.run.run_id}
    with study_run(mlflow, cfg.kind, tags) as run:
        res = lib.run_study(rows, FEATURE_NAMES, market, cfg, horizon, on_trial=run.trial)
        run.summary(res)
    why = res.verdict()
    context.log.info(f"study {cfg.kind} week {week_start:%Y-%m-%d}: {len(res.trials)} trials "
                     f"({res.trials_per_minute:.1f}/min), best #{res.best_number}: {json.dumps(_plain(res.best_params))}"
                     f"; {'; '.join(why) or 'not overfit by DSR and PBO'}")
    yield dg.MaterializeResult(metadata=_metadata(res, run))
    yield dg.AssetCheckResult(
        check_name=CHECK, passed=not why, severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(why) or f"deflated Sharpe {res.dsr['dsr']:.2f} >= {lib.MIN_DSR} and PBO "
        f"{res.pbo['pbo']:.2f} <= {lib.MAX_PBO} over {len(res.trials)} trials",
        metadata={"dsr": round(float(res.dsr["dsr"]), 4), "pbo": round(float(res.pbo["pbo"]), 4),
                  "n_trials": len(res.trials), "min_dsr": lib.MIN_DSR, "max_pbo": lib.MAX_PBO,
                  "why": "; ".join(why) or "passed"})
