"""The daily swing strategy's parts: the position table, sizing, the regime rule, the day-by-day backtest's
accounting and the point-in-time signal."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import rf_daily
from btc_assets.lib.strategies import REGISTRY, daily_swing as ds, strategy


def _daily(n=400, seed=0, drift=0.0):
    rng = np.random.default_rng(seed)
    c = np.round(10_000 * np.exp(np.cumsum(rng.normal(drift, 0.03, n))), 1)  # on the 0.1 tick
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


def _floor(x, step=0.001):
    return np.floor(x / step + 1e-9) * step


def test_always_long_is_buy_and_hold_and_costs_and_funding_are_charged():
    d = _daily(60, seed=1)
    long = pd.Series(1, index=d["open_time"].iloc[1:])  # decided from day 1 (day 0's close decides it)
    bt = ds.backtest(d, long, cost_one_way=0.0005, exposure=0.5)
    # one entry at day 1's open, sized at day 0's close to half the equity, then the same qty held
    qty = _floor(5_000 / d["close"].iloc[0])
    o1 = d["open"].iloc[1]
    assert bt.trades["qty"].iloc[0] == pytest.approx(qty) and bt.trades["entry_price"].iloc[0] == o1
    assert bt.days["equity"].iloc[-1] == pytest.approx(10_000 + qty * (d["close"].iloc[-1] - o1) - qty * o1 * 0.0005,
                                                       rel=1e-12)
    assert bt.strategy["n_trades"] == 1 and bt.strategy["fees_paid"] == pytest.approx(qty * o1 * 0.0005)
    assert (bt.days["direction"] == 1).all() and bt.trades["exit_reason"].iloc[0] == "open_at_end"
    # buy-and-hold is fully invested: the whole equity less the entry fee
    growth = d["close"].iloc[-1] / o1
    assert bt.buy_and_hold["total_return"] == pytest.approx(growth - 1, abs=2e-3)
    assert bt.buy_and_hold["total_return"] < growth - 1
    # funding: a long pays each settlement inside the days it holds (08:00 here) on its notional at the day's open
    funding = pd.DataFrame({"funding_time": d["open_time"] + pd.Timedelta(hours=8), "rate": 0.0001})
    paid = ds.backtest(d, long, funding, cost_one_way=0.0005, exposure=0.5)
    assert paid.strategy["funding_paid"] == pytest.approx((qty * d["open"].iloc[1:]).sum() * 0.0001, rel=1e-9)
    assert paid.days["equity"].iloc[-1] == pytest.approx(bt.days["equity"].iloc[-1] - paid.strategy["funding_paid"])


def test_a_reverse_trades_twice_and_flat_days_earn_nothing():
    d = _daily(11, seed=2)
    dirs = pd.Series([1, 1, -1, -1, 0, 0, 1, 0, 0, 0], index=d["open_time"].iloc[1:])
    bt = ds.backtest(d, dirs, cost_one_way=0.001)
    assert len(bt.trades) == 3 and list(bt.trades["side"]) == ["long", "short", "long"]
    assert list(bt.days["direction"]) == [1, 1, -1, -1, 0, 0, 1, 0, 0, 0]
    assert bt.days.loc[4:5, "gross"].to_numpy() == pytest.approx(0, abs=1e-9)
    assert (bt.days.loc[7:, "equity"] == bt.days["equity"].iloc[7]).all()
    # day 3 (the third decided day): the close of the long and the open of the short, each on its own notional;
    # the short is sized on the whole account (the long's margin is freed at the same open)
    assert bt.days["costs"].iloc[2] == pytest.approx(
        (bt.trades["qty"].iloc[0] + bt.trades["qty"].iloc[1]) * d["open"].iloc[3] * 0.001)
    eq_before = bt.days["equity"].iloc[1]
    assert bt.trades["qty"].iloc[1] * d["open"].iloc[3] == pytest.approx(eq_before, rel=0.01)
    # every trade's net = gross - fees - funding, and they sum to the equity change
    assert bt.trades["net_pnl"].sum() == pytest.approx(bt.days["equity"].iloc[-1] - 10_000)
    assert not bt.skipped  # holds are neither entries nor skips


def _reference(d: pd.DataFrame, dirs: pd.Series, funding: pd.DataFrame, exposure: float, cost: float):
    """The position table walked by hand with the live path's functions (position_change, target_qty): sized at
    the decision's close, traded at the day's open, funding of the day's settlements at its open."""
    b = d.set_index("open_time")
    fund = funding.groupby(funding["funding_time"].dt.floor("D"))["rate"].sum()
    eq, pos, actions, equity = 10_000.0, 0.0, [], []
    for t, direction in dirs.items():
        prev_close = float(b["close"].shift(1).at[t])
        o, c = float(b.at[t, "open"]), float(b.at[t, "close"])
        action, orders = ds.position_change(pos, int(direction), ds.target_qty(eq, prev_close, exposure), tol=1e-12)
        for od in orders:
            eq -= od.qty * o * cost
            pos += od.qty if od.side == "BUY" else -od.qty
        eq += pos * (c - o) - pos * o * float(fund.get(t, 0.0))
        actions.append(action)
        equity.append(eq)
    return actions, np.array(equity)


