"""`make ui`: both UIs answer on 127.0.0.1 and one Ctrl-C (SIGINT) stops every process they started."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _up(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_ui_serves_both_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "BTC_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dh")}
    exe = Path(sys.executable).parent / "btc-assets"
    proc = subprocess.Popen([str(exe), "ui"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (_up("http://127.0.0.1:3000/server_info") and _up("http://127.0.0.1:5000/")):
            time.sleep(1)
        assert _up("http://127.0.0.1:3000/server_info") and _up("http://127.0.0.1:5000/")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
        time.sleep(1)
        assert not _up("http://127.0.0.1:3000/server_info") and not _up("http://127.0.0.1:5000/")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
