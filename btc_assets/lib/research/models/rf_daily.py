"""Reference baseline: a random forest on daily bars with four classic features, evaluated walk-forward.

Features, each known at the day's close: close / EMA-12 of closes, ATR-14 / close, the 20-day log return and
MFI-14. Label: the next day's close-to-close return beyond ±1 % (BUY / SELL / HOLD). It answers "does the minute
model beat a plain daily technical model?" with the same metric names as every other family.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import talib
from sklearn.ensemble import RandomForestClassifier

from btc_assets.lib.research.labels import BUY, HOLD, SELL
from btc_assets.lib.research.models.walk_forward import WalkForwardConfig, WalkForwardResult, run_walk_forward

DAILY_FEATURES = ["ema12_ratio", "atr14_rel", "log_return_20d", "mfi14"]


@dataclass(frozen=True)
class RfParams:
    n_estimators: int = 300
    max_depth: int = 4
    min_samples_leaf: int = 3
    threshold: float = 0.01
    seed: int = 7
    n_jobs: int = 2

    def as_dict(self) -> dict:
        return asdict(self)


def daily_bars(bars_1m: pd.DataFrame) -> pd.DataFrame:
    """UTC daily OHLCV from 1m bars; only days with all 1,440 minutes (a partial day is not a day)."""
    b = bars_1m.set_index("open_time").sort_index()
    d = b.resample("1D").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    d["minutes"] = b["close"].resample("1D").count()
    return d[d["minutes"] == 1440].drop(columns="minutes").reset_index()


def daily_features(daily: pd.DataFrame) -> pd.DataFrame:
    """The four features at each day's close (NaN during the warm-up): what a decision at the next 00:00 reads."""
    h, lo, c, v = (daily[k].to_numpy(dtype=float) for k in ("high", "low", "close", "volume"))
    return pd.DataFrame({"open_time": daily["open_time"],
                         "ema12_ratio": c / talib.EMA(c, timeperiod=12),
                         "atr14_rel": talib.ATR(h, lo, c, timeperiod=14) / c,
                         "log_return_20d": np.log(c / pd.Series(c).shift(20).to_numpy()),
                         "mfi14": talib.MFI(h, lo, c, v, timeperiod=14)}, index=daily.index)


def daily_dataset(daily: pd.DataFrame, threshold: float = 0.01) -> pd.DataFrame:
    """Features at each day's close and the next day's label; rows without a full warm-up or future dropped."""
    out = daily_features(daily)
    # Next day's return: consecutive calendar days only (a missing day must not stretch the horizon).
    nxt = daily["close"].shift(-1) / daily["close"] - 1
    consecutive = daily["open_time"].shift(-1) - daily["open_time"] == pd.Timedelta(days=1)
    out["fwd_return"] = nxt.where(consecutive)
    out["label"] = np.where(out["fwd_return"] > threshold, BUY, np.where(out["fwd_return"] < -threshold, SELL, HOLD))
    return out.dropna().reset_index(drop=True)


def fit_predict(p: RfParams, features: list[str] | None = None):
    cols = list(features or DAILY_FEATURES)

    def fn(train: pd.DataFrame, _val: pd.DataFrame, test: pd.DataFrame, _context: pd.DataFrame) -> np.ndarray:
        # The validation slice is folded back in: a forest needs no early stopping, and daily rows are few.
        fit = pd.concat([train, _val])
        rf = RandomForestClassifier(n_estimators=p.n_estimators, max_depth=p.max_depth,
                                    min_samples_leaf=p.min_samples_leaf, random_state=p.seed, n_jobs=p.n_jobs)
        rf.fit(fit[cols], fit["label"].astype(int))
        proba = np.zeros((len(test), 3))
        proba[:, rf.classes_] = rf.predict_proba(test[cols])
        return proba
    return fn


def walk_forward(dataset: pd.DataFrame, p: RfParams, n_folds: int = 4, test_days: int = 5) -> WalkForwardResult:
    """Expanding-window walk-forward over daily rows: purge 1 day (the label horizon), embargo 1 day."""
    cfg = WalkForwardConfig(n_folds=n_folds, test_span=pd.Timedelta(days=test_days), train_span=None,
                            validation_fraction=0.2, purge=pd.Timedelta(days=1), embargo=pd.Timedelta(days=1))
    return run_walk_forward(dataset, fit_predict(p), cfg, label_horizon_minutes=1440, persistence_rows=1)


def fit(dataset: pd.DataFrame, p: RfParams) -> RandomForestClassifier:
    """The final forest on every labelled day (what is registered)."""
    rf = RandomForestClassifier(n_estimators=p.n_estimators, max_depth=p.max_depth,
                                min_samples_leaf=p.min_samples_leaf, random_state=p.seed, n_jobs=p.n_jobs)
    return rf.fit(dataset[DAILY_FEATURES], dataset["label"].astype(int))
