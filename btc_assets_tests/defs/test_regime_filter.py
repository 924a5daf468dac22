"""backtest/report with the regime filter off and on: the same signals, and with the TFT's forecast pointing up
only long entries survive (the filter the live decisions apply too, lib/research/regime.py)."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from btc_assets.defs.backtest import assets as backtest
from btc_assets.defs.resources import local_resources
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.labels import BUY, HOLD, SELL
from btc_assets_tests.conftest import real_klines

DAYS = [pd.Timestamp("2024-01-08").date(), pd.Timestamp("2024-01-09").date()]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("regime")
    resources = local_resources(root)
    k = pd.concat([real_klines(d) for d in DAYS], ignore_index=True)
    bars = pd.DataFrame({"open_time": k["open_time"].dt.tz_localize(None),
                         **{c: k[c].astype(float) for c in ("open", "high", "low", "close", "quote_volume")}})
    ret = bars["close"].pct_change(5).fillna(0).to_numpy()  # a momentum rule (real bars, a made-up signal)
    signals = pd.DataFrame({"open_time": bars["open_time"], "model_version": "rule/momentum-test",
                            "signal": np.where(ret > 0.002, BUY, np.where(ret < -0.002, SELL, HOLD))})
    funding = pd.DataFrame({"funding_time": pd.to_datetime(["2024-01-08 08:00"]), "rate": [0.0001]})
    up = pd.DataFrame({"open_time": pd.to_datetime([f"{d} 00:00" for d in DAYS]), "horizon": "1d", "q10": -0.02,
                       "q25": -0.005, "q50": 0.004, "q75": 0.01, "q90": 0.03, "mean": 0.004, "spread": 0.05,
                       "skew": 0.1, "model_version": "btc_assets_tft_regime/1", "model_week": pd.Timestamp("2024-01-08")})
    # the week before: narrower forecasts (spread 0.02), the sizing's reference; the traded days are 2.5x as wide
    before = pd.concat([up.iloc[:1]] * 7, ignore_index=True).assign(
        open_time=pd.date_range("2024-01-01", periods=7, freq="D"), spread=0.02)
    up = pd.concat([before, up], ignore_index=True)
    with resources["warehouse"].get_connection() as conn:
        conn.execute("CREATE SCHEMA silver; CREATE SCHEMA models")
        for name, df in (("silver.klines_1m", bars), ("silver.funding_rates", funding), ("models.signals", signals),
                         ("models.regime_forecast", up)):
            conn.register("df", df)
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM df")
            conn.unregister("df")
    return resources


def report(resources, regime_filter, regime_sizing="none"):
    with dg.instance_for_test() as instance:
        res = dg.materialize([backtest.report], instance=instance, resources={**resources, "trading": TradingResource(
            regime_filter=regime_filter, regime_sizing=regime_sizing)})
    return res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata


def test_the_filter_keeps_only_entries_with_the_forecast_and_says_how_many(seeded):
    off = report(seeded, "none")
    assert off["regime_regime_filter"].value == "none"
    assert off["long_trades"].value > 0 and off["short_trades"].value > 0
    on = report(seeded, "direction")
    assert on["short_trades"].value == 0 and on["long_trades"].value > 0  # the forecast points up both days
    assert on["regime_dropped_against_forecast"].value > 0 and on["regime_dropped_without_forecast"].value == 0
    assert on["regime_kept"].value < on["regime_entries"].value == off["regime_entries"].value
    assert "Regime filter 'direction'" in on["headline"].value
    with pytest.raises(ValueError, match="regime_filter 'size' is unknown"):
        TradingResource(regime_filter="size")


def test_the_spread_sizing_trades_the_same_entries_smaller_and_says_so(seeded):
    off = report(seeded, "none")
    on = report(seeded, "none", "spread")
    assert off["sizing_regime_sizing"].value == "none" and on["sizing_regime_sizing"].value == "spread"
    assert on["sizing_days"].value == 2 and on["sizing_days_scaled"].value == 2  # both traded days: 0.02 / 0.05
    assert on["sizing_mean_factor"].value == pytest.approx(0.4)
    assert "Regime sizing 'spread'" in on["headline"].value
    assert on["regime_entries"].value == off["regime_entries"].value  # the same entry signals...
    # ... each at 0.4 of the rules' size then: the fees per trade fall (not exactly in proportion: the Kelly fraction
    # follows each book's own results, and the smaller book trips the drawdown breaker less, taking more signals;
    # the exact factor per entry is tested on the engine)
    per_trade = {k: r["fees_paid"].value / r["n_trades"].value for k, r in (("off", off), ("on", on))}
    assert per_trade["on"] < 0.6 * per_trade["off"]
    assert on["skipped_breaker"].value < off["skipped_breaker"].value
    with pytest.raises(ValueError, match="regime_sizing 'kelly' is unknown"):
        TradingResource(regime_sizing="kelly")


def test_the_live_path_and_its_parity_check_get_the_same_filter_and_sizing(seeded):
    """trading/decisions and decisions_match_backtest both call market.regime_rules: the filtered entries and the
    size factors the backtest report uses, from the same reference days."""
    from btc_assets.defs.trading.market import regime_rules
    from btc_assets.lib.research.regime import filter_entries, size_scale

    t = pd.date_range("2024-01-09 10:00", periods=30, freq="min", tz="UTC")
    k = pd.DataFrame({"open_time": t})
    entries = pd.Series(np.tile([1, -1, 0], 10).astype("int8"), index=t)
    with seeded["warehouse"].get_connection() as conn:
        same, none = regime_rules(conn, k, entries, "none", "none")[:2]
        kept, extra = regime_rules(conn, k, entries, "direction", "spread")[:2]
        forecasts = conn.execute("SELECT * FROM models.regime_forecast").df()
    assert same is entries and none == {}
    assert kept.tolist() == filter_entries(entries, forecasts, "direction")[0].tolist() and (kept >= 0).all()
    assert extra["size_scale"].round(6).eq(0.4).all()  # the reference week (0.02) over the day's spread (0.05)
    assert extra["size_scale"].equals(size_scale(t, forecasts, "spread")[0])
