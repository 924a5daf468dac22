"""Configuration that cannot work stops a command before it runs anything, naming the variable and what to set."""

import pytest

from btc_assets.cli import main as cli
from btc_assets.cli.settings import SETTINGS, SettingsError, help_text, problems, validate
from btc_assets.defs.resources.sources import SAMPLE_ARCHIVE
from btc_assets.lib.trading.brokers.safety import CONFIRM_VALUE


def one(command: str, **env) -> str:
    found = problems(command, env)
    assert len(found) == 1, found
    return found[0]


def test_the_bundled_sample_and_the_defaults_are_fine():
    assert problems("demo", {"BINANCE_ARCHIVE_URL": str(SAMPLE_ARCHIVE)}) == []
    assert problems("trade", {}) == []  # paper by default
    assert problems("ui", {"BINANCE_ARCHIVE_URL": "https://data.binance.vision",
                           "MLFLOW_UI_URL": "http://mlflow.internal:5000", "BTC_UI_DAGSTER_PORT": "3001"}) == []


@pytest.mark.parametrize("url, says", [
    ("/nonexistent/archive", "does not exist"),
    ("ftp://example.org/archive", "scheme ftp:// is not supported"),
    ("https://", "has no host"),
])
def test_a_wrong_archive_is_named(url, says):
    msg = one("demo", BINANCE_ARCHIVE_URL=url)
    assert "BINANCE_ARCHIVE_URL" in msg and says in msg


def test_a_directory_that_is_not_an_archive_mirror_is_named(tmp_path):
    msg = one("demo", BINANCE_ARCHIVE_URL=tmp_path.as_uri())
    assert "no data/futures/um directory" in msg


