"""Funding rates: archive rows typed and put on their settlement grid.

The archive's calc_time carries millisecond jitter (…200002); the settlement is at the interval boundary that
funding_interval_hours states. A row that is not within a few seconds of its grid is an error, not something to
round silently.
"""

from __future__ import annotations

import pandas as pd

GRID_TOLERANCE = pd.Timedelta(seconds=5)


class FundingDataError(ValueError):
    """Funding rows that do not sit on the settlement grid their interval states."""


def silver_funding(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """funding_time (settlement, UTC), calc_time (as published), interval_hours, rate; sorted, de-duplicated."""
    df = pd.DataFrame(
        {
            "calc_time": raw["calc_time"],
            "interval_hours": raw["funding_interval_hours"].astype("int64"),
            "rate": raw["last_funding_rate"].astype("float64"),
        }
    )
    hours = df["interval_hours"].to_numpy()
    if (hours <= 0).any() or (24 % hours != 0).any():
        bad = df[(hours <= 0) | (24 % hours != 0)].iloc[0]
        raise FundingDataError(f"{source}: funding_interval_hours {bad['interval_hours']} at {bad['calc_time']} "
                               "does not divide the day; check the file")
    grid = df["calc_time"].dt.round("1h")
    off_grid = ((df["calc_time"] - grid).abs() > GRID_TOLERANCE) | (grid.dt.hour % df["interval_hours"] != 0)
    if off_grid.any():
        row = df[off_grid].iloc[0]
        raise FundingDataError(
            f"{source}: {int(off_grid.sum())} funding rows are off the {row['interval_hours']}h settlement grid "
            f"(first calc_time {row['calc_time']}); the file may mix symbols or intervals: inspect it before use"
        )
    df.insert(0, "funding_time", grid)
    df = df.drop_duplicates().sort_values("funding_time", kind="stable")
    dup = df[df["funding_time"].duplicated(keep=False)]
    if len(dup):
        raise FundingDataError(f"{source}: conflicting rates for settlement {dup['funding_time'].iloc[0]}; "
                               "re-fetch the file")
    return df.reset_index(drop=True)
