"""Studies: sweeps that count their trials. An Optuna search (kind "params": label threshold, XGBoost
hyper-parameters, decision threshold, stop/target/time exit) or a greedy forward feature selection (kind
"forward_selection", over feature families by default); each trial's objective is the per-day Sharpe of its inner
walk-forward traded after every cost by the backtest engine (economics.walk_forward_economics).

Nested walk-forward: the last `final_test_days` (the hold-out) are cut off first and the study is given only the
bars its labels need before them, so no trial sees a hold-out price. The chosen configuration is refitted on
everything before the hold-out and trades it once, beside buy-and-hold. Its inner daily returns are deflated by the
number of trials run (overfitting.deflated_sharpe); the trials' returns, aligned by period (a fold's UTC day, as
economics pools them), give the probability of backtest overfitting (pbo_cscv). MLflow-agnostic: `on_trial` is
called with every trial's record (defs/models/study.py logs it as a child run). No pruner: no trial is pruned.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import optuna
import pandas as pd
from xgboost.core import XGBoostError

from btc_assets.lib.research.backtest import Costs, simulate
from btc_assets.lib.research.backtest.metrics import buy_and_hold, daily_returns
from btc_assets.lib.research.labels import HOLD, next_return_labels
from btc_assets.lib.research.models import xgb
from btc_assets.lib.research.models.economics import PromotionRule, walk_forward_economics
from btc_assets.lib.research.models.overfitting import deflated_sharpe, pbo_cscv
from btc_assets.lib.research.models.walk_forward import WalkForwardConfig, run_walk_forward
from btc_assets.lib.research.risk import RiskConfig

log = logging.getLogger(__name__)
NO_TRADE_VALUE = -10.0  # objective of a trial without a trade: below any daily Sharpe a trading trial can reach
MIN_DSR, MAX_PBO = 0.95, 0.5
WARMUP_BARS = 60  # untraded 1m bars before each fold: the engine's ATR(14) and 60-bar volatility are known at once
TRIAL_ERRORS = (ValueError, XGBoostError)  # a configuration that cannot be fitted or traded: a failed trial
RISK_FIELDS, XGB_FIELDS = ("stop_atr", "take_profit_r", "max_hold_bars"), (
    "max_depth", "learning_rate", "n_estimators", "min_child_weight", "subsample")


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of kind "params" (low, high); learning_rate, min_child_weight and label_threshold on a log scale."""

    label_threshold: tuple[float, float] = (0.0005, 0.003)
    max_depth: tuple[int, int] = (2, 6)
    learning_rate: tuple[float, float] = (0.02, 0.3)
    n_estimators: tuple[int, int] = (20, 300)
    min_child_weight: tuple[float, float] = (1.0, 20.0)
    subsample: tuple[float, float] = (0.5, 1.0)
    decision_threshold: tuple[float, float] = (0.34, 0.7)  # below it the chosen class becomes HOLD
    stop_atr: tuple[float, float] = (0.75, 3.0)
    take_profit_r: tuple[float, float] = (1.0, 3.0)
    max_hold_bars: tuple[int, int] = (3, 60)


@dataclass(frozen=True)
class StudyConfig:
    kind: str = "params"  # or "forward_selection"
    n_trials: int = 12  # "params" only: forward selection runs as many trials as it has candidates
    seed: int = 0
    final_test_days: float = 1.0  # the hold-out at the end of the rows, never seen by the study
    walk_forward: WalkForwardConfig = WalkForwardConfig()  # the inner folds (purge >= the label horizon)
    space: SearchSpace = SearchSpace()
    base_xgb: xgb.XgbParams = xgb.XgbParams()  # forward selection's model; seed, n_jobs, early stopping everywhere
    label_threshold: float | None = None  # forward selection's relabelling (None: the rows' own labels)
    decision_threshold: float = 0.0  # forward selection's (0: always the most probable class)
    unit: str = "family"  # forward selection adds a "family" or a "feature" at a time
    max_steps: int = 3
    max_candidates: int | None = None  # forward selection: only the first N units are candidates
    random_seeds: int = 50  # random-entry runs per trial (economics): few keep a trial fast
    validation_fraction: float = 0.15  # early-stopping slice of the final refit


