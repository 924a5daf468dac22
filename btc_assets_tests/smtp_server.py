"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for the email notifier's tests; with
`password`, it requires AUTH LOGIN/PLAIN with that password (no TLS: a loopback test server)."""

from __future__ import annotations

import contextlib
import logging
import socket
import warnings
from email import message_from_bytes

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class _Keeper:
    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        msg = message_from_bytes(envelope.content)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": msg["Subject"],
                              "body": msg.get_payload(decode=True).decode(errors="replace")})
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def smtp_server(user: str | None = None, password: str | None = None):
    keeper = _Keeper()
    kwargs = {}
    if password is not None:
        def auth(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
            return AuthResult(success=ok)
        kwargs = {"authenticator": auth, "auth_required": True, "auth_require_tls": False}
    port = _free_port()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # the server's own chatter about AUTH without TLS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ctl = Controller(keeper, hostname="127.0.0.1", port=port, **kwargs)
        ctl.start()
    try:
        yield keeper, port
    finally:
        ctl.stop()
