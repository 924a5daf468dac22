"""Cost-aware decisions: calibrated probabilities, the expected edge they imply, and trading only beyond the costs.

A model's raw class probabilities are not probabilities of anything a trader can price. Three steps make them so:

1. calibration (`Calibrator`): one-vs-rest isotonic regression (or Platt scaling) fitted on the fold's inner
   validation slice, never on its test window, then renormalised;
2. the expected edge (`EdgeRule`): E[forward return] = p_sell * mean_sell + p_hold * mean_hold + p_buy * mean_buy,
   the class means measured on the training rows only;
3. the decision: BUY when the expected edge exceeds the round-trip cost (fees + expected slippage, `round_trip_cost`),
   SELL when it is below minus that cost, otherwise HOLD. Optionally a meta-label model (xgb.fit_meta) vetoes
   trades it expects to lose after costs.

Everything a decision needs travels with the model as JSON (XGBoost booster attributes, the LSTM net's attributes),
so the walk-forward, the batch signals and the live trader decide alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from btc_assets.lib.research.labels import BUY, HOLD, SELL

CALIBRATIONS = ("isotonic", "platt", "none")
MIN_CALIBRATION_ROWS = 50
# Isotonic regression needs many events of a class to be better than a two-parameter Platt map; below this many a
# class is Platt-scaled (the calibrator says which).
MIN_ISOTONIC_EVENTS = 200
# No calibrated probability below this: a step function fitted on few events would otherwise claim certainty.
PROBABILITY_FLOOR = 1e-3


def round_trip_cost(taker_fee: float, slippage_bps: float, slippage_vol_mult: float = 0.0,
                    sigma_1m: float = 0.0) -> float:
    """What a market round trip costs as a fraction of price: two taker fees and two expected slippages
    (fixed part plus slippage_vol_mult times the typical 1m return std), as the backtest engine charges them."""
    return 2.0 * taker_fee + 2.0 * slippage_bps / 1e4 + 2.0 * slippage_vol_mult * sigma_1m


def typical_sigma_1m(close: pd.Series | np.ndarray, window: int = 60) -> float:
    """Median of the rolling std of 1m returns (the engine's volatility slippage uses the same rolling std)."""
    r = pd.Series(np.asarray(close, float)).pct_change()
    s = r.rolling(window, min_periods=window // 2).std().dropna()
    return float(s.median()) if len(s) else 0.0


@dataclass(frozen=True)
class Calibrator:
    """Per-class maps from a raw probability to a calibrated one (isotonic knots or Platt a, b)."""

    method: str  # isotonic, platt or none; per class in `kinds`
    params: tuple  # per class: ("isotonic", x knots, y knots) or ("platt", a, b); none: ()

    @property
    def kinds(self) -> list[str]:
        return [c[0] for c in self.params]

    def apply(self, proba: np.ndarray) -> np.ndarray:
        p = np.asarray(proba, float)
        if self.method == "none" or not self.params:
            return p
        out = np.empty_like(p)
        for k, c in enumerate(self.params):
            if c[0] == "isotonic":
                out[:, k] = np.interp(p[:, k], c[1], c[2])
            else:
                logit = np.log(np.clip(p[:, k], 1e-9, 1 - 1e-9) / np.clip(1 - p[:, k], 1e-9, 1))
                out[:, k] = 1.0 / (1.0 + np.exp(-(c[1] * logit + c[2])))
        out = np.maximum(out, PROBABILITY_FLOOR)
        total = out.sum(axis=1, keepdims=True)
        # a row the maps send to all zeros keeps its raw probabilities (nothing better is known about it)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), p)

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "params": [
            [c[0], list(c[1]), list(c[2])] if c[0] == "isotonic" else list(c) for c in self.params]})

    @classmethod
    def from_json(cls, text: str | None) -> Calibrator:
        if not text:
            return cls("none", ())
        d = json.loads(text)
        return cls(d["method"], tuple((c[0], tuple(c[1]), tuple(c[2])) if c[0] == "isotonic" else tuple(c)
                                      for c in d["params"]))


