"""A throwaway PostgreSQL server from Debian's packages (`apt-get install postgresql`), on 127.0.0.1.

initdb refuses to run as root, so when the tests run as root (CI) the cluster belongs to the `postgres` system user
that the Debian package creates. In CI (CI=true) a missing server is a failure; elsewhere the tests that need it are
skipped with the command that installs it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, db: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"


def find_bin() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(databases: tuple[str, ...] = ("dagster", "mlflow")) -> Iterator[PgServer]:
    bindir = find_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found: apt-get install -y postgresql")
    tmp = tempfile.mkdtemp(prefix="btc-pg-")
    data, sock = os.path.join(tmp, "data"), os.path.join(tmp, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
    password = "btc-test-password"
    pwfile = os.path.join(tmp, "pw")
    with open(pwfile, "w") as f:
        f.write(password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
    port = free_port()
    subprocess.run(_as_owner([f"{bindir}/initdb", "-D", data, "-U", "btc", "--pwfile", pwfile, "-A", "scram-sha-256",
                              "--no-sync"]), check=True, capture_output=True)
    log = os.path.join(tmp, "server.log")
    subprocess.run(_as_owner([f"{bindir}/pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
                              f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
                   check=True, capture_output=True)
    server = PgServer("127.0.0.1", port, "btc", password)
    try:
        import psycopg2

        deadline = time.time() + 30
        while True:
            try:
                conn = psycopg2.connect(server.url("postgres"))
                break
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in databases:
                cur.execute(f"CREATE DATABASE {db}")
        conn.close()
        yield server
    finally:
        subprocess.run(_as_owner([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