@dataclass(frozen=True)
class Market:
    """What trades: silver 1m bars over the rows and the hold-out, funding, mark price, costs and risk rules."""

    bars: pd.DataFrame
    funding: pd.DataFrame | None = None
    mark: pd.DataFrame | None = None
    costs: Costs = Costs()
    risk: RiskConfig = RiskConfig()
    initial_equity: float = 10_000.0


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict
    state: str  # COMPLETE or FAIL
    value: float  # the objective (NO_TRADE_VALUE without a trade, NaN when failed)
    inner_sharpe_daily: float
    inner_net_return: float
    inner_trades: int
    note: str
    returns: pd.Series = field(repr=False)  # daily returns by (fold, day)
    seen: dict = field(repr=False, default_factory=dict)  # rows_from, rows_to, bars_to the trial was given


@dataclass
class StudyResult:
    kind: str
    trials: pd.DataFrame  # number, params (json), value, inner_sharpe_daily, inner_net_return, inner_trades, state
    best_number: int
    best_params: dict
    inner: dict[str, float]  # the chosen trial's inner figures
    holdout: dict  # after-cost figures of the hold-out traded once, beside buy-and-hold
    dsr: dict
    pbo: dict
    trials_per_minute: float
    seen: pd.DataFrame  # per trial: the first/last row and the last bar it was given
    holdout_window: tuple[pd.Timestamp, pd.Timestamp]

    def verdict(self, min_dsr: float = MIN_DSR, max_pbo: float = MAX_PBO) -> list[str]:
        """Why the chosen configuration may be luck (empty: deflated Sharpe >= min_dsr and PBO <= max_pbo)."""
        why = []
        d, p = self.dsr.get("dsr", math.nan), self.pbo.get("pbo", math.nan)
        if not d >= min_dsr:
            why.append(self.dsr.get("reason") or f"deflated Sharpe {d:.2f} < {min_dsr} after "
                       f"{self.dsr['n_trials']} trials over {self.dsr['n_days']} periods")
        if not p <= max_pbo:
            why.append(self.pbo.get("reason") or f"probability of backtest overfitting {p:.2f} > {max_pbo} "
                       f"({self.pbo['n_splits']} CSCV splits)")
        return why


def _sharpe(r: np.ndarray) -> float:
    """Per-day Sharpe (NaN with fewer than 2 days, 0 for flat returns: a trial that never trades)."""
    if len(r) < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r)) / sd if sd > 1e-15 else 0.0


def decide(proba: np.ndarray, threshold: float) -> np.ndarray:
    """The most probable class, HOLD where its probability is below `threshold`."""
    return np.where(proba.max(axis=1) >= threshold, proba.argmax(axis=1), HOLD)


def _relabel(rows: pd.DataFrame, bars: pd.DataFrame, horizon: int, threshold: float | None) -> pd.DataFrame:
    if threshold is None:
        return rows
    lab = next_return_labels(bars, horizon, threshold)
    d = rows.drop(columns=["label", "fwd_return"]).merge(lab, on="open_time", how="inner")
    return d[d["label"].notna()].astype({"label": int}).reset_index(drop=True)


def _trade(pred: pd.DataFrame, bars: pd.DataFrame, m: Market, risk: RiskConfig, cfg: StudyConfig
           ) -> tuple[dict, pd.Series]:
    daily: list[pd.Series] = []
    fig, _ = walk_forward_economics(pred, bars, m.funding, mark=m.mark, costs=m.costs, risk=risk,
                                    initial_equity=m.initial_equity, rule=PromotionRule(random_seeds=cfg.random_seeds),
                                    seed=cfg.seed, daily_out=daily, warmup_bars=WARMUP_BARS)
    r = pd.concat(daily, keys=range(len(daily)), names=["fold", "day"]) if daily else pd.Series(dtype=float)
    return fig, r


