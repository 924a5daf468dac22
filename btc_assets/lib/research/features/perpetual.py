"""Perpetual-specific: funding, premium/basis, open interest, long/short ratios, liquidations.

Funding is known at settlement; time to the next settlement follows from the last one and its interval, so it
never reads the future. Metrics rows (open interest, ratios) are used METRICS_DELAY after their create_time.
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.rolling import ratio, rmean, rsum, shift
from btc_assets.lib.research.features.spec import Feature

FAMILY = "perpetual"
_M = "metrics"
_MAT = "create_time + 5 minutes (at most 15 minutes old)"
_MSTALE = "no metrics row in the last 15 minutes"
# The metrics row in use may have a create_time up to 20 minutes (delay + max age) before the bar's close.
_MW = 20
_1M = "close of the 1m bar"
_GAP = "source minute missing"
HOUR_NS = 3_600 * 10**9

FEATURES: tuple[Feature, ...] = (
    Feature("funding_rate", FAMILY, ("funding_rates.rate",), 8 * 60, "settlement", "last settled funding rate"),
    Feature("funding_rate_mean_3", FAMILY, ("funding_rates.rate",), 3 * 8 * 60, "settlement",
            "mean of the last three settled funding rates"),
    Feature("hours_to_next_funding", FAMILY, ("funding_rates.interval_hours",), 8 * 60, "settlement",
            "hours from the bar's close to the next settlement (last settlement + its interval)"),
    Feature("mark_index_premium", FAMILY, ("mark_price_1m.close", "index_price_1m.close"), 0, _1M,
            "mark / index - 1 at the bar's close", _GAP),
    Feature("last_mark_basis", FAMILY, ("klines_1m.close", "mark_price_1m.close"), 0, _1M,
            "last price / mark price - 1 at the bar's close", _GAP),
    Feature("premium_index", FAMILY, ("premium_index_1m.close",), 0, _1M, "premium index close", _GAP),
    Feature("premium_index_mean_60", FAMILY, ("premium_index_1m.close",), 59, _1M,
            "mean premium index close over 60 minutes", _GAP),
    Feature("oi_change_5m", FAMILY, (f"{_M}.sum_open_interest",), _MW + 5, _MAT,
            "log change of open interest over the last metrics row", _MSTALE),
    Feature("oi_change_1h", FAMILY, (f"{_M}.sum_open_interest",), _MW + 60, _MAT,
            "log change of open interest over 12 metrics rows (1 hour)", _MSTALE),
    Feature("oi_to_volume_60", FAMILY, (f"{_M}.sum_open_interest_value", "klines_1m.quote_volume"), 59, _MAT,
            "open interest value / quote volume of the last 60 minutes", _MSTALE),
    Feature("top_trader_ls_ratio", FAMILY, (f"{_M}.sum_toptrader_long_short_ratio",), _MW, _MAT,
            "top traders' long/short position ratio", _MSTALE),
    Feature("global_ls_ratio", FAMILY, (f"{_M}.count_long_short_ratio",), _MW, _MAT,
            "all accounts' long/short ratio", _MSTALE),
    Feature("taker_ls_vol_ratio", FAMILY, (f"{_M}.sum_taker_long_short_vol_ratio",), _MW, _MAT,
            "taker buy/sell volume ratio of the 5-minute row", _MSTALE),
    Feature("liq_long_share_60", FAMILY, ("liquidations.side", "liquidations.price", "liquidations.quantity",
                                          "klines_1m.quote_volume"), 59, "event time (live only)",
            "notional of long liquidations (forced sells) in the last 60 minutes / quote volume", "no volume"),
    Feature("liq_short_share_60", FAMILY, ("liquidations.side", "liquidations.price", "liquidations.quantity",
                                           "klines_1m.quote_volume"), 59, "event time (live only)",
            "notional of short liquidations (forced buys) in the last 60 minutes / quote volume", "no volume"),
)


def _funding(ctx, out: dict) -> None:
    idx = pit.asof_index(ctx.at_ns, ctx.available_ns("funding_rates"))
    rate = ctx.column("funding_rates", "rate")
    out["funding_rate"] = pit.take(rate, idx)
    out["funding_rate_mean_3"] = pit.take(rmean(rate, 3), idx)
    # The schedule goes on after the last known settlement: the next one is the first grid time after the row, so
    # the countdown stays in [0, interval) even when the last known settlement is old (a month not yet archived).
    last = pit.take(ctx.time_ns("funding_rates").astype("float64"), idx)
    step = pit.take((ctx.column("funding_rates", "interval_hours", "int64") * HOUR_NS).astype("float64"), idx)
    with np.errstate(invalid="ignore"):
        k = np.floor((ctx.at_ns - last) / step) + 1
    out["hours_to_next_funding"] = (last + k * step - ctx.at_ns) / HOUR_NS


def _one_minute(ctx, name: str) -> np.ndarray | None:
    if ctx.source(name) is None:
        return None
    idx = pit.asof_index(ctx.at_ns, ctx.available_ns(name), max_age=pit.MAX_AGE_1M)
    return pit.take(ctx.column(name, "close"), idx)


def _metrics(ctx, out: dict) -> None:
    avail = ctx.available_ns(_M)  # sorted by create_time; a repeated stamp counts once, by its last row
    last = np.append(avail[1:] != avail[:-1], True)
    col = {c: ctx.column(_M, c)[last] for c in pit.SOURCES[_M].columns}
    idx = pit.asof_index(ctx.at_ns, avail[last], max_age=pit.MAX_AGE[_M])
    oi = np.log(col["sum_open_interest"])
    out["oi_change_5m"] = pit.take(oi - shift(oi, 1), idx)
    out["oi_change_1h"] = pit.take(oi - shift(oi, 12), idx)
    out["oi_to_volume_60"] = ratio(pit.take(col["sum_open_interest_value"], idx), rsum(ctx.one.quote_volume, 60))
    for c, name in (("sum_toptrader_long_short_ratio", "top_trader_ls_ratio"),
                    ("count_long_short_ratio", "global_ls_ratio"),
                    ("sum_taker_long_short_vol_ratio", "taker_ls_vol_ratio")):
        out[name] = pit.take(col[c], idx)


def _liquidations(ctx, out: dict) -> None:
    t = ctx.time_ns("liquidations")
    notional = ctx.column("liquidations", "price") * ctx.column("liquidations", "quantity")
    qv = rsum(ctx.one.quote_volume, 60)
    for side, name in (("SELL", "liq_long_share_60"), ("BUY", "liq_short_share_60")):
        cum = np.concatenate([[0.0], np.cumsum(np.where(ctx.column("liquidations", "side", None) == side, notional, 0.0))])
        now = np.searchsorted(t, ctx.at_ns, side="right")
        then = np.searchsorted(t, ctx.at_ns - 60 * 60 * 10**9, side="right")
        out[name] = ratio(cum[now] - cum[then], qv)


def compute(ctx) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if ctx.source("funding_rates") is not None:
        _funding(ctx, out)
    mark, index, prem = (_one_minute(ctx, n) for n in ("mark_price_1m", "index_price_1m", "premium_index_1m"))
    if mark is not None and index is not None:
        out["mark_index_premium"] = mark / index - 1.0
    if mark is not None:
        out["last_mark_basis"] = ctx.one.close / mark - 1.0
    if prem is not None:
        out["premium_index"] = prem
        out["premium_index_mean_60"] = rmean(prem, 60)
    if ctx.source(_M) is not None:
        _metrics(ctx, out)
    if ctx.source("liquidations") is not None:
        _liquidations(ctx, out)
    return out
