"""The regime filter and sizing: the TFT's multi-day forecast (models/regime_forecast) as rules on the scalper.

Filter `direction`: an entry is kept only in the direction of the day's 1-day forecast (its median, made at 00:00
UTC of the entry's day: known before any bar of the day closes); an entry on a day without a forecast (no promoted
forecaster) is dropped, not let through. `none`: entries unchanged.

Sizing `spread`: each entry's size (the rules' Kelly/ATR size) is scaled by the day's forecast spread against the
usual one: factor = median spread of the REFERENCE days before the day (at least MIN_REFERENCE_DAYS forecasts) / the
day's spread, clipped to [SIZE_FLOOR, 1]: a day forecast wider than usual trades smaller, never larger. A day
without a forecast, or without enough reference days, keeps factor 1 (and says how many). `none`: factor 1.
Callers pass the forecasts from REFERENCE before the first day they size (the backtest and the live path alike).

The backtest and the live decisions call these same functions, so they filter and size alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FILTERS = ("none", "direction")
SIZINGS = ("none", "spread")
SIZE_FLOOR = 0.25
MIN_REFERENCE_DAYS = 5
REFERENCE = pd.Timedelta(days=30)


def size_scale(times, forecasts: pd.DataFrame | None, mode: str) -> tuple[pd.Series | None, dict]:
    """The entry size factor of each bar opening at `times` (UTC) under sizing `mode` (None for `none`), and what
    it did. `forecasts`: open_time (the day's 00:00) and `spread` of the 1-day horizon."""
    if mode not in SIZINGS:
        raise ValueError(f"regime_sizing={mode!r} is unknown: use one of {SIZINGS}")
    idx = pd.DatetimeIndex(times)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx
    if mode == "none":
        return None, {"regime_sizing": "none"}
    f = pd.DataFrame(columns=["open_time", "spread"]) if forecasts is None else forecasts.copy()
    f["open_time"] = pd.to_datetime(f["open_time"], utc=True)
    spread = f.drop_duplicates("open_time", keep="last").set_index("open_time")["spread"].astype(float).sort_index()
    spread = spread[spread > 0]
    # the usual spread as known on each day: the median of the REFERENCE days before it (never the day or later)
    window = spread.rolling(REFERENCE, closed="left")
    reference, enough = window.median(), window.count() >= MIN_REFERENCE_DAYS
    factor = (reference / spread).clip(lower=SIZE_FLOOR, upper=1.0).where(enough)
    day_factor = factor.reindex(idx.floor("D")).to_numpy()
    out = pd.Series(np.where(np.isfinite(day_factor), day_factor, 1.0), index=idx, name="size_scale")
    days = pd.Series(idx.floor("D")).drop_duplicates()
    scaled = factor.reindex(days).dropna()
    return out, {"regime_sizing": "spread", "days": int(len(days)), "days_scaled": int((scaled < 1.0).sum()),
                 "days_without_factor": int(len(days) - len(scaled)),
                 "mean_factor": float(scaled.mean()) if len(scaled) else 1.0}


def filter_entries(entries: pd.Series, forecasts: pd.DataFrame, mode: str) -> tuple[pd.Series, dict]:
    """`entries` (+1 long / -1 short / 0 by bar open time, UTC) filtered by `mode`; `forecasts` holds open_time (the
    day's 00:00) and q50 of the 1-day horizon. Returns the entries and what the filter did."""
    if mode not in FILTERS:
        raise ValueError(f"regime_filter={mode!r} is unknown: use one of {FILTERS}")
    wanted = int((entries != 0).sum())
    if mode == "none":
        return entries, {"regime_filter": "none", "entries": wanted}
    idx = pd.DatetimeIndex(entries.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx
    f = forecasts.copy()
    f["open_time"] = pd.to_datetime(f["open_time"], utc=True)
    median = f.drop_duplicates("open_time", keep="last").set_index("open_time")["q50"]
    day_median = median.reindex(idx.floor("D")).to_numpy()
    e = entries.to_numpy()
    with_it = ((e > 0) & (day_median > 0)) | ((e < 0) & (day_median < 0))
    keep = (e == 0) | with_it
    no_forecast = int(((e != 0) & pd.isna(day_median)).sum())
    out = pd.Series(e * keep, index=entries.index, name=entries.name).astype(entries.dtype)
    return out, {"regime_filter": "direction", "entries": wanted, "kept": int((out != 0).sum()),
                 "dropped_against_forecast": wanted - int((out != 0).sum()) - no_forecast,
                 "dropped_without_forecast": no_forecast}
