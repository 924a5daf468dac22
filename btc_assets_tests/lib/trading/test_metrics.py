"""Trader metrics from the journal: account arithmetic by hand, Prometheus text that parses, the /metrics server."""

import threading
import time
import urllib.request

import duckdb
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from btc_assets.lib.data.rest.rate_limit import RateLimiter
from btc_assets.lib.trading.journal import Journal, OrderEvent
from btc_assets.lib.trading.metrics import render, snapshot, write_textfile
from btc_assets.cli.metrics_server import make_handler

T0 = pd.Timestamp("2024-02-29 22:00", tz="UTC")
M = pd.Timedelta(minutes=1)


@pytest.fixture()
def journal(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    j = Journal(conn)
    rows = [{"decision_id": f"d{i}", "bar_time": T0 + i * M, "decided_at": T0 + (i + 1) * M + pd.Timedelta(seconds=2),
             "run_id": "r", "model_version": "m/1", "p_sell": 0.1, "p_hold": 0.2, "p_buy": 0.7, "signal": 2,
             "target_position": 1.0, "price": price, "requested_at": T0 + (i + 1) * M}
            for i, price in enumerate([100.0, 110.0, 90.0, 95.0])]
    j.record_decisions(pd.DataFrame(rows))
    j.append(OrderEvent("o1", "NEW", T0, "BUY", 2.0, None, 0.0, "paper", "r"))
    j.append(OrderEvent("o1", "FILLED", T0, "BUY", 2.0, 105.0, 0.105, "paper", "r"))  # filled at bar 1's open
    yield conn
    conn.close()


def test_account_by_hand(journal):
    s = snapshot(journal, initial_equity=1000.0)
    assert s.position_btc == 2.0 and s.fills == 1 and s.orders_by_state == {"FILLED": 1}
    # cash 1000 - 210 - 0.105, marked at the last price 95: equity 979.895
    assert s.equity_usdt == pytest.approx(1000 - 210 - 0.105 + 190) and s.pnl_usdt == pytest.approx(-20.105)
    # equity path at decision prices: 1000 (flat), 1009.895, 969.895, 979.895 -> worst vs peak 1009.895
    assert s.max_drawdown == pytest.approx(969.895 / 1009.895 - 1)
    assert s.latency_s["decision_p50"] == pytest.approx(2.0)


def test_exposition_parses_and_carries_the_strategy_label(journal):
    text = render(snapshot(journal, 1000.0), "xgb_next3m").decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"btc_equity_usdt", "btc_pnl_usdt", "btc_orders", "btc_max_drawdown_ratio", "btc_latency_seconds"} <= set(families)
    sample = families["btc_position_btc"].samples[0]
    assert sample.labels == {"strategy": "xgb_next3m"} and sample.value == 2.0


def test_rate_limit_headroom_is_a_gauge_per_limit_and_absent_without_headers(journal):
    now = [60.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for headroom in (None, limiter.headroom()):  # paper trading / a live broker before its first reply
        text = render(snapshot(journal, 1000.0), "s", rate_limit_headroom=headroom).decode()
        assert "rate_limit_headroom" not in text
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "1800", "X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1M": "12"})
    text = render(snapshot(journal, 1000.0), "s", rate_limit_headroom=limiter.headroom()).decode()
    family = {f.name: f for f in text_string_to_metric_families(text)}["btc_rate_limit_headroom_ratio"]
    assert family.type == "gauge"
    assert {s.labels["limit"]: s.value for s in family.samples if s.labels["strategy"] == "s"} == {
        "REQUEST_WEIGHT_1M": pytest.approx(0.25), "ORDERS_10S": pytest.approx(0.99), "ORDERS_1M": pytest.approx(0.99)}


def test_server_serves_the_snapshot_and_its_age(tmp_path, journal):
    import http.server

    path = tmp_path / "metrics" / "trading.prom"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(path))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        assert b"btc_metrics_snapshot_present 0" in urllib.request.urlopen(url).read()
        write_textfile(path, render(snapshot(journal, 1000.0), "s"))
        time.sleep(0.05)
        body = urllib.request.urlopen(url).read().decode()
        assert "btc_equity_usdt" in body and "btc_metrics_snapshot_age_seconds" in body
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.replace("/metrics", "/other"))
    finally:
        server.shutdown()


