"""`btc-assets proxy`: Debian's nginx with the shipped configuration (deploy/nginx/btc-assets.conf) in front of two
local HTTP servers standing where the Dagster and MLflow UIs listen. Without credentials, or with wrong ones, a request
is refused (401) and never reaches a UI; with a configured user it is served, and the credentials stop at the proxy."""

from __future__ import annotations

import base64
import http.server
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from btc_assets.cli import proxy
from btc_assets_tests.conftest import require_service
from btc_assets_tests.services.postgres import free_port

PASSWORD = "c0rrect-h0rse"


def _upstream(name: str):
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = f"{name} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def _get(url: str, user: str | None = None, password: str | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except urllib.error.URLError:  # not listening (yet)
        return 0, ""


@pytest.fixture()
def running(tmp_path):
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        require_service("nginx", FileNotFoundError("nginx: apt-get install -y nginx"))
    dagster, dagster_seen = _upstream("dagster")
    mlflow, mlflow_seen = _upstream("mlflow")
    ports = free_port(), free_port()
    env = {"BTC_UI_USERS": f"alice:{PASSWORD},bob:other-pass", "BTC_PROXY_DAGSTER_PORT": str(ports[0]),
           "BTC_PROXY_MLFLOW_PORT": str(ports[1]),
           "BTC_PROXY_DAGSTER_UPSTREAM": f"127.0.0.1:{dagster.server_address[1]}",
           "BTC_PROXY_MLFLOW_UPSTREAM": f"127.0.0.1:{mlflow.server_address[1]}"}
    conf = proxy.render(tmp_path / "proxy", env)
    subprocess.run(proxy.command(conf)[:-2] + ["-t"], check=True, capture_output=True)  # nginx's own check
    proc = subprocess.Popen(proxy.command(conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    urls = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    deadline = time.monotonic() + 20
    while _get(urls[0])[0] != 401:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.1)
    yield urls, dagster_seen, mlflow_seen, conf
    proc.terminate()
    proc.wait(timeout=10)
    dagster.shutdown()
    mlflow.shutdown()


def test_without_credentials_nothing_reaches_either_ui_and_with_them_both_are_served(running):
    (dagster, mlflow), dagster_seen, mlflow_seen, conf = running
    for url in (dagster, mlflow):
        assert _get(f"{url}/graphql")[0] == 401  # no credentials
        assert _get(f"{url}/graphql", "alice", "wrong")[0] == 401
        assert _get(f"{url}/graphql", "mallory", PASSWORD)[0] == 401
    assert dagster_seen == [] and mlflow_seen == []  # refused at the proxy: the UIs never saw a request
    assert _get(f"{dagster}/runs", "alice", PASSWORD) == (200, "dagster /runs")
    assert _get(f"{mlflow}/#/experiments", "bob", "other-pass") == (200, "mlflow /")
    # the credentials stop at the proxy; the Dagster UI's WebSocket upgrade is passed on
    _get(f"{dagster}/graphql", "alice", PASSWORD, headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert all("authorization" not in h for h in dagster_seen + mlflow_seen)
    assert dagster_seen[-1].get("upgrade") == "websocket" and dagster_seen[-1].get("connection") == "upgrade"
    # the users file holds sha-512 crypt hashes, never a password
    users_file = conf.read_text().split("auth_basic_user_file ", 1)[1].split(";", 1)[0]
    users = Path(users_file).read_text()
    assert PASSWORD not in users and "other-pass" not in users
    assert [line.split(":", 1)[1][:3] for line in users.splitlines()] == ["$6$", "$6$"]


def test_settings_the_proxy_cannot_start_with_are_refused_by_name(tmp_path):
    with pytest.raises(proxy.ProxyConfigError, match="no users: set BTC_UI_USERS"):
        proxy.render(tmp_path / "a", {})
    with pytest.raises(proxy.ProxyConfigError, match="BTC_UI_USERS: each entry is user:password"):
        proxy.render(tmp_path / "b", {"BTC_UI_USERS": "alice"})
    with pytest.raises(proxy.ProxyConfigError, match="BTC_PROXY_HOST=0.0.0.0: listening beyond this machine needs TLS"):
        proxy.render(tmp_path / "c", {"BTC_UI_USERS": "a:b", "BTC_PROXY_HOST": "0.0.0.0"})
    with pytest.raises(proxy.ProxyConfigError, match="set both or neither"):
        proxy.render(tmp_path / "d", {"BTC_UI_USERS": "a:b", "BTC_PROXY_TLS_CERT": "/x.pem"})
    with pytest.raises(proxy.ProxyConfigError, match="BTC_PROXY_MLFLOW_PORT='80a'"):
        proxy.render(tmp_path / "e", {"BTC_UI_USERS": "a:b", "BTC_PROXY_MLFLOW_PORT": "80a"})
    with pytest.raises(proxy.ProxyConfigError, match="BTC_UI_HTPASSWD=/nowhere: no such file"):
        proxy.render(tmp_path / "f", {"BTC_UI_HTPASSWD": "/nowhere"})
    # beyond loopback with TLS: both servers listen with the certificate
    conf = proxy.render(tmp_path / "g", {"BTC_UI_USERS": "a:b", "BTC_PROXY_HOST": "0.0.0.0",
                                         "BTC_PROXY_TLS_CERT": "/etc/ssl/ui.pem", "BTC_PROXY_TLS_KEY": "/etc/ssl/ui.key"})
    text = conf.read_text()
    assert text.count("listen 0.0.0.0:8080 ssl;") == 1 and text.count("ssl_certificate /etc/ssl/ui.pem;") == 2
