"""Synthetic aggTrades whose 1m totals reproduce real klines exactly (OHLC, volume, taker-buy volume, trade count).

Vectorised over the whole day: every minute with N real trades gets K aggTrades (K = `density(N)`, at least the
number of distinct prices OHLC needs, at most N). Prices are integer cents on the 0.10 tick inside [low, high], with
the first trade at the open, the last at the close and one each at the high and the low. Quantities are integer
units of 0.001 BTC split so the buyer-taker trades sum to the taker-buy volume and the rest to the remainder; the
N real trades are split into K contiguous first/last_trade_id spans. Everything is drawn from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

QTY_UNIT = 1000  # 1 unit = 0.001 BTC, the USD-M BTCUSDT step size
PRICE_UNIT = 100  # cents
TICK_CENTS = 10


class SyntheticDataError(ValueError):
    """Real klines that no set of aggTrades can reproduce (e.g. volume without trades)."""


@dataclass(frozen=True)
class IdState:
    """Where the next day's ids continue: ids are contiguous across days, as in the real archive."""

    next_agg_trade_id: int
    next_trade_id: int


def _split(total: np.ndarray, group: np.ndarray, n_groups: int, weights: np.ndarray) -> np.ndarray:
    """Split total[g] into the rows of group g: every row >= 1, parts proportional to weights, exact sums."""
    counts = np.bincount(group, minlength=n_groups)
    spare = total - counts  # each row first gets 1
    wsum = np.bincount(group, weights=weights, minlength=n_groups)
    share = np.floor(weights / wsum[group] * spare[group]).astype(np.int64)
    rest = spare - np.bincount(group, weights=share, minlength=n_groups).astype(np.int64)
    out = 1 + share
    # the remainder goes to the first row of each group (rows of a group are contiguous)
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    out[first] += rest[group[first]]
    return out


def agg_trades_for_klines(klines: pd.DataFrame, ids: IdState, seed: int,
                          per_minute: Callable[[np.ndarray], np.ndarray]) -> tuple[pd.DataFrame, IdState]:
    """aggTrades for one day of parsed archive klines (archive_csv.KLINES layout); returns rows and the next ids."""
    k = klines.sort_values("open_time").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    o, h, l, c = (np.round(k[x].to_numpy() * PRICE_UNIT).astype(np.int64) for x in ("open", "high", "low", "close"))
    vol = np.round(k["volume"].to_numpy() * QTY_UNIT).astype(np.int64)
    buy = np.round(k["taker_buy_volume"].to_numpy() * QTY_UNIT).astype(np.int64)
    n = k["count"].to_numpy().astype(np.int64)
    sell = vol - buy
    traded = n > 0
    bad = traded & ((vol < 1) | (sell < 0)) | (~traded & (vol > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SyntheticDataError(f"kline {k['open_time'].iloc[i]}: volume {vol[i]}, taker-buy {buy[i]}, trades "
                                 f"{n[i]} cannot be reproduced by aggTrades")
    extra = ((h != o) & (h != c)).astype(np.int64) + ((l != o) & (l != c))
    need = 1 + extra + ((o != c) | (extra > 0))  # slots: first (open), each extreme not at O/C, last (close)
    need = np.maximum(need, (buy > 0).astype(int) + (sell > 0))
    kk = np.where(traded, np.clip(per_minute(n), need, np.minimum(n, vol)), 0).astype(np.int64)
    if (traded & (kk < need)).any():
        i = int(np.flatnonzero(traded & (kk < need))[0])
        raise SyntheticDataError(f"kline {k['open_time'].iloc[i]}: {n[i]} trades cannot show OHLC and both sides")
    minute = np.repeat(np.arange(len(k)), kk)
    pos = np.arange(len(minute)) - np.repeat(np.cumsum(kk) - kk, kk)  # position within the minute
    last = pos == kk[minute] - 1
    # prices: uniform on the tick grid inside [low, high], then the open, high, low, close slots
    lo, hi = l[minute], h[minute]
    price = lo + np.round(rng.random(len(minute)) * (hi - lo) / TICK_CENTS).astype(np.int64) * TICK_CENTS
    price = np.clip(price, lo, hi)
    big = kk[minute] >= 4
    hpos = np.where(kk >= 4, 1 + rng.integers(0, np.maximum(kk - 2, 1)), -1)
    lpos = np.where(kk >= 4, 1 + rng.integers(0, np.maximum(kk - 3, 1)), -1)
    lpos = np.where(lpos >= hpos, lpos + 1, lpos)
    price = np.where(big & (pos == hpos[minute]), hi, price)
    price = np.where(big & (pos == lpos[minute]), lo, price)
    small = ~big & (pos > 0) & ~last  # K in {3}: the one middle trade shows whichever extreme O/C do not
    mid = np.where((hi != o[minute]) & (hi != c[minute]), hi, lo)
    price = np.where(small, mid, price)
    price = np.where(pos == 0, o[minute], price)
    price = np.where(last, c[minute], price)
    # sides: k_buy buyer-taker trades per minute, placed at random positions
    kb = np.where(buy == 0, 0, np.where(sell == 0, kk, np.clip(np.round(kk * buy / np.maximum(vol, 1)), 1, kk - 1)))
    kb = np.minimum(kb, buy)
    kb = np.maximum(kb, kk - sell)  # the sell side cannot have more trades than units
    rank = np.empty(len(minute), dtype=np.int64)
    order = np.lexsort((rng.random(len(minute)), minute))
    rank[order] = pos  # rows of a minute sorted by a random key: rank is a random permutation of positions
    is_buy = rank < kb[minute]
    side_group = minute * 2 + is_buy
    side_total = np.stack([sell, buy], axis=1).reshape(-1)
    # contiguous groups are needed by _split: sort rows by (minute, side), split, scatter back
    by_side = np.lexsort((pos, side_group))
    qty = np.empty(len(minute), dtype=np.int64)
    qty[by_side] = _split(side_total, side_group[by_side], 2 * len(k), rng.lognormal(0, 1.5, len(minute)))
    span = _split(n, minute, len(k), rng.lognormal(0, 1.0, len(minute)))
    start_ms = (k["open_time"].astype("int64").to_numpy() // 10**6)[minute]
    t = np.sort(start_ms + rng.integers(0, 60_000, len(minute)))  # minutes are disjoint: sorted within each
    first_id = ids.next_trade_id + np.cumsum(span) - span
    out = pd.DataFrame({
        "agg_trade_id": ids.next_agg_trade_id + np.arange(len(minute), dtype=np.int64),
        "price": price / PRICE_UNIT,
        "quantity": qty / QTY_UNIT,
        "first_trade_id": first_id,
        "last_trade_id": first_id + span - 1,
        "transact_time": t,
        "is_buyer_maker": ~is_buy,
    })
    nxt = IdState(ids.next_agg_trade_id + len(out), ids.next_trade_id + int(span.sum()))
    return out, nxt
