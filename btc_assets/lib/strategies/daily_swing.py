"""The daily swing strategy: a random forest on daily bars with four features (EMA-12 ratio, ATR-14, 20-day log
return, MFI-14; lib/research/models/rf_daily.py), the next day up / down / neutral beyond ±1 %, decided every day at
00:05 UTC from the bars closed by 00:00, held per the position table, traded on a perpetual (Kraken Futures
PF_XBTUSD outside paper).

Position table (`position_change`): the signal is the wanted direction (BUY long, SELL short, HOLD flat).

| current \\ signal | BUY          | SELL          | HOLD  |
|-------------------|--------------|---------------|-------|
| flat              | open long    | open short    | hold  |
| long              | hold         | reverse short | close |
| short             | reverse long | hold          | close |

A reverse is two orders: close (reduce-only) then open. A held position is not resized. The backtest
(`backtest`) walks the same table day by day with the same sizing (a fixed fraction of equity, `exposure`), costs
one way per traded notional (5 bp by default) and funding at each settlement the position holds through; the live
signal (defs/strategy_daily) calls the same `position_change` against the broker's position.

Regimes (`regimes`): bull when a day's close is more than `band` (5 %) above its 200-day simple moving average,
bear when more than `band` below, sideways between; the first 199 days have none. Known at the day's close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.research.backtest.metrics import summarise
from btc_assets.lib.research.labels import BUY, HOLD, SELL
from btc_assets.lib.research.models import rf_daily
from btc_assets.lib.strategies.base import Strategy

NAME = "daily_swing"
DAY = pd.Timedelta(days=1)
DIRECTION = {BUY: 1, SELL: -1, HOLD: 0}
SIGNAL_NAME = {1: "BUY", -1: "SELL", 0: "HOLD"}
SIDE_OF = {1: "BUY", -1: "SELL"}


@dataclass(frozen=True)
class DailySignal:
    day: pd.Timestamp  # the trading day the signal is for (decided at its 00:05 from bars up to the day before)
    p_sell: float
    p_hold: float
    p_buy: float
    direction: int  # +1 long, -1 short, 0 flat
    last_bar: pd.Timestamp  # the last daily bar read (the day before `day`)
    train_days: int
    trained_through: pd.Timestamp  # the last labelled day the forest was fitted on
    features: dict = field(default_factory=dict)

    @property
    def signal(self) -> str:
        return SIGNAL_NAME[self.direction]


def signal_for_day(daily: pd.DataFrame, day: pd.Timestamp, p: rf_daily.RfParams, min_train_days: int = 250
                   ) -> DailySignal:
    """The signal for `day`: the forest fitted on every labelled day known at `day` 00:00 (a label needs the next
    close, so the last labelled day is two days before), applied to the features of the day before. Bars from
    `day` on are never read. ValueError naming the missing bar when the day before is not in `daily`."""
    day = pd.Timestamp(day).tz_convert("UTC") if pd.Timestamp(day).tzinfo else pd.Timestamp(day, tz="UTC")
    hist = daily[pd.to_datetime(daily["open_time"], utc=True) < day].sort_values("open_time").reset_index(drop=True)
    if hist.empty or pd.Timestamp(hist["open_time"].iloc[-1]) != day - DAY:
        last = "none" if hist.empty else f"{pd.Timestamp(hist['open_time'].iloc[-1]):%Y-%m-%d}"
        raise ValueError(f"the daily bar of {day - DAY:%Y-%m-%d} is not there (last daily bar before {day:%Y-%m-%d}: "
                         f"{last}): materialize silver/klines_1m (or silver/klines_1d_history) for that day first")
    data = rf_daily.daily_dataset(hist, p.threshold)
    if len(data) < min_train_days:
        raise ValueError(f"{len(data)} labelled days before {day:%Y-%m-%d}, need min_train_days={min_train_days}: "
                         "load more daily history (silver/klines_1d_history) or lower min_train_days")
    feats = rf_daily.daily_features(hist).iloc[-1]
    if feats[rf_daily.DAILY_FEATURES].isna().any():
        raise ValueError(f"the features of {day - DAY:%Y-%m-%d} are not defined (warm-up): "
                         f"{feats[rf_daily.DAILY_FEATURES].to_dict()}")
    forest = rf_daily.fit(data, p)
    proba = np.zeros(3)
    proba[forest.classes_] = forest.predict_proba(feats[rf_daily.DAILY_FEATURES].to_frame().T.astype(float))[0]
    cls = int(proba.argmax())
    return DailySignal(day=day, p_sell=float(proba[SELL]), p_hold=float(proba[HOLD]), p_buy=float(proba[BUY]),
                       direction=DIRECTION[cls], last_bar=day - DAY, train_days=len(data),
                       trained_through=pd.Timestamp(data["open_time"].iloc[-1]),
                       features={k: float(feats[k]) for k in rf_daily.DAILY_FEATURES})


@dataclass(frozen=True)
class Order:
    leg: str  # "close" or "open": the leg of the client order id
    side: str  # BUY or SELL
    qty: float
    reduce_only: bool


def _sign(qty: float, tol: float) -> int:
    return 0 if abs(qty) <= tol else (1 if qty > 0 else -1)


def position_change(current_qty: float, direction: int, target_qty: float, tol: float = 1e-9
                    ) -> tuple[str, list[Order]]:
    """The action of the position table and its orders: `current_qty` signed (base units), `direction` the wanted
    side, `target_qty` the size of a new position (> 0)."""
    if direction not in (-1, 0, 1):
        raise ValueError(f"direction must be -1, 0 or 1, got {direction}")
    cur = _sign(current_qty, tol)
    if cur == direction:
        return "hold", []
    orders = []
    if cur != 0:
        orders.append(Order("close", SIDE_OF[-cur], abs(current_qty), True))
    if direction != 0:
        if not target_qty > 0:
            raise ValueError(f"target_qty must be > 0 to open a position, got {target_qty}")
        orders.append(Order("open", SIDE_OF[direction], target_qty, False))
    action = ("close" if direction == 0 else f"open_{'long' if direction > 0 else 'short'}" if cur == 0
              else f"reverse_{'long' if direction > 0 else 'short'}")
    return action, orders


def target_qty(equity: float, price: float, exposure: float, step: float = 0.001) -> float:
    """Base units of a new position: `exposure` x equity of notional at `price`, down to the step size."""
    if not (equity > 0 and price > 0 and exposure > 0):
        return 0.0
    return math.floor(equity * exposure / price / step + 1e-9) * step


def regimes(daily: pd.DataFrame, window: int = 200, band: float = 0.05) -> pd.DataFrame:
    """Per day: close, its `window`-day SMA and the regime (bull / bear / sideways; None before the SMA exists)."""
    c = daily["close"].astype(float).reset_index(drop=True)
    sma = c.rolling(window, min_periods=window).mean()
    rel = c / sma - 1.0
    reg = np.where(rel > band, "bull", np.where(rel < -band, "bear", "sideways"))
    return pd.DataFrame({"open_time": pd.to_datetime(daily["open_time"], utc=True).to_numpy(), "close": c,
                         "sma": sma, "distance": rel,
                         "regime": pd.Series(reg).where(sma.notna(), None)})


@dataclass
class DailyBacktest:
    days: pd.DataFrame  # per traded day: direction held, return, equity, costs, funding, regime
    trades: pd.DataFrame  # one row per position (a run of days in one direction)
    strategy: dict
    buy_and_hold: dict
    by_regime: pd.DataFrame
    by_year: pd.DataFrame


def backtest(daily: pd.DataFrame, directions: pd.Series, funding: pd.DataFrame | None = None, *,
             initial_equity: float = 10_000.0, exposure: float = 1.0, cost_one_way: float = 0.0005,
             regime: pd.DataFrame | None = None) -> DailyBacktest:
    """The position table day by day: the direction decided for day D (from bars up to D-1) is held over D from its
    open to its close, changes pay `cost_one_way` on the traded notional (a reverse trades twice the size), a
    position pays (long) or earns (short) the funding rates settled during D. Equity compounds: each open is sized
    at `exposure` x equity, a held position's notional moves with the price. Beside buy-and-hold (long from the
    first day's open, one entry cost)."""
    bars = daily.assign(open_time=pd.to_datetime(daily["open_time"], utc=True)).set_index("open_time").sort_index()
    want = directions.copy()
    want.index = pd.DatetimeIndex(want.index).tz_convert("UTC") if want.index.tz else \
        pd.DatetimeIndex(want.index).tz_localize("UTC")
    want = want[want.index.isin(bars.index)].sort_index()
    if want.empty:
        raise ValueError("no decided day has a daily bar: nothing to backtest")
    b = bars.loc[want.index]
    fund = pd.Series(0.0, index=want.index)
    if funding is not None and len(funding):
        ft = pd.to_datetime(funding["funding_time"], utc=True).dt.floor("D")
        fund = funding.groupby(ft.to_numpy())["rate"].sum().reindex(want.index).fillna(0.0)
    eq, pos_qty = initial_equity, 0.0
    rows, trades, open_trade = [], [], None
    for t, d in want.items():
        o, c = float(b.at[t, "open"]), float(b.at[t, "close"])
        size = target_qty(eq, o, exposure, step=1e-9)
        _action, orders = position_change(pos_qty, int(d), size, tol=1e-12)
        cost = 0.0
        for od in orders:
            leg_cost = od.qty * o * cost_one_way
            cost += leg_cost
            if od.leg == "close" and open_trade is not None:
                open_trade["fees"] += leg_cost
                open_trade.update(exit_time=t, exit_price=o)
                trades.append(open_trade)
                open_trade = None
            if od.leg == "open":
                open_trade = {"entry_time": t, "side": "long" if od.side == "BUY" else "short", "qty": od.qty,
                              "entry_price": o, "gross_pnl": 0.0, "fees": leg_cost, "funding": 0.0}
            pos_qty += od.qty if od.side == "BUY" else -od.qty
        gross = pos_qty * (c - o)
        funding_paid = pos_qty * o * float(fund.at[t])
        eq += gross - cost - funding_paid
        if open_trade is not None:
            open_trade["gross_pnl"] += gross
            open_trade["funding"] += funding_paid
        rows.append({"open_time": t, "direction": int(np.sign(pos_qty)), "gross": gross, "costs": cost,
                     "funding": funding_paid, "equity": eq, "close": c})
    if open_trade is not None:  # still open at the end: marked at the last close
        last = want.index[-1]
        open_trade.update(exit_time=last + DAY, exit_price=float(b.at[last, "close"]))
        trades.append(open_trade)
    days = pd.DataFrame(rows)
    tr = pd.DataFrame(trades, columns=["entry_time", "exit_time", "side", "qty", "entry_price", "exit_price",
                                       "gross_pnl", "fees", "funding"])
    tr["net_pnl"] = tr["gross_pnl"] - tr["fees"] - tr["funding"]
    tr["r_multiple"] = np.nan
    times = pd.DatetimeIndex(days["open_time"])
    strat = summarise(days["equity"].to_numpy(), initial_equity, times, tr, float(days["costs"].sum()),
                      float(days["funding"].sum()), float((days["direction"] != 0).mean()), bar_minutes=1440)
    o0 = float(b["open"].iloc[0])
    qty = initial_equity * (1 - cost_one_way) / o0
    bh_fund = (qty * b["open"].to_numpy() * fund.to_numpy()).cumsum()
    bh_eq = initial_equity * (1 - cost_one_way) + qty * (b["close"].to_numpy() - o0) - bh_fund
    bh_trade = pd.DataFrame({"net_pnl": [bh_eq[-1] - initial_equity], "gross_pnl": [qty * (b["close"].iloc[-1] - o0)],
                             "qty": [qty], "entry_price": [o0], "exit_price": [float(b["close"].iloc[-1])],
                             "r_multiple": [np.nan]})
    bh = summarise(bh_eq, initial_equity, times, bh_trade, initial_equity * cost_one_way, float(bh_fund[-1]), 1.0,
                   bar_minutes=1440)
    days["buy_and_hold_equity"] = bh_eq
    if regime is not None:
        rg = regime.assign(open_time=pd.to_datetime(regime["open_time"], utc=True)).set_index("open_time")["regime"]
        # the regime known when the day was decided: the previous day's close
        days["regime"] = rg.reindex(times - DAY).fillna("none").to_numpy()
    else:
        days["regime"] = "none"
    return DailyBacktest(days, tr, strat, bh, _split(days, tr, initial_equity, "regime"),
                         _split(days.assign(year=times.year.astype(str)), tr, initial_equity, "year"))


