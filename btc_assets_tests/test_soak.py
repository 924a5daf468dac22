"""The soak's shortened form (CI): the worker on the fake exchange with faults injected keeps every invariant;
and each invariant's check fires when its violation is planted."""

import pandas as pd

from btc_assets_tests.fakes.binance.orders import Order
from btc_assets_tests.soak import INVARIANTS, protected_in_time, soak


def test_a_short_soak_under_faults_keeps_every_invariant():
    res = soak(bars=12, fault_rate=0.5, seed=7)
    assert res["faults_injected"] >= 4
    assert res["violations"] == dict.fromkeys(INVARIANTS, 0), res


def test_each_invariant_fires_when_its_violation_is_planted():
    def plant(i, p, fx):
        ex = fx.exchange
        bar_s = int(ex.bar[0] // 1000)
        if i == 2:  # an id journaled NEW twice
            p.sql("INSERT INTO trading.order_events SELECT * REPLACE (seq + 1000 AS seq) FROM trading.order_events "
                  "WHERE event = 'NEW' LIMIT 1")
        if i == 3:  # an entry the exchange accepted long after its bar closed
            late = Order(order_id=99_999_999, client_order_id=f"soak-{bar_s - 600}-entry-mk", symbol=ex.symbol,
                         side="BUY", type="MARKET", time_in_force="GTC", orig_qty=0.01, price=0.0,
                         reduce_only=False, time=bar_s * 1000)
            ex.orders[late.order_id] = late
        if i == 4:  # an entry left NEW, never resolved
            p.sql("INSERT INTO trading.order_events (client_order_id, event, event_time, bar_time, side, qty, price, "
                  "fee, broker, run_id, note, seq) VALUES ('soak-1-entry', 'NEW', now(), ?, 'BUY', 0.01, NULL, 0, "
                  "'binance-testnet', 'x', '', 100000)", [pd.Timestamp("2024-01-11 00:00")])
        if i in (5, 6):  # a position the journal does not know, and no stop for it
            ex.account.position(ex.symbol).amount = 0.5
            for a in ex.algo_orders.values():
                a.status = "CANCELED"

    res = soak(bars=8, fault_rate=0.0, seed=1, plant=plant)
    v = res["violations"]
    assert v["unique_ids"] >= 1 and v["lost_orders"] >= 1 and v["protected"] >= 1 and v["position"] >= 1, v
    assert v["late_entries"] >= 1, v


def test_a_worker_killed_at_random_moments_is_restarted_and_keeps_every_invariant():
    """The trading worker's process is SIGKILLed at a random moment of a bar (polling, deciding, sending, waiting
    for a fill, recording the run), then restarted: it finishes what the dead one left, and every invariant holds."""
    res = soak(bars=6, fault_rate=0.0, seed=3, kill_rate=0.7)
    assert res["kills"].get("killed", 0) >= 2, res
    assert res["violations"] == dict.fromkeys(INVARIANTS, 0), res


def test_protection_back_later_than_5_s_after_a_kill_is_a_violation():
    assert protected_in_time(0, 0.0, position_open=True) == 0  # no kill, stop in place
    assert protected_in_time(1, 0.0, position_open=True) == 1  # no stop for the open position
    assert protected_in_time(0, 3.0, position_open=True) == 0  # restarted and protected within 5 s
    assert protected_in_time(0, 7.5, position_open=True) == 1  # protected, but 7.5 s after the kill
    assert protected_in_time(0, 7.5, position_open=False) == 0  # flat: nothing to protect
