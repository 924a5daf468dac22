"""The report page: self-contained, every chart present, and it renders in a real browser without script errors."""

import os
import re
import shutil
import subprocess
import time

import pytest

from btc_assets.lib.research.backtest import simulate
from btc_assets.lib.research.backtest.metrics import evaluate
from btc_assets.lib.research.backtest.report import CHARTS, render_report, write_report
from btc_assets_tests.lib.research.backtest.conftest import eight_hourly_funding, random_bars, random_signals

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    bars = random_bars(4_000)
    funding = eight_hourly_funding(bars)
    res = simulate(bars, random_signals(bars), funding)
    t0 = time.perf_counter()
    html = render_report(res, evaluate(res, bars, funding), title="Backtest test", subtitle="synthetic random walk")
    seconds = time.perf_counter() - t0
    return write_report(html, tmp_path_factory.mktemp("report") / "backtest.html"), html, seconds


def test_page_is_self_contained_with_every_chart(page):
    _, html, seconds = page
    assert "<script src" not in html and html.count('class="plotly-graph-div"') == CHARTS
    for title in ("Equity", "Drawdown", "Monthly returns", "Win rate by entry hour", "Rolling Sharpe",
                  "Trades on price", "Fees and funding", "Buy &amp; hold", "Random entry", "By regime"):
        assert title in html
    assert "LAST traded price" in html  # no mark-price series was given: the page says so
    assert seconds < 2.0


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_charts_render_in_headless_chromium_without_script_errors(page, tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed but CI=true: install Debian's chromium package in the CI image")
        pytest.skip("chromium not installed (apt-get install chromium); set CI=true to make this a failure")
    path, _, _ = page
    out = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"chromium failed ({out.returncode}): {out.stderr[-2000:]}"
    status = re.search(r'<pre id="render-status"([^>]*)>(.*?)</pre>', out.stdout, re.S)
    assert status, f"the page's render-status element is missing from the DOM; stderr: {out.stderr[-1000:]}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', status.group(1)))
    assert attrs.get("data-errors") == "0", f"script errors in the report: {status.group(2)}"
    assert attrs.get("data-plots") == str(CHARTS), f"{attrs.get('data-plots')} of {CHARTS} charts drew"