def fit_calibrator(proba: np.ndarray, y: np.ndarray, method: str = "isotonic") -> Calibrator:
    """Calibrate on held-out rows (the inner validation slice). Too few rows: no calibration, stated by method."""
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration {method!r} is unknown; use one of {CALIBRATIONS}")
    y = np.asarray(y, int)
    if method == "none" or len(y) < MIN_CALIBRATION_ROWS:
        return Calibrator("none", ())
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    params = []
    for k in range(proba.shape[1]):
        target = (y == k).astype(float)
        events = int(min(target.sum(), len(target) - target.sum()))
        if method == "isotonic" and events >= MIN_ISOTONIC_EVENTS:
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, k], target)
            params.append(("isotonic", tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))))
        elif events == 0:
            params.append(("platt", 1.0, 0.0))  # a class never (or always) seen: left as the model says
        else:
            x = np.log(np.clip(proba[:, k], 1e-9, 1 - 1e-9) / np.clip(1 - proba[:, k], 1e-9, 1))
            lr = LogisticRegression(C=1.0).fit(x.reshape(-1, 1), target)
            params.append(("platt", float(lr.coef_[0, 0]), float(lr.intercept_[0])))
    return Calibrator(method, tuple(params))


@dataclass(frozen=True)
class EdgeRule:
    """Trade a side only when the expected forward return of the calibrated probabilities beats the cost."""

    class_returns: tuple[float, float, float]  # mean fwd_return of SELL, HOLD, BUY training rows
    cost: float  # round trip, fraction of price

    def expected_return(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba, float) @ np.asarray(self.class_returns, float)

    def signal(self, proba: np.ndarray) -> np.ndarray:
        e = self.expected_return(proba)
        return np.where(e > self.cost, BUY, np.where(e < -self.cost, SELL, HOLD)).astype("int8")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EdgeRule:
        d = json.loads(text)
        return cls(tuple(d["class_returns"]), float(d["cost"]))


def fit_edge_rule(train: pd.DataFrame, cost: float) -> EdgeRule:
    """Class means of fwd_return on the training rows (0 for a class absent there: it predicts no move)."""
    lab, fwd = train["label"].astype(int).to_numpy(), train["fwd_return"].astype(float).to_numpy()
    ok = np.isfinite(fwd)
    means = tuple(float(fwd[ok & (lab == k)].mean()) if (ok & (lab == k)).any() else 0.0 for k in (SELL, HOLD, BUY))
    return EdgeRule(means, float(cost))


@dataclass(frozen=True)
class DecisionPolicy:
    """How a family turns probabilities into trades (configurable per training run, stored with the model)."""

    cost: float  # round_trip_cost of the trading settings
    calibration: str = "isotonic"
    meta_labelling: bool = False
    min_meta_rows: int = 30  # primary trades on the validation slice needed to fit a meta model
    # "edge" (the default): trade beyond the cost; "argmax": the most probable class, costs ignored (for tests of
    # the trading mechanics, which need entries from a few days of data; stated in the registry)
    rule: str = "edge"

    def describe(self) -> str:
        if self.rule == "argmax":
            return "the most probable class trades (decision=argmax: the costs are ignored)"
        return (f"trade when the {self.calibration}-calibrated expected return beats the round-trip cost "
                f"{self.cost:.4%}" + ("; a meta-label model vetoes trades it expects to lose" if self.meta_labelling
                                      else ""))


def meta_target(signal: np.ndarray, fwd_return: np.ndarray, cost: float) -> np.ndarray:
    """1 where acting on the primary signal would have earned more than the cost, else 0 (trades only)."""
    side = np.where(signal == BUY, 1.0, np.where(signal == SELL, -1.0, 0.0))
    return (side * np.asarray(fwd_return, float) > cost).astype(int)
