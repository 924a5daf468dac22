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


def test_email_reaches_a_real_smtp_server_and_a_refused_login_is_reported(caplog):
    from btc_assets_tests.smtp_server import smtp_server

    password = "smtp-pass-FAKE-for-tests"
    with smtp_server(user="bot", password=password) as (inbox, port):
        n = Notifier(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_user="bot",
                     smtp_password=password, smtp_from="bot@example.org", smtp_to="risk@example.org, pm@example.org")
        assert n.channels == ["email"]
        assert n.send("daily swing 2024-02-10: open_long", "signal BUY")
        (m,) = inbox.messages
        assert m["to"] == ["risk@example.org", "pm@example.org"] and m["subject"].endswith("open_long")
        assert "signal BUY" in m["body"] and m["from"] == "bot@example.org"
        wrong = Notifier(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_user="bot",
                         smtp_password="wrong-" + password, smtp_to="risk@example.org")
        with caplog.at_level(logging.ERROR, logger="btc_assets.notify"):
            assert not wrong.send("x", "y")
        assert len(inbox.messages) == 1 and "alert via email" in caplog.text and "failed" in caplog.text
    # nothing listening: reported, not raised; the password is never logged
    with caplog.at_level(logging.ERROR, logger="btc_assets.notify"):
        assert not Notifier(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_user="bot",
                            smtp_password=password, smtp_to="a@b.c", timeout_s=0.5).send("x", "y")
    assert password not in caplog.text


def test_email_settings_come_from_the_environment_and_bad_ones_are_named():
    from btc_assets.defs.resources.trading import notifier_from_env

    env = {"BTC_SMTP_HOST": "127.0.0.1", "BTC_SMTP_PORT": "2525", "BTC_SMTP_TO": "a@b.c", "BTC_SMTP_SECURITY": "none"}
    n = notifier_from_env(env).notifier()
    assert n.channels == ["email"] and n.smtp_port == 2525 and n.smtp_security == "none"
    with pytest.raises(ValueError, match="BTC_SMTP_PORT='x'"):
        notifier_from_env({**env, "BTC_SMTP_PORT": "x"})
    with pytest.raises(ValueError, match="BTC_SMTP_SECURITY='tls'"):
        notifier_from_env({**env, "BTC_SMTP_SECURITY": "tls"})
    assert notifier_from_env({"BTC_SMTP_HOST": "h"}).notifier().channels == ["log"]  # no recipient: not on