def test_the_engine_walks_the_position_table_exactly_as_the_live_path_decides():
    """Parity: the backtest (the shared engine with the table's rules) and the live path's position_change /
    target_qty give the same action every day, the same sizes and the same equity to the cent."""
    d = _daily(300, seed=7)
    rng = np.random.default_rng(8)
    dirs = pd.Series(rng.choice([-1, 0, 1], size=299, p=[0.3, 0.3, 0.4]), index=d["open_time"].iloc[1:])
    funding = pd.DataFrame({"funding_time": pd.date_range(d["open_time"].iloc[0], periods=3 * len(d), freq="8h"),
                            "rate": rng.normal(0.0001, 0.0002, 3 * len(d))})
    bt = ds.backtest(d, dirs, funding, exposure=0.5, cost_one_way=0.0005)
    actions, equity = _reference(d, dirs, funding, 0.5, 0.0005)
    held = [0] + list(bt.days["direction"])
    engine_actions = [ds.position_change(float(a), int(b), 1.0)[0] for a, b in zip(held[:-1], held[1:])]
    assert engine_actions == actions
    assert bt.days["equity"].to_numpy() == pytest.approx(equity, rel=1e-11)
    assert len(bt.trades) == sum(a.startswith(("open", "reverse")) for a in actions)


def test_the_liquidation_probability_guard_refuses_leveraged_positions_on_daily_bars():
    d = _daily(200, seed=4)
    dirs = pd.Series(np.where(np.arange(199) % 20 < 10, 1, -1), index=d["open_time"].iloc[1:])
    plain = ds.backtest(d, dirs, exposure=1.0)
    assert len(plain.trades) > 5 and not plain.skipped
    levered = ds.backtest(d, dirs, exposure=3.0)  # 3x: liquidated ~33 % away, a month of 3 % days reaches it
    assert levered.skipped.get("liquidation_probability", 0) > 0 and len(levered.trades) < len(plain.trades)
    assert ds.backtest(d, dirs, exposure=3.0, max_liq_prob=1.0).skipped == {}  # the guard off: it trades


def test_the_backtest_names_a_missing_bar_before_a_decided_day():
    d = _daily(30, seed=5)
    with pytest.raises(ValueError, match="no daily bar before 2020-01-01"):
        ds.backtest(d, pd.Series(1, index=d["open_time"]))
    gap = d.drop(index=10).reset_index(drop=True)
    with pytest.raises(ValueError, match="daily bar of 2020-01-11 is missing"):
        ds.backtest(gap, pd.Series(1, index=d["open_time"].iloc[11:14]))


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
