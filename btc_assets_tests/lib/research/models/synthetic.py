"""Synthetic rows for model tests (not market data): a weak, real signal in f0 and noise in f1."""

import numpy as np
import pandas as pd


def rows(n: int = 6000, seed: int = 0, strength: float = 0.8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    f0, f1 = rng.normal(size=n), rng.normal(size=n)
    score = strength * f0 + rng.normal(size=n)
    label = np.where(score > 0.7, 2, np.where(score < -0.7, 0, 1))
    fwd = 1e-3 * (score + 2.0 * rng.normal(size=n))  # the return only loosely follows the label, as in markets
    return pd.DataFrame({"open_time": t, "f0": f0, "f1": f1, "label": label, "fwd_return": fwd})
