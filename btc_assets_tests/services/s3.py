"""A local S3 API server (moto's ThreadedMotoServer) on 127.0.0.1 with one bucket, for the production profile."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from btc_assets_tests.services.postgres import free_port


@contextlib.contextmanager
def s3_server(bucket: str = "btc-assets-test") -> Iterator[str]:
    """Yields the endpoint URL; credentials are the fake ones moto accepts (set them in the environment)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


@contextlib.contextmanager
def s3_server_process(bucket: str = "btc-assets-test") -> Iterator[str]:
    """The same S3 API in a process of its own (`python -m moto.server`). For clients that wait for a reply while
    holding the GIL (delta-rs' reads): against a server thread of the same process they would wait forever."""
    import subprocess
    import sys
    import time

    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the local S3 server did not start on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
