"""The trading path's resources: the broker and risk settings, the live feed, the replay clock and the notifier.

| variable            | default                        | what                                                      |
|---------------------|--------------------------------|-----------------------------------------------------------|
| BTC_REPLAY_START/END| the last 2 hours of the sample | the replayed window of the live sensor in replay mode     |
| BTC_REPLAY_SPEED    | 60                             | replayed minutes per wall-clock minute                    |
| BTC_LIVE_SOURCE     | replay                         | what tells the live sensor a bar closed: replay, collector or rest |
| BTC_TRADING_MODE    | paper                          | paper, testnet or live (live on production also needs BTC_LIVE_CONFIRM) |
| BINANCE_TRADING_URL | https://testnet.binancefuture.com | the Binance USD-M REST base of the broker               |
| BINANCE_API_KEY/SECRET | unset                       | the broker's keys: read only as dg.EnvVar, never logged    |
| BTC_SESSION_START   | the first bar decided          | where the rules' state (equity, Kelly, breakers) starts   |
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from btc_assets.lib.strategies.scalper import STRATEGY as SCALPER
from btc_assets.lib.trading.brokers.safety import env_mode
from btc_assets.lib.trading.notify import Notifier


class TradingResource(dg.ConfigurableResource):
    """The strategy's trading parameters and its broker.

    mode: paper (default: the backtest's fill model on the live bars, nothing leaves the machine), testnet or live
    (the Binance broker at ``binance_url``). A network broker also needs BTC_TRADING_MODE set to the same mode in
    the environment, and live on Binance production the second opt-in BTC_LIVE_CONFIRM (lib/brokers/safety.py);
    the keys arrive only as dg.EnvVar (BINANCE_API_KEY / BINANCE_API_SECRET), never as plain config.
    """

    strategy: str = SCALPER.name  # the scalper's (lib/strategies/scalper.py), as every default below marked so
    mode: str = Field(default="paper", description="BTC_TRADING_MODE: paper | testnet | live")
    notional_usdt: float = Field(default=10_000.0, description="equity the rules size against (USDT)")
    max_positions: int = Field(default=1, description="one position at a time: Binance nets a one-way account, "
                               "so each position's stop and target can be closePosition orders")
    session_start: str = Field(default="", description="first bar of the trading session (empty: the first bar "
                               "ever decided); the rules' state (equity, Kelly, breakers) runs from here")
    daily_drawdown: float = Field(default=0.05, description="the rules' equity this far below the day's opening "
                                  "pauses entries until the next UTC day (and alerts)")
    weekly_drawdown: float = 0.15
    max_hold_bars: int = Field(default=SCALPER.horizon_bars, description="the time exit: a position is closed at market after this "
                               "many 1m bars (the backtest's rules and the live path alike)")
    leverage: int = Field(default=2, description="one setting for the rules' sizing and liquidation guard and for "
                          "the exchange (set at start and verified before every run)")
    max_liquidation_probability: float = Field(
        default=0.01, description="an entry whose chance of reaching its liquidation price within max_hold_bars "
        "(driftless Brownian motion at the volatility known at the decision) exceeds this is refused; recorded on "
        "every decision and trade (backtest and live alike)")
    regime_filter: str = Field(
        default="none", description="none, or direction: enter only in the direction of the day's 1-day TFT forecast "
        "(models/regime_forecast; a day without one gets no entry), in the backtest and live alike")
    regime_sizing: str = Field(
        default="none", description="none, or spread: scale each entry's size by the usual 1-day TFT forecast spread "
        "(median of the 30 days before) over the day's, clipped to [0.25, 1] (lib/research/regime.py), in the "
        "backtest and live alike")
    margin_mode: str = Field(default="ISOLATED", description="ISOLATED or CROSSED, set on the exchange and verified")
    taker_fee: float = 0.0005
    maker_fee: float = 0.0002
    step_size: float = 0.001
    min_notional: float = 10.0
    binance_url: str = Field(default="https://testnet.binancefuture.com", description="BINANCE_TRADING_URL")
    api_key: str | None = Field(default=None, description="dg.EnvVar('BINANCE_API_KEY') only")
    api_secret: str | None = Field(default=None, description="dg.EnvVar('BINANCE_API_SECRET') only")
    max_order_delay_s: float = Field(default=60.0, description="an exchange order is started only within this many "
                                     "seconds of the sensor's request for its bar: a late order is another trade")
    maker_tries: int = Field(default=3, description="post-only quotes before the rest goes as a market order")
    requote_after_s: float = Field(default=2.0, description="seconds a quote rests before it is requoted")
    reconcile_tolerance: float = Field(default=0.0005, description="BTC of difference tolerated between the "
                                       "broker's position and the journal's before trading stops")
    model_handover: str = Field(default="until_trained", description="while the week's model is not trained yet "
                                "(Monday before its retrain) the previous promoted model keeps trading, stated on "
                                "every decision; until_promoted also while it is trained but not promoted")
    metrics_file: str = Field(default="", description="Prometheus text snapshot written after every trading run")
    kill_file: str = Field(default="", description="while this file exists, trading cancels, flattens and stops")

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        if self.mode not in ("paper", "testnet", "live"):
            raise ValueError(f"trading mode {self.mode!r} is unknown: use paper, testnet or live")
        if self.margin_mode not in ("ISOLATED", "CROSSED") or not 1 <= self.leverage <= 125:
            raise ValueError(f"margin_mode {self.margin_mode!r} / leverage {self.leverage}: use ISOLATED or CROSSED "
                             "and a leverage from 1 to 125")
        if self.model_handover not in ("until_trained", "until_promoted"):
            raise ValueError(f"model_handover {self.model_handover!r} is unknown: use until_trained or until_promoted")
        from btc_assets.lib.research.regime import FILTERS, SIZINGS

        if self.regime_filter not in FILTERS:
            raise ValueError(f"regime_filter {self.regime_filter!r} is unknown: use one of {', '.join(FILTERS)}")
        if self.regime_sizing not in SIZINGS:
            raise ValueError(f"regime_sizing {self.regime_sizing!r} is unknown: use one of {', '.join(SIZINGS)}")
        if not 0 <= self.max_liquidation_probability <= 1:
            raise ValueError(f"max_liquidation_probability {self.max_liquidation_probability}: a probability from 0 "
                             "to 1 (1 turns the guard off)")

    def risk_config(self):
        from btc_assets.lib.research.risk import RiskConfig

        return RiskConfig(max_positions=self.max_positions, daily_dd=self.daily_drawdown,
                          weekly_dd=self.weekly_drawdown, leverage=float(self.leverage),
                          max_hold_bars=self.max_hold_bars, max_liq_prob=self.max_liquidation_probability)

    def costs(self):
        from btc_assets.lib.research.backtest import Costs

        return Costs(taker_fee=self.taker_fee, maker_fee=self.maker_fee)

    def rules(self) -> dict:
        """The risk rules' arguments of lib/backtest simulate and decide: the live path and its parity check."""
        return {"initial_equity": self.notional_usdt, "costs": self.costs(), "risk": self.risk_config()}

    def broker(self, journal, run_id: str, market=None):
        """The paper broker (filling against `market`, a lib.live_market.RecordedMarket, when given), or the Binance
        broker (started: clock synced, leverage and margin set, reconciled)."""
        from btc_assets.lib.trading.brokers.paper import PaperBroker

        if self.mode == "paper":
            return PaperBroker(journal, self.taker_fee, run_id, self.strategy, market=market,
                               initial_balance=self.notional_usdt)
        from btc_assets.lib.trading.brokers.binance import BinanceBroker, ExecutionConfig
        from btc_assets.lib.trading.brokers.binance_rest import BinanceRest

        if not (self.api_key and self.api_secret):
            raise dg.Failure(f"trading mode {self.mode} needs BINANCE_API_KEY and BINANCE_API_SECRET in the "
                             "environment (passed as dg.EnvVar); nothing was sent")
        requested = env_mode()
        if requested != self.mode:
            raise dg.Failure(f"the trading resource says {self.mode} but BTC_TRADING_MODE={requested}: both must "
                             "agree before any order leaves this machine; nothing was sent")
        rest = BinanceRest(self.api_key, self.api_secret, self.binance_url)  # refuses a URL the mode does not allow
        broker = BinanceBroker(rest, journal, run_id, ExecutionConfig(
            maker_fee=self.maker_fee, taker_fee=self.taker_fee, maker_tries=self.maker_tries,
            requote_after_s=self.requote_after_s, poll_s=min(0.2, self.requote_after_s), leverage=self.leverage,
            margin_type=self.margin_mode))
        broker.start()  # reconciled after settle() in trading/orders: a stop may have fired since the last run
        return broker


    def kraken_broker(self, journal, run_id: str):
        """The Kraken Futures broker (lib/trading/brokers/kraken.py) from the environment alone — keys
        KRAKEN_FUTURES_API_KEY / _SECRET, KRAKEN_FUTURES_URL (default the demo), KRAKEN_FUTURES_SYMBOL (PF_XBTUSD) —
        at the trading settings' fees, maker tries and leverage; started (instrument, flex account, leverage,
        reconciled). BTC_TRADING_MODE=testnet reaches Kraken's demo only; production needs live + BTC_LIVE_CONFIRM."""
        from btc_assets.lib.trading.brokers.kraken import KrakenExecution, KrakenFuturesBroker
        from btc_assets.lib.trading.brokers.kraken_rest import KrakenError
        from btc_assets.lib.trading.brokers.safety import TradingNotAllowed

        execution = KrakenExecution(maker_fee=self.maker_fee, taker_fee=self.taker_fee, maker_tries=self.maker_tries,
                                    requote_after_s=self.requote_after_s, poll_s=min(0.2, self.requote_after_s),
                                    max_leverage=float(self.leverage))
        try:
            broker = KrakenFuturesBroker.from_env(journal, run_id, config=execution)
            broker.start()
        except (TradingNotAllowed, KrakenError, ValueError) as exc:
            raise dg.Failure(f"Kraken Futures broker: {exc}") from None
        return broker


def trading_from_env(root: Path) -> TradingResource:
    mode = env_mode()
    keys = {f: dg.EnvVar(v) for f, v in (("api_key", "BINANCE_API_KEY"), ("api_secret", "BINANCE_API_SECRET"))
            if os.environ.get(v)}
    return TradingResource(mode=mode, metrics_file=str(root / "metrics" / "trading.prom"),
                           kill_file=str(root / "KILL"),
                           binance_url=os.environ.get("BINANCE_TRADING_URL", "https://testnet.binancefuture.com"),
                           session_start=os.environ.get("BTC_SESSION_START", ""), **keys)


class LiveFeedResource(dg.ConfigurableResource):
    """Where the live sensor learns that a bar closed: replay (silver, on a fast clock), the collector's
    recordings, or REST polling of /fapi/v1/klines."""

    source: str = Field(default="replay", description="BTC_LIVE_SOURCE: replay | collector | rest")
    rest_url: str = Field(default="https://fapi.binance.com", description="BINANCE_REST_URL (rest source)")
    symbol: str = "BTCUSDT"

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        if self.source not in ("replay", "collector", "rest"):
            raise ValueError(f"live source {self.source!r} is unknown: use replay, collector or rest")


class NotifierResource(dg.ConfigurableResource):
    """Alerts (fills, breakers, kill switch, failed runs). Secrets arrive only as dg.EnvVar; unset: the log."""

    telegram_bot_token: str | None = None
    telegram_chat_id: str | None = None
    webhook_url: str | None = None
    smtp_host: str | None = Field(default=None, description="BTC_SMTP_HOST: email alerts on when set (with BTC_SMTP_TO)")
    smtp_port: int = Field(default=0, description="BTC_SMTP_PORT (0: 587 starttls, 465 ssl, 25 none)")
    smtp_security: str = Field(default="starttls", description="BTC_SMTP_SECURITY: starttls | ssl | none")
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, description="dg.EnvVar('BTC_SMTP_PASSWORD') only")
    smtp_from: str = "btc-assets@localhost"
    smtp_to: str = Field(default="", description="BTC_SMTP_TO: comma-separated recipients")

    def notifier(self) -> Notifier:
        return Notifier(self.telegram_bot_token, self.telegram_chat_id, self.webhook_url,
                        smtp_host=self.smtp_host, smtp_port=self.smtp_port, smtp_security=self.smtp_security,
                        smtp_user=self.smtp_user, smtp_password=self.smtp_password, smtp_from=self.smtp_from,
                        smtp_to=self.smtp_to)


