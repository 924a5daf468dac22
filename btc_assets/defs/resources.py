"""Every resource of the graph, chosen once from the environment (BTC_ENV=local by default).

| variable            | default                        | what                                                      |
|---------------------|--------------------------------|-----------------------------------------------------------|
| BTC_ENV             | local                          | resource profile (local: DuckDB + files, nothing to run)  |
| BTC_DATA_DIR        | ./data                         | DuckDB warehouse, raw files (lake), MLflow store, DAGSTER_HOME |
| BINANCE_ARCHIVE_URL | https://data.binance.vision    | archive root: https URL, file:// URL or a local mirror path |
| BTC_SYMBOL          | BTCUSDT                        | the USD-M perpetual traded                                |
| BTC_REPLAY_START/END| the last 2 hours of the sample | the replayed window of the live sensor in replay mode     |
| BTC_REPLAY_SPEED    | 60                             | replayed minutes per wall-clock minute                    |

Non-secret settings are resolved when the definitions load so the UI shows the values in force; secrets (the
trading keys of the live issue) only ever travel as dg.EnvVar.
"""


import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from btc_assets.lib.archive import ArchiveClient

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
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

    def write_bytes(self, relpath: str, data: bytes) -> Path:
        p = self.path(relpath)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(p)  # atomic: a crash never leaves half a file under the real name
        return p

    def read_bytes(self, relpath: str) -> bytes:
        p = self.path(relpath)
        if not p.exists():
            raise FileNotFoundError(f"{p} is not in the lake: materialize the bronze partition that fetches it first")
        return p.read_bytes()


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry (sqlite + local artifacts locally)."""

    tracking_uri: str
    artifact_root: str

    def activate(self, experiment: str) -> str:
        """Point mlflow at this store and return the experiment id (created with our artifact root)."""
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            return mlflow.create_experiment(experiment, artifact_location=f"{self.artifact_root}/{experiment}")
        return exp.experiment_id


class TradingResource(dg.ConfigurableResource):
    """The strategy's trading parameters; the broker is the paper broker (the only one in this version)."""

    strategy: str = "xgb_next3m"
    mode: str = Field(default="paper", description="paper only: real brokers need the live-trading opt-ins")
    notional_usdt: float = 10_000.0
    hold_bars: int = 3
    taker_fee: float = 0.0005
    step_size: float = 0.001
    min_notional: float = 10.0

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        if self.mode != "paper":
            raise ValueError(f"BTC trading mode {self.mode!r} is not available: only the paper broker exists yet")


class ReplayResource(dg.ConfigurableResource):
    """The replayed window of the live sensor in replay mode (empty start/end: the last 2 hours in silver)."""

    start: str = ""
    end: str = ""
    speed: float = 60.0


def data_dir() -> Path:
    return Path(os.environ.get("BTC_DATA_DIR", "./data")).resolve()


def local_resources(root: Path, archive_url: str = DEFAULT_ARCHIVE_URL, symbol: str = "BTCUSDT",
                    replay: ReplayResource | None = None) -> dict[str, object]:
    """The local profile: DuckDB file, lake folder and MLflow sqlite store under `root`."""
    return {
        "archive": ArchiveResource(base_url=archive_url, symbol=symbol),
        "lake": LakeResource(root=str(root / "lake")),
        "warehouse": DuckDBResource(database=str(root / "warehouse.duckdb")),
        "mlflow": MlflowResource(
            tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            artifact_root=(root / "mlflow" / "artifacts").as_uri(),
        ),
        "trading": TradingResource(),
        "replay": replay or ReplayResource(),
    }


def build_resources() -> dict[str, object]:
    env = os.environ.get("BTC_ENV", "local")
    if env != "local":
        raise ValueError(f"BTC_ENV={env!r} is not supported yet: use local (the production profile is issue 5)")
    return local_resources(
        data_dir(),
        archive_url=os.environ.get("BINANCE_ARCHIVE_URL", DEFAULT_ARCHIVE_URL),
        symbol=os.environ.get("BTC_SYMBOL", "BTCUSDT"),
        replay=ReplayResource(
            start=os.environ.get("BTC_REPLAY_START", ""),
            end=os.environ.get("BTC_REPLAY_END", ""),
            speed=float(os.environ.get("BTC_REPLAY_SPEED", "60")),
        ),
    )
