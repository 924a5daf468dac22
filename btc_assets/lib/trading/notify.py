"""Alerts: Telegram, a generic webhook, or the log when neither is configured.

The bot token and webhook URL are secrets: they are used to send and never logged or returned. A failed send is
logged and reported to the caller (False), never raised into the trading or data path that asked for the alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests

log = logging.getLogger("btc_assets.notify")


@dataclass(frozen=True)
class Notifier:
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    webhook_url: str | None = None
    telegram_api: str = "https://api.telegram.org"
    timeout_s: float = 5.0

    @property
    def channels(self) -> list[str]:
        out = []
        if self.telegram_token and self.telegram_chat_id:
            out.append("telegram")
        if self.webhook_url:
            out.append("webhook")
        return out or ["log"]

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
        return ok

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
