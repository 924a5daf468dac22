"""Shared fixtures: the bundled real sample archive and a fresh, isolated data directory per test session."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "btc_assets" / "sample_data" / "archive"
KLINES_DIR = SAMPLE / "data" / "futures" / "um" / "daily" / "klines" / "BTCUSDT" / "1m"


@pytest.fixture(scope="session")
def sample_archive() -> Path:
    return SAMPLE


def real_klines(day: dt.date) -> pd.DataFrame:
    """One real day of the bundled sample, parsed."""
    from btc_assets.lib.data.archive.layouts import KLINES
    from btc_assets.lib.data.archive.csv_reader import read_archive_csv

    name = f"BTCUSDT-1m-{day:%Y-%m-%d}.zip"
    return read_archive_csv((KLINES_DIR / name).read_bytes(), name, KLINES)


def zip_csv(csv_name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(csv_name, text)
    return buf.getvalue()


def require_service(name: str, exc: Exception):
    """In CI a missing service is a failure; elsewhere skip with the command that installs it."""
    if os.environ.get("CI"):
        raise exc
    pytest.skip(f"{name} not available here ({exc}); `apt-get install -y postgresql` (CI installs it)")


@pytest.fixture(scope="session")
def pg_server():
    from btc_assets_tests.services.postgres import postgres_server

    try:
        cm = postgres_server()
        server = cm.__enter__()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        require_service("PostgreSQL", exc)
    yield server
    cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def s3_endpoint():
    from btc_assets_tests.services.s3 import s3_server

    with s3_server() as endpoint:
        yield endpoint
