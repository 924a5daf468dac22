"""A whole order session with a recognisable fake key and secret: neither may appear in any log record, any
exception's text or repr, or any file written under the test's directory (journal, log file)."""

from __future__ import annotations

import logging
import traceback

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.data.rest.errors import BinanceError
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.trading.journal import Journal, client_order_id
from btc_assets_tests.lib.trading.brokers.conftest import make_session

CANARY_KEY = "CANARY-KEY-7f3a9c1e5b2d4f60"
CANARY_SECRET = "CANARY-SECRET-d41d8cd98f00b204e9800998ecf8427e"
BAR = pd.Timestamp("2024-01-01 00:05", tz="UTC")


def test_the_secret_appears_nowhere(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and urllib3's included
    handler = logging.FileHandler(tmp_path / "session.log")
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    texts: list[str] = []
    try:
        with run_in_thread(synthetic_bars(100, drift=1.0), CANARY_KEY, CANARY_SECRET) as fx:
            conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
            s = make_session(fx, Journal(conn), key=CANARY_KEY, secret=CANARY_SECRET, timeout_ms=300)
            texts += [repr(s.rest), repr(s.broker), str(vars(s.broker))]
            s.broker.start()
            fx.exchange.clock_skew_ms = 20_000  # -1021, then a server-time sync
            fx.faults.timeout(0.6, apply_first=True, method="POST", path="/fapi/v1/order")  # a lost ack
            assert s.broker.submit(client_order_id("canary", BAR, "entry"), BAR, "BUY", 0.01)
            s.broker.protect(client_order_id("canary", BAR, "entry"), "LONG", 40_000.0, 50_000.0)
            for leg, fault in (("exit", lambda: fx.faults.error(-2019, method="POST")),
                               ("exit2", lambda: fx.faults.banned(600))):
                fault()
                with pytest.raises(BinanceError) as err:
                    s.broker.submit(client_order_id("canary", BAR, leg), BAR, "SELL", 0.01)
                texts += [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value))]
            wrong = make_session(fx, Journal(conn), key=CANARY_KEY, secret=CANARY_SECRET + "x")
            with pytest.raises(BinanceError) as bad_sig:
                wrong.broker.position()
            texts += [str(bad_sig.value), "".join(traceback.format_exception(bad_sig.value))]
            conn.close()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"warehouse.duckdb", "session.log"}
    assert caplog.records, "the session should have logged something to scan"
    for secret in (CANARY_SECRET, CANARY_KEY):
        for text in texts:
            assert secret not in text
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret[:13]}… found in {path.name}"
