"""The regime filter: the TFT's multi-day forecast (models/regime_forecast) as a rule on the scalper's entries.

`direction`: an entry is kept only in the direction of the day's 1-day forecast (its median, made at 00:00 UTC
of the entry's day: known before any bar of the day closes); an entry on a day without a forecast (no promoted
forecaster) is dropped, not let through. `none`: entries unchanged. The backtest and the live decisions call this
same function, so they filter alike.
"""

from __future__ import annotations

import pandas as pd

FILTERS = ("none", "direction")


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
