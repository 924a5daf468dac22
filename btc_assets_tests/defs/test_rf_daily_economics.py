"""The daily random forest judged after costs like every family: its calls traded on daily bars as the daily
strategy trades them (the position table), entered at the next day's open (never on the day whose close made the
call) and held while the calls keep the side."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.defs.models.rf_baseline import RfDailyConfig, daily_evidence, daily_from_1m
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.models.walk_forward import WalkForwardResult

DAYS = 30


def bars(day_moves: list[float]) -> pd.DataFrame:
    """1m bars whose close drifts by day_moves[d] over day d (a straight line inside each day)."""
    t = pd.date_range("2024-03-01", periods=DAYS * 1440, freq="1min", tz="UTC")
    step = np.repeat(np.log1p(np.asarray(day_moves)) / 1440, 1440)
    close = 40_000 * np.exp(np.cumsum(step))
    open_ = np.concatenate([[40_000], close[:-1]])
    return pd.DataFrame({"open_time": t, "open": open_, "high": np.maximum(open_, close) * 1.0002,
                         "low": np.minimum(open_, close) * 0.9998, "close": close, "volume": 10.0,
                         "quote_volume": 4e5})


def buy_on(day: int, days_in_a_row: int = 1) -> WalkForwardResult:
    days = pd.date_range("2024-03-01", periods=DAYS, freq="D", tz="UTC")[18:]  # the fold: its ATR warms up before
    sig = np.ones(len(days), int)
    sig[day - 18:day - 18 + days_in_a_row] = 2
    p = pd.DataFrame({"open_time": days, "fold": 0, "label": 1, "fwd_return": 0.0, "p_sell": 0.1, "p_hold": 0.1,
                      "p_buy": 0.8, "signal": sig})
    return WalkForwardResult(predictions=p, fold_metrics=[], overall={})


@pytest.mark.parametrize("rises_on, expect_gain", [(21, True), (20, False)])
def test_a_call_trades_the_next_day_only(rises_on, expect_gain):
    moves = [0.0] * DAYS
    moves[rises_on] = 0.05
    ev = daily_evidence(buy_on(20), daily_from_1m(bars(moves)), None, TradingResource(), RfDailyConfig())
    f = ev.figures
    assert f["wf_trades"] == 1
    if expect_gain:  # the call at day 20's close is rewarded by day 21's rise
        assert f["wf_gross_pnl"] > 0 and f["wf_net_pnl"] > 0
    else:  # day 20's own rise was known when the call was made: it cannot be earned
        assert f["wf_gross_pnl"] < 50 and f["wf_net_pnl"] < 0
    # one trade over 30 days is no evidence, even the lucky one (its PSR alone would pass): refused, saying why
    assert ev.rule == "after_costs" and any(w.startswith("only 1 out-of-sample trades") for w in ev.why_not)


def test_calls_in_a_row_are_one_position_held_as_the_strategy_holds_it():
    moves = [0.0] * DAYS
    moves[21] = moves[22] = 0.03
    one = daily_evidence(buy_on(20), daily_from_1m(bars(moves)), None, TradingResource(), RfDailyConfig()).figures
    held = daily_evidence(buy_on(20, 2), daily_from_1m(bars(moves)), None, TradingResource(),
                          RfDailyConfig()).figures
    # BUY, BUY: one trade over two days (no exit and re-entry between them), earning both rises for one round trip
    assert held["wf_trades"] == 1 and held["wf_gross_pnl"] > 1.9 * one["wf_gross_pnl"] > 0
    assert held["wf_fees"] == pytest.approx(one["wf_fees"], rel=0.05)
