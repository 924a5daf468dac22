"""The project is one that Dagster's `dg` CLI understands as it stands: `dg check defs` loads and validates the
definitions from [tool.dg] in pyproject.toml, and `btc-assets env` writes the `.env` that points dg at the
project's instance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from btc_assets.cli.main import write_dg_env

REPO = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")


def test_dg_check_defs_loads_the_project(tmp_path):
    env = {**os.environ, "BTC_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir()
    out = subprocess.run([str(DG), "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_dg_check_defs_fails_on_broken_definitions(tmp_path):
    """The test above can fail: a project whose definitions module does not import is refused."""
    broken = tmp_path / "proj"
    (broken / "brokenpkg" / "defs").mkdir(parents=True)
    (broken / "brokenpkg" / "__init__.py").write_text("")
    (broken / "brokenpkg" / "defs" / "__init__.py").write_text("")
    (broken / "brokenpkg" / "definitions.py").write_text("import dagster as dg\nraise RuntimeError('broken on purpose')\n")
    (broken / "pyproject.toml").write_text('[project]\nname = "brokenpkg"\nversion = "0"\n\n[tool.dg]\n'
                                           'directory_type = "project"\n\n[tool.dg.project]\nroot_module = "brokenpkg"\n')
    env = {**os.environ, "PYTHONPATH": str(broken), "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run([str(DG), "check", "defs", "--use-active-venv"], cwd=broken, env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode != 0 and "broken on purpose" in out.stdout + out.stderr


def test_env_file_names_the_projects_instance_and_keeps_other_lines(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("TELEGRAM_CHAT_ID=42\nDAGSTER_HOME=/somewhere/else\n")
    monkeypatch.setenv("BTC_DATA_DIR", "/data/btc")
    monkeypatch.setenv("DAGSTER_HOME", "/data/btc/dagster_home")
    monkeypatch.delenv("BINANCE_ARCHIVE_URL", raising=False)
    text = write_dg_env(Path("/data/btc"), repo=tmp_path).read_text()
    assert "TELEGRAM_CHAT_ID=42" in text and "/somewhere/else" not in text
    assert "BTC_DATA_DIR=/data/btc\n" in text and "DAGSTER_HOME=/data/btc/dagster_home\n" in text
    assert "BINANCE_ARCHIVE_URL" not in text
