"""Honest studies: the expected best of many unskilled trials grows with their number, the deflated Sharpe lets a
strong series through alone and stops it when it was one of many wide-spread trials, and PBO calls a sweep over
noise a coin flip while a trial with a real edge wins out of sample."""

import math

import numpy as np
import pytest

from btc_assets.lib.research.backtest.metrics import sharpe_stats
from btc_assets.lib.research.models.overfitting import deflated_sharpe, expected_max_sharpe, pbo_cscv


def _strong_daily(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.01, 0.01, 250)


def _trial_sharpes(variance: float, n: int = 1000, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, math.sqrt(variance), n)


def test_expected_max_sharpe_is_zero_for_one_trial_and_grows_with_trials():
    assert expected_max_sharpe(1, 0.5) == 0.0 and expected_max_sharpe(0, 0.5) == 0.0
    values = [expected_max_sharpe(n, 1.0) for n in (2, 10, 100, 1000, 10_000)]
    assert all(b > a > 0 for a, b in zip(values, values[1:]))
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))  # scales with sqrt(V)
    assert expected_max_sharpe(100, 0.0) == 0.0


def test_expected_max_sharpe_matches_the_simulated_best_of_unskilled_trials():
    best = np.random.default_rng(0).standard_normal((4000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 1.0) == pytest.approx(best, rel=0.03)


def test_a_strong_series_passes_alone_and_is_deflated_when_one_of_many_wide_trials():
    r = _strong_daily()
    alone = deflated_sharpe(r, 1, np.array([]))
    assert alone["dsr"] > 0.95 and alone["sr0_daily"] == 0.0
    assert alone["n_trials"] == 1 and alone["n_days"] == 250 and alone["trial_sharpe_variance"] == 0.0
    assert alone["sharpe_daily"] == pytest.approx(r.mean() / r.std(ddof=1))
    # 1000 trials whose per-day Sharpes spread with variance 0.2: the expected best of them beats this one.
    many = deflated_sharpe(r, 1000, _trial_sharpes(0.2))
    assert many["dsr"] < 0.95 and many["sr0_daily"] > many["sharpe_daily"]
    assert many["trial_sharpe_variance"] == pytest.approx(0.2, rel=0.1)
    assert many["sr0_daily"] == pytest.approx(expected_max_sharpe(1000, many["trial_sharpe_variance"]))
    dsrs = [deflated_sharpe(r, n, _trial_sharpes(0.1))["dsr"] for n in (1, 10, 100, 1000)]
    assert all(b < a for a, b in zip(dsrs, dsrs[1:]))


def test_a_realistic_edge_survives_one_trial_but_not_a_hundred_noise_level_trials():
    r = np.random.default_rng(2).normal(0.002, 0.02, 1000)  # ~1.9 annualised Sharpe over 1000 days
    assert deflated_sharpe(r, 1, np.array([]))["dsr"] > 0.95
    noise = _trial_sharpes(1 / 1000, n=100)  # what the per-day Sharpes of 100 unskilled configurations spread like
    assert deflated_sharpe(r, 100, noise)["dsr"] < 0.95


def test_dsr_with_one_trial_or_zero_trial_variance_is_the_psr_of_metrics():
    r = np.random.default_rng(5).normal(0.0005, 0.01, 250)  # a modest series, so the PSR is not saturated at 1
    psr = sharpe_stats(r)[1]
    assert 0.2 < psr < 0.9
    assert deflated_sharpe(r, 1, _trial_sharpes(0.1))["dsr"] == pytest.approx(psr, abs=1e-12)
    assert deflated_sharpe(r, 5, np.full(5, 0.07))["dsr"] == pytest.approx(psr, abs=1e-12)  # sr0 = 0


def test_dsr_of_constant_returns_is_nan():
    for n_trials in (1, 10):
        out = deflated_sharpe(np.full(10, 0.001), n_trials, np.array([0.1, 0.2]))
        assert math.isnan(out["dsr"]) and out["sharpe_daily"] == 0.0


@pytest.mark.parametrize(("args", "match"), [
    ((np.array([0.01, 0.02]), 1, np.array([])), "at least 3 daily returns, got 2"),
    ((np.array([0.01, np.nan, 0.02]), 1, np.array([])), "non-finite"),
    ((_strong_daily(), 0, np.array([0.1, 0.2])), "n_trials must be >= 1"),
    ((_strong_daily(), 10, np.array([0.1])), "trial_sharpes has 1 finite values"),
])
def test_deflated_sharpe_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        deflated_sharpe(*args)


def test_expected_max_sharpe_refuses_a_negative_variance():
    with pytest.raises(ValueError, match="sharpe_variance must be a finite number >= 0"):
        expected_max_sharpe(10, -0.1)


def test_pbo_of_a_sweep_over_noise_is_a_coin_flip():
    x = np.random.default_rng(0).normal(0.0, 0.01, (480, 40))
    out = pbo_cscv(x)
    assert 0.3 < out["pbo"] < 0.7 and 0.3 < out["median_oos_rank"] < 0.7
    assert out["n_combinations"] == 12_870 == len(out["logits"])
    assert out["n_trials"] == 40 and out["n_splits"] == 16 and out["rows_dropped"] == 0


def test_pbo_of_a_sweep_with_one_real_edge_is_near_zero():
    x = np.random.default_rng(0).normal(0.0, 0.01, (480, 40))
    x[:, 7] += 0.005
    out = pbo_cscv(x)
    assert out["pbo"] < 0.1 and out["median_oos_rank"] > 0.9
    assert min(out["logits"]) > 0


def test_pbo_drops_the_remainder_rows_and_a_custom_metric_matches_the_vectorised_sharpe():
    x = np.random.default_rng(3).normal(0.0, 0.01, (103, 6))
    x[:, 2] = 0.0  # zero variance: Sharpe 0, not a division by zero

    def sharpe(block: np.ndarray) -> np.ndarray:
        sd = block.std(axis=0, ddof=1)
        return np.where(sd > 0, block.mean(axis=0) / np.where(sd > 0, sd, 1.0), 0.0)

    fast, slow = pbo_cscv(x, n_splits=8), pbo_cscv(x, n_splits=8, metric=sharpe)
    assert fast["rows_dropped"] == 7 and fast["n_combinations"] == 70
    assert fast["pbo"] == slow["pbo"] and np.allclose(fast["logits"], slow["logits"])
    assert np.isfinite(fast["logits"]).all()


@pytest.mark.parametrize(("returns", "kwargs", "match"), [
    (np.zeros(100), {}, "2-D"),
    (np.zeros((100, 1)), {}, "at least 2 trials"),
    (np.zeros((100, 4)), {"n_splits": 7}, "n_splits must be even and >= 2, got 7"),
    (np.zeros((100, 4)), {"n_splits": 0}, "n_splits must be even and >= 2, got 0"),
    (np.zeros((10, 4)), {"n_splits": 12}, "10 periods .* fewer than n_splits=12"),
    (np.full((100, 4), np.nan), {}, "non-finite"),
    (np.zeros((100, 4)), {"n_splits": 18}, "48,620 combinations, more than 12,870"),
    (np.zeros((3, 4)), {"n_splits": 2}, "each half has 1 period"),
    (np.zeros((100, 4)), {"n_splits": 4, "metric": lambda b: b.mean()}, r"one score per trial, shape \(4,\)"),
])
def test_pbo_refuses_bad_input(returns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pbo_cscv(returns, **kwargs)
