"""The Temporal Fusion Transformer (pytorch-forecasting) on hourly rows: point in time by construction (no target
is an input, the origin's own bar is not read), purged walk-forward, quantile scores beside naive baselines."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import tft

SMALL = tft.TftParams(encoder_hours=48, hidden_size=8, attention_heads=2, hidden_continuous_size=4, max_epochs=2,
                      batches_per_epoch=10, batch_size=64, validation_days=10, seed=3)


def synthetic_hours(days: int = 150, seed: int = 0) -> pd.DataFrame:
    """Synthetic hourly bars (a random walk with volatility regimes), not market data."""
    rng = np.random.default_rng(seed)
    n = days * 24
    sigma = np.repeat(np.exp(rng.normal(0, 0.5, n // 24 + 1)), 24)[:n] * 0.004
    c = 30_000 * np.exp(np.cumsum(rng.normal(0, 1, n) * sigma))
    return pd.DataFrame({"open_time": pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC"), "open": c,
                         "high": c * (1 + sigma), "low": c * (1 - sigma), "close": c,
                         "volume": rng.uniform(100, 200, n), "taker_buy_volume": rng.uniform(40, 100, n)})


@pytest.fixture(scope="module")
def fitted():
    rows = tft.usable(tft.hourly_frame(synthetic_hours()))
    cut = pd.Timestamp("2023-05-01", tz="UTC")
    train, val = tft.split_for(rows, cut, SMALL)
    return rows, cut, train, val, tft.fit(train, val, SMALL)


def test_targets_are_forward_returns_from_the_previous_close():
    bars = synthetic_hours(40)
    f = tft.hourly_frame(bars)
    logc = np.log(bars["close"].to_numpy())
    j = 100
    assert f["fwd_1d"].iloc[j] == pytest.approx(logc[j - 1 + 24] - logc[j - 1])
    assert f["fwd_7d"].iloc[j] == pytest.approx(logc[j - 1 + 168] - logc[j - 1])
    assert f["fwd_30d"].iloc[j] == pytest.approx(logc[j - 1 + 720] - logc[j - 1])
    assert np.isnan(f["fwd_30d"].iloc[300])  # 40 days of bars: the 30-day outcome of hour 300 is beyond them
    assert f["fwd_30d"].notna().sum() == len(bars) - 720
    assert f["ret_1h"].iloc[j] == pytest.approx(logc[j] - logc[j - 1])  # a feature: the row's own closed hour
    gap = bars.drop(index=50)
    with pytest.raises(ValueError, match="not contiguous.*2023-01-03 01:00.*fill the gap upstream"):
        tft.hourly_frame(gap)


def test_the_split_is_purged_by_the_longest_horizon(fitted):
    rows, cut, train, val, _ = fitted
    t_train, t_val = (pd.to_datetime(x["open_time"], utc=True) for x in (train, val))
    longest = pd.Timedelta(hours=tft.LONGEST)
    assert (t_val + longest <= cut).all()  # every validation outcome is known at the cut
    assert t_train.max() + longest <= t_val.min() + pd.Timedelta(hours=1)  # no training outcome reaches into it
    assert train[tft.TARGETS].notna().all().all() and val[tft.TARGETS].notna().all().all()


def test_a_forecast_reads_no_target_and_not_the_origins_own_bar(fitted):
    rows, cut, _, _, model = fitted
    t = pd.to_datetime(rows["open_time"], utc=True)
    history, origins = rows[t < cut].tail(SMALL.encoder_hours), rows[(t >= cut) & (t < cut + pd.Timedelta(hours=6))]
    base = tft.forecast(model.net, history, origins)
    assert len(base) == 6 * 3 and set(base["horizon"]) == set(tft.HORIZONS)
    q = base[["q10", "q25", "q50", "q75", "q90"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    assert np.allclose(base["spread"], base["q90"] - base["q10"]) and base["skew"].between(-1, 1).all()
    # every target changed (the future, and the encoder rows' overlapping outcomes): the forecasts do not move
    moved = [x.assign(**{c: x[c] * 7 + 1 for c in tft.TARGETS}) for x in (history, origins)]
    np.testing.assert_array_equal(tft.forecast(model.net, *moved)[["q10", "q50", "q90"]].to_numpy(),
                                  base[["q10", "q50", "q90"]].to_numpy())
    # the first origin as a bare calendar row (its bar not closed yet) gives the same forecast
    bare = tft.forecast(model.net, history, tft.origin_row(cut))
    np.testing.assert_allclose(bare[["q10", "q50", "q90"]].to_numpy(),
                               base[base["open_time"] == cut][["q10", "q50", "q90"]].to_numpy(), rtol=1e-4, atol=1e-6)
    # while a change to the history it encodes does move them
    changed = history.assign(ret_1h=history["ret_1h"] + 0.05)
    assert not np.allclose(tft.forecast(model.net, changed, origins)["q50"], base["q50"])


def test_the_scores_compare_with_zero_and_historical_quantiles():
    y = np.array([0.01, -0.02, 0.0, 0.03])
    q = np.tile([-0.02, -0.01, 0.0, 0.01, 0.02], (4, 1))
    assert tft.pinball(y, q) == pytest.approx(np.mean([max(a * (v - b), (a - 1) * (v - b))
                                                       for v, row in zip(y, q)
                                                       for a, b in zip(tft.QUANTILES, row)]))
    assert tft.coverage(y, q) == 0.75
    assert tft.pinball(y, np.zeros_like(q)) > 0
    ok, why = tft.verdict({"pinball": 1.0, "zero_pinball": 2.0, "historical_pinball": 1.5, "coverage": 0.8})
    assert ok and why.startswith("beats both")
    ok, why = tft.verdict({"pinball": 1.0, "zero_pinball": 2.0, "historical_pinball": 0.9, "coverage": 0.8})
    assert not ok and "does not beat" in why


def test_walk_forward_folds_train_only_on_outcomes_known_before_their_test_window():
    rows = tft.usable(tft.hourly_frame(synthetic_hours(150)))
    p = tft.TftParams(**{**SMALL.as_dict(), "max_epochs": 1, "batches_per_epoch": 3})
    wf = tft.walk_forward(rows, pd.Timestamp("2023-05-25", tz="UTC"), p, n_folds=2, test_days=10)
    assert len(wf.fold_metrics) == 2 and [f["fold"] for f in wf.fold_metrics] == [0.0, 1.0]
    assert {"pinball", "zero_pinball", "historical_pinball", "coverage", "pinball_1d", "coverage_30d"} <= set(
        wf.overall)
    starts = wf.forecasts.groupby("fold")["open_time"].min()
    assert starts[1] - starts[0] == pd.Timedelta(days=10)
    assert wf.fold_metrics[0]["train_rows"] < wf.fold_metrics[1]["train_rows"]  # an expanding window
    with pytest.raises(ValueError, match="hidden_size=10 must be a multiple of attention_heads=4"):
        tft.TftParams(hidden_size=10, attention_heads=4)
