"""Every environment variable the platform reads, and the check that runs before a command does anything.

`validate(command)` collects every problem at once (a wrong archive path, an unknown trading mode, live without
its confirmation, keys missing for a broker, a production profile without its bucket or database, a malformed
URL or port) and stops with one message naming each variable and what to set, before a bar is recorded or a run
starts. `--help` prints `SETTINGS`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from urllib.parse import urlparse

from btc_assets.lib.data.archive.local import local_root
from btc_assets.lib.trading.brokers.safety import CONFIRM_VALUE, CONFIRM_VAR, MODE_VAR, is_production

# (variable, default, what it sets)
SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("BTC_DATA_DIR", "./data", "where the warehouse, lake, MLflow store and Dagster instance live"),
    ("BINANCE_ARCHIVE_URL", "https://data.binance.vision (make demo: the bundled sample)",
     "the public archive, or a local mirror (path or file://) of its data/futures/um layout"),
    ("BTC_PARTITIONS_START", "the mirror's first 1m day, else 2019-09-10", "first daily partition (YYYY-MM-DD)"),
    ("BTC_PARTITIONS_END", "the bundled sample's last day, else open (today)", "last daily partition (YYYY-MM-DD)"),
    ("BTC_SYMBOL", "BTCUSDT", "the USD-M symbol"),
    ("BINANCE_REST_URL", "https://fapi.binance.com", "REST market data (recent days)"),
    ("BINANCE_WS_URL", "wss://fstream.binance.com", "market streams (collector)"),
    ("BTC_LIVE_SOURCE", "replay", "what tells the live sensor a bar closed: replay, collector or rest"),
    (MODE_VAR, "paper", "paper (nothing leaves the machine), testnet or live"),
    ("BINANCE_TRADING_URL", "https://testnet.binancefuture.com", "the broker's USD-M REST base"),
    ("BINANCE_API_KEY / BINANCE_API_SECRET", "unset", "the broker's keys (testnet/live only; never logged)"),
    (CONFIRM_VAR, "unset", f"live on Binance production also needs {CONFIRM_VAR}={CONFIRM_VALUE}"),
    ("BTC_ENV", "local", "local (DuckDB + files) or prod (S3 + Postgres)"),
    ("BTC_S3_BUCKET", "unset", "prod: the bucket of the lake, reports, MLflow artifacts and compute logs"),
    ("BTC_MLFLOW_TRACKING_URI", "unset", "prod: MLflow's Postgres URI (password in PGPASSWORD, not in the URI)"),
    ("DAGSTER_PG_URL", "unset", "prod: the Dagster instance's Postgres"),
    ("AWS_ENDPOINT_URL", "AWS", "an S3-compatible endpoint"),
    ("MLFLOW_UI_URL / BTC_UI_MLFLOW_PORT", "http://127.0.0.1:5000", "the MLflow UI links point there"),
    ("DAGSTER_UI_URL / BTC_UI_DAGSTER_PORT", "http://127.0.0.1:3000", "the Dagster UI links point there"),
    ("BTC_METRICS_PORT", "9108", "the trader's Prometheus endpoint"),
    ("BTC_DEBUG", "unset", "1: keep Dagster's beta warnings and MLflow's database-migration lines in the output"),
)

MODES = ("paper", "testnet", "live")
LIVE_SOURCES = ("replay", "collector", "rest")
URL_VARS = {"BINANCE_REST_URL": ("http", "https"), "BINANCE_TRADING_URL": ("http", "https"),
            "BINANCE_WS_URL": ("ws", "wss"), "MLFLOW_UI_URL": ("http", "https"), "DAGSTER_UI_URL": ("http", "https"),
            "AWS_ENDPOINT_URL": ("http", "https"),
            "DAGSTER_PG_URL": ("postgresql", "postgres", "postgresql+psycopg2")}
PORT_VARS = ("BTC_UI_MLFLOW_PORT", "BTC_UI_DAGSTER_PORT", "BTC_METRICS_PORT")


def help_text() -> str:
    width = max(len(v) for v, _, _ in SETTINGS)
    return "environment variables:\n" + "\n".join(f"  {v:<{width}}  {what} (default: {default})"
                                                  for v, default, what in SETTINGS)


class SettingsError(SystemExit):
    """Configuration that cannot work; raised before anything runs, one line per problem."""


def _archive(url: str) -> list[str]:
    if not url:
        return []
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        return [] if parsed.netloc else [f"BINANCE_ARCHIVE_URL={url!r} has no host: use "
                                         "https://data.binance.vision or a local directory"]
    if scheme not in ("", "file") and len(scheme) > 1:  # len 1: a Windows drive letter
        return [f"BINANCE_ARCHIVE_URL={url!r}: the scheme {scheme}:// is not supported; use https://, file:// or a "
                "local directory"]
    root = local_root(url)
    if not root.is_dir():
        return [f"BINANCE_ARCHIVE_URL={url!r}: the directory {root} does not exist; set it to a local mirror of the "
                "archive (its data/futures/um/... layout), or unset it for https://data.binance.vision"]
    if not (root / "data" / "futures" / "um").is_dir():
        return [f"BINANCE_ARCHIVE_URL={url!r}: {root} has no data/futures/um directory, so it is not a mirror of the "
                "Binance archive layout; point it at the directory that contains data/"]
    return []


def _is_sample(url: str) -> bool:
    from btc_assets.defs.resources.sources import is_bundled_sample

    return is_bundled_sample(local_root(url.strip()))


def problems(command: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of the configuration for `command` (demo, ui, trade, ...)."""
    env = os.environ if env is None else env
    out = _archive(env.get("BINANCE_ARCHIVE_URL", "").strip())
    for var in ("BTC_PARTITIONS_START", "BTC_PARTITIONS_END"):
        day = env.get(var, "").strip()
        if day:
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                out.append(f"{var}={day!r} is not a date: set YYYY-MM-DD or unset it")
    for var, schemes in URL_VARS.items():
        v = env.get(var, "").strip()
        if v and (urlparse(v).scheme.lower() not in schemes or not urlparse(v).netloc):
            out.append(f"{var}={v!r} is not a {'/'.join(s + '://' for s in schemes)} URL with a host")
    for var in PORT_VARS:
        v = env.get(var, "").strip()
        if v and not (v.isdigit() and 0 < int(v) < 65536):
            out.append(f"{var}={v!r} is not a port number (1..65535)")
    source = env.get("BTC_LIVE_SOURCE", "").strip()
    if source and source not in LIVE_SOURCES:
        out.append(f"BTC_LIVE_SOURCE={source!r} is unknown: set one of {', '.join(LIVE_SOURCES)}")
    elif command == "trade" and source in ("collector", "rest") and _is_sample(env.get("BINANCE_ARCHIVE_URL", "")) \
            and not env.get("BTC_PARTITIONS_END"):
        out.append(f"BTC_LIVE_SOURCE={source} trades today's bars, but BINANCE_ARCHIVE_URL is the bundled sample, "
                   "whose partitions end on its last day: set BINANCE_ARCHIVE_URL to https://data.binance.vision or "
                   "your mirror (or BTC_LIVE_SOURCE=replay to replay the sample)")
    mode = env.get(MODE_VAR, "paper").strip().lower() or "paper"
    if mode not in MODES:
        out.append(f"{MODE_VAR}={mode!r} is not a trading mode: set paper (default), testnet or live")
    elif mode != "paper" and command == "trade":
        missing = [v for v in ("BINANCE_API_KEY", "BINANCE_API_SECRET") if not env.get(v)]
        if missing:
            out.append(f"{MODE_VAR}={mode} needs the broker's keys: set {' and '.join(missing)} (or "
                       f"{MODE_VAR}=paper)")
        url = env.get("BINANCE_TRADING_URL", "https://testnet.binancefuture.com")
        if mode == "testnet" and is_production(url):
            out.append(f"{MODE_VAR}=testnet but BINANCE_TRADING_URL={url} is Binance production: point it at "
                       "https://testnet.binancefuture.com")
        if mode == "live" and is_production(url) and env.get(CONFIRM_VAR, "") != CONFIRM_VALUE:
            out.append(f"{MODE_VAR}=live sends real orders to {urlparse(url).hostname}: it also needs "
                       f"{CONFIRM_VAR}={CONFIRM_VALUE}")
    profile = env.get("BTC_ENV", "local").strip() or "local"
    if profile not in ("local", "prod"):
        out.append(f"BTC_ENV={profile!r} is unknown: set local (default) or prod")
    elif profile == "prod":
        for var in ("BTC_S3_BUCKET", "BTC_MLFLOW_TRACKING_URI", "DAGSTER_PG_URL"):
            if not env.get(var):
                out.append(f"BTC_ENV=prod needs {var} (see README, Production)")
        tracking = env.get("BTC_MLFLOW_TRACKING_URI", "")
        if "@" in tracking and ":" in tracking.split("@")[0].split("//")[-1]:
            out.append("BTC_MLFLOW_TRACKING_URI must not contain a password: put it in PGPASSWORD")
    return out


