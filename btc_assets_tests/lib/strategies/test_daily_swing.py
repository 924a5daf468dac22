"""The daily swing strategy's parts: the position table, sizing, the regime rule, the day-by-day backtest's
accounting and the point-in-time signal."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import rf_daily
from btc_assets.lib.strategies import REGISTRY, daily_swing as ds, strategy


def _daily(n=400, seed=0, drift=0.0):
    rng = np.random.default_rng(seed)
    c = 10_000 * np.exp(np.cumsum(rng.normal(drift, 0.03, n)))
    o = np.concatenate([[c[0]], c[:-1]])
    return pd.DataFrame({"open_time": pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC"), "open": o,
                         "high": np.maximum(o, c) * 1.01, "low": np.minimum(o, c) * 0.99, "close": c,
                         "volume": rng.uniform(100, 200, n)})


@pytest.mark.parametrize("current, direction, action, legs", [
    (0.0, 1, "open_long", [("open", "BUY", 2.0, False)]),
    (0.0, -1, "open_short", [("open", "SELL", 2.0, False)]),
    (0.0, 0, "hold", []),
    (1.5, 1, "hold", []),
    (1.5, -1, "reverse_short", [("close", "SELL", 1.5, True), ("open", "SELL", 2.0, False)]),
    (1.5, 0, "close", [("close", "SELL", 1.5, True)]),
    (-1.5, 1, "reverse_long", [("close", "BUY", 1.5, True), ("open", "BUY", 2.0, False)]),
    (-1.5, -1, "hold", []),
    (-1.5, 0, "close", [("close", "BUY", 1.5, True)]),
])
def test_the_position_table(current, direction, action, legs):
    got, orders = ds.position_change(current, direction, 2.0)
    assert got == action
    assert [(o.leg, o.side, o.qty, o.reduce_only) for o in orders] == legs


def test_the_position_table_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="direction must be"):
        ds.position_change(0.0, 2, 1.0)
    with pytest.raises(ValueError, match="target_qty must be > 0"):
        ds.position_change(0.0, 1, 0.0)
    # a dust position within the tolerance is flat
    assert ds.position_change(0.0004, 0, 1.0, tol=0.0005) == ("hold", [])


def test_sizing_is_a_fraction_of_equity_down_to_the_step():
    assert ds.target_qty(10_000, 40_000, 1.0, 0.001) == pytest.approx(0.25)
    assert ds.target_qty(10_000, 30_000, 1.0, 0.001) == pytest.approx(0.333)
    assert ds.target_qty(0, 30_000, 1.0) == 0.0


def test_regimes_follow_the_stated_rule():
    d = _daily(300)
    reg = ds.regimes(d, window=200, band=0.05)
    assert reg["regime"].iloc[:199].isna().all() and reg["regime"].iloc[199:].notna().all()
    rel = d["close"] / d["close"].rolling(200).mean() - 1
    i = 250
    expect = "bull" if rel[i] > 0.05 else "bear" if rel[i] < -0.05 else "sideways"
    assert reg["regime"].iloc[i] == expect
    # known at the day's close: changing a later day leaves it unchanged
    d2 = d.copy()
    d2.loc[260:, "close"] *= 3
    assert ds.regimes(d2)["regime"].iloc[:260].equals(reg["regime"].iloc[:260])


def test_always_long_is_buy_and_hold_and_costs_and_funding_are_charged():
    d = _daily(60, seed=1)
    long = pd.Series(1, index=d["open_time"])
    bt = ds.backtest(d, long, cost_one_way=0.0005)
    growth = d["close"].iloc[-1] / d["open"].iloc[0]
    # one entry (cost on the notional), then the same qty held: equity = 10,000 + qty * price move - fee
    qty = 10_000 / d["open"].iloc[0]
    assert bt.days["equity"].iloc[-1] == pytest.approx(10_000 + qty * (d["close"].iloc[-1] - d["open"].iloc[0])
                                                       - 5.0, rel=1e-9)
    assert bt.strategy["n_trades"] == 1 and bt.strategy["fees_paid"] == pytest.approx(5.0)
    assert bt.buy_and_hold["total_return"] == pytest.approx(growth * (1 - 0.0005) - 1 + 0.0005 * 0, rel=1e-6)
    # funding: a long pays each settlement's rate on its notional at the day's open
    funding = pd.DataFrame({"funding_time": d["open_time"] + pd.Timedelta(hours=8), "rate": 0.0001})
    paid = ds.backtest(d, long, funding, cost_one_way=0.0005)
    assert paid.strategy["funding_paid"] == pytest.approx((qty * d["open"]).sum() * 0.0001, rel=1e-9)
    assert paid.days["equity"].iloc[-1] < bt.days["equity"].iloc[-1]


def test_a_reverse_trades_twice_and_flat_days_earn_nothing():
    d = _daily(10, seed=2)
    dirs = pd.Series([1, 1, -1, -1, 0, 0, 1, 0, 0, 0], index=d["open_time"])
    bt = ds.backtest(d, dirs, cost_one_way=0.001)
    assert len(bt.trades) == 3 and list(bt.trades["side"]) == ["long", "short", "long"]
    assert (bt.days.loc[4:5, "gross"] == 0).all()
    # day 2: the close of the long and the open of the short, each on its own notional
    assert bt.days["costs"].iloc[2] == pytest.approx(
        (bt.trades["qty"].iloc[0] + bt.trades["qty"].iloc[1]) * d["open"].iloc[2] * 0.001)
    # every trade's net = gross - fees - funding, and they sum to the equity change
    assert bt.trades["net_pnl"].sum() == pytest.approx(bt.days["equity"].iloc[-1] - 10_000)


def test_the_signal_reads_nothing_from_its_day_on():
    d = _daily(420, seed=3)
    p = rf_daily.RfParams(n_estimators=20, n_jobs=1)
    day = d["open_time"].iloc[400]
    s = ds.signal_for_day(d, day, p)
    assert s.last_bar == day - pd.Timedelta(days=1) and s.trained_through == day - pd.Timedelta(days=2)
    assert s.p_buy + s.p_hold + s.p_sell == pytest.approx(1.0) and s.signal in ("BUY", "SELL", "HOLD")
    later = d.copy()
    later.loc[400:, ["open", "high", "low", "close"]] *= 5  # the future changes: the signal does not
    assert ds.signal_for_day(later, day, p) == s
    earlier = d.copy()
    earlier.loc[395, "close"] *= 1.2  # the past changes: it may (the features of the day before read it)
    assert ds.signal_for_day(earlier, day, p).features != s.features


def test_the_signal_names_a_missing_bar_and_a_short_history():
    d = _daily(420, seed=3)
    p = rf_daily.RfParams(n_estimators=10, n_jobs=1)
    gap = d.drop(index=399)
    with pytest.raises(ValueError, match="daily bar of 2021-02-03 is not there"):
        ds.signal_for_day(gap, d["open_time"].iloc[400], p)
    with pytest.raises(ValueError, match="need min_train_days=1000"):
        ds.signal_for_day(d, d["open_time"].iloc[400], p, min_train_days=1000)


def test_both_strategies_are_modules_of_one_registry():
    assert set(REGISTRY) == {"xgb_next3m", "daily_swing"}
    assert strategy("daily_swing").bars == "1d" and strategy("xgb_next3m").bars == "1m"
    assert strategy("daily_swing").venue == "kraken" and strategy("daily_swing").features == tuple(
        rf_daily.DAILY_FEATURES)
    with pytest.raises(KeyError, match="unknown"):
        strategy("nope")


def test_the_scalpers_settings_are_read_from_its_strategy():
    """The trading family (models/signals, the backtest, the decisions), the journal's strategy name, the time exit
    and its models' feature set come from lib/strategies/scalper.py's STRATEGY, not from copies of their own."""
    import inspect

    from btc_assets.defs.resources.trading import TradingResource
    from btc_assets.defs.trading import specs
    from btc_assets.lib.research.features.serving import feature_set
    from btc_assets.lib.research.models import registry
    from btc_assets.lib.strategies import scalper

    s = scalper.STRATEGY
    assert registry.TRADING_FAMILY == s.family and specs.MODEL_KEY == ["models", f"{s.family}_model"]
    assert TradingResource().strategy == s.name and TradingResource().max_hold_bars == s.horizon_bars
    assert feature_set("live") == list(s.features)
    # read from the strategy, not restated: no literal of these values where they are defined
    assert "SCALPER.family" in inspect.getsource(registry) and "SCALPER.name" in inspect.getsource(TradingResource)
    assert "SCALPER.horizon_bars" in inspect.getsource(TradingResource)
