"""The docs name only what exists: every asset key, check, sensor, schedule and job named in README.md and docs/*.md
is in the Definitions, every environment variable they name is read by the project's code (or by the library the
docs say reads it), and every variable the code reads is in the README's configuration tables. Paths to the
project's own files and `python -m` modules named in the docs exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from btc_assets.definitions import defs

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LAYERS = ("bronze", "silver", "gold", "models", "backtest", "trading", "strategy_daily")
# A backticked snake_case name shaped like a statement that should hold is a check's name.
CHECK_SHAPE = re.compile(r"_(has|have|match|matches|beats|is|are|not|times|ids|bars|one_row|near|halts|drift|"
                         r"finite|point_in_time|warmup_confirmed|after|reconciled|recorded|agree|agrees)(_|$)")
ENV = re.compile(r"(?<![A-Za-z0-9_])((?:BTC|BINANCE|KRAKEN|DAGSTER|MLFLOW|TELEGRAM|AWS|PG)[A-Z0-9_]*[A-Z0-9])(?![a-z])")
# Read by a library the docs name, not by the project's code.
READ_BY_LIBRARIES = {"AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", "PGPASSWORD", "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION", "DAGSTER_HOME"}
# os.environ["X"] / os.environ.get("X") / os.getenv("X") / dg.EnvVar("X"): a variable the code reads (setdefault
# only sets a library's knob, e.g. OMP_WAIT_POLICY).
CODE_ENV = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]\s*|getenv\(\s*|EnvVar\(\s*)["']([A-Z][A-Z0-9_]+)["']""")


def _read_in(code: str, var: str) -> bool:
    """`var` is read by the code or the instance/launch configs: a quoted name, `env: VAR`, a listed secret, $VAR."""
    return re.search(rf"""["']{var}["']|env:\s*{var}\b|^\s*-\s+{var}\b|\$\{{?{var}\b""", code, re.M) is not None


def _backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _doc_texts() -> dict[str, str]:
    return {p.relative_to(REPO).as_posix(): p.read_text() for p in DOCS}


def _product_sources() -> str:
    files = [*(REPO / "btc_assets").rglob("*.py"), REPO / "Makefile", *(REPO / "deploy").rglob("*.yaml"),
             REPO / "dagster.yaml"]
    return "\n".join(f.read_text() for f in files)


def _defined() -> dict[str, set[str]]:
    graph = defs.resolve_asset_graph()
    return {
        "asset": {k.to_user_string() for k in graph.get_all_asset_keys()},
        "check": {c.name for c in graph.asset_check_keys},
        "sensor": {s.name for s in defs.sensors},
        "schedule": {s.name for s in defs.schedules},
        "job": {j.name for j in defs.jobs},
    }


def names_in_docs(texts: dict[str, str]) -> list[tuple[str, str, str]]:
    """(doc, kind, name) of every asset, check, sensor, schedule and job the docs name in backticks."""
    found = []
    for doc, text in texts.items():
        for token in _backticked(text):
            for word in re.split(r"[\s,()]+", token):
                word = word.strip(".:;")
                if "<" in word or "*" in word or "{" in word:
                    continue  # a pattern (`<family>_model_beats_baselines`), not a name
                if re.fullmatch(r"[a-z_]+/[a-z0-9_]+", word) and word.split("/")[0] in LAYERS:
                    found.append((doc, "asset", word))
                elif re.fullmatch(r"[a-z0-9_]+_(sensor|schedule|job)", word) or word == "rest_partitions_now_in_archive":
                    kind = "sensor" if word.endswith("_sensor") or word.startswith("rest_partitions") else (
                        "schedule" if word.endswith("_schedule") else "job")
                    found.append((doc, kind, word))
                elif re.fullmatch(r"[a-z0-9_]+", word) and CHECK_SHAPE.search(word):
                    found.append((doc, "check", word))
    return found


def missing_names(texts: dict[str, str], defined: dict[str, set[str]]) -> list[str]:
    return sorted({f"{doc}: {kind} {name}" for doc, kind, name in names_in_docs(texts) if name not in defined[kind]})


def env_in_docs(texts: dict[str, str]) -> set[tuple[str, str]]:
    return {(doc, m) for doc, text in texts.items() for m in ENV.findall(text)}


def test_every_asset_check_sensor_schedule_and_job_named_in_the_docs_exists():
    assert missing_names(_doc_texts(), _defined()) == []


def test_the_docs_test_catches_a_name_that_does_not_exist():
    texts = {"RUNBOOK.md": "flagged by the check `xgb_model_beats_majority_baseline`, see `gold/featurez` and "
                           "`weekly_retrain_schedul_job`; fine: `xgb_model_beats_baselines`, `gold/features`"}
    assert missing_names(texts, _defined()) == [
        "RUNBOOK.md: asset gold/featurez", "RUNBOOK.md: check xgb_model_beats_majority_baseline",
        "RUNBOOK.md: job weekly_retrain_schedul_job"]


def test_every_environment_variable_named_in_the_docs_is_read():
    code = _product_sources()
    unread = sorted({f"{doc}: {var}" for doc, var in env_in_docs(_doc_texts())
                     if var not in READ_BY_LIBRARIES and not _read_in(code, var)})
    assert unread == []


def test_every_environment_variable_the_code_reads_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    read = set(CODE_ENV.findall(_product_sources()))
    # the libraries' and Python's own variables (PYTHONPATH: make ui puts the repo first on it) are theirs to document
    undocumented = sorted(v for v in read if f"`{v}`" not in readme
                          and not v.startswith(("DAGSTER_", "AWS_")) and v != "PYTHONPATH")
    assert undocumented == []


def _exists(path: Path) -> bool:
    """A file or folder, or `module.attribute` (lib/research/backtest/simulation.decide) naming a module's member."""
    if path.exists():
        return True
    stem, _, attr = path.name.partition(".")
    return bool(attr) and attr not in ("py", "md", "yaml", "toml") and (path.parent / f"{stem}.py").exists()


@pytest.mark.parametrize("doc", [p.relative_to(REPO).as_posix() for p in DOCS])
def test_project_paths_and_modules_named_in_the_docs_exist(doc):
    text = (REPO / doc).read_text()
    missing = []
    for token in _backticked(text):
        for word in token.split():
            word = word.lstrip("(").rstrip(".,:;)")
            if "*" in word:
                continue
            if re.fullmatch(r"(btc_assets|btc_assets_tests|docs|deploy|bench)/[\w/.-]*", word):
                if not _exists(REPO / word.rstrip("/")):
                    missing.append(word)
            elif re.fullmatch(r"(lib|defs)/[\w/.-]+", word):  # short for btc_assets/lib/..., btc_assets/defs/...
                if not _exists(REPO / "btc_assets" / word.rstrip("/")):
                    missing.append(word)
        m = re.search(r"python -m ([\w.]+)", token)
        if m and importlib.util.find_spec(m.group(1)) is None:
            missing.append(m.group(1))
    assert missing == []
