"""Every resource of the graph, chosen once from the environment (BTC_ENV=local by default).

| variable            | default                        | what                                                      |
|---------------------|--------------------------------|-----------------------------------------------------------|
| BTC_ENV             | local                          | resource profile (local: DuckDB + files, nothing to run)  |
| BTC_DATA_DIR        | ./data                         | DuckDB warehouse, raw files (lake), MLflow store, DAGSTER_HOME |
| BINANCE_ARCHIVE_URL | https://data.binance.vision    | archive root: https URL, file:// URL or a local mirror path |
| BTC_SYMBOL          | BTCUSDT                        | the USD-M perpetual traded                                |
| BTC_REPLAY_START/END| the last 2 hours of the sample | the replayed window of the live sensor in replay mode     |
| BTC_REPLAY_SPEED    | 60                             | replayed minutes per wall-clock minute                    |
| BTC_LIVE_SOURCE     | replay                         | what tells the live sensor a bar closed: replay, collector or rest |
| BTC_TRADING_MODE    | paper                          | paper, testnet or live (live on production also needs BTC_LIVE_CONFIRM) |
| BINANCE_TRADING_URL | https://testnet.binancefuture.com | the Binance USD-M REST base of the broker               |
| BINANCE_API_KEY/SECRET | unset                       | the broker's keys: read only as dg.EnvVar, never logged    |
| BTC_SESSION_START   | the first bar decided          | where the rules' state (equity, Kelly, breakers) starts   |

Non-secret settings are resolved when the definitions load so the UI shows the values in force; secrets (the
trading keys of the live issue) only ever travel as dg.EnvVar.
"""


import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from btc_assets.lib.data.archive.files import ArchiveClient
from btc_assets.lib.trading.brokers.safety import env_mode
from btc_assets.lib.trading.notify import Notifier
from btc_assets.lib.storage.table_mirror import S3TableMirror, mirroring

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
DEFAULT_REST_URL = "https://fapi.binance.com"
SAMPLE_ARCHIVE = Path(__file__).resolve().parents[1] / "sample_data" / "archive"


class ArchiveResource(dg.ConfigurableResource):
    """Where archive files come from: data.binance.vision or a mirror in its exact layout."""

    base_url: str = Field(default=DEFAULT_ARCHIVE_URL, description="BINANCE_ARCHIVE_URL")
    symbol: str = Field(default="BTCUSDT", description="BTC_SYMBOL")
    timeout_s: float = 30.0
    max_attempts: int = 4

    def client(self) -> ArchiveClient:
        return ArchiveClient(self.base_url, timeout_s=self.timeout_s, max_attempts=self.max_attempts)


class LakeResource(dg.ConfigurableResource):
    """Raw files kept exactly as received (bronze), and other file artefacts (reports), under one root."""

    root: str

    def path(self, relpath: str) -> Path:
        p = (Path(self.root) / relpath).resolve()
        if Path(self.root).resolve() not in p.parents:
            raise ValueError(f"lake path {relpath!r} escapes the lake root {self.root}")
        return p

    def write_bytes(self, relpath: str, data: bytes) -> str:
        """Write atomically (a crash never leaves half a file under the real name); returns the file's URI."""
        p = self.path(relpath)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(p)
        return p.as_uri()

    def read_bytes(self, relpath: str) -> bytes:
        p = self.path(relpath)
        if not p.exists():
            raise FileNotFoundError(f"{p} is not in the lake: materialize the bronze partition that fetches it first")
        return p.read_bytes()

    def uri(self, relpath: str) -> str:
        return self.path(relpath).as_uri()


