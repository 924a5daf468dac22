"""The regime filter keeps entries with the day's forecast, drops those against it and those without one."""

import pandas as pd
import pytest

from btc_assets.lib.research.regime import filter_entries

T = pd.date_range("2024-01-01 23:58", periods=4, freq="1min", tz="UTC")  # two bars on 01-01, two on 01-02


def test_direction_keeps_only_entries_with_the_days_forecast():
    entries = pd.Series([1, -1, 1, -1], index=T, dtype="int8")
    up_then_down = pd.DataFrame({"open_time": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
                                 "q50": [0.01, -0.02]})
    out, said = filter_entries(entries, up_then_down, "direction")
    assert out.tolist() == [1, 0, 0, -1] and out.dtype == entries.dtype
    assert said == {"regime_filter": "direction", "entries": 4, "kept": 2, "dropped_against_forecast": 2,
                    "dropped_without_forecast": 0}
    only_first = up_then_down.iloc[:1]
    out, said = filter_entries(entries, only_first, "direction")
    assert out.tolist() == [1, 0, 0, 0] and said["dropped_without_forecast"] == 2
    same, said = filter_entries(entries, only_first, "none")
    assert same.tolist() == entries.tolist() and said == {"regime_filter": "none", "entries": 4}
    with pytest.raises(ValueError, match="regime_filter='size' is unknown"):
        filter_entries(entries, only_first, "size")


def test_spread_sizing_scales_a_wide_day_down_from_the_days_before_only():
    import numpy as np

    from btc_assets.lib.research.regime import size_scale

    days = pd.date_range("2024-01-01", periods=12, freq="D", tz="UTC")
    f = pd.DataFrame({"open_time": days, "spread": [0.02] * 6 + [0.04, 0.01, 0.02, 0.08, 0.02, 0.02]})
    t = pd.date_range("2024-01-01", periods=12 * 1440, freq="min", tz="UTC")
    s, said = size_scale(t, f, "spread")
    per_day = s.resample("D").first().round(6).tolist()
    # five reference days needed; twice the usual spread -> half size; narrower than usual -> full size, never more;
    # four times -> the floor
    assert per_day == [1.0] * 6 + [0.5, 1.0, 1.0, 0.25, 1.0, 1.0]
    assert said["days_scaled"] == 2 and said["days_without_factor"] == 5 and (s.index == t).all()
    # point in time: a later day's spread never changes an earlier day's factor
    later = f.copy()
    later.loc[11, "spread"] = 10.0
    assert np.array_equal(size_scale(t, later, "spread")[0].to_numpy()[: 11 * 1440], s.to_numpy()[: 11 * 1440])
    assert size_scale(t, None, "spread")[0].eq(1.0).all()  # no forecast at all: full size, and it says so
    assert size_scale(t, f, "none") == (None, {"regime_sizing": "none"})
    with pytest.raises(ValueError, match="regime_sizing='kelly' is unknown"):
        size_scale(t, f, "kelly")
