"""Seeded synthetic inputs for the feature tests and the bench: 1m bars and every extra source, column-exact.

Only shapes and availability matter here (the feature code is what is tested), so the values are simple
random walks around the bars' closes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from btc_assets.lib.data import bars as lib_bars

MINUTE = pd.Timedelta(minutes=1)


def klines_1m(start: str, minutes: int, seed: int = 7) -> pd.DataFrame:
    """Geometric random-walk 1m bars shaped like silver.klines_1m."""
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=minutes, freq="1min", tz="UTC")
    close = 40_000.0 * np.exp(np.cumsum(rng.normal(0.0, 6e-4, minutes)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0.0, 3e-4, (2, minutes))) * close
    vol = rng.gamma(2.0, 50.0, minutes)
    return pd.DataFrame({
        "open_time": t, "open": open_, "high": np.maximum(open_, close) + wick[0],
        "low": np.minimum(open_, close) - wick[1], "close": close, "volume": vol, "quote_volume": vol * close,
        "trades": rng.integers(100, 5_000, minutes), "taker_buy_volume": vol * rng.uniform(0.2, 0.8, minutes),
        "taker_buy_quote_volume": 0.0, "is_halt": False,
    })


def higher_bars(one: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {i: lib_bars.resample_bars(one, i) for i in ("5m", "15m", "1h", "4h", "1d")}


def sources(one: pd.DataFrame, seed: int = 11, book_every: int = 1) -> dict[str, pd.DataFrame]:
    """Every extra source of pit.SOURCES over the span of `one` (book snapshots every `book_every` minutes)."""
    rng = np.random.default_rng(seed)
    t, close, n = one["open_time"], one["close"].to_numpy(), len(one)
    buy = one["taker_buy_volume"].to_numpy()
    sell = one["volume"].to_numpy() - buy
    count = rng.integers(20, 400, n)
    flow = pd.DataFrame({"open_time": t, "buy_volume": buy, "sell_volume": sell,
                         "vwap": close * (1 + rng.normal(0, 1e-4, n)), "trade_count": count,
                         "mean_trade_size": (buy + sell) / count, "max_trade_size": (buy + sell) / count * 8})
    snaps = t.iloc[::book_every] + pd.to_timedelta(rng.integers(0, 60, len(t.iloc[::book_every])), unit="s")
    pct = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5])
    base = rng.uniform(1e7, 3e7, (len(snaps), 10)) * np.abs(pct)
    book = pd.DataFrame({"snapshot_time": np.repeat(snaps.to_numpy(), 10), "percentage": np.tile(pct, len(snaps)),
                         "depth": (base / close[::book_every, None]).ravel(), "notional": base.ravel()})
    five = t[t.dt.minute % 5 == 0].reset_index(drop=True)
    oi = 80_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(five))))
    metrics = pd.DataFrame({"create_time": five, "sum_open_interest": oi,
                            "sum_open_interest_value": oi * close[t.dt.minute.to_numpy() % 5 == 0],
                            "count_toptrader_long_short_ratio": rng.uniform(0.8, 1.5, len(five)),
                            "sum_toptrader_long_short_ratio": rng.uniform(0.8, 1.5, len(five)),
                            "count_long_short_ratio": rng.uniform(0.8, 1.5, len(five)),
                            "sum_taker_long_short_vol_ratio": rng.uniform(0.5, 2.0, len(five))})
    basis = 1 + rng.normal(0, 2e-4, n)
    mark = pd.DataFrame({"open_time": t, "open": close * basis, "high": close * basis, "low": close * basis,
                         "close": close * basis})
    index = mark.assign(**{c: mark[c] / (1 + 1e-4) for c in ("open", "high", "low", "close")})
    premium = pd.DataFrame({"open_time": t, **{c: rng.normal(1e-4, 5e-5, n) for c in ("open", "high", "low", "close")}})
    k = max(n // 30, 1)
    liq = pd.DataFrame({"time": t.iloc[0] + pd.to_timedelta(np.sort(rng.uniform(0, n * 60, k)), unit="s"),
                        "side": rng.choice(["BUY", "SELL"], k), "price": rng.choice(close, k),
                        "quantity": rng.uniform(0.01, 5, k)})
    settle = pd.date_range(t.iloc[0].floor("8h"), t.iloc[-1], freq="8h")
    funding = pd.DataFrame({"funding_time": settle, "calc_time": settle, "interval_hours": 8,
                            "rate": rng.normal(1e-4, 5e-5, len(settle))})
    return {"order_flow_1m": flow, "book_depth": book, "metrics": metrics, "funding_rates": funding,
            "mark_price_1m": mark, "index_price_1m": index, "premium_index_1m": premium, "liquidations": liq}