def _model(params: dict, cfg: StudyConfig, m: Market) -> tuple[xgb.XgbParams, RiskConfig]:
    return (replace(cfg.base_xgb, **{k: params[k] for k in XGB_FIELDS}),
            replace(m.risk, **{k: params[k] for k in RISK_FIELDS}))


def _evaluate(number: int, params: dict, features: list[str], rows: pd.DataFrame, bars: pd.DataFrame, m: Market,
              cfg: StudyConfig, horizon: int) -> TrialRecord:
    """One trial: relabel, inner walk-forward, decision threshold, after-cost trading of every fold."""
    seen = {"number": number, "rows_from": rows["open_time"].min(), "rows_to": rows["open_time"].max(),
            "bars_to": bars["open_time"].max()}
    try:
        xp, risk = _model(params, cfg, m)
        d = _relabel(rows, bars, horizon, params["label_threshold"])
        wf = run_walk_forward(d, xgb.fit_predict(features, xp), cfg.walk_forward, horizon)
        pred = wf.predictions.assign(signal=decide(wf.predictions[["p_sell", "p_hold", "p_buy"]].to_numpy(),
                                                   params["decision_threshold"]))
        fig, r = _trade(pred, bars, m, risk, cfg)
    except TRIAL_ERRORS as exc:  # kept as a FAIL trial (it still counts): the note says why
        log.warning("study trial %d failed: %s", number, exc)
        return TrialRecord(number, params, "FAIL", math.nan, math.nan, math.nan, 0, f"failed: {exc}",
                           pd.Series(dtype=float), seen)
    trades, sr = int(fig["wf_trades"]), _sharpe(r.to_numpy())
    scored = trades > 0 and math.isfinite(sr)
    note = "" if scored else (f"{'no trade' if not trades else 'no Sharpe'} in {len(r)} period(s): objective set "
                              f"to {NO_TRADE_VALUE}")
    return TrialRecord(number, params, "COMPLETE", sr if scored else NO_TRADE_VALUE, sr, fig["wf_net_return"], trades,
                       note, r, seen)


def _suggest(trial: optuna.Trial, s: SearchSpace) -> dict:
    f, i = trial.suggest_float, trial.suggest_int
    return {"label_threshold": f("label_threshold", *s.label_threshold, log=True),
            "max_depth": i("max_depth", *s.max_depth), "learning_rate": f("learning_rate", *s.learning_rate, log=True),
            "n_estimators": i("n_estimators", *s.n_estimators),
            "min_child_weight": f("min_child_weight", *s.min_child_weight, log=True),
            "subsample": f("subsample", *s.subsample),
            "decision_threshold": f("decision_threshold", *s.decision_threshold),
            "stop_atr": f("stop_atr", *s.stop_atr), "take_profit_r": f("take_profit_r", *s.take_profit_r),
            "max_hold_bars": i("max_hold_bars", *s.max_hold_bars)}


def units_of(features: list[str], cfg: StudyConfig) -> dict[str, list[str]]:
    """Forward selection's candidates: feature families (registry order) or single features, at most max_candidates."""
    if cfg.unit == "family":
        from btc_assets.lib.research.features.registry import families_of
        units = families_of(features)
    elif cfg.unit == "feature":
        units = {f: [f] for f in features}
    else:
        raise ValueError(f"StudyConfig.unit={cfg.unit!r}: use 'family' or 'feature'")
    return dict(list(units.items())[:cfg.max_candidates])


def _forward_selection(evaluate: Callable[[dict, list[str]], TrialRecord], base: dict, features: list[str],
                       cfg: StudyConfig) -> list[TrialRecord]:
    """Add the unit that most improves the objective; stop when none does or after max_steps."""
    units, chosen, best, out = units_of(features, cfg), [], -math.inf, []
    for step in range(cfg.max_steps):
        recs = [evaluate({**base, "step": step, "units": [*chosen, u]}, [f for c in (*chosen, u) for f in units[c]])
                for u in units if u not in chosen]
        out += recs
        done = [r for r in recs if r.state == "COMPLETE"]
        top = max(done, key=lambda r: r.value, default=None)  # ties: the earlier candidate (max keeps the first)
        if top is None or not top.value > best:
            break
        best = top.value
        chosen.append(top.params["units"][-1])
    return out