class S3LakeResource(dg.ConfigurableResource):
    """The lake on S3 (production): the same interface as LakeResource, objects under s3://bucket/prefix/."""

    bucket: str
    prefix: str = "lake"
    s3: dg.ResourceDependency[S3Resource]

    def key(self, relpath: str) -> str:
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"lake path {relpath!r} must be relative and stay inside the lake")
        return f"{self.prefix.strip('/')}/{relpath}"

    def write_bytes(self, relpath: str, data: bytes) -> str:
        self.s3.get_client().put_object(Bucket=self.bucket, Key=self.key(relpath), Body=data)
        return self.uri(relpath)

    def read_bytes(self, relpath: str) -> bytes:
        client = self.s3.get_client()
        try:
            return client.get_object(Bucket=self.bucket, Key=self.key(relpath))["Body"].read()
        except client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"{self.uri(relpath)} is not in the lake: materialize the bronze partition "
                                    "that fetches it first") from exc

    def uri(self, relpath: str) -> str:
        return f"s3://{self.bucket}/{self.key(relpath)}"


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse file; its folder is created on first use (a fresh volume or data dir).

    With `mirror_bucket` (production), every window a write replaces is also written to S3 as parquet
    (lib/table_mirror.py), so the tables survive the volume and `btc-assets restore-warehouse` rebuilds them.
    """

    mirror_bucket: str | None = None

    def mirror(self) -> S3TableMirror | None:
        if not self.mirror_bucket:
            return None
        import boto3  # boto3's own settings: credentials chain, AWS_ENDPOINT_URL_S3 for S3-compatible stores

        return S3TableMirror(boto3.client("s3"), self.mirror_bucket)

    @contextlib.contextmanager
    def get_connection(self) -> Iterator:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as conn, mirroring(self.mirror()):
            yield conn


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry (sqlite + local artifacts locally)."""

    tracking_uri: str
    artifact_root: str

    def activate(self, experiment: str) -> str:
        """Point mlflow at this store and return the experiment id (created with our artifact root)."""
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):  # a local store: make its folder
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            return mlflow.create_experiment(experiment, artifact_location=f"{self.artifact_root}/{experiment}")
        return exp.experiment_id


class TradingResource(dg.ConfigurableResource):
    """The strategy's trading parameters and its broker.

    mode: paper (default: the backtest's fill model on the live bars, nothing leaves the machine), testnet or live
    (the Binance broker at ``binance_url``). A network broker also needs BTC_TRADING_MODE set to the same mode in
    the environment, and live on Binance production the second opt-in BTC_LIVE_CONFIRM (lib/brokers/safety.py);
    the keys arrive only as dg.EnvVar (BINANCE_API_KEY / BINANCE_API_SECRET), never as plain config.
    """

    strategy: str = "xgb_next3m"
    mode: str = Field(default="paper", description="BTC_TRADING_MODE: paper | testnet | live")
    notional_usdt: float = Field(default=10_000.0, description="equity the rules size against (USDT)")
    max_positions: int = Field(default=1, description="one position at a time: Binance nets a one-way account, "
                               "so each position's stop and target can be closePosition orders")
    session_start: str = Field(default="", description="first bar of the trading session (empty: the first bar "
                               "ever decided); the rules' state (equity, Kelly, breakers) runs from here")
    daily_drawdown: float = Field(default=0.05, description="the rules' equity this far below the day's opening "
                                  "pauses entries until the next UTC day (and alerts)")
    weekly_drawdown: float = 0.15
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
    metrics_file: str = Field(default="", description="Prometheus text snapshot written after every trading run")
    kill_file: str = Field(default="", description="while this file exists, trading cancels, flattens and stops")

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        if self.mode not in ("paper", "testnet", "live"):
            raise ValueError(f"trading mode {self.mode!r} is unknown: use paper, testnet or live")

    def risk_config(self):
        from btc_assets.lib.research.risk import RiskConfig

        return RiskConfig(max_positions=self.max_positions, daily_dd=self.daily_drawdown,
                          weekly_dd=self.weekly_drawdown)

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
            return PaperBroker(journal, self.taker_fee, run_id, self.strategy, market=market)
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
            requote_after_s=self.requote_after_s, poll_s=min(0.2, self.requote_after_s)))
        broker.start()  # reconciled after settle() in trading/orders: a stop may have fired since the last run
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

    def notifier(self) -> Notifier:
        return Notifier(self.telegram_bot_token, self.telegram_chat_id, self.webhook_url)


def notifier_from_env() -> NotifierResource:
    """EnvVar for each configured secret (checked for presence only, so nothing secret is read at load time)."""
    fields = {"telegram_bot_token": "TELEGRAM_BOT_TOKEN", "telegram_chat_id": "TELEGRAM_CHAT_ID",
              "webhook_url": "BTC_ALERT_WEBHOOK_URL"}
    return NotifierResource(**{f: dg.EnvVar(v) for f, v in fields.items() if os.environ.get(v)})


class ReplayResource(dg.ConfigurableResource):
    """The replayed window of the live sensor in replay mode (empty start/end: the last 2 hours in silver)."""

    start: str = ""
    end: str = ""
    speed: float = 60.0