def _split(days: pd.DataFrame, trades: pd.DataFrame, initial: float, by: str) -> pd.DataFrame:
    eq = np.concatenate([[initial], days["equity"].to_numpy()])
    bh = np.concatenate([[initial], days["buy_and_hold_equity"].to_numpy()])
    r, rb = eq[1:] / eq[:-1] - 1, bh[1:] / bh[:-1] - 1
    entry_key = (trades["entry_time"].map(dict(zip(days["open_time"], days[by]))) if len(trades)
                 else pd.Series(dtype=object))
    out = []
    for key, idx in days.groupby(by).indices.items():
        mine = trades[entry_key.to_numpy() == key] if len(trades) else trades
        out.append({by: key, "days": len(idx), "strategy_return": float(np.prod(1 + r[idx]) - 1),
                    "buy_and_hold_return": float(np.prod(1 + rb[idx]) - 1), "trades": len(mine),
                    "win_rate": float((mine["net_pnl"] > 0).mean()) if len(mine) else float("nan"),
                    "long_share": float((days["direction"].to_numpy()[idx] > 0).mean())})
    return pd.DataFrame(out)


STRATEGY = Strategy(
    name=NAME, bars="1d", features=tuple(rf_daily.DAILY_FEATURES), family="rf_daily",
    decision="the most probable of up / down / neutral (next day beyond ±1 %) is the wanted direction; the "
             "position table turns it into hold, open, close or reverse",
    risk="a fixed fraction of equity per position (exposure), one position, held while the signal says so; "
         "the trading resource's leverage bounds the exposure",
    venue="kraken", horizon_bars=1, decide=signal_for_day)
