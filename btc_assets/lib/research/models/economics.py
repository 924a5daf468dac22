"""What a model's out-of-sample predictions are worth after costs: each walk-forward fold's test window traded by
the backtest engine itself (the same risk rules, fees, slippage, funding and next-bar fills as backtest/report and
the live trader), the folds pooled, beside random entries with the same number, sides and lengths of trades.

A model is worth trading only if this pooled out-of-sample result has positive expectancy with confidence: the
probabilistic Sharpe of its *daily* returns against 0, and the share of random-entry runs it beats. The figures
carry the same names for every family (registry table, MLflow, Dagster metadata):

| name                         | what                                                                          |
|------------------------------|-------------------------------------------------------------------------------|
| wf_net_return                | pooled return after every cost, compounding the folds' daily returns          |
| wf_gross_pnl, wf_fees, wf_funding, wf_net_pnl | USDT over the pooled folds                                   |
| wf_net_sharpe                | Sharpe of the pooled daily returns, annualised with 365 days                  |
| wf_psr                       | probabilistic Sharpe of those daily returns against 0                         |
| wf_trades, wf_days           | round trips and days of returns pooled                                        |
| wf_random_entry_percentile   | share of random-entry runs (same trades count, sides, holding times, sizes and |
|                              | per-trade costs, drawn over the same folds) whose net P&L is below the model's |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from btc_assets.lib.research.backtest import Costs, signals_from_classes, simulate
from btc_assets.lib.research.backtest.metrics import daily_returns, sharpe_stats
from btc_assets.lib.research.risk import RiskConfig

ECONOMIC_NAMES = ("wf_net_return", "wf_net_sharpe", "wf_psr", "wf_trades", "wf_random_entry_percentile",
                  "wf_days", "wf_gross_pnl", "wf_fees", "wf_funding", "wf_net_pnl")


@dataclass(frozen=True)
class PromotionRule:
    """After-cost evidence a model needs to be promoted (configurable per training run)."""

    min_psr: float = 0.95  # probabilistic Sharpe of the pooled daily returns against 0
    min_random_percentile: float = 0.95  # share of random-entry runs it must beat
    random_seeds: int = 500
    # Fewer round trips than this are no evidence: one lucky trade among flat days has a high PSR.
    min_trades: int = 30

    def verdict(self, e: dict[str, float]) -> list[str]:
        """Why the figures do not earn a promotion (empty: they do)."""
        why = []
        if not e["wf_trades"] > 0:
            why.append("no out-of-sample trade after costs: nothing to judge")
            return why
        if e["wf_trades"] < self.min_trades:
            why.append(f"only {int(e['wf_trades'])} out-of-sample trades (needs {self.min_trades} to be evidence)")
        if not e["wf_net_pnl"] > 0:
            why.append(f"loses after costs out of sample (net {e['wf_net_pnl']:+,.0f} USDT over {int(e['wf_trades'])} "
                       f"trades: gross {e['wf_gross_pnl']:+,.0f}, fees {-e['wf_fees']:+,.0f}, funding "
                       f"{-e['wf_funding']:+,.0f})")
        if not e["wf_psr"] >= self.min_psr:
            why.append(f"probabilistic Sharpe of daily returns {e['wf_psr']:.2f} < {self.min_psr:.2f} "
                       f"({int(e['wf_days'])} days)")
        if not e["wf_random_entry_percentile"] >= self.min_random_percentile:
            why.append(f"beats only {e['wf_random_entry_percentile']:.0%} of random-entry runs "
                       f"(needs {self.min_random_percentile:.0%})")
        return why


def _random_entry_net(o: np.ndarray, trades: pd.DataFrame, times: pd.DatetimeIndex, costs: Costs,
                      rng: np.random.Generator, seeds: int) -> np.ndarray:
    """Net P&L of `seeds` random-entry runs over one fold: as many trades as the model made, with its sides, holding
    times and notionals, entered at random bars' next open and exited at the open after the holding time, each
    paying the taker fee and the fixed slippage both ways."""
    n = len(trades)
    if n == 0 or len(o) < 3:
        return np.zeros(seeds)
    t_ns = times.asi8
    entry = np.searchsorted(t_ns, pd.DatetimeIndex(trades["entry_time"]).asi8)
    exit_ = np.searchsorted(t_ns, pd.DatetimeIndex(trades["exit_time"]).asi8)
    hold = np.clip(exit_ - entry, 1, len(o) - 2)
    notional = (trades["qty"] * trades["entry_price"]).to_numpy(float)
    side = np.where(trades["side"].astype(str).to_numpy() == "long", 1.0, -1.0)
    cost = 2 * (costs.taker_fee + costs.slippage_bps / 1e4)
    out = np.empty(seeds)
    for s in range(seeds):
        perm = rng.permutation(n)
        h = hold[perm]
        start = rng.integers(1, np.maximum(len(o) - h, 2))  # the fill is the open after a random decision bar
        stop = np.minimum(start + h, len(o) - 1)
        ret = o[stop] / o[start] - 1.0
        out[s] = float((notional * (side[perm] * ret - cost)).sum())
    return out


def walk_forward_economics(predictions: pd.DataFrame, bars: pd.DataFrame, funding: pd.DataFrame | None, *,
                           mark: pd.DataFrame | None = None, costs: Costs = Costs(), risk: RiskConfig = RiskConfig(),
                           initial_equity: float = 10_000.0, rule: PromotionRule = PromotionRule(),
                           seed: int = 0, daily_out: list | None = None,
                           warmup_bars: int = 0) -> tuple[dict[str, float], pd.DataFrame]:
    """The pooled after-cost figures (ECONOMIC_NAMES) of out-of-sample `predictions` (open_time, fold, p_sell,
    p_hold, p_buy: the walk-forward's) and one row per fold. `bars`: silver 1m bars covering the test windows.

    A `signal` column (0 SELL, 1 HOLD, 2 BUY), when present, is what trades (the cost-aware decision of
    lib/research/models/decision.py); without it the most probable class does. `daily_out`, if given, receives
    each fold's daily returns (a Series by UTC day), e.g. for a study's overfitting statistics. `warmup_bars` bars
    before each fold reach the engine untraded (its ATR warms up: daily bars need 14); the returns start at the fold."""
    bars = bars.sort_values("open_time").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    daily, per_fold = [], []
    gross = fees = fund = net = 0.0
    n_trades = 0
    random_net = np.zeros(rule.random_seeds)
    for fold, rows in predictions.groupby("fold", sort=True):
        lo, hi = rows["open_time"].min(), rows["open_time"].max() + pd.Timedelta(minutes=1)
        i0 = max(0, int(bars["open_time"].searchsorted(lo)) - warmup_bars)
        with_warmup = bars.iloc[i0:int(bars["open_time"].searchsorted(hi))].reset_index(drop=True)
        b = with_warmup[with_warmup["open_time"] >= lo].reset_index(drop=True)
        if len(b) < 3:
            raise ValueError(f"fold {fold}: silver.klines_1m has {len(b)} bars in {lo} .. {hi}; materialize "
                             "silver/klines_1m for the training weeks")
        chosen = (rows["signal"].to_numpy() if "signal" in rows
                  else rows[["p_sell", "p_hold", "p_buy"]].to_numpy().argmax(axis=1))
        classes = pd.Series(chosen, index=pd.DatetimeIndex(rows["open_time"]))
        sig = signals_from_classes(classes)
        sig = sig[sig.index.isin(pd.DatetimeIndex(b["open_time"]))]
        res = simulate(with_warmup, sig, funding, mark=mark, costs=costs, risk=risk, initial_equity=initial_equity)
        equity = res.equity[res.equity.index >= lo]  # nothing trades in the warm-up: equity is still the initial
        times = pd.DatetimeIndex(equity.index)
        daily.append(daily_returns(equity.to_numpy(), initial_equity, times))
        if daily_out is not None:
            days = pd.DatetimeIndex(times).floor("D").unique()
            daily_out.append(pd.Series(daily[-1], index=days[:len(daily[-1])]))
        tr = res.trades
        f_gross, f_fees, f_fund = float(tr["gross_pnl"].sum()), float(res.fees.sum()), float(res.funding.sum())
        gross, fees, fund, net = gross + f_gross, fees + f_fees, fund + f_fund, net + res.final_equity - initial_equity
        n_trades += len(tr)
        random_net += _random_entry_net(b["open"].to_numpy(float), tr, times, costs, rng, rule.random_seeds)
        per_fold.append({"fold": int(fold), "from": str(lo), "to": str(hi), "trades": len(tr),
                         "net_return": res.final_equity / initial_equity - 1.0, "gross_pnl": f_gross,
                         "fees": f_fees, "funding": f_fund, "net_pnl": res.final_equity - initial_equity})
    r = np.concatenate(daily) if daily else np.zeros(0)
    sharpe, psr, _ = sharpe_stats(r) if len(r) > 1 else (0.0, float("nan"), float("nan"))
    figures = {
        "wf_net_return": float(np.prod(1.0 + r) - 1.0) if len(r) else 0.0, "wf_net_sharpe": float(sharpe),
        "wf_psr": float(psr), "wf_trades": float(n_trades),
        "wf_random_entry_percentile": float((random_net < net).mean()) if n_trades else float("nan"),
        "wf_days": float(len(r)), "wf_gross_pnl": gross, "wf_fees": fees, "wf_funding": fund, "wf_net_pnl": net,
    }
    return figures, pd.DataFrame(per_fold)
