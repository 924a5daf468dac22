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
(`backtest`) runs the shared numba engine (lib/research/backtest) with the table as its rules (`engine_rules`:
flat on HOLD, hold on the same side, reverse as exit then entry at the same open, a fixed fraction of equity
`exposure`, no stop or time exit), costs one way per traded notional (5 bp by default) and funding at each
settlement the position holds through; the live signal (defs/strategy_daily) calls `position_change` against the
broker's position, and a test walks both over the same directions and finds the same actions, sizes and P&L.

Regimes (`regimes`): bull when a day's close is more than `band` (5 %) above its 200-day simple moving average,
bear when more than `band` below, sideways between; the first 199 days have none. Known at the day's close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btc_assets.lib.research.backtest.fills import Costs
from btc_assets.lib.research.backtest.metrics import summarise
from btc_assets.lib.research.backtest.simulation import simulate
from btc_assets.lib.research.labels import BUY, HOLD, SELL
from btc_assets.lib.research.models import rf_daily
from btc_assets.lib.research.risk import RiskConfig
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
    skipped: dict = field(default_factory=dict)  # decisions that did not become positions (the engine's counters)


# A month of daily bars: the horizon the liquidation probability of an entry is judged over (the strategy has no
# time exit; its positions last days to weeks).
LIQ_HORIZON_DAYS = 30


def engine_rules(exposure: float, cost_one_way: float, max_liq_prob: float = 0.01) -> tuple[RiskConfig, Costs]:
    """The position table as the shared engine's rules (lib/research/risk.py): exposure sizing, no stop, no target,
    no time exit, one position, flat on HOLD, hold on the same side, no breakers or filters (the daily strategy
    has none), leverage just enough for the exposure; market orders at the day's open paying `cost_one_way` on
    the traded notional, no further slippage."""
    risk = RiskConfig(sizing="exposure", exposure=exposure, exit_on_neutral=True, stop_atr=math.inf,
                      max_hold_bars=1_000_000_000, max_positions=1, leverage=max(1.0, exposure), daily_dd=1.0,
                      weekly_dd=1.0, max_spread_bps=math.inf, min_vol=0.0, max_vol=math.inf, min_quote_volume=0.0,
                      max_liq_prob=max_liq_prob, liq_horizon_bars=LIQ_HORIZON_DAYS)
    costs = Costs(taker_fee=cost_one_way, maker_fee=cost_one_way, slippage_bps=0.0, slippage_vol_mult=0.0)
    return risk, costs


def _engine_run(bars: pd.DataFrame, want: pd.Series, funding, initial_equity: float, risk: RiskConfig,
                costs: Costs):
    """The compiled loop over the daily bars: the direction for day D is the signal at D-1's close (the engine acts
    at the next bar's open). Returns the result and the positions of the decided days in `bars`."""
    times = pd.DatetimeIndex(bars["open_time"])
    pos = times.get_indexer(want.index)
    prev = pos - 1
    if (prev < 0).any():
        raise ValueError(f"no daily bar before {want.index[prev < 0][0]:%Y-%m-%d}: the day's direction is decided at "
                         "the previous close; load the daily bar before the first decided day")
    gaps = times[prev] != want.index - DAY
    if gaps.any():
        d = want.index[gaps][0]
        raise ValueError(f"the daily bar of {d - DAY:%Y-%m-%d} is missing (the direction of {d:%Y-%m-%d} is decided "
                         "at its close): fill the gap in silver/klines_1d (or silver/klines_1d_history)")
    signal = np.zeros(len(bars), np.int8)
    signal[prev] = want.to_numpy(np.int8)
    res = simulate(bars, pd.Series(signal, index=times), funding, initial_equity=initial_equity, costs=costs,
                   risk=risk, exit_on_opposite=True)
    return res, pos


