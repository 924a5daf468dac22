"""`make ui`: the Dagster UI (with its daemon) and the MLflow UI on 127.0.0.1, stopped together by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def served_workspace(root: Path) -> Path:
    """The project's workspace.yaml with its working directory made absolute, written into the data dir.

    The UI's processes run from the data dir, not the repo: Dagster loads a `.env` from its working directory over
    the environment it was given, and the repo's `.env` (written by `btc-assets env` for the plain `dagster`/`dg`
    commands) would then serve that file's instance, not the BTC_DATA_DIR/DAGSTER_HOME of this command."""
    import yaml

    spec = yaml.safe_load((REPO / "workspace.yaml").read_text())
    for entry in spec["load_from"]:
        for target in entry.values():
            if isinstance(target, dict):
                target["working_directory"] = str((REPO / target.get("working_directory", ".")).resolve())
    out = root / "workspace.yaml"
    out.write_text("# written by `btc-assets ui` from the repo's workspace.yaml (edit that one)\n"
                   + yaml.safe_dump(spec, sort_keys=False))
    return out


def commands(root: Path, dagster_port: int = 3000, mlflow_port: int = 5000) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    return {
        "dagster": [str(bin_dir / "dagster"), "dev", "-w", str(served_workspace(root)), "-h", "127.0.0.1",
                    "-p", str(dagster_port)],
        "mlflow": [str(bin_dir / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(mlflow_port),
                   "--backend-store-uri", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
                   "--default-artifact-root", (root / "mlflow" / "artifacts").as_uri()],
    }


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(root: Path) -> int:
    # A parent that started us in the background may have left SIGINT ignored (inherited through exec):
    # take both Ctrl-C and SIGTERM back explicitly so that either stops everything.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(root).resolve()  # the processes run from there: every path handed to them is absolute
    (root / "mlflow").mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    # the code this command runs is the code served (from the data dir, the repo is no longer the import root)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    ports = int(os.environ.get("BTC_UI_DAGSTER_PORT", "3000")), int(os.environ.get("BTC_UI_MLFLOW_PORT", "5000"))
    for name, cmd in commands(root, *ports).items():
        # A fresh process group each, with default signal handlers: `dagster dev` started from a script otherwise
        # ignores SIGINT, and Ctrl-C must stop everything.
        procs[name] = subprocess.Popen(cmd, cwd=root, env=env, start_new_session=True,
                                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    print(f"Dagster UI: http://127.0.0.1:{ports[0]}   MLflow UI: http://127.0.0.1:{ports[1]}   (Ctrl-C stops both)",
          flush=True)
    code = 0
    try:
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        code = next(p.returncode for p in procs.values() if p.poll() is not None) or 0
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        deadline = time.time() + 15
        for p in procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    return code