def test_trading_mode_keys_and_the_live_confirmation():
    assert "BTC_TRADING_MODE='papr'" in one("demo", BTC_TRADING_MODE="papr")
    msg = one("trade", BTC_TRADING_MODE="testnet")
    assert "BINANCE_API_KEY and BINANCE_API_SECRET" in msg
    keys = {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"}
    assert problems("trade", {"BTC_TRADING_MODE": "testnet", **keys}) == []
    assert "is Binance production" in one("trade", BTC_TRADING_MODE="testnet",
                                           BINANCE_TRADING_URL="https://fapi.binance.com", **keys)
    live = {"BTC_TRADING_MODE": "live", "BINANCE_TRADING_URL": "https://fapi.binance.com", **keys}
    assert f"BTC_LIVE_CONFIRM={CONFIRM_VALUE}" in one("trade", **live)
    assert problems("trade", {**live, "BTC_LIVE_CONFIRM": CONFIRM_VALUE}) == []


def test_production_profile_urls_ports_and_dates():
    found = problems("ui", {"BTC_ENV": "prod"})
    assert {f.split(" needs ")[1].split()[0] for f in found} == {"BTC_S3_BUCKET", "BTC_MLFLOW_TRACKING_URI",
                                                                 "DAGSTER_PG_URL"}
    assert "BTC_ENV='staging'" in one("ui", BTC_ENV="staging")
    assert "PGPASSWORD" in one("ui", BTC_ENV="prod", BTC_S3_BUCKET="b", DAGSTER_PG_URL="postgresql://h/db",
                               BTC_MLFLOW_TRACKING_URI="postgresql://u:secret@h/mlflow")
    assert "DAGSTER_PG_URL" in one("ui", DAGSTER_PG_URL="mysql://h/db")
    assert "BTC_UI_MLFLOW_PORT='50o0'" in one("ui", BTC_UI_MLFLOW_PORT="50o0")
    assert "BTC_PARTITIONS_START='2024-13-01'" in one("demo", BTC_PARTITIONS_START="2024-13-01")
    assert "BTC_LIVE_SOURCE='kafka'" in one("trade", BTC_LIVE_SOURCE="kafka")
    assert "BTC_PARTITIONS_END='soon'" in one("demo", BTC_PARTITIONS_END="soon")
    msg = one("trade", BTC_LIVE_SOURCE="collector", BINANCE_ARCHIVE_URL=str(SAMPLE_ARCHIVE))
    assert "partitions end on its last day" in msg  # today's bars would have no partition
    assert problems("trade", {"BTC_LIVE_SOURCE": "replay", "BINANCE_ARCHIVE_URL": str(SAMPLE_ARCHIVE)}) == []


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as e:
        validate("trade", {"BINANCE_ARCHIVE_URL": "/nonexistent", "BTC_TRADING_MODE": "live"})
    assert "BINANCE_ARCHIVE_URL" in str(e.value) and "BINANCE_API_KEY" in str(e.value)
    assert "nothing was run" in str(e.value)


def test_a_command_stops_before_it_runs_anything(monkeypatch, tmp_path):
    monkeypatch.setenv("BTC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BINANCE_ARCHIVE_URL", str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as e:
        cli.main(["trade"])
    assert "BINANCE_ARCHIVE_URL" in str(e.value)
    assert not (tmp_path / "data").exists()  # nothing was created, recorded or run


def test_help_lists_the_environment_variables(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for var, _, _ in SETTINGS:
        assert var in out
    assert help_text().splitlines()[0] == "environment variables:"


def test_beta_warnings_and_migration_lines_are_quiet_unless_debugging():
    import logging
    import warnings

    import dagster as dg

    from btc_assets.cli.settings import quiet_libraries

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_libraries({})
        warnings.warn("beta", dg.BetaWarning)
        assert not seen and logging.getLogger("alembic").level == logging.WARNING
    logging.getLogger("alembic").setLevel(logging.NOTSET)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_libraries({"BTC_DEBUG": "1"})
        warnings.warn("beta", dg.BetaWarning)
        assert len(seen) == 1 and logging.getLogger("alembic").level == logging.NOTSET


def test_in_process_runs_log_warnings_only_unless_debugging():
    import dagster as dg

    from btc_assets.cli.settings import run_logs

    assert run_logs({"ops": {}}, {}) == {"ops": {}, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    assert run_logs(None, {"BTC_DEBUG": "1"}) == {}

    @dg.asset
    def one() -> None:
        return None

    job = dg.Definitions(assets=[one]).resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(run_config=run_logs(env={})).success  # a config the job's schema accepts


def test_mlflows_type_hint_advice_is_dropped_even_under_its_own_once_filter():
    import warnings

    from btc_assets.cli.settings import quiet_libraries

    shown: list[str] = []
    saved = warnings.showwarning
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *a, **k: shown.append(str(message))  # what reaches the terminal
            quiet_libraries({})
            warnings.simplefilter("once", category=UserWarning)  # what MLflow's filter_user_warnings_once does
            warnings.warn("\x1b[33mAdd type hints to the `predict` method to enable data validation\x1b[0m")
            warnings.warn("a real problem", UserWarning)
        assert shown == ["a real problem"]
    finally:
        warnings.showwarning = saved


def test_the_ui_serves_the_workspace_from_the_data_dir_with_the_repo_as_working_directory(tmp_path):
    import yaml

    from btc_assets.cli import ui

    spec = yaml.safe_load(ui.served_workspace(tmp_path).read_text())
    target = spec["load_from"][0]["python_module"]
    assert target["module_name"] == "btc_assets.definitions"
    assert target["working_directory"] == str(ui.REPO)  # absolute: the servers run from the data dir
    cmd = ui.commands(tmp_path)["dagster"]
    assert cmd[cmd.index("-w") + 1] == str(tmp_path / "workspace.yaml")


def test_a_dead_network_is_said_at_once_and_nothing_runs(monkeypatch, tmp_path):
    """An https archive that cannot be reached: one short request, then a message naming the variable, before any
    run or file (127.0.0.1:9 refuses at once, as a machine without network does)."""
    import socket
    import time

    from btc_assets.cli.main import archive_reachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    said = archive_reachable(url, timeout_s=2.0)
    assert said and said.startswith(f"BINANCE_ARCHIVE_URL={url} cannot be reached") and "offline" in said
    assert archive_reachable(str(tmp_path)) is None  # a local mirror: nothing to reach
    monkeypatch.setenv("BTC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BINANCE_ARCHIVE_URL", url)
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        cli.main(["demo"])
    assert "cannot be reached" in str(e.value) and "nothing was run" in str(e.value)
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "data").exists()


def test_the_demo_runs_the_datasets_it_is_given_and_says_what_it_leaves_out():
    import argparse

    from btc_assets.cli.main import DEMO_DATASETS, demo_datasets, demo_plan

    assert demo_datasets("klines,funding") == ("klines", "funding")
    assert demo_plan(DEMO_DATASETS) == {}  # the default: everything
    klines_only = demo_plan(demo_datasets("klines"))
    assert {"funding", "backtest/report", "long history", "models/tft_model", "daily strategy",
            "market data"} <= set(klines_only)
    assert "add funding to --datasets" in klines_only["backtest/report"]
    assert set(demo_plan(("klines", "funding"))) == set(klines_only) - {"funding", "backtest/report"}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown dataset"):
        demo_datasets("klines,trades")
    with pytest.raises(argparse.ArgumentTypeError, match="klines are always run"):
        demo_datasets("funding")