def notifier_from_env(env=os.environ) -> NotifierResource:
    """EnvVar for each configured secret (checked for presence only, so nothing secret is read at load time); the
    SMTP settings that are not secret as plain values, a malformed port or security mode refused by name."""
    fields = {"telegram_bot_token": "TELEGRAM_BOT_TOKEN", "telegram_chat_id": "TELEGRAM_CHAT_ID",
              "webhook_url": "BTC_ALERT_WEBHOOK_URL", "smtp_password": "BTC_SMTP_PASSWORD"}
    plain = {"smtp_host": "BTC_SMTP_HOST", "smtp_user": "BTC_SMTP_USER", "smtp_from": "BTC_SMTP_FROM",
             "smtp_to": "BTC_SMTP_TO", "smtp_security": "BTC_SMTP_SECURITY"}
    values = {f: env[v] for f, v in plain.items() if env.get(v)}
    if values.get("smtp_security", "starttls") not in ("starttls", "ssl", "none"):
        raise ValueError(f"BTC_SMTP_SECURITY={values['smtp_security']!r}: set it to starttls, ssl or none")
    if env.get("BTC_SMTP_PORT"):
        try:
            values["smtp_port"] = int(env["BTC_SMTP_PORT"])
        except ValueError:
            raise ValueError(f"BTC_SMTP_PORT={env['BTC_SMTP_PORT']!r} is not a port number: set it to e.g. 587 "
                             "or unset it") from None
    return NotifierResource(**{f: dg.EnvVar(v) for f, v in fields.items() if env.get(v)}, **values)


class ReplayResource(dg.ConfigurableResource):
    """The replayed window of the live sensor in replay mode (empty start/end: the last 2 hours in silver)."""

    start: str = ""
    end: str = ""
    speed: float = 60.0
