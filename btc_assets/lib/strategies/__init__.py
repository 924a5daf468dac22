"""Strategies of the platform, one module each: its bars, features, model family, decision rule, risk rules and
venue (`base.Strategy`). The backtest engine, the journal, the brokers and the reports serve every strategy;
`REGISTRY` lists them by name."""

from btc_assets.lib.strategies import daily_swing, scalper
from btc_assets.lib.strategies.base import Strategy

REGISTRY: dict[str, Strategy] = {s.name: s for s in (scalper.STRATEGY, daily_swing.STRATEGY)}


def strategy(name: str) -> Strategy:
    if name not in REGISTRY:
        raise KeyError(f"strategy {name!r} is unknown: use one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
