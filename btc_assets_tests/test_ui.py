"""The UIs as a person uses them: `btc-assets ui` (make ui) serves the Dagster UI and the MLflow UI on 127.0.0.1, a
real browser (Debian's Chromium, driven by Playwright) finds the project's assets and experiments there, and one
Ctrl-C stops every process. Screenshots go to test-artifacts/."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from btc_assets.cli import in_process
from btc_assets_tests.conftest import require_service
from btc_assets_tests.defs.conftest import DAILY, Pipeline, train_config
from btc_assets_tests.services.postgres import free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _up(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def start_ui(env: dict, ports: tuple[int, int], wait_s: float) -> tuple[subprocess.Popen, tuple[str, str]]:
    """`btc-assets ui` in its own session, and the two UIs' addresses once both answer (or after `wait_s`)."""
    proc = subprocess.Popen([str(Path(sys.executable).parent / "btc-assets"), "ui"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    urls = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    deadline = time.time() + wait_s
    while time.time() < deadline and not (_up(f"{urls[0]}/server_info") and _up(urls[1])):
        time.sleep(1)
    return proc, urls


def stop_ui(proc: subprocess.Popen) -> None:
    """Ctrl-C first (`btc-assets ui` stops the servers it started, in their own sessions), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def chromium_browser(executable: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_archive):
    """A data dir with a model in MLflow and materializations in a persistent instance, and both UIs on it."""
    chromium = shutil.which("chromium")
    if chromium is None:
        require_service("Chromium", FileNotFoundError("chromium"))
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    ports = free_port(), free_port()
    saved = os.environ.get("BTC_UI_MLFLOW_PORT")
    os.environ["BTC_UI_MLFLOW_PORT"] = str(ports[1])  # the links in metadata point at the MLflow UI served below
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            p = Pipeline(root, sample_archive, instance)
            p.run([["bronze", "funding_rates"], ["silver", "funding_rates"]], partition_key="2024-01-01")
            p.run(DAILY, first="2024-01-01", last="2024-01-08")
            trained = p.run([["models", "xgb_model"]], partition_key="2024-01-08", run_config=train_config())
            runs_table = trained.get_asset_materialization_events()[0].event_specific_data.materialization.metadata[
                "mlflow_runs_table"].value
            p.run([["models", "signals"]], partition_key="2024-01-08")
            res = p.run([["backtest", "report"]])
            report_url = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata[
                "report"].value
            for run in instance.get_runs():  # as `make demo` files its in-process runs
                in_process.file_under_location(instance, run.run_id)
    finally:
        os.environ.pop("BTC_UI_MLFLOW_PORT") if saved is None else os.environ.update(BTC_UI_MLFLOW_PORT=saved)
    env = {**os.environ, "BTC_DATA_DIR": str(root), "DAGSTER_HOME": str(home), "BINANCE_ARCHIVE_URL": str(sample_archive),
           "BTC_UI_DAGSTER_PORT": str(ports[0]), "BTC_UI_MLFLOW_PORT": str(ports[1])}
    proc, urls = start_ui(env, ports, 120)
    yield proc, urls, chromium, report_url, runs_table
    stop_ui(proc)


@pytest.fixture(scope="module")
def browser(served):
    with chromium_browser(served[2]) as b:
        yield b


def _dismiss_dialog(page) -> None:
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def test_dagster_asset_graph_shows_the_layers_and_assets(served, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{served[1][0]}/asset-groups", wait_until="networkidle")
    for group in ("bronze", "silver", "gold", "models", "backtest", "trading"):
        page.get_by_text(group, exact=True).first.wait_for(timeout=30_000)
    _dismiss_dialog(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dagster_asset_graph.png"))
    page.goto(f"{served[1][0]}/assets/silver/klines_1m?view=checks", wait_until="networkidle")
    page.get_by_text("klines_1m_has_every_minute").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "dagster_silver_klines_1m.png"))


def test_mlflow_shows_the_experiment_and_run(served, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{served[1][1]}/#/experiments", wait_until="domcontentloaded")  # MLflow polls: never idle
    page.get_by_text("btc_assets.xgboost").first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mlflow_experiments.png"))
    assert not errors, errors


def _graphql(page, base: str, query: str) -> dict:
    res = page.request.post(f"{base}/graphql", data={"query": query})
    assert res.ok, res.text()
    return res.json()["data"]


def test_dagster_lists_only_partitions_the_sample_can_fill_and_no_failed_run(served, browser):
    page = browser.new_page()
    base = served[1][0]
    node = _graphql(page, base, '{assetNodeOrError(assetKey: {path: ["silver", "klines_1m"]}) '
                                '{... on AssetNode {partitionKeys}}}')["assetNodeOrError"]
    keys = node["partitionKeys"]
    assert keys[0] == "2024-01-01" and keys[-1] == "2024-02-29" and len(keys) == 60  # the sample's days, no others
    runs = _graphql(page, base, '{runsOrError(filter: {statuses: [FAILURE]}) {... on Runs {results {runId}}}}')
    assert runs["runsOrError"]["results"] == []  # an unpromoted model is a green run with a WARN check
    done = _graphql(page, base, '{runsOrError(filter: {statuses: [SUCCESS]}) {... on Runs {results {runId}}}}')
    assert len(done["runsOrError"]["results"]) == 5  # the fixture's five runs: the UI serves this instance
    page.goto(f"{base}/assets/models/xgb_model?view=checks", wait_until="networkidle")
    page.get_by_text("xgb_model_beats_baselines").first.wait_for(timeout=30_000)
    _dismiss_dialog(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dagster_xgb_promotion_check.png"))


def test_the_overview_timeline_shows_the_runs_that_just_ran(served, browser):
    """The fixture's in-process runs (as `make demo` makes them) appear on Overview's timeline, under the code
    location, not "No runs"."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{served[1][0]}/overview/activity/timeline", wait_until="networkidle")
    _dismiss_dialog(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(3_000)
    page.screenshot(path=str(ARTIFACTS / "dagster_overview_timeline.png"))
    page.get_by_text("btc_assets.definitions").first.wait_for(timeout=30_000)
    assert "No runs" not in page.inner_text("body")


def test_mlflow_versions_carry_their_verdict_and_the_experiment_is_model_training(served, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    base = served[1][1]
    exp = page.request.get(f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=btc_assets.xgboost")
    tags = {t["key"]: t["value"] for t in exp.json()["experiment"].get("tags", [])}
    assert tags.get("mlflow.experimentKind") == "custom_model_development" and tags.get("mlflow.note.content")
    backtests = page.request.get(f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name="
                                 "btc_assets.backtest").json()["experiment"]
    assert {t["key"]: t["value"] for t in backtests.get("tags", [])}.get(
        "mlflow.experimentKind") == "custom_model_development"  # opens in the model-training view, not GenAI
    found = page.request.get(f"{base}/ajax-api/2.0/mlflow/model-versions/search?filter=name%3D%27btc_assets_xgb_next3m%27")
    [version] = found.json()["model_versions"]
    vtags = {t["key"]: t["value"] for t in version.get("tags", [])}
    assert {"week_start", "promoted", "promotion_reason", "data_range", "dagster_run"} <= set(vtags)
    assert vtags["week_start"] == "2024-01-08" and vtags["dagster_run"].startswith("http://127.0.0.1:")
    assert version.get("description")  # the after-cost headline
    model = page.request.get(f"{base}/ajax-api/2.0/mlflow/registered-models/get?name=btc_assets_xgb_next3m").json()
    aliases = {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}
    assert (aliases.get("champion") == version["version"]) == (vtags["promoted"] == "true")
    page.goto(f"{base}/#/models/btc_assets_xgb_next3m/versions/{version['version']}", wait_until="domcontentloaded")
    page.get_by_text("promotion_reason").first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mlflow_model_version.png"))


def test_the_report_link_opens_the_page_in_the_mlflow_ui(served, browser):
    report_url = served[3]
    assert report_url.startswith(served[1][1] + "/#/experiments/") and report_url.endswith("/backtest.html")
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(report_url, wait_until="domcontentloaded")
    page.get_by_text("backtest.html").first.wait_for(timeout=30_000)
    deadline = time.time() + 90  # MLflow fetches the 5 MB page before its viewer renders it
    while time.time() < deadline and not any("After costs the strategy returned" in (f.content() or "")
                                             for f in page.frames[1:]):
        time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mlflow_backtest_report.png"))
    assert any("After costs the strategy returned" in (f.content() or "") for f in page.frames[1:]), \
        f"the report page did not render inside MLflow's artifact view: frames {[f.url for f in page.frames]}"


def test_the_runs_table_link_opens_on_the_after_cost_headline(served, browser):
    """The model's `mlflow_runs_table` link opens the family's runs table on its saved view: the after-cost columns
    are there without choosing them by hand."""
    link = served[4]
    assert link.startswith(served[1][1] + "/#/experiments/") and link.endswith("/runs?viewStateShareKey=headline")
    page = browser.new_page(viewport={"width": 1800, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(link, wait_until="domcontentloaded")
    page.get_by_text("headline (after costs)").first.wait_for(timeout=30_000)
    for column in ("wf_net_return", "wf_psr", "test_log_loss"):
        page.get_by_role("columnheader").filter(has_text=column).first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mlflow_runs_headline.png"))
    assert "share key" not in page.inner_text("body") and not errors, errors


def test_one_ctrl_c_stops_both_uis(served, browser):
    proc, urls = served[:2]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=40) == 0
    time.sleep(1)
    assert not _up(f"{urls[0]}/server_info") and not _up(urls[1])