def data_dir() -> Path:
    return Path(os.environ.get("BTC_DATA_DIR", "./data")).resolve()


def local_resources(root: Path, archive_url: str = DEFAULT_ARCHIVE_URL, symbol: str = "BTCUSDT",
                    replay: ReplayResource | None = None, rest_url: str = "",
                    streams_dir: str = "") -> dict[str, object]:
    """The local profile: DuckDB file, lake folder and MLflow sqlite store under `root`.

    `rest_url` empty (the default for tests and fixtures) disables the REST fallback: nothing reaches the internet.
    """
    # Subclasses of ArchiveResource live beside the REST code; imported here to keep this module's imports acyclic.
    from btc_assets.defs.rest_resources import ArchiveWithRestResource, StreamRecordingsResource

    return {
        "archive": ArchiveWithRestResource(base_url=archive_url, symbol=symbol, rest_url=rest_url),
        "streams": StreamRecordingsResource(root=streams_dir or str(root / "lake" / "bronze" / "streams")),
        "lake": LakeResource(root=str(root / "lake")),
        "warehouse": WarehouseResource(database=str(root / "warehouse.duckdb")),
        "mlflow": MlflowResource(
            tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            artifact_root=(root / "mlflow" / "artifacts").as_uri(),
        ),
        "trading": trading_from_env(root),
        "replay": replay or ReplayResource(),
        "live_feed": LiveFeedResource(source=os.environ.get("BTC_LIVE_SOURCE", "replay"), symbol=symbol,
                                      rest_url=rest_url or DEFAULT_REST_URL),
        "notifier": notifier_from_env(),
    }


def prod_resources(root: Path) -> dict[str, object]:
    """BTC_ENV=prod: raw files and reports on S3, MLflow on Postgres with S3 artifacts, DuckDB on a volume.

    The Postgres password of MLflow never appears in a URI (Dagster shows resource config in its UI): psycopg2 reads
    it from PGPASSWORD (or ~/.pgpass).
    """
    missing = [v for v in ("BTC_S3_BUCKET", "BTC_MLFLOW_TRACKING_URI") if not os.environ.get(v)]
    if missing:
        raise ValueError(f"BTC_ENV=prod needs {', '.join(missing)}: see README (Production)")
    bucket = os.environ["BTC_S3_BUCKET"]
    tracking = os.environ["BTC_MLFLOW_TRACKING_URI"]
    if "@" in tracking and ":" in tracking.split("@")[0].split("//")[-1]:
        raise ValueError("BTC_MLFLOW_TRACKING_URI must not contain a password: put it in PGPASSWORD")
    res = local_resources(root, archive_url=os.environ.get("BINANCE_ARCHIVE_URL", DEFAULT_ARCHIVE_URL),
                          symbol=os.environ.get("BTC_SYMBOL", "BTCUSDT"),
                          rest_url=os.environ.get("BINANCE_REST_URL", DEFAULT_REST_URL),
                          streams_dir=os.environ.get("BTC_STREAMS_DIR", ""))
    res["lake"] = S3LakeResource(bucket=bucket, s3=S3Resource())
    res["warehouse"] = WarehouseResource(database=str(root / "warehouse.duckdb"), mirror_bucket=bucket)
    res["mlflow"] = MlflowResource(tracking_uri=tracking, artifact_root=f"s3://{bucket}/mlflow")
    return res


def build_resources() -> dict[str, object]:
    env = os.environ.get("BTC_ENV", "local")
    if env == "prod":
        return prod_resources(data_dir())
    if env != "local":
        raise ValueError(f"BTC_ENV={env!r} is not a profile: use local (default) or prod")
    return local_resources(
        data_dir(),
        archive_url=os.environ.get("BINANCE_ARCHIVE_URL", DEFAULT_ARCHIVE_URL),
        symbol=os.environ.get("BTC_SYMBOL", "BTCUSDT"),
        rest_url=os.environ.get("BINANCE_REST_URL", DEFAULT_REST_URL),
        streams_dir=os.environ.get("BTC_STREAMS_DIR", ""),
        replay=ReplayResource(
            start=os.environ.get("BTC_REPLAY_START", ""),
            end=os.environ.get("BTC_REPLAY_END", ""),
            speed=float(os.environ.get("BTC_REPLAY_SPEED", "60")),
        ),
    )
