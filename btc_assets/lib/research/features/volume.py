"""Volume and order flow: taker-buy share, cumulative volume delta, VWAP distance, volume surges (from klines),
and trade-size statistics and taker delta from aggTrades (silver.order_flow_1m, joined at the minute's close).
"""

from __future__ import annotations

import numpy as np

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.rolling import ratio, rmean, rsum, zscore
from btc_assets.lib.research.features.spec import Feature

FAMILY = "volume_flow"
_AT = "close of the 1m bar"
_V, _TB, _QV, _C = "klines_1m.volume", "klines_1m.taker_buy_volume", "klines_1m.quote_volume", "klines_1m.close"
_NOVOL = "no volume in the window (halt)"
_OF = "order_flow_1m"

FEATURES: tuple[Feature, ...] = (
    Feature("taker_buy_ratio", FAMILY, (_TB, _V), 0, _AT, "taker-buy volume / volume of the bar", _NOVOL),
    Feature("taker_buy_ratio_15", FAMILY, (_TB, _V), 14, _AT, "taker-buy share of volume over 15 minutes", _NOVOL),
    *(Feature(f"cvd_{n}", FAMILY, (_TB, _V), n - 1, _AT,
              f"cumulative volume delta (taker buy - taker sell) over {n} minutes / volume", _NOVOL) for n in (15, 60)),
    Feature("volume_z_60", FAMILY, (_V,), 59, _AT, "z-score of 1m volume against the last 60 minutes",
            "flat volume window"),
    Feature("volume_surge_15", FAMILY, (_V,), 1439, _AT,
            "volume of the last 15 minutes / average 15-minute volume of the last day", _NOVOL),
    *(Feature(f"vwap_distance_{n}", FAMILY, (_QV, _V, _C), n - 1, _AT, f"close / {n}-minute VWAP - 1", _NOVOL)
      for n in (60, 1440)),
    Feature("of_taker_delta_ratio", FAMILY, (f"{_OF}.buy_volume", f"{_OF}.sell_volume"), 0,
            "close of the aggTrades minute", "(taker buy - taker sell) / traded volume of the minute", _NOVOL),
    Feature("of_vwap_distance", FAMILY, (f"{_OF}.vwap", _C), 0, "close of the aggTrades minute",
            "close / the minute's aggTrades VWAP - 1", _NOVOL),
    Feature("of_mean_trade_size_rel_60", FAMILY, (f"{_OF}.mean_trade_size",), 59, "close of the aggTrades minute",
            "mean trade size of the minute / its 60-minute average", _NOVOL),
    Feature("of_max_trade_share", FAMILY, (f"{_OF}.max_trade_size", f"{_OF}.buy_volume", f"{_OF}.sell_volume"), 0,
            "close of the aggTrades minute",
            "largest trade of the minute / traded volume", _NOVOL),
    Feature("of_trade_count_z_60", FAMILY, (f"{_OF}.trade_count",), 59, "close of the aggTrades minute",
            "z-score of the minute's trade count against the last 60 minutes", "flat trade count window"),
)


def compute(ctx) -> dict[str, np.ndarray]:
    b = ctx.one
    v, tb = b.volume, b.taker_buy_volume
    delta = 2.0 * tb - v
    out = {"taker_buy_ratio": ratio(tb, v), "taker_buy_ratio_15": ratio(rsum(tb, 15), rsum(v, 15))}
    for n in (15, 60):
        out[f"cvd_{n}"] = ratio(rsum(delta, n), rsum(v, n))
    out["volume_z_60"] = zscore(v, 60)
    out["volume_surge_15"] = ratio(rsum(v, 15), rsum(v, 1440) / 96.0)
    for n in (60, 1440):
        out[f"vwap_distance_{n}"] = b.close / ratio(rsum(b.quote_volume, n), rsum(v, n)) - 1.0
    of = ctx.source(_OF)
    if of is not None:
        idx = pit.asof_index(ctx.at_ns, ctx.available_ns(_OF), max_age=pit.MAX_AGE_1M)
        col = {c: pit.take(ctx.column(_OF, c), idx) for c in pit.SOURCES[_OF].columns}
        traded = col["buy_volume"] + col["sell_volume"]
        out["of_taker_delta_ratio"] = ratio(col["buy_volume"] - col["sell_volume"], traded)
        out["of_vwap_distance"] = b.close / col["vwap"] - 1.0
        out["of_mean_trade_size_rel_60"] = ratio(col["mean_trade_size"], rmean(col["mean_trade_size"], 60))
        out["of_max_trade_share"] = ratio(col["max_trade_size"], traded)
        out["of_trade_count_z_60"] = zscore(col["trade_count"], 60)
    return out