def _pbo(returns: pd.DataFrame) -> dict:
    t, n = returns.shape
    if n < 2 or t < 4:
        return {"pbo": math.nan, "n_trials": n, "n_periods": t, "reason": f"PBO not computable: {n} completed trials "
                f"and {t} daily periods (CSCV needs >= 2 trials and >= 4 periods, 2 per split)"}
    splits = min(16, t // 2) // 2 * 2  # the largest even number <= 16 leaving at least 2 periods per split
    return {**pbo_cscv(returns.to_numpy(), n_splits=splits), "n_periods": t}


def _dsr(best: TrialRecord, done: list[TrialRecord], n_run: int, counts: dict) -> dict:
    r = best.returns.to_numpy()
    why = (f"{len(r)} daily periods (needs >= 3)" if len(r) < 3 else
           f"{len(done)} completed trial(s) to estimate the Sharpe spread (needs >= 2)" if n_run > 1 and len(done) < 2
           else "")
    base = {"n_trials": n_run, **counts, "counted": "every trial run: complete, failed and pruned"}
    if why:
        return {"dsr": math.nan, "n_days": len(r), **base, "reason": f"deflated Sharpe not computable: {why}"}
    out = {**deflated_sharpe(r, n_run, np.array([t.inner_sharpe_daily for t in done])), **base}
    if not math.isfinite(out["dsr"]):
        out["reason"] = "deflated Sharpe not computable: the chosen trial's daily returns are flat (no trade)"
    return out


def _holdout(best: TrialRecord, rows: pd.DataFrame, hold: pd.DataFrame, bars: pd.DataFrame, features: list[str],
             m: Market, cfg: StudyConfig, horizon: int) -> dict:
    """Refit the chosen configuration on every row before the hold-out, trade the hold-out once, beside buy-and-hold."""
    xp, risk = _model(best.params, cfg, m)
    d = _relabel(rows, bars[bars["open_time"] < hold["open_time"].min()], horizon, best.params["label_threshold"])
    split = xgb.chronological_split(d, validation_fraction=cfg.validation_fraction, test_fraction=0.0,
                                    purge_minutes=horizon)
    proba = xgb.predict_proba(xgb.train(split.train, split.validation, features, xp), hold, features)
    pred = pd.DataFrame({"open_time": hold["open_time"].to_numpy(), "fold": 0, "p_sell": proba[:, 0],
                         "p_hold": proba[:, 1], "p_buy": proba[:, 2],
                         "signal": decide(proba, best.params["decision_threshold"])})
    fig, r = _trade(pred, bars, m, risk, cfg)
    lo, hi = pred["open_time"].min(), pred["open_time"].max() + pd.Timedelta(minutes=1)
    b = bars[(bars["open_time"] >= lo) & (bars["open_time"] < hi)].reset_index(drop=True)
    flat = simulate(b, pd.Series(0, index=pd.DatetimeIndex(b["open_time"]), dtype="int8"), m.funding, mark=m.mark,
                    costs=m.costs, risk=risk, initial_equity=m.initial_equity)
    bh = buy_and_hold(flat)[0]
    bh_r = daily_returns(bh.to_numpy(), m.initial_equity, pd.DatetimeIndex(bh.index))
    return {"from": str(lo), "to": str(hi), "net_return": fig["wf_net_return"], "sharpe_daily": _sharpe(r.to_numpy()),
            "trades": int(fig["wf_trades"]), "net_pnl": fig["wf_net_pnl"], "fees": fig["wf_fees"],
            "funding": fig["wf_funding"], "days": len(r), "buy_and_hold_return": float(bh.iloc[-1]) / m.initial_equity - 1,
            "buy_and_hold_sharpe_daily": _sharpe(bh_r)}


def run_study(rows: pd.DataFrame, features: list[str], market: Market, cfg: StudyConfig, horizon: int,
              on_trial: Callable[[TrialRecord], None] | None = None) -> StudyResult:
    """Run the study on `rows` (open_time, features, label, fwd_return; labels `horizon` minutes ahead)."""
    if cfg.kind not in ("params", "forward_selection"):
        raise ValueError(f"StudyConfig.kind={cfg.kind!r}: use 'params' or 'forward_selection'")
    rows = rows.sort_values("open_time").reset_index(drop=True)
    # The last row's label is known `horizon` minutes after its close; the hold-out ends there. The study gets the
    # rows before `cut` and the bars their labels need, so its last label looks at the bar before the hold-out.
    end = rows["open_time"].max() + pd.Timedelta(minutes=1 + horizon)
    cut = (end - pd.Timedelta(days=cfg.final_test_days)).floor("min")
    hold_from = cut + pd.Timedelta(minutes=horizon)
    inner, hold = rows[rows["open_time"] < cut], rows[rows["open_time"] >= hold_from]
    if inner.empty or hold.empty:
        raise ValueError(f"final_test_days={cfg.final_test_days} leaves {len(inner)} study rows and {len(hold)} "
                         f"hold-out rows of {rows['open_time'].min()} .. {end}; use fewer hold-out days or more rows")
    bars = market.bars.sort_values("open_time").reset_index(drop=True)
    inner_bars = bars[bars["open_time"] < hold_from]
    base = {**{k: getattr(cfg.base_xgb, k) for k in XGB_FIELDS}, **{k: getattr(market.risk, k) for k in RISK_FIELDS},
            "label_threshold": cfg.label_threshold, "decision_threshold": cfg.decision_threshold}
    records: list[TrialRecord] = []

    def evaluate(params: dict, feats: list[str]) -> TrialRecord:
        rec = _evaluate(len(records), params, feats, inner, inner_bars, market, cfg, horizon)
        records.append(rec)
        if on_trial:
            on_trial(rec)
        return rec

    started = time.perf_counter()
    if cfg.kind == "params":
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
        # A failed trial returns NaN: optuna marks it FAIL, the record keeps its reason and it still counts.
        study.optimize(lambda t: evaluate({**base, **_suggest(t, cfg.space)}, features).value, n_trials=cfg.n_trials)
    else:
        _forward_selection(evaluate, base, features, cfg)
    minutes = (time.perf_counter() - started) / 60
    done = [r for r in records if r.state == "COMPLETE"]
    if not done:
        raise ValueError(f"every one of the {len(records)} study trials failed; first: {records[0].note}")
    best = max(done, key=lambda r: (r.value, -r.number))
    best_features = ([f for u in best.params["units"] for f in units_of(features, cfg)[u]]
                     if "units" in best.params else features)
    counts = {"n_completed": len(done), "n_failed": sum(r.state == "FAIL" for r in records), "n_pruned": 0}
    matrix = pd.concat({r.number: r.returns for r in done}, axis=1).fillna(0.0)  # a period a trial lacks: flat
    trials = pd.DataFrame([{"number": r.number, "params": json.dumps(r.params, sort_keys=True), "value": r.value,
                            "inner_sharpe_daily": r.inner_sharpe_daily, "inner_net_return": r.inner_net_return,
                            "inner_trades": r.inner_trades, "state": r.state, "note": r.note} for r in records])
    return StudyResult(
        cfg.kind, trials, best.number, best.params,
        {"sharpe_daily": best.inner_sharpe_daily, "net_return": best.inner_net_return, "trades": best.inner_trades,
         "periods": len(best.returns)},
        _holdout(best, inner, hold, bars, best_features, market, cfg, horizon), _dsr(best, done, len(records), counts),
        _pbo(matrix), len(records) / minutes if minutes > 0 else math.inf, pd.DataFrame([r.seen for r in records]),
        (hold_from, end))
