"""The record that declares one feature, and the warm-up arithmetic shared by every family.

Warm-up is the number of 1m bars of history a value needs before it is exact. Rolling windows are exact after
their window. EMA/Wilder recursions depend on their starting point; their error shrinks by (1 - alpha) per bar, so
their warm-up is the number of bars after which that factor is below CONVERGENCE (1e-9). The start error is not the
size of the value: it is the size of whatever shock falls in the seed window, and a crash (BTC fell ~40 % on
2020-03-12; a 31 % gap stopped a full-history run at 1e-7) is hundreds of times a normal bar's move, and a price
level's EMA error is a share of the price while MACD/close or close/EMA - 1 are ~1e-3 of it. At 1e-9 stored values
agree with an infinite-history computation within the checks' tolerance (`checks.TOLERANCE`: 1e-6 relative,
1e-9 absolute) with a 40 % crash anywhere in any seed window (btc_assets_tests/lib/research/features/test_warmup.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONVERGENCE = 1e-9
TF_MINUTES: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


@dataclass(frozen=True)
class Feature:
    """One feature, declared once: drives computation, the gold schema, the checks and docs/FEATURES.md.

    inputs: "source.column" strings (sources are declared in `pit.SOURCES`).
    warmup_bars_1m: 1m bars of history needed before the value is exact; the value is null before that.
    available: when the value becomes known, relative to the 1m bar it is attached to.
    nullable: why the value may be null after warm-up even with every source present ("" = never null).
    """

    name: str
    family: str
    inputs: tuple[str, ...]
    warmup_bars_1m: int
    available: str
    description: str
    nullable: str = ""

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.split(".")[0] for i in self.inputs))


def converge(alpha: float, eps: float = CONVERGENCE) -> int:
    """Bars after which a recursion with smoothing factor alpha has forgotten its start to within eps."""
    return math.ceil(math.log(eps) / math.log(1.0 - alpha))


def ema_bars(period: int) -> int:
    """Warm-up of TA-Lib's EMA(period) (seeded with an SMA of `period` bars), in bars of its own timeframe."""
    return period + converge(2.0 / (period + 1))


def wilder_bars(period: int) -> int:
    """Warm-up of a Wilder-smoothed indicator (RSI, ATR, +DI/-DI), in bars of its own timeframe."""
    return period + 1 + converge(1.0 / period)


def in_minutes(bars: int, tf: str) -> int:
    """Bars of timeframe tf as 1m bars, plus two bars of tf: a window of 1m bars may start in the middle of a tf
    bar (not read) and end in one that has not closed yet (not usable)."""
    return (bars + 2) * TF_MINUTES[tf]