def test_realised_pnl_per_fill_at_average_cost():
    import pandas as pd

    from btc_assets.lib.trading.metrics import realised_pnl

    fills = pd.DataFrame({"side": ["BUY", "BUY", "SELL", "SELL", "BUY"], "qty": [1.0, 1.0, 1.5, 1.5, 1.0],
                          "price": [100.0, 110.0, 120.0, 90.0, 80.0], "fee": [0.1] * 5})
    r = realised_pnl(fills)
    # opens 1 @100, adds 1 @110 (avg 105); sells 1.5 @120: +22.5; sells 1.5 @90: closes 0.5 (-7.5), opens short 1
    # @90; buys 1 @80: +10 on the short
    assert r["gross_pnl"].tolist() == [0.0, 0.0, 22.5, -7.5, 10.0]
    assert r["position_after"].tolist() == [1.0, 2.0, 0.5, -1.0, 0.0]
    assert r["net_pnl"].iloc[2] == 22.5 - 0.1


def _journal_of(fills):
    """A fresh DuckDB journal holding these FILLED events (client order id, broker, side, qty, price, fee)."""
    import duckdb
    import pandas as pd

    from btc_assets.lib.trading.journal import Journal, OrderEvent

    conn = duckdb.connect()
    j = Journal(conn)
    t = pd.Timestamp("2024-02-01", tz="UTC")
    for cid, broker, side, qty, price, fee in fills:
        j.append(OrderEvent(cid, "FILLED", t, side, qty, price, fee, broker, "r"))
    return conn


def test_books_show_each_strategy_and_venue_apart_and_together():
    from btc_assets.lib.trading import metrics as trading_metrics

    conn = _journal_of([
        ("xgb_next3m-1-e", "paper", "BUY", 1.0, 100.0, 0.1), ("xgb_next3m-2-x", "paper", "SELL", 1.0, 110.0, 0.1),
        ("daily_swing-1-paper-open", "paper-daily_swing", "SELL", 2.0, 50.0, 0.2),
        ("daily_swing-2-paper-close", "paper-daily_swing", "BUY", 2.0, 45.0, 0.2)])
    books = trading_metrics.books(conn).set_index(["strategy", "venue"])
    assert books.loc[("xgb_next3m", "paper"), "net_pnl"] == pytest.approx(10.0 - 0.2)
    assert books.loc[("daily_swing", "paper-daily_swing"), "net_pnl"] == pytest.approx(10.0 - 0.4)
    assert books.loc[("all", "paper"), "fills"] == 2  # each venue's own total
    assert books.loc[("all", "all"), "net_pnl"] == pytest.approx(19.4) and books.loc[("all", "all"), "fills"] == 4
    # the scalper's own account leaves the daily strategy's book out
    assert trading_metrics.snapshot(conn, 1_000.0).fills == 2


def test_open_books_are_marked_at_the_latest_close_and_an_unmarked_one_stays_unknown():
    import numpy as np
    import pandas as pd

    from btc_assets.lib.trading import metrics as trading_metrics

    conn = _journal_of([
        ("xgb_next3m-1-e", "paper", "BUY", 1.0, 100.0, 0.1), ("xgb_next3m-2-e", "paper", "BUY", 1.0, 110.0, 0.1),
        ("daily_swing-1-open", "kraken-demo", "SELL", 2.0, 50.0, 0.2),
        ("daily_swing-2-close", "kraken-demo", "BUY", 2.0, 45.0, 0.2)])
    assert trading_metrics.last_mark(conn) is None  # no bars at all
    unmarked = trading_metrics.books(conn).set_index(["strategy", "venue"])
    assert np.isnan(unmarked.loc[("xgb_next3m", "paper"), "unrealised_pnl"])
    assert np.isnan(unmarked.loc[("all", "all"), "total_pnl"])  # never a partial total
    assert unmarked.loc[("daily_swing", "kraken-demo"), "unrealised_pnl"] == 0.0  # flat: nothing to mark
    conn.execute("CREATE SCHEMA silver; CREATE TABLE silver.klines_1m (open_time TIMESTAMP, close DOUBLE)")
    conn.execute("INSERT INTO silver.klines_1m VALUES ('2024-02-01 10:00', 118.0), ('2024-02-01 10:01', 120.0)")
    mark = trading_metrics.last_mark(conn)
    assert mark[0] == 120.0 and mark[1] == pd.Timestamp("2024-02-01 10:02", tz="UTC") and "silver.klines_1m" in mark[2]
    books = trading_metrics.books(conn, mark).set_index(["strategy", "venue"])
    scalper = books.loc[("xgb_next3m", "paper")]
    assert scalper["position"] == 2.0 and scalper["avg_cost"] == pytest.approx(105.0)
    assert scalper["unrealised_pnl"] == pytest.approx(2.0 * (120.0 - 105.0))
    assert scalper["total_pnl"] == pytest.approx(30.0 - 0.2)
    total = books.loc[("all", "all")]
    assert total["total_pnl"] == pytest.approx(30.0 - 0.2 + 10.0 - 0.4)
