"""After-cost walk-forward figures: a model that knows the next minutes makes money out of sample and is promoted;
a coin flip and a model that trades nothing are refused, each with the reason."""

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models.economics import ECONOMIC_NAMES, PromotionRule, walk_forward_economics
from btc_assets.lib.research.risk import RiskConfig
from btc_assets_tests.lib.research.backtest.conftest import eight_hourly_funding, random_bars

N_DAYS = 6


def _bars():
    return random_bars(N_DAYS * 1440, seed=3)


def _predictions(bars: pd.DataFrame, classes: np.ndarray) -> pd.DataFrame:
    proba = np.full((len(bars), 3), 0.05)
    proba[np.arange(len(bars)), classes] = 0.9
    fold = np.repeat(np.arange(3), int(np.ceil(len(bars) / 3)))[: len(bars)]
    return pd.DataFrame({"open_time": bars["open_time"], "fold": fold, "p_sell": proba[:, 0], "p_hold": proba[:, 1],
                         "p_buy": proba[:, 2]})


def _oracle(bars: pd.DataFrame, horizon: int = 10, move: float = 0.004) -> np.ndarray:
    """Knows the open `horizon` minutes after the next one: BUY before a rise of `move`, SELL before a fall."""
    o = bars["open"].to_numpy()
    fwd = np.r_[o[1 + horizon:], np.full(1 + horizon, np.nan)] / np.r_[o[1:], np.nan] - 1.0
    return np.where(fwd > move, 2, np.where(fwd < -move, 0, 1))


RISK = RiskConfig(max_positions=1)


def test_a_model_that_knows_the_future_earns_after_costs_and_beats_random_entry():
    bars = _bars()
    figures, folds = walk_forward_economics(_predictions(bars, _oracle(bars)), bars, eight_hourly_funding(bars),
                                            risk=RISK)
    assert set(ECONOMIC_NAMES) <= set(figures) and len(folds) == 3
    assert figures["wf_trades"] > 20 and figures["wf_net_pnl"] > 0 and figures["wf_net_return"] > 0
    assert figures["wf_net_pnl"] == pytest.approx(figures["wf_gross_pnl"] - figures["wf_fees"] - figures["wf_funding"])
    assert figures["wf_days"] == N_DAYS and figures["wf_random_entry_percentile"] > 0.95
    assert PromotionRule(min_psr=0.9).verdict(figures) == []


def test_a_coin_flip_is_refused_after_costs_with_the_reason():
    bars = _bars()
    rng = np.random.default_rng(7)
    flips = np.where(rng.random(len(bars)) < 0.02, rng.choice([0, 2], len(bars)), 1)
    figures, _ = walk_forward_economics(_predictions(bars, flips), bars, eight_hourly_funding(bars), risk=RISK)
    why = PromotionRule().verdict(figures)
    assert figures["wf_trades"] > 20 and why
    assert any("random-entry" in w or "probabilistic Sharpe" in w or "loses after costs" in w for w in why)


def test_a_model_that_never_trades_is_not_promoted():
    bars = _bars()
    figures, _ = walk_forward_economics(_predictions(bars, np.ones(len(bars), int)), bars, None, risk=RISK)
    assert figures["wf_trades"] == 0 and figures["wf_net_pnl"] == 0
    assert PromotionRule().verdict(figures) == ["no out-of-sample trade after costs: nothing to judge"]


def test_a_planted_copy_of_the_label_is_named_and_honest_features_pass():
    from btc_assets.lib.research.models.leakage import too_informative

    rng = np.random.default_rng(0)
    n = 5_000
    fwd = rng.normal(0, 1e-3, n)
    rows = pd.DataFrame({"fwd_return": fwd, "honest": rng.normal(size=n) + 0.03 * fwd / 1e-3,
                         "label_copy": fwd, "centred": fwd + rng.normal(0, 1e-3, n)})
    why = too_informative(rows, ["honest", "label_copy", "centred"])
    assert [w.split(" has ")[0] for w in why] == ["suspected leakage: feature label_copy",
                                                  "suspected leakage: feature centred"]
    assert too_informative(rows, ["honest"]) == []
