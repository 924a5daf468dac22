"""The live dashboard page: every chart draws in a real browser, the headline states the account and its breakers."""

import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.trading import dashboard
from btc_assets.lib.trading.metrics import realised_pnl
from btc_assets_tests.lib.research.backtest.test_report import CHROMIUM_FLAGS, _chromium


def _state(kill: str | None = None, paused: bool = False) -> dict:
    t = pd.date_range("2024-01-01", periods=3 * 1440, freq="min", tz="UTC")
    eq = pd.DataFrame({"bar_time": t, "position_btc": 0.0,
                       "equity_usdt": 10_000 + np.cumsum(np.random.default_rng(0).normal(0, 1, len(t)))})
    fills = pd.DataFrame({"client_order_id": ["a-entry", "a-tp", "b-entry", "b-sl"],
                          "bar_time": t[[10, 50, 1500, 1600]].tz_localize(None), "side": ["BUY", "SELL", "SELL", "BUY"],
                          "qty": [0.1] * 4, "price": [100.0, 110.0, 100.0, 105.0], "fee": [0.01] * 4})
    fills = pd.concat([fills, realised_pnl(fills)], axis=1)
    orders = fills[["client_order_id", "side", "qty", "price", "bar_time"]].assign(state="FILLED")
    return {"equity": eq, "fills": fills, "orders": orders, "open_orders": orders.iloc[:0],
            "last_decision": (t[-1], paused, "xgb_next3m:4", 100.0), "kill_switch": kill}


def test_headline_states_the_account_and_the_breakers():
    page = dashboard.render(_state(), 10_000, "Live test")
    assert page.figures["closing_fills"] == 2 and page.figures["win_rate"] == 0.5 and page.figures["days"] == 3
    assert "running: no breaker tripped" in page.html and "model xgb_next3m:4" in page.html
    assert "kill switch ENGAGED: manual stop" in dashboard.render(_state(kill="manual stop"), 10_000, "t").html
    assert "breaker PAUSED" in dashboard.render(_state(paused=True), 10_000, "t").html
    empty = _state()
    empty["equity"] = empty["equity"].iloc[:0]
    with pytest.raises(ValueError, match="no decided bar yet"):
        dashboard.render(empty, 10_000, "t")


def test_the_page_shows_every_book_of_the_journal():
    st = _state()
    st["books"] = pd.DataFrame([
        {"strategy": "xgb_next3m", "venue": "paper", "fills": 4, "fees": 0.04, "net_pnl": 0.46, "position": 0.0,
         "unrealised_pnl": 0.0, "total_pnl": 0.46},
        {"strategy": "daily_swing", "venue": "kraken-demo", "fills": 1, "fees": 0.2, "net_pnl": -0.2, "position": -0.01,
         "unrealised_pnl": 3.5, "total_pnl": 3.3},
        {"strategy": "all", "venue": "all", "fills": 5, "fees": 0.24, "net_pnl": 0.26, "position": float("nan"),
         "unrealised_pnl": 3.5, "total_pnl": 3.76}])
    st["mark"] = (42_000.0, pd.Timestamp("2024-01-03 23:59", tz="UTC"), "Binance USD-M BTCUSDT 1m close at x")
    page = dashboard.render(st, 10_000, "Live test").html
    assert "Every book in the journal" in page and "daily_swing" in page and "kraken-demo" in page
    assert "marked at Binance USD-M BTCUSDT 1m close" in page and "-0.0100" in page and "3.76" in page
    st["books"], st["mark"] = st["books"].iloc[:0], None
    assert "Every book in the journal</b>: no fill yet" in dashboard.render(st, 10_000, "t").html


def test_every_chart_draws_in_headless_chromium(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    path = tmp_path / "live.html"
    path.write_text(dashboard.render(_state(), 10_000, "Live test").html)
    out = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    status = re.search(r'<pre id="render-status"([^>]*)>', out.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', status.group(1)))
    assert attrs.get("data-errors") == "0" and attrs.get("data-plots") == str(dashboard.CHARTS)
