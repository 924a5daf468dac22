"""What a strategy is: a named set of choices the shared machinery (backtest engine, risk rules, journal, brokers,
reports) executes. A new strategy is a new module that builds one `Strategy`, not a new pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Strategy:
    name: str  # also the prefix of its client order ids (journal.client_order_id) and its journal rows
    bars: str  # the bar interval it decides on: "1m", "1d"
    features: tuple[str, ...]  # the feature columns its model reads (empty: a feature set chosen per run)
    family: str  # the model family (registry name) whose promoted version decides
    decision: str  # how probabilities become a signal, in words (the function is `decide`)
    risk: str  # the risk rules it trades under, in words (the numbers live in the trading settings)
    venue: str  # the venue it trades on outside paper: "binance" or "kraken"
    horizon_bars: int  # how long a position is meant to be held, in its bars
    decide: Callable | None = field(default=None, compare=False)

    def describe(self) -> dict[str, str]:
        return {"strategy": self.name, "bars": self.bars, "features": ", ".join(self.features) or "per run",
                "family": self.family, "decision": self.decision, "risk": self.risk, "venue": self.venue,
                "horizon_bars": str(self.horizon_bars)}
