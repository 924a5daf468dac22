"""`btc-assets proxy`: Debian's nginx with HTTP basic auth in front of the Dagster UI and the MLflow UI.

Neither UI authenticates anyone, and the Dagster UI can launch trading runs. In production both listen on
127.0.0.1 (as `make ui` starts them) and people reach them only through this proxy: `deploy/nginx/btc-assets.conf`,
rendered into `$BTC_DATA_DIR/proxy/` with

- the users: `BTC_UI_USERS` (`user:password` pairs, comma-separated; written as sha-512 crypt hashes, the passwords
  themselves are never written) or `BTC_UI_HTPASSWD` (an htpasswd file you manage);
- where it listens: `BTC_PROXY_HOST` (default 127.0.0.1), `BTC_PROXY_DAGSTER_PORT` (8080), `BTC_PROXY_MLFLOW_PORT`
  (8081); any other address needs TLS (`BTC_PROXY_TLS_CERT`, `BTC_PROXY_TLS_KEY`): basic auth over plain HTTP would
  send the passwords in clear;
- what it fronts: `BTC_PROXY_DAGSTER_UPSTREAM` (127.0.0.1:3000), `BTC_PROXY_MLFLOW_UPSTREAM` (127.0.0.1:5000).

The credentials are checked by nginx and not passed on to the UIs.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "nginx" / "btc-assets.conf"
_TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


class ProxyConfigError(ValueError):
    """A setting the proxy cannot start with (the message names it)."""


def hash_password(password: str) -> str:
    """A sha-512 crypt hash ($6$...) from openssl, the password given on stdin (never on a command line)."""
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def _users(env: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = []
    for item in (env.get("BTC_UI_USERS") or "").split(","):
        if not item.strip():
            continue
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ProxyConfigError("BTC_UI_USERS: each entry is user:password (comma-separated); one has no user or "
                                   "no password")
        if not all(c.isalnum() or c in "._-@" for c in user):
            raise ProxyConfigError(f"BTC_UI_USERS: user {user!r}: letters, digits and . _ - @ only")
        pairs.append((user, password))
    return pairs


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable_by_others(path: Path) -> bool:
    """Every folder from / to path can be traversed by another user (o+x)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def render(run_dir: Path, env: Mapping[str, str] = os.environ) -> Path:
    """Write the htpasswd file and the nginx configuration into run_dir; returns the configuration's path."""
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    # What nginx's workers open per request (the users file, the temp dirs): as root they run as nobody, who must be
    # able to reach them; a data dir inside a private folder gets a reachable folder of its own instead.
    work = run_dir
    if os.geteuid() == 0 and not _reachable_by_others(run_dir):
        import tempfile

        work = Path(tempfile.mkdtemp(prefix="btc-assets-proxy-"))
        work.chmod(0o711)
    for d in _TEMP_DIRS:
        (work / d).mkdir(exist_ok=True)
    host = env.get("BTC_PROXY_HOST", "127.0.0.1")
    ports = {"dagster": env.get("BTC_PROXY_DAGSTER_PORT", "8080"), "mlflow": env.get("BTC_PROXY_MLFLOW_PORT", "8081")}
    for name, port in ports.items():
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ProxyConfigError(f"BTC_PROXY_{name.upper()}_PORT={port!r}: a port number")
    cert, key = env.get("BTC_PROXY_TLS_CERT", ""), env.get("BTC_PROXY_TLS_KEY", "")
    if bool(cert) != bool(key):
        raise ProxyConfigError("BTC_PROXY_TLS_CERT and BTC_PROXY_TLS_KEY go together: set both or neither")
    if not cert and not _loopback(host):
        raise ProxyConfigError(f"BTC_PROXY_HOST={host}: listening beyond this machine needs TLS (set "
                               "BTC_PROXY_TLS_CERT and BTC_PROXY_TLS_KEY); basic auth over plain HTTP sends the "
                               "passwords in clear")
    htpasswd = work / "htpasswd"
    if env.get("BTC_UI_HTPASSWD"):
        given = Path(env["BTC_UI_HTPASSWD"])
        if not given.is_file():
            raise ProxyConfigError(f"BTC_UI_HTPASSWD={given}: no such file")
        shutil.copyfile(given, htpasswd)
    else:
        users = _users(env)
        if not users:
            raise ProxyConfigError("no users: set BTC_UI_USERS (user:password,...) or BTC_UI_HTPASSWD (a file); the "
                                   "proxy never serves the UIs without authentication")
        htpasswd.write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users))
    htpasswd.chmod(0o640)

    def listen(port: str) -> str:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not cert:
            return f"listen {where};"
        return f"listen {where} ssl;\n        ssl_certificate {cert};\n        ssl_certificate_key {key};"

    text = TEMPLATE.read_text()
    values = {"RUN": str(run_dir), "WORK": str(work), "HTPASSWD": str(htpasswd), "LISTEN_DAGSTER": listen(ports["dagster"]),
              "LISTEN_MLFLOW": listen(ports["mlflow"]),
              "DAGSTER_UPSTREAM": env.get("BTC_PROXY_DAGSTER_UPSTREAM", "127.0.0.1:3000"),
              "MLFLOW_UPSTREAM": env.get("BTC_PROXY_MLFLOW_UPSTREAM", "127.0.0.1:5000")}
    for k, v in values.items():
        text = text.replace(f"@@{k}@@", v)
    if os.geteuid() == 0:  # nginx's workers drop to nobody: they read the users file and write the temp dirs
        import grp
        import pwd

        uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        for p in [htpasswd, *(work / d for d in _TEMP_DIRS)]:
            os.chown(p, uid, gid)
        text = "user nobody nogroup;\n" + text
    conf = run_dir / "nginx.conf"
    conf.write_text(text)
    return conf


def command(conf: Path) -> list[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]


def serve(root: Path, env: Mapping[str, str] = os.environ) -> int:
    """Render the configuration under root/proxy and run nginx in the foreground until Ctrl-C."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        raise ProxyConfigError("nginx is not installed: apt-get install nginx (Debian's package)")
    conf = render(Path(root) / "proxy", env)
    subprocess.run(command(conf)[:-2] + ["-t"], check=True)  # nginx's own check of the configuration
    proc = subprocess.Popen(command(conf))
    host = env.get("BTC_PROXY_HOST", "127.0.0.1")
    print(f"Dagster UI: http{'s' if env.get('BTC_PROXY_TLS_CERT') else ''}://{host}:"
          f"{env.get('BTC_PROXY_DAGSTER_PORT', '8080')}   MLflow UI: port {env.get('BTC_PROXY_MLFLOW_PORT', '8081')}"
          "   (basic auth; Ctrl-C stops the proxy)", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGQUIT)  # nginx's graceful shutdown
        return proc.wait(timeout=30)
