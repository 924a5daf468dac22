"""Greedy forward feature selection for the daily strategy: which daily features, chosen to maximise the
out-of-sample Sharpe, and what that choice is worth on days the selection never saw.

The daily strategy's protocol: a random forest on daily bars, labels up/down/neutral beyond +-1 %, an expanding
walk-forward (`min_train_days` to start, `test_days` steps), costs of 5 bp one way. Its returns here: hold the
call's side (+1 BUY, -1 SELL, 0 HOLD) over the next day, pay `cost` per unit of position change.

Nested, so the selection cannot flatter itself:
* the selection region ends `holdout_days` before the last day; every trial (a feature set) is walked forward
  inside it only, and the set whose out-of-sample Sharpe is best is kept, one feature at a time, until no
  candidate adds to it (or `max_features`);
* the hold-out (the last `holdout_days`) is walked forward once for the chosen set and once for the fixed four
  features (EMA-12 ratio, ATR-14, 20-day log return, MFI-14), beside buy-and-hold;
* the deflated Sharpe of the chosen set's selection-period returns counts every trial actually run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import talib

from btc_assets.lib.research.labels import BUY, HOLD, SELL
from btc_assets.lib.research.models import overfitting, rf_daily
from btc_assets.lib.research.models.walk_forward import WalkForwardConfig, run_walk_forward

CANDIDATES: dict[str, str] = {
    "ema12_ratio": "close / EMA(12) of daily closes",
    "ema26_ratio": "close / EMA(26)",
    "ema50_ratio": "close / EMA(50)",
    "atr14_rel": "ATR(14) / close",
    "log_return_5d": "log return over 5 days",
    "log_return_20d": "log return over 20 days",
    "log_return_60d": "log return over 60 days",
    "mfi14": "money flow index (14)",
    "rsi14": "RSI(14)",
    "vol20": "standard deviation of the last 20 daily log returns",
    "range_rel": "(high - low) / close of the day",
    "volume_z20": "log volume against its last 20 days (z-score)",
}
FIXED = list(rf_daily.DAILY_FEATURES)
COST = 0.0005  # 5 bp one way


def candidate_dataset(daily: pd.DataFrame, threshold: float = 0.01) -> pd.DataFrame:
    """Every candidate at each day's close, the next day's return and label (consecutive days only); rows
    without every candidate or a future dropped."""
    h, lo, c, v = (daily[k].to_numpy(dtype=float) for k in ("high", "low", "close", "volume"))
    logc = np.log(c)
    r1 = pd.Series(logc).diff()
    logv = pd.Series(np.log1p(v))
    out = pd.DataFrame({
        "open_time": daily["open_time"].to_numpy(),
        "ema12_ratio": c / talib.EMA(c, timeperiod=12), "ema26_ratio": c / talib.EMA(c, timeperiod=26),
        "ema50_ratio": c / talib.EMA(c, timeperiod=50), "atr14_rel": talib.ATR(h, lo, c, timeperiod=14) / c,
        "log_return_5d": logc - pd.Series(logc).shift(5).to_numpy(),
        "log_return_20d": logc - pd.Series(logc).shift(20).to_numpy(),
        "log_return_60d": logc - pd.Series(logc).shift(60).to_numpy(),
        "mfi14": talib.MFI(h, lo, c, v, timeperiod=14), "rsi14": talib.RSI(c, timeperiod=14),
        "vol20": r1.rolling(20).std().to_numpy(), "range_rel": (h - lo) / c,
        "volume_z20": ((logv - logv.rolling(20).mean()) / logv.rolling(20).std()).to_numpy(),
    })
    nxt = daily["close"].shift(-1) / daily["close"] - 1
    consecutive = daily["open_time"].shift(-1) - daily["open_time"] == pd.Timedelta(days=1)
    out["fwd_return"] = nxt.where(consecutive).to_numpy()
    out["label"] = np.where(out["fwd_return"] > threshold, BUY, np.where(out["fwd_return"] < -threshold, SELL, HOLD))
    return out.replace([np.inf, -np.inf], np.nan).dropna().reset_index(drop=True)


def strategy_returns(pred: pd.DataFrame, cost: float = COST) -> pd.Series:
    """Daily returns of holding each out-of-sample call's side over the next day, after `cost` per unit of
    position change (a flat-to-long day pays it once, long-to-short twice)."""
    p = pred.sort_values("open_time")
    pos = np.select([p["signal"] == BUY, p["signal"] == SELL], [1.0, -1.0], 0.0)
    turnover = np.abs(np.diff(np.concatenate([[0.0], pos])))
    return pd.Series(pos * p["fwd_return"].to_numpy(float) - cost * turnover, index=p["open_time"].to_numpy())


def annualised_sharpe(r: pd.Series) -> float:
    """Sharpe of daily returns x sqrt(365) (crypto trades every day); NaN without spread."""
    sd = float(r.std(ddof=1)) if len(r) > 1 else float("nan")
    return float(r.mean() / sd * math.sqrt(365)) if sd and np.isfinite(sd) and sd > 0 else float("nan")


def walk_forward_returns(data: pd.DataFrame, features: list[str], p: rf_daily.RfParams, n_folds: int,
                         test_days: int, cost: float = COST) -> pd.Series:
    """The strategy's out-of-sample daily returns over the last `n_folds` x `test_days` days of `data`."""
    cfg = WalkForwardConfig(n_folds=n_folds, test_span=pd.Timedelta(days=test_days), train_span=None,
                            validation_fraction=0.2, purge=pd.Timedelta(days=1), embargo=pd.Timedelta(days=1))
    wf = run_walk_forward(data[["open_time", *features, "fwd_return", "label"]],
                          rf_daily.fit_predict(p, features), cfg, label_horizon_minutes=1440, persistence_rows=1)
    return strategy_returns(wf.predictions, cost)


