"""Alerts: Telegram, a generic webhook, email (SMTP), or the log when none is configured.

The bot token, webhook URL and SMTP password are secrets: they are used to send and never logged or returned.
Email: `smtp_host` and at least one recipient (`smtp_to`, comma-separated) turn it on; `smtp_security` is starttls
(default, port 587), ssl (port 465) or none (a relay on a trusted network, or a local test server); a login is sent
only when `smtp_user` is set. A failed send is
logged and reported to the caller (False), never raised into the trading or data path that asked for the alert.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import requests

log = logging.getLogger("btc_assets.notify")


@dataclass(frozen=True)
class Notifier:
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    webhook_url: str | None = None
    telegram_api: str = "https://api.telegram.org"
    timeout_s: float = 5.0
    smtp_host: str | None = None
    smtp_port: int = 0  # 0: the security mode's usual port (587 starttls, 465 ssl, 25 none)
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "btc-assets@localhost"
    smtp_to: str = ""

    def __post_init__(self) -> None:
        if self.smtp_security not in ("starttls", "ssl", "none"):
            raise ValueError(f"BTC_SMTP_SECURITY={self.smtp_security!r}: use starttls, ssl or none")

    @property
    def channels(self) -> list[str]:
        out = []
        if self.telegram_token and self.telegram_chat_id:
            out.append("telegram")
        if self.webhook_url:
            out.append("webhook")
        if self.smtp_host and self._recipients():
            out.append("email")
        return out or ["log"]

    def _recipients(self) -> list[str]:
        return [a.strip() for a in (self.smtp_to or "").split(",") if a.strip()]

    def send(self, title: str, text: str, level: str = "info") -> bool:
        """Deliver to every configured channel; True when all of them accepted it."""
        ok = True
        message = f"[{level.upper()}] {title}\n{text}"
        if self.channels == ["log"]:
            log.log(logging.WARNING if level != "info" else logging.INFO, "alert: %s", message)
            return True
        if "telegram" in self.channels:
            ok &= self._post(f"{self.telegram_api}/bot{self.telegram_token}/sendMessage",
                             {"chat_id": self.telegram_chat_id, "text": message}, "telegram")
        if "webhook" in self.channels:
            ok &= self._post(self.webhook_url, {"title": title, "text": text, "level": level}, "webhook")
        if "email" in self.channels:
            ok &= self._email(f"[btc-assets {level}] {title}", text)
        return ok

    def _email(self, subject: str, text: str) -> bool:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, self.smtp_from, ", ".join(self._recipients())
        msg.set_content(text)
        port = self.smtp_port or {"starttls": 587, "ssl": 465, "none": 25}[self.smtp_security]
        try:
            if self.smtp_security == "ssl":
                client = smtplib.SMTP_SSL(self.smtp_host, port, timeout=self.timeout_s,
                                          context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(self.smtp_host, port, timeout=self.timeout_s)
            with client:
                if self.smtp_security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.smtp_user:
                    client.login(self.smtp_user, self.smtp_password or "")
                refused = client.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            # the exception text may echo the login: only its type is logged
            log.error("alert via email (%s:%s) failed: %s", self.smtp_host, port, type(exc).__name__)
            return False
        if refused:
            log.error("alert via email: %d recipient(s) refused", len(refused))
            return False
        return True

    def _post(self, url: str, payload: dict, channel: str) -> bool:
        try:
            resp = requests.post(url, json=payload, timeout=self.timeout_s)
        except requests.RequestException as exc:
            log.error("alert via %s failed: %s", channel, type(exc).__name__)  # the URL may hold a token: not logged
            return False
        if resp.status_code >= 300:
            log.error("alert via %s refused: HTTP %s", channel, resp.status_code)
            return False
        return True
