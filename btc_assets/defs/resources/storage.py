"""Where the platform writes: the lake of raw files and reports (local or S3), the DuckDB warehouse (mirrored to S3
in production) and the MLflow tracking store."""

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from btc_assets.lib.storage.lakehouse import Lakehouse, commit_deferred, committing
from btc_assets.lib.storage.table_mirror import S3TableMirror, mirroring


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
    # BTC_LAKEHOUSE_URI: every replaced window is also committed to its Delta Lake table there (lib/storage/
    # lakehouse.py), after the DuckDB transaction; a failed commit fails the step (a rerun replaces both again)
    lakehouse_uri: str | None = None

    def mirror(self) -> S3TableMirror | None:
        if not self.mirror_bucket:
            return None
        import boto3  # boto3's own settings: credentials chain, AWS_ENDPOINT_URL_S3 for S3-compatible stores

        return S3TableMirror(boto3.client("s3"), self.mirror_bucket)

    # DuckDB lets one process open the file at a time. Runs are not queued for it (no pool): each asset holds the
    # connection only to read its inputs and to write its result, and a run that finds the file held waits for it,
    # polling, up to this long (then fails naming the file and this setting).
    lock_wait_seconds: float = 900.0

    @contextlib.contextmanager
    def get_connection(self) -> Iterator:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        lake = Lakehouse.at(self.lakehouse_uri) if self.lakehouse_uri else None
        conn = connect_waiting(self.database, {"custom_user_agent": "dagster", **self.connection_config},
                               self.lock_wait_seconds)
        deferred: list = []
        try:
            with mirroring(self.mirror()), committing(lake, deferred):
                yield conn
        finally:
            conn.close()  # also on error: a connection left to the garbage collector keeps the file locked
            # the Delta commits of the windows written, once the file is free for other runs (also when the asset
            # failed after writing: DuckDB and Delta hold the same windows)
            if lake is not None:
                commit_deferred(lake, deferred)


def connect_waiting(database: str, config: dict, wait_seconds: float, poll_seconds: float = 0.02):
    """duckdb.connect, waiting while another process holds the file (DuckDB's own lock: "Could not set lock on
    file"); any other error is raised at once."""
    import duckdb

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(database=database, read_only=False, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the DuckDB warehouse {database} was held by another process for more than {wait_seconds:g} s "
                    f"({exc}); raise the warehouse resource's lock_wait_seconds, or stop the process holding it"
                ) from exc
            time.sleep(poll_seconds * (0.5 + random.random()))  # jittered: two waiters do not poll in step


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
        # Every experiment of the project is model development: typed so, MLflow opens it in the model-training
        # view (runs, metrics, artifacts), not the GenAI one (traces, evaluations).
        from btc_assets.lib.research.models.tracking import set_headline_view

        kind = {"mlflow.experimentKind": "custom_model_development"}
        client = mlflow.MlflowClient()
        if exp is None:
            experiment_id = mlflow.create_experiment(experiment, artifact_location=f"{self.artifact_root}/{experiment}",
                                                     tags=kind)
            tags = {}
        else:
            experiment_id, tags = exp.experiment_id, exp.tags
            if tags.get("mlflow.experimentKind") != kind["mlflow.experimentKind"]:
                client.set_experiment_tag(experiment_id, *next(iter(kind.items())))
        # the runs table opens on the headline figures (tracking.HEADLINE_VIEW; experiment_url links to it)
        set_headline_view(client, experiment_id, experiment, tags)
        return experiment_id
