"""`btc-assets metrics`: serve the trader's Prometheus snapshot (written by every trading run) on /metrics.

A scrape also reports how old the snapshot is (btc_metrics_snapshot_age_seconds), so a stalled trader is visible
as a growing age rather than as frozen numbers that look healthy.
"""

from __future__ import annotations

import http.server
import logging
import time
from pathlib import Path

log = logging.getLogger("btc_assets.metrics")


def payload(snapshot: Path) -> bytes:
    if not snapshot.exists():
        return b"# no trading run has written metrics yet\nbtc_metrics_snapshot_present 0\n"
    age = time.time() - snapshot.stat().st_mtime
    return (snapshot.read_bytes() + b"# HELP btc_metrics_snapshot_age_seconds Seconds since the last trading run\n"
            b"# TYPE btc_metrics_snapshot_age_seconds gauge\n"
            + f"btc_metrics_snapshot_age_seconds {age:.3f}\nbtc_metrics_snapshot_present 1\n".encode())


def make_handler(snapshot: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = payload(snapshot)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug(fmt, *args)

    return Handler


def serve_metrics(snapshot: Path, host: str, port: int) -> int:
    server = http.server.ThreadingHTTPServer((host, port), make_handler(snapshot))
    print(f"Prometheus metrics on http://{host}:{port}/metrics (from {snapshot}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
