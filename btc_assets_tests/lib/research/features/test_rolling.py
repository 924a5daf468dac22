"""The compiled rolling helpers return pandas' rolling numbers to the last bit, NaNs, zeros and flat runs included,
and the day-so-far helper of `structure` returns pandas' groupby cummax/cummin/first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.features import rolling
from btc_assets.lib.research.features.structure import _day_so_far


def _cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for k in range(count):
        m, n = int(rng.integers(1, 300)), int(rng.integers(1, 70))
        a = rng.normal(size=m) * 10.0 ** int(rng.integers(-6, 6))
        if k % 3 == 0:
            a = np.round(a, 1)  # ties, for the rank
        if k % 4 == 0:
            a[rng.random(m) < 0.1] = np.nan  # gaps: a window holding one is NaN
        if k % 5 == 0:
            a[m // 3: m // 3 + n + 3] = 7.25  # a flat run longer than the window: pandas' exact same-value case
        if k % 7 == 0:
            a = np.abs(a)
        if k % 11 == 0:
            a[: m // 2] = 0.0
        yield a, n


@pytest.mark.parametrize("name, ours, theirs", [
    ("sum", rolling.rsum, lambda r: r.sum()),
    ("mean", rolling.rmean, lambda r: r.mean()),
    ("std", rolling.rstd, lambda r: r.std(ddof=0)),
    ("rank", rolling.rank_pct, lambda r: r.rank(pct=True, method="max")),
])
def test_each_helper_equals_pandas_bit_for_bit(name, ours, theirs):
    for a, n in _cases(seed=7, count=250):
        expected = theirs(pd.Series(a).rolling(n, min_periods=n)).to_numpy()
        got = ours(a, n)
        assert np.array_equal(got, expected, equal_nan=True), (name, n, len(a))


def test_short_and_empty_inputs():
    assert rolling.rsum(np.array([]), 3).shape == (0,)
    assert np.isnan(rolling.rmean(np.array([1.0, 2.0]), 3)).all()
    assert np.isnan(rolling.rank_pct(np.array([np.nan, np.nan]), 1)).all()
    assert rolling.rstd(np.array([5.0, 5.0, 5.0]), 3)[-1] == 0.0  # a flat window has no spread, not 1e-17


def test_day_so_far_equals_pandas_groupby():
    rng = np.random.default_rng(3)
    for k in range(60):
        n = int(rng.integers(1, 2000))
        day = np.sort(rng.integers(0, 4, n))
        high, low, open_ = (rng.normal(size=n) for _ in range(3))
        if k % 2:
            for a in (high, low, open_):
                a[rng.random(n) < 0.05] = np.nan
        g = pd.DataFrame({"d": day, "h": high, "l": low, "o": open_}).groupby("d", sort=False)
        expected = (g["h"].cummax().to_numpy(), g["l"].cummin().to_numpy(), g["o"].transform("first").to_numpy())
        for got, want in zip(_day_so_far(day, high, low, open_), expected):
            assert np.array_equal(got, want, equal_nan=True)


def test_ratio_is_the_quotient_and_nan_where_the_denominator_is_zero_or_missing():
    num = np.array([1.0, -2.0, 3.0, np.nan, 5.0, 0.0, np.inf])
    den = np.array([2.0, 0.0, np.nan, 1.0, -0.0, 0.0, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    assert np.array_equal(rolling.ratio(num, den), expected, equal_nan=True)
    assert np.isnan(rolling.ratio(num, den)[[1, 2, 3, 4, 5]]).all() and rolling.ratio(num, den)[0] == 0.5
    book = np.arange(12.0).reshape(4, 3)  # a column of a 2-D block is not contiguous: same numbers
    assert np.array_equal(rolling.ratio(book[:, 1], book[:, 2]), book[:, 1] / book[:, 2])
    ints = rolling.ratio(np.array([1, 2]), np.array([2, 0]))
    assert ints.dtype == np.float64 and ints[0] == 0.5 and np.isnan(ints[1])
