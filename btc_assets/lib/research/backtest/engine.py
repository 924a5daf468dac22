"""The compiled event loop over 1m bars (numba, cached on disk): entries, exits, funding, liquidation.

Order of events inside bar t (a bar is known at its close; a decision at close t acts at bar t+1):
1. exits decided at close t-1 (time exit, opposite signal, or a 0 signal under the position table's rules,
   risk.py) fill at the open, market;
2. the entry decided at close t-1 fills: market at the open, or a resting post-only limit if the bar trades
   through it (cancelled after its time to live). The quantity was sized at close t-1; the stop and target are
   placed at the same distances from the actual fill price; the liquidation guard is re-checked at the fill;
3. funding, if a settlement falls at this bar's open: side x qty x mark price x rate, from the wallet;
4. intrabar, per position: liquidation if the mark price gapped through it at the open, else the stop (the bar's
   low/high reaching it, filled at the worse of the open and the stop, plus slippage), then the liquidation at
   the mark's low/high, then the take-profit (filled as a market order at the better of open and target). When a
   bar touches both stop and target the stop is assumed first: 1m bars do not say which came first (and a limit
   entry filled inside a bar is exposed to that whole bar's range), both on the conservative side;
5. equity at the close = wallet + unrealised PnL at the close; the breakers update; decisions for bar t+1 (an
   entry more likely than ``max_liq_prob`` to reach its liquidation price within the holding horizon is refused:
   risk.liquidation_probability; the probability is kept on the trade and on the live decision).
Positions still open after the last bar are marked at the last close with no exit fee (``is_open``).

Liquidation closes the position at the liquidation price; the loss is capped at the isolated margin and the
liquidation fee (rate x notional) is taken from what margin remains, as Binance's clearance fee is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit

from btc_assets.lib.research import risk
from btc_assets.lib.research.backtest import fills
from btc_assets.lib.research.backtest.exchange import liquidation_price, round_qty, tier_of



def _drop_stale_cache() -> None:
    """Delete this module's numba cache when a module it inlines changed.

    numba keys a cached function on its own file only: after an edit to risk.py the engine would keep running the
    old risk rules. A digest of every source the loop compiles in is kept beside the cache; on a mismatch the
    engine's cache files are removed before first use, so the next call recompiles (once)."""
    here = Path(__file__).resolve()
    sources = [here, here.with_name("fills.py"), here.with_name("exchange.py"), here.parents[1] / "risk.py"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    cache = here.parent / "__pycache__"
    stamp = cache / "engine.sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for f in cache.glob("engine.*.nb[ic]"):
            f.unlink()
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba falls back to its user-wide cache dir, nothing to clean here
        pass


_drop_stale_cache()
# Columns of the trade record array.
(T_ENTRY_BAR, T_EXIT_BAR, T_SIDE, T_QTY, T_ENTRY_PRICE, T_EXIT_PRICE, T_GROSS, T_FEES, T_FUNDING, T_REASON,
 T_RISK, T_LIQ, T_STOP, T_TARGET, T_P_LIQ) = range(15)
N_TRADE_COLS = 15
EXIT_REASONS = ("signal", "stop", "take_profit", "time", "liquidation", "open_at_end")
R_SIGNAL, R_STOP, R_TP, R_TIME, R_LIQ, R_OPEN = range(6)
# Counters of decisions that did not become positions.
SKIP_NAMES = ("breaker", "max_positions", "filters", "too_small", "liquidation_guard", "limit_not_filled",
              "liquidation_probability")
# Per-slot state columns.
S_ACTIVE, S_SIDE, S_QTY, S_ENTRY, S_MARGIN, S_STOP, S_TP, S_LIQ, S_BAR, S_FEES, S_FUND, S_RISK, S_EXIT, S_P_LIQ = range(14)


@njit(cache=True, error_model="numpy")  # numpy semantics for x/0: no per-division check
def _close(slots, k, trades, n_tr, t, price, reason, fee_paid, stats):
    """Record slot k's round trip closed at ``price`` and update the walk-forward win/loss stats."""
    side, qty, entry = slots[k, S_SIDE], slots[k, S_QTY], slots[k, S_ENTRY]
    gross = side * qty * (price - entry)
    if reason == R_LIQ:
        gross = max(gross, -slots[k, S_MARGIN])  # isolated: never more than the margin
    row = trades[n_tr]
    row[T_ENTRY_BAR], row[T_EXIT_BAR], row[T_SIDE], row[T_QTY] = slots[k, S_BAR], t, side, qty
    row[T_ENTRY_PRICE], row[T_EXIT_PRICE], row[T_GROSS] = entry, price, gross
    row[T_FEES], row[T_FUNDING], row[T_REASON] = slots[k, S_FEES] + fee_paid, slots[k, S_FUND], reason
    row[T_RISK], row[T_LIQ] = slots[k, S_RISK], slots[k, S_LIQ]
    row[T_STOP], row[T_TARGET], row[T_P_LIQ] = slots[k, S_STOP], slots[k, S_TP], slots[k, S_P_LIQ]
    r_mult = (gross - row[T_FEES] - row[T_FUNDING]) / row[T_RISK] if row[T_RISK] > 0 else 0.0
    if r_mult > 0:
        stats[0] += 1.0
        stats[2] += r_mult
    else:
        stats[1] += 1.0
        stats[3] -= r_mult
    slots[k, S_ACTIVE] = 0.0
    return gross


@njit(cache=True, error_model="numpy")
def run(time_ns, o, h, lo, c, m_o, m_h, m_l, atr, vol, spread_bps, quote_vol, signal, scale, funding_rate,
        tiers, p, cst, tick, step, min_notional, liq_fee, initial, exit_on_opposite, decide_last=False):
    """The loop; see the module docstring. Returns equity and paused per bar, fee and funding events (bar,
    amount), the trade records, the skip counters and the decision taken at the last close.

    With ``decide_last`` the decisions of step 5 are also taken at the last bar's close (the live trader's
    question: what now?), and ``last`` = [entry side, qty, stop distance, limit price, skip code or -1, number of
    positions to exit, entry bar and exit reason of up to 8 of them...] describes them; otherwise the loop stops
    at the last close as a backtest must (there is no next bar to act on)."""
    n = len(o)
    n_slots = int(p[risk.P_MAX_POSITIONS])
    slots = np.zeros((n_slots, 14))
    # Every trade starts from a signal and every funding payment from a settlement: size the records by those.
    # Fees and funding are returned as (bar, amount) events, not per-bar arrays: a year of 1m bars makes each
    # dense output 4 MB of fresh pages, and touching them cost more than the whole loop.
    cap, n_settle = n_slots, 0
    for t in range(n):
        if signal[t] != 0:
            cap += 1
        if funding_rate[t] != 0.0:
            n_settle += 1
    trades = np.empty((cap, N_TRADE_COLS))
    fee_ev, fund_ev = np.empty((2 * cap, 2)), np.empty((n_settle * n_slots, 2))
    n_fe, n_fu = 0, 0
    equity, paused = np.empty(n), np.zeros(n, np.bool_)
    skips, stats, brk = np.zeros(len(SKIP_NAMES)), np.zeros(4), np.array([-1.0, 0.0, 0.0, -1.0, 0.0, 0.0, -1.0, -1.0])
    cash, used_margin, n_tr, prev_eq = initial, 0.0, 0, initial
    n_active, n_exiting = 0, 0  # most bars are flat: skip the per-slot loops there
    pend_side, pend_qty, pend_dist, pend_limit, pend_expiry, pend_pliq = 0.0, 0.0, 0.0, 0.0, -1, 0.0
    last = np.zeros(6 + 2 * 8 + 1)  # ..., [22]: the decided entry's liquidation probability
    last[4] = -1.0
    is_limit = cst[fills.C_ORDER_TYPE] > 0
    by_table = p[risk.P_EXIT_ON_NEUTRAL] > 0  # the position table's rules (risk.py): flat on 0, hold on the same side
    by_exposure = int(p[risk.P_SIZING]) == 3
    for t in range(n):
        v_prev = vol[t - 1] if t > 0 else 0.0
        for k in range(n_slots if n_exiting > 0 else 0):  # 1. exits decided at the previous close
            if slots[k, S_ACTIVE] > 0 and slots[k, S_EXIT] > 0:
                px = fills.market_price(cst, -slots[k, S_SIDE], o[t], v_prev, tick)
                f = fills.fee(cst[fills.C_TAKER], slots[k, S_QTY], px)
                cash += _close(slots, k, trades, n_tr, t, px, slots[k, S_EXIT] - 1.0, f, stats) - f
                fee_ev[n_fe, 0], fee_ev[n_fe, 1] = t, f
                n_fe += 1
                used_margin -= slots[k, S_MARGIN]
                n_tr += 1
                n_active -= 1
        if pend_side != 0.0:  # 2. the pending entry
            filled, px, rate = False, 0.0, cst[fills.C_TAKER]
            if not is_limit:
                filled, px = True, fills.market_price(cst, pend_side, o[t], v_prev, tick)
            elif fills.limit_fills(pend_side, pend_limit, lo[t], h[t]):
                filled, px, rate = True, pend_limit, cst[fills.C_MAKER]
            if filled:
                k = 0
                while k < n_slots - 1 and slots[k, S_ACTIVE] > 0:  # a free slot exists: checked at the decision
                    k += 1
                tier = tier_of(tiers, pend_qty * px)
                lev = min(p[risk.P_LEVERAGE], tiers[tier, 3]) if tier >= 0 else 0.0
                if lev > 0:  # margin and the entry fee must fit in the free wallet at the actual fill price
                    pend_qty = min(pend_qty, round_qty((cash - used_margin) / (px / lev + rate * px), step))
                notional = pend_qty * px
                margin = notional / lev if lev > 0 else np.inf
                stop, target = px - pend_side * pend_dist, px + pend_side * pend_dist * p[risk.P_TAKE_PROFIT_R]
                liq = liquidation_price(tiers, pend_side, pend_qty, px, margin) if lev > 0 else px
                entry_fee = fills.fee(rate, pend_qty, px)
                if notional < min_notional or pend_qty <= 0 or margin + entry_fee > cash - used_margin:
                    skips[3] += 1
                elif not risk.liquidation_guard_ok(p, px, stop, liq):
                    skips[4] += 1
                else:
                    f = fills.fee(rate, pend_qty, px)
                    cash -= f
                    fee_ev[n_fe, 0], fee_ev[n_fe, 1] = t, f
                    n_fe += 1
                    used_margin += margin
                    s = slots[k]
                    s[S_ACTIVE], s[S_SIDE], s[S_QTY], s[S_ENTRY], s[S_MARGIN] = 1.0, pend_side, pend_qty, px, margin
                    s[S_STOP], s[S_TP], s[S_LIQ], s[S_BAR], s[S_FEES] = stop, target, liq, t, f
                    s[S_FUND], s[S_RISK], s[S_EXIT], s[S_P_LIQ] = 0.0, pend_qty * pend_dist, 0.0, pend_pliq
                    n_active += 1
                pend_side = 0.0
            elif t >= pend_expiry:
                skips[5] += 1
                pend_side = 0.0
        for k in range(n_slots if n_active > 0 else 0):
            if slots[k, S_ACTIVE] == 0:
                continue
            side, stop, liq, tp = slots[k, S_SIDE], slots[k, S_STOP], slots[k, S_LIQ], slots[k, S_TP]
            if funding_rate[t] != 0.0:  # 3. funding at the settlement
                pay = side * slots[k, S_QTY] * m_o[t] * funding_rate[t]
                cash -= pay
                fund_ev[n_fu, 0], fund_ev[n_fu, 1] = t, pay
                n_fu += 1
                slots[k, S_FUND] += pay
            worst = lo[t] if side > 0 else h[t]
            m_worst = m_l[t] if side > 0 else m_h[t]
            liq_hit = side * (m_o[t] - liq) <= 0 or side * (m_worst - liq) <= 0
            stop_hit = side * (worst - stop) <= 0
            stop_first = side * (stop - liq) > 0 and side * (m_o[t] - liq) > 0
            reason, px = -1, 0.0
            if stop_hit and (stop_first or not liq_hit):  # 4. intrabar exits
                reason = R_STOP
                ref = min(o[t], stop) if side > 0 else max(o[t], stop)
                px = fills.market_price(cst, -side, ref, v_prev, tick)
            elif liq_hit:
                reason, px = R_LIQ, liq
            elif side * ((h[t] if side > 0 else lo[t]) - tp) >= 0:
                reason = R_TP
                ref = max(o[t], tp) if side > 0 else min(o[t], tp)
                px = fills.market_price(cst, -side, ref, v_prev, tick)
            if reason >= 0:
                if reason == R_LIQ:
                    g = max(side * slots[k, S_QTY] * (px - slots[k, S_ENTRY]), -slots[k, S_MARGIN])
                    f = min(liq_fee * slots[k, S_QTY] * px, max(slots[k, S_MARGIN] + g, 0.0))
                else:
                    f = fills.fee(cst[fills.C_TAKER], slots[k, S_QTY], px)
                cash += _close(slots, k, trades, n_tr, t, px, float(reason), f, stats) - f
                fee_ev[n_fe, 0], fee_ev[n_fe, 1] = t, f
                n_fe += 1
                used_margin -= slots[k, S_MARGIN]
                n_tr += 1
                n_active -= 1
        upnl, n_open = 0.0, 0
        for k in range(n_slots if n_active > 0 else 0):  # 5. mark to market at the close
            if slots[k, S_ACTIVE] > 0:
                upnl += slots[k, S_SIDE] * slots[k, S_QTY] * (c[t] - slots[k, S_ENTRY])
                n_open += 1
        equity[t] = cash + upnl
        # Flat with an unchanged wallet inside the same day, the breaker cannot change: skip it (most bars).
        if equity[t] != prev_eq or time_ns[t] >= brk[6] or t == 0:
            paused[t] = risk.breaker_update(p, brk, time_ns[t], equity[t], prev_eq)
        else:
            paused[t] = paused[t - 1]
        prev_eq = equity[t]
        if t == n - 1 and not decide_last:
            break
        n_exiting, freed, holding = 0, 0.0, False
        for k in range(n_slots if n_active > 0 else 0):  # decisions for the next bar: time and signal exits
            if slots[k, S_ACTIVE] > 0:
                if t + 1 - slots[k, S_BAR] >= p[risk.P_MAX_HOLD]:
                    slots[k, S_EXIT] = R_TIME + 1.0
                elif exit_on_opposite and signal[t] == -slots[k, S_SIDE]:
                    slots[k, S_EXIT] = R_SIGNAL + 1.0
                elif by_table and signal[t] == 0:  # the position table: no view is flat
                    slots[k, S_EXIT] = R_SIGNAL + 1.0
                if slots[k, S_EXIT] > 0:
                    n_exiting += 1
                    freed += slots[k, S_MARGIN]
                elif by_table and signal[t] == slots[k, S_SIDE]:
                    holding = True  # the position table: a signal in the position's direction holds it
        if t == n - 1:  # decide_last: report the exits just decided
            j = 0
            for k in range(n_slots):
                if slots[k, S_ACTIVE] > 0 and slots[k, S_EXIT] > 0 and j < 8:
                    last[6 + 2 * j], last[7 + 2 * j] = slots[k, S_BAR], slots[k, S_EXIT] - 1.0
                    j += 1
            last[5] = j
        if signal[t] == 0 or pend_side != 0.0 or holding:
            continue
        skip = -1
        if paused[t]:
            skip = 0
        elif n_open - n_exiting >= n_slots:
            skip = 1
        elif not risk.passes_filters(p, spread_bps[t], atr[t], c[t], quote_vol[t]):
            skip = 2
        if skip >= 0:
            skips[skip] += 1
            if t == n - 1:
                last[4] = skip
        else:
            side = float(signal[t])
            dist = p[risk.P_STOP_ATR] * atr[t]
            frac = risk.risk_fraction(p, stats[0], stats[1], stats[2], stats[3], vol[t], dist / c[t])
            tier = tier_of(tiers, equity[t] * p[risk.P_LEVERAGE])
            max_lev = tiers[tier, 3] if tier >= 0 else tiers[tiers.shape[0] - 1, 3]
            # `scale` (0, 1]: the size input of the regime sizing (1 everywhere without it)
            if by_exposure:  # a share of equity; the margin of the positions exiting at the next open is free then
                qty = round_qty(risk.exposure_qty(p, equity[t], equity[t] - used_margin + freed, c[t], max_lev)
                                * scale[t], step)
            else:
                qty = round_qty(risk.position_qty(p, equity[t], equity[t] - used_margin, c[t], dist, frac, max_lev)
                                * scale[t], step)
            ref = fills.limit_price(cst, side, c[t], tick) if is_limit else c[t]
            # the chance of reaching the liquidation price within the holding horizon, at the intended price
            d_tier = tier_of(tiers, qty * ref)
            d_lev = min(p[risk.P_LEVERAGE], tiers[d_tier, 3]) if d_tier >= 0 else 0.0
            p_liq = risk.liquidation_probability(
                ref, liquidation_price(tiers, side, qty, ref, qty * ref / d_lev) if d_lev > 0 and qty > 0 else 0.0,
                vol[t], risk.liquidation_horizon(p))
            if qty * ref < min_notional:
                skips[3] += 1
                if t == n - 1:
                    last[4] = 3
            elif p_liq > p[risk.P_MAX_LIQ_PROB]:
                skips[6] += 1
                if t == n - 1:
                    last[4], last[22] = 6, p_liq
            else:
                pend_side, pend_qty, pend_dist, pend_limit, pend_pliq = side, qty, dist, ref, p_liq
                pend_expiry = t + int(cst[fills.C_LIMIT_TTL])
                if t == n - 1:
                    last[0], last[1], last[2], last[3], last[22] = side, qty, dist, ref, p_liq
    for k in range(n_slots):  # still open: marked at the last close, no exit fee
        if slots[k, S_ACTIVE] > 0:
            _close(slots, k, trades, n_tr, n - 1, c[n - 1], float(R_OPEN), 0.0, stats)
            n_tr += 1
    return equity, paused, fee_ev[:n_fe], fund_ev[:n_fu], trades[:n_tr], skips, last
