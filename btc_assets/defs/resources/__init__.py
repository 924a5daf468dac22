"""Every resource of the graph, chosen once from the environment (BTC_ENV=local by default).

| variable            | default                        | what                                                      |
|---------------------|--------------------------------|-----------------------------------------------------------|
| BTC_ENV             | local                          | resource profile (local: DuckDB + files, nothing to run)  |
| BTC_DATA_DIR        | ./data                         | DuckDB warehouse, raw files (lake), MLflow store, DAGSTER_HOME |

The resources themselves live in sources.py, storage.py and trading.py (each lists its variables).
Non-secret settings are resolved when the definitions load so the UI shows the values in force; secrets (the
trading keys of the live issue) only ever travel as dg.EnvVar.
"""

import os
from pathlib import Path

from dagster_aws.s3 import S3Resource

from btc_assets.defs.resources.sources import (DEFAULT_ARCHIVE_URL, ArchiveWithRestResource,
                                               StreamRecordingsResource)
from btc_assets.defs.resources.storage import LakeResource, MlflowResource, S3LakeResource, WarehouseResource
from btc_assets.defs.resources.trading import (LiveFeedResource, ReplayResource, notifier_from_env,
                                               trading_from_env)
from btc_assets.lib.data.rest.client import DEFAULT_REST_URL


def data_dir() -> Path:
    return Path(os.environ.get("BTC_DATA_DIR", "./data")).resolve()


def local_resources(root: Path, archive_url: str = DEFAULT_ARCHIVE_URL, symbol: str = "BTCUSDT",
                    replay: ReplayResource | None = None, rest_url: str = "",
                    streams_dir: str = "") -> dict[str, object]:
    """The local profile: DuckDB file, lake folder and MLflow sqlite store under `root`.

    `rest_url` empty (the default for tests and fixtures) disables the REST fallback: nothing reaches the internet.
    """

    return {
        "archive": ArchiveWithRestResource(base_url=archive_url, symbol=symbol, rest_url=rest_url),
        "streams": StreamRecordingsResource(root=streams_dir or str(root / "lake" / "bronze" / "streams")),
        "lake": LakeResource(root=str(root / "lake")),
        "warehouse": WarehouseResource(database=str(root / "warehouse.duckdb"),
                                       lakehouse_uri=os.environ.get("BTC_LAKEHOUSE_URI") or None),
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
    res["warehouse"] = WarehouseResource(database=str(root / "warehouse.duckdb"), mirror_bucket=bucket,
                                         lakehouse_uri=os.environ.get("BTC_LAKEHOUSE_URI") or None)
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
