"""The notifier: each channel receives the alert; a failing channel is reported, and secrets never reach the log."""

import http.server
import json
import logging
import threading

import pytest

from btc_assets.lib.trading.notify import Notifier

SECRET = "123456:FAKE-BOT-TOKEN-for-tests"


class Capture(http.server.BaseHTTPRequestHandler):
    calls: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        Capture.calls.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(Capture.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Capture.calls.clear()
    Capture.status = 200
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_log_only_when_nothing_is_configured(caplog):
    with caplog.at_level(logging.INFO, logger="btc_assets.notify"):
        assert Notifier().send("breaker", "daily drawdown 5 %", level="warning")
    assert Notifier().channels == ["log"] and "daily drawdown" in caplog.text


def test_telegram_and_webhook_both_receive(server):
    n = Notifier(telegram_token=SECRET, telegram_chat_id="42", webhook_url=f"{server}/hook", telegram_api=server)
    assert n.send("fill", "BUY 0.010 @ 42000.0")
    paths = sorted(p for p, _ in Capture.calls)
    assert paths == [f"/bot{SECRET}/sendMessage", "/hook"]
    assert any(b.get("chat_id") == "42" and "BUY 0.010" in b["text"] for _, b in Capture.calls)


def test_refused_or_unreachable_is_false_and_the_token_is_not_logged(server, caplog):
    Capture.status = 500
    n = Notifier(telegram_token=SECRET, telegram_chat_id="42", telegram_api=server)
    with caplog.at_level(logging.ERROR):
        assert not n.send("kill switch", "flattened")
        assert not Notifier(webhook_url=f"http://127.0.0.1:9/{SECRET}", timeout_s=0.5).send("x", "y")
    assert SECRET not in caplog.text and "refused" in caplog.text
