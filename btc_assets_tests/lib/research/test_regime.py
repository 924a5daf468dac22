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