def validate(command: str, env: Mapping[str, str] | None = None) -> None:
    found = problems(command, env)
    if found:
        raise SettingsError(f"btc-assets {command}: the configuration cannot work, nothing was run:\n"
                            + "\n".join(f"  - {p}" for p in found) + "\n(btc-assets --help lists every variable)")


QUIET_WARNINGS = ("Add type hints to the `predict` method",)  # library advice for its users' code, not ours


def quiet_libraries(env: Mapping[str, str] | None = None) -> None:
    """Dagster's beta/preview warnings and MLflow's database-migration lines hide the real messages: drop them
    from the command line's output unless BTC_DEBUG is set."""
    import logging
    import warnings

    env = os.environ if env is None else env
    if env.get("BTC_DEBUG"):
        return
    try:
        import dagster as dg

        for name in ("BetaWarning", "PreviewWarning", "SupersessionWarning"):
            if (cls := getattr(dg, name, None)) is not None:
                warnings.filterwarnings("ignore", category=cls)
    except ImportError:  # pragma: no cover - dagster is a dependency
        pass
    for name in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store",
                 "mlflow.tracking._model_registry.fluent", "mlflow.models.model", "mlflow.models.signature"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow's advice on pickled pyfunc models and type hints is for its users' code, said once per model logged
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    # the LSTM is saved by pickle on purpose (its feature list, window and scaler; see tracking.lstm_logger)
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
    # ... but MLflow wraps some calls in simplefilter("once", UserWarning), ahead of any filter of ours: drop the
    # line where it would be shown instead
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not any(q in str(message) for q in QUIET_WARNINGS):
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def run_logs(run_config: dict | None = None, env: Mapping[str, str] | None = None) -> dict:
    """`run_config` with Dagster's console logger at WARNING for runs the command line executes in process (each
    run's events stay in the instance and the UI); BTC_DEBUG keeps every event on the console."""
    env = os.environ if env is None else env
    out = dict(run_config or {})
    if not env.get("BTC_DEBUG"):
        out.setdefault("loggers", {"console": {"config": {"log_level": "WARNING"}}})
    return out


def quiet_mlflow_prints(env: Mapping[str, str] | None = None) -> None:
    """MLflow prints each registration ("Registered model ... already exists. Creating a new version ...") straight
    to stderr; the demo's summary states every version and its verdict, so those lines go unless BTC_DEBUG."""
    env = os.environ if env is None else env
    if env.get("BTC_DEBUG"):
        return
    import mlflow.utils.logging_utils as mlflow_logging

    mlflow_logging.MLFLOW_LOGGING_STREAM = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
