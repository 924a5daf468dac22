"""Labels: the only place allowed to look into the future, and only by the stated horizon.

Default label: the return from a bar's close to the close `horizon` minutes later, classed as BUY above
+threshold, SELL below -threshold, HOLD otherwise. The future close is found by time (open_time + horizon), not
by row offset, so a missing minute can never stretch the horizon; where the future bar is absent the label is
null, never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SELL, HOLD, BUY = 0, 1, 2
CLASS_NAMES = {SELL: "SELL", HOLD: "HOLD", BUY: "BUY"}


def next_return_labels(
    bars_1m: pd.DataFrame, horizon: int = 3, threshold: float = 0.001
) -> pd.DataFrame:
    """open_time, fwd_return and label (Int8: 0 SELL, 1 HOLD, 2 BUY, <NA> where the future is unknown)."""
    if horizon < 1:
        raise ValueError(f"label horizon must be at least 1 minute, got {horizon}")
    b = bars_1m[["open_time", "close"]].sort_values("open_time")
    future = b.set_index("open_time")["close"]
    target_times = b["open_time"] + pd.Timedelta(minutes=horizon)
    fut_close = future.reindex(target_times.to_numpy()).to_numpy()
    fwd = fut_close / b["close"].to_numpy() - 1.0
    label = np.where(fwd > threshold, BUY, np.where(fwd < -threshold, SELL, HOLD))
    out = pd.DataFrame({"open_time": b["open_time"].to_numpy(), "fwd_return": fwd})
    out["label"] = pd.array(np.where(np.isnan(fwd), 0, label), dtype="Int8")
    out.loc[np.isnan(fwd), "label"] = pd.NA
    out["open_time"] = pd.to_datetime(out["open_time"], utc=True)
    return out


def class_balance(labels: pd.Series) -> dict[str, float]:
    counts = labels.dropna().astype(int).value_counts()
    total = int(counts.sum())
    return {CLASS_NAMES[k]: (int(counts.get(k, 0)) / total if total else float("nan")) for k in (SELL, HOLD, BUY)}