def backtest(daily: pd.DataFrame, directions: pd.Series, funding: pd.DataFrame | None = None, *,
             initial_equity: float = 10_000.0, exposure: float = 1.0, cost_one_way: float = 0.0005,
             regime: pd.DataFrame | None = None, max_liq_prob: float = 0.01) -> DailyBacktest:
    """The position table day by day on the shared backtest engine (engine_rules): the direction decided for day D
    (from bars up to D-1) is held over D from its open to its close; a change trades at D's open and pays
    `cost_one_way` on the traded notional (a reverse trades twice the size); a position pays (long) or earns
    (short) the funding rates settled during D. Equity compounds: each open is sized at `exposure` x equity at the
    decision's close (capped by the free margin at the open's price), a held position is not resized. Beside
    buy-and-hold over the same days (long from the first day's open, one entry cost, through the same engine)."""
    bars = daily.assign(open_time=pd.to_datetime(daily["open_time"], utc=True)).sort_values("open_time")
    bars = bars.drop_duplicates("open_time").reset_index(drop=True)
    want = directions.copy()
    want.index = pd.DatetimeIndex(want.index).tz_convert("UTC") if want.index.tz else \
        pd.DatetimeIndex(want.index).tz_localize("UTC")
    want = want[want.index.isin(pd.DatetimeIndex(bars["open_time"]))].sort_index()
    if want.empty:
        raise ValueError("no decided day has a daily bar: nothing to backtest")
    bars = bars[bars["open_time"] <= want.index[-1]].reset_index(drop=True)
    bars = bars[["open_time", "open", "high", "low", "close"] + (["quote_volume"] if "quote_volume" in bars else [])]
    risk, costs = engine_rules(exposure, cost_one_way, max_liq_prob)
    res, pos = _engine_run(bars, want, funding, initial_equity, risk, costs)
    eq = res.equity.to_numpy()
    before = np.concatenate([[initial_equity], eq[:-1]])[pos]
    fees, paid = res.fees.to_numpy()[pos], res.funding.to_numpy()[pos]
    times = pd.DatetimeIndex(want.index)
    tr = res.trades
    held = np.zeros(len(times), np.int8)  # the direction at each decided day's close
    for side, e, x, is_open in zip(tr["side"].astype(str), tr["entry_time"], tr["exit_time"], tr["is_open"]):
        on = (times >= e) & ((times < x) | bool(is_open))
        held[on] = 1 if side == "long" else -1
    days = pd.DataFrame({"open_time": times, "direction": held, "gross": eq[pos] - before + fees + paid,
                         "costs": fees, "funding": paid, "equity": eq[pos],
                         "close": bars["close"].to_numpy()[pos]})
    trades = tr.assign(side=tr["side"].astype(str), exit_reason=tr["exit_reason"].astype(str))[
        ["entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "gross_pnl", "fees", "funding",
         "net_pnl", "r_multiple", "exit_reason", "is_open"]].reset_index(drop=True)
    strat = summarise(days["equity"].to_numpy(), initial_equity, times, trades, float(fees.sum()), float(paid.sum()),
                      float((days["direction"] != 0).mean()), bar_minutes=1440)
    # buy-and-hold: fully invested (exposure 1) from the first decided day's open, through the same engine
    bh_res, _ = _engine_run(bars, pd.Series(1, index=times), funding, initial_equity,
                            *engine_rules(1.0, cost_one_way, max_liq_prob))
    bh_eq = bh_res.equity.to_numpy()[pos]
    bh = summarise(bh_eq, initial_equity, times, bh_res.trades, float(bh_res.fees.sum()),
                   float(bh_res.funding.sum()), 1.0, bar_minutes=1440)
    days["buy_and_hold_equity"] = bh_eq
    if regime is not None:
        rg = regime.assign(open_time=pd.to_datetime(regime["open_time"], utc=True)).set_index("open_time")["regime"]
        # the regime known when the day was decided: the previous day's close
        days["regime"] = rg.reindex(times - DAY).fillna("none").to_numpy()
    else:
        days["regime"] = "none"
    return DailyBacktest(days, trades, strat, bh, _split(days, trades, initial_equity, "regime"),
                         _split(days.assign(year=times.year.astype(str)), trades, initial_equity, "year"),
                         {k: v for k, v in res.skipped.items() if v})


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