@dataclass
class Selection:
    chosen: list[str]
    trials: list[dict] = field(default_factory=list)  # features, sharpe (annualised), daily sharpe, step
    selection_days: int = 0
    holdout: dict[str, float] = field(default_factory=dict)
    deflated: dict = field(default_factory=dict)
    holdout_returns: dict[str, pd.Series] = field(default_factory=dict)


def greedy_forward(data: pd.DataFrame, p: rf_daily.RfParams, *, min_train_days: int = 1250, test_days: int = 20,
                   holdout_days: int = 240, max_features: int = 6, candidates: list[str] | None = None,
                   cost: float = COST) -> Selection:
    """The nested greedy forward selection described above."""
    cands = list(candidates or CANDIDATES)
    unknown = sorted(set(cands) - set(CANDIDATES))
    if unknown:
        raise ValueError(f"daily selection: unknown candidate features {unknown}; known: {sorted(CANDIDATES)}")
    d = data.sort_values("open_time").reset_index(drop=True)
    holdout_start = d["open_time"].iloc[-1] - pd.Timedelta(days=holdout_days - 1)
    region = d[d["open_time"] < holdout_start]
    steps = (len(region) - min_train_days) // test_days
    if steps < 1 or holdout_days < test_days:
        raise ValueError(f"daily selection: {len(d)} days leave {len(region)} before the {holdout_days}-day hold-out, "
                         f"too few for {min_train_days} training days and one {test_days}-day step: load more daily "
                         "history or lower min_train_days / holdout_days")
    chosen: list[str] = []
    best = -np.inf
    trials: list[dict] = []
    for step in range(max_features):
        scored = []
        for f in (c for c in cands if c not in chosen):
            r = walk_forward_returns(region, [*chosen, f], p, steps, test_days, cost)
            s = annualised_sharpe(r)
            trials.append({"step": step, "features": ",".join([*chosen, f]), "sharpe": s,
                           "sharpe_daily": s / math.sqrt(365) if np.isfinite(s) else float("nan"), "days": len(r)})
            scored.append((s if np.isfinite(s) else -np.inf, f, r))
        if not scored:
            break
        s, f, r = max(scored, key=lambda x: x[0])
        if s <= best:
            break
        best, chosen = s, [*chosen, f]
        best_returns = r
    sel = Selection(chosen=chosen, trials=trials, selection_days=steps * test_days)
    sel.deflated = overfitting.deflated_sharpe(best_returns.to_numpy(), len(trials),
                                               np.array([t["sharpe_daily"] for t in trials])) if chosen else {}
    n_hold = holdout_days // test_days
    for name, feats in (("chosen", chosen), ("fixed", FIXED)):
        r = walk_forward_returns(d, feats, p, n_hold, test_days, cost) if feats else pd.Series(dtype=float)
        sel.holdout_returns[name] = r
        sel.holdout[f"{name}_sharpe"] = annualised_sharpe(r)
        sel.holdout[f"{name}_return"] = float(np.expm1(np.log1p(r).sum())) if len(r) else float("nan")
    held = d[d["open_time"] >= sel.holdout_returns["fixed"].index.min()] if len(sel.holdout_returns["fixed"]) else d
    bh = held["fwd_return"]
    sel.holdout["buy_and_hold_return"] = float(np.expm1(np.log1p(bh).sum()))
    sel.holdout["buy_and_hold_sharpe"] = annualised_sharpe(bh)
    sel.holdout["days"] = float(len(sel.holdout_returns["fixed"]))
    return sel
