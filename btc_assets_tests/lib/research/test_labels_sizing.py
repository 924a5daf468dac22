"""Labels look ahead exactly their horizon (by time); the strategy's targets depend only on past signals."""

import pandas as pd
import pytest

from btc_assets.lib.research.labels import BUY, HOLD, SELL, class_balance, next_return_labels
from btc_assets.lib.trading.sizing import round_step


def frame(closes, start="2024-01-01", drop=()):
    t = pd.date_range(start, periods=len(closes), freq="1min", tz="UTC")
    df = pd.DataFrame({"open_time": t, "close": closes})
    return df.drop(index=list(drop)).reset_index(drop=True)


def test_label_classes_by_threshold():
    lab = next_return_labels(frame([100, 100, 100, 100.2, 99.8, 100, 100.05]), horizon=3, threshold=0.001)
    assert lab["label"].iloc[:4].tolist() == [BUY, SELL, HOLD, SELL]
    assert lab["fwd_return"].iloc[0] == pytest.approx(0.002)
    assert lab["label"].iloc[-3:].isna().all()  # the future is unknown: null, never guessed


def test_missing_minute_never_stretches_the_horizon():
    lab = next_return_labels(frame([100, 100, 100, 101, 101, 101], drop=[3]), horizon=3)
    assert pd.isna(lab.loc[lab["open_time"] == pd.Timestamp("2024-01-01 00:00", tz="UTC"), "label"].iloc[0])


def test_horizon_must_be_positive():
    with pytest.raises(ValueError, match="horizon"):
        next_return_labels(frame([1, 2, 3]), horizon=0)


def test_class_balance_sums_to_one():
    b = class_balance(pd.Series([0, 1, 1, 2, None], dtype="Int8"))
    assert b == {"SELL": 0.25, "HOLD": 0.5, "BUY": 0.25}


def test_round_step_never_rounds_up():
    assert round_step(0.0299999999, 0.001) == pytest.approx(0.029)
    assert round_step(0.03, 0.001) == pytest.approx(0.03)
    assert round_step(-0.0305, 0.001) == pytest.approx(-0.030)
