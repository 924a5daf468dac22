"""How much of a parameter sweep's ("study's") best result is luck: deflated Sharpe and PBO (Bailey & López de Prado).

A study that tries many configurations and keeps the best will find a good-looking Sharpe in pure noise. The
expected maximum Sharpe of ``n_trials`` unskilled trials (``expected_max_sharpe``) is the bar the chosen one has to
clear: the deflated Sharpe ratio (``deflated_sharpe``) is the probabilistic Sharpe of its *daily* returns against that
bar instead of against 0, with the bar's width taken from the spread of the Sharpes of every trial actually run. The
probability of backtest overfitting (``pbo_cscv``) asks the question without a distributional model: over every way
of splitting the history into equal in-sample and out-of-sample halves (combinatorially symmetric cross-validation),
how often does the in-sample winner rank in the bottom half out of sample. Sharpes here are per day, not annualised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import combinations
from statistics import NormalDist

import numpy as np

from btc_assets.lib.research.backtest.metrics import EULER_GAMMA, sharpe_stats

MAX_COMBINATIONS = 12_870  # C(16, 8): 16 splits is the largest study CSCV is run on
_N = NormalDist()  # stdlib (scipy is not a dependency); the same normal as metrics.sharpe_stats


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe estimates with true Sharpe 0 and cross-trial variance
    ``sharpe_variance`` (0 for a single trial)."""
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0):
        raise ValueError(f"sharpe_variance must be a finite number >= 0, got {sharpe_variance!r}")
    if n_trials <= 1:
        return 0.0
    z = (1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials) + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * z


def _moments(r: np.ndarray) -> tuple[float, float, float] | None:
    """(per-period Sharpe, skew, kurtosis) of r with the conventions of metrics.sharpe_stats (sd with ddof=1);
    None when r is constant."""
    sd = float(r.std(ddof=1))
    if not sd > 1e-12 * abs(float(r.mean())):  # a constant series leaves ~1e-19 of rounding in its sd
        return None
    z = (r - r.mean()) / sd
    return float(r.mean()) / sd, float((z**3).mean()), float((z**4).mean())


def deflated_sharpe(daily_returns: np.ndarray, n_trials: int, trial_sharpes: np.ndarray) -> dict:
    """Probability that the true per-day Sharpe of ``daily_returns`` exceeds the expected best of ``n_trials``
    zero-skill trials whose per-day Sharpes spread like ``trial_sharpes`` (with one trial: the PSR against 0)."""
    r = np.asarray(daily_returns, dtype=float).ravel()
    if len(r) < 3:
        raise ValueError(f"deflated_sharpe needs at least 3 daily returns, got {len(r)}")
    if not np.isfinite(r).all():
        raise ValueError(f"daily_returns has {int((~np.isfinite(r)).sum())} non-finite values; drop or fill them")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1 (the configurations the study tried), got {n_trials}")
    trials = np.asarray(trial_sharpes, dtype=float).ravel()
    trials = trials[np.isfinite(trials)]
    if n_trials > 1 and len(trials) < 2:
        raise ValueError(f"n_trials={n_trials} but trial_sharpes has {len(trials)} finite values; pass the per-day "
                         "Sharpe of every trial run (at least 2) so their variance can be estimated")
    var = float(trials.var(ddof=1)) if len(trials) > 1 else 0.0
    t = len(r)
    sr0 = expected_max_sharpe(n_trials, var)
    moments = _moments(r)
    if moments is None:  # constant returns: no Sharpe to judge (as metrics.sharpe_stats)
        sr, dsr = 0.0, float("nan")
    elif n_trials == 1:
        sr, dsr = moments[0], float(sharpe_stats(r)[1])  # exactly the PSR against 0 that backtest reports carry
    else:
        sr, skew, kurt = moments
        denom = math.sqrt(max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 1e-12))
        dsr = _N.cdf((sr - sr0) * math.sqrt(t - 1) / denom)
    return {"dsr": dsr, "sharpe_daily": sr, "sr0_daily": sr0, "n_trials": int(n_trials), "n_days": t,
            "trial_sharpe_variance": var}


