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