def _sharpe_from_sums(s1: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    """Per-period Sharpe (sd with ddof=1) from sums and sums of squares over n rows; zero variance gives 0."""
    mean = s1 / n
    var = (s2 - n * mean * mean) / (n - 1)
    # Sums of squares leave ~1e-16 relative residue on a constant column: treat that as the zero variance it is.
    flat = var <= 1e-12 * np.maximum(s2 / n, np.finfo(float).tiny)
    sd = np.sqrt(np.where(flat, 1.0, var))
    return np.where(flat, 0.0, mean / sd)


def _oos_rank(oos: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Rank (1 = worst, N = best, ties averaged) of each row's chosen column among that row's N values."""
    pick = oos[np.arange(len(oos)), chosen][:, None]
    below = (oos < pick).sum(axis=1)
    ties = (oos == pick).sum(axis=1) - 1
    return 1.0 + below + 0.5 * ties


def pbo_cscv(returns: np.ndarray, n_splits: int = 16,
             metric: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Probability of backtest overfitting of a (T periods x N trials) matrix of per-period returns by
    combinatorially symmetric cross-validation. ``metric`` maps a (rows x N) block to N scores (default: per-period
    Sharpe, 0 for zero variance); higher is better."""
    x = np.asarray(returns, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"returns must be a 2-D (periods x trials) matrix, got {x.ndim} dimensions")
    t, n = x.shape
    if n < 2:
        raise ValueError(f"pbo_cscv needs at least 2 trials (columns) to rank, got {n}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be even and >= 2, got {n_splits}")
    if t < n_splits:
        raise ValueError(f"returns has {t} periods (rows), fewer than n_splits={n_splits}; use fewer splits")
    if not np.isfinite(x).all():
        raise ValueError(f"returns has {int((~np.isfinite(x)).sum())} non-finite values; drop or fill them")
    n_comb = math.comb(n_splits, n_splits // 2)
    if n_comb > MAX_COMBINATIONS:
        raise ValueError(f"n_splits={n_splits} gives {n_comb:,} combinations, more than {MAX_COMBINATIONS:,} "
                         "(n_splits=16); use n_splits <= 16")
    size = t // n_splits
    dropped = t - size * n_splits
    blocks = x[: size * n_splits].reshape(n_splits, size, n)
    is_mask = np.zeros((n_comb, n_splits), dtype=bool)
    for i, c in enumerate(combinations(range(n_splits), n_splits // 2)):
        is_mask[i, list(c)] = True
    half = size * n_splits // 2
    if metric is None:
        if half < 2:
            raise ValueError(f"each half has {half} period(s); the Sharpe needs at least 2 (more rows or fewer splits)")
        s1, s2 = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)  # (n_splits, N) per-block sums
        m = is_mask.astype(float)
        is_s1, is_s2 = m @ s1, m @ s2
        is_score = _sharpe_from_sums(is_s1, is_s2, half)
        oos_score = _sharpe_from_sums(s1.sum(axis=0) - is_s1, s2.sum(axis=0) - is_s2, half)
    else:
        is_score, oos_score = np.empty((n_comb, n)), np.empty((n_comb, n))
        for i, mask in enumerate(is_mask):
            for out, part in ((is_score, mask), (oos_score, ~mask)):
                score = np.asarray(metric(blocks[part].reshape(-1, n)), dtype=float)
                if score.shape != (n,):
                    raise ValueError(f"metric must return one score per trial, shape ({n},), got {score.shape}")
                out[i] = score
    chosen = np.argmax(is_score, axis=1)
    omega = _oos_rank(oos_score, chosen) / (n + 1)
    logits = np.log(omega / (1.0 - omega))
    return {"pbo": float((logits <= 0).mean()), "n_combinations": n_comb, "logits": logits.tolist(),
            "n_trials": n, "n_splits": n_splits, "rows_dropped": dropped, "median_oos_rank": float(np.median(omega))}
