"""Command line of btc-assets: `btc-assets demo | ui | collect | metrics | generate-sample | restore-warehouse`.

`demo` materializes the whole graph over a date range in process, against the persistent Dagster instance in
$DAGSTER_HOME, so that `make ui` afterwards shows every run, materialization and check. Daily layers are filled by
single-run backfills (one run for the whole range), models one week per run, then the live sensor is replayed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
log = logging.getLogger("btc_assets")


def prepare_environment(data_dir: str | None = None) -> Path:
    """Resolve BTC_DATA_DIR, point DAGSTER_HOME inside it and install the project's dagster.yaml there."""
    root = Path(data_dir or os.environ.get("BTC_DATA_DIR", "./data")).resolve()
    os.environ["BTC_DATA_DIR"] = str(root)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(root / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    # The repo's files are the source of truth for the instance: local (sqlite) or production (Postgres + S3).
    template = REPO / ("deploy/dagster.prod.yaml" if os.environ.get("BTC_ENV", "local") == "prod" else "dagster.yaml")
    shutil.copy(template, home / "dagster.yaml")
    return root


DG_ENV_KEYS = ("BTC_DATA_DIR", "DAGSTER_HOME", "BINANCE_ARCHIVE_URL")


def write_dg_env(root: Path, repo: Path = REPO) -> Path:
    """Write the project's instance and data directory into `.env` at the repo root, which `dg` (and
    dagster-webserver/daemon started there) load: `dg dev`, `dg launch` and `dg list defs` then use
    $BTC_DATA_DIR/dagster_home with the project's dagster.yaml instead of a throwaway instance. Lines of the file
    that set other variables are kept."""
    env = repo / ".env"
    kept = [line for line in (env.read_text().splitlines() if env.exists() else [])
            if line.split("=", 1)[0].strip() not in DG_ENV_KEYS]
    ours = [f"{k}={os.environ[k]}" for k in DG_ENV_KEYS if os.environ.get(k)]
    note = "# written by `btc-assets env` (make install): the instance dg uses"
    env.write_text("\n".join([*kept, note, *ours]) + "\n")
    return env


def _weeks(first_day: dt.date, last_day: dt.date, min_history_days: int) -> list[str]:
    """Monday keys of weeks that have at least `min_history_days` of data before them and start within range."""
    monday = first_day + dt.timedelta(days=(7 - first_day.weekday()) % 7)
    out = []
    while monday <= last_day:
        if (monday - first_day).days >= min_history_days:
            out.append(monday.isoformat())
        monday += dt.timedelta(days=7)
    return out


DEMO_DATASETS = ("klines", "funding", "history", "market")
DATASET_HELP = ("klines: 1m klines and the bars built from them (always); funding: funding rates (the backtest "
                "needs them); history: the archive's monthly 1h/1d klines since 2019 (the TFT, the daily forest and "
                "the daily strategy need them); market: aggTrades, bookDepth, metrics, mark/index/premium klines "
                "(their gold features are null without them)")


def demo_datasets(text: str) -> tuple[str, ...]:
    """--datasets: a comma list of DEMO_DATASETS (klines is always run)."""
    chosen = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    unknown = [x for x in chosen if x not in DEMO_DATASETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown dataset(s) {', '.join(unknown)}: use {', '.join(DEMO_DATASETS)}")
    if "klines" not in chosen:
        raise argparse.ArgumentTypeError("the klines are always run (every other table is built on them): add klines")
    return chosen


def _workers(text: str) -> int:
    """--workers: 1 or more processes."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more worker processes")
    return n


def demo_plan(datasets: tuple[str, ...]) -> dict[str, str]:
    """Step -> why it is left out (absent: it runs), for the datasets the demo runs."""
    out: dict[str, str] = {}
    if "funding" not in datasets:
        out["funding"] = "funding not in --datasets"
        out["backtest/report"] = "the backtest charges funding: add funding to --datasets"
    if "history" not in datasets:
        for step in ("long history", "models/tft_model", "models/regime_forecast", "models/rf_daily_baseline",
                     "models/rf_daily_selection", "daily strategy"):
            out[step] = "needs the archive's long 1h/1d history: add history to --datasets"
    if "market" not in datasets:
        out["market data"] = "market not in --datasets (gold's order-flow, book, metrics and mark/index/premium " \
                             "features are null)"
    return out


def archive_reachable(url: str, timeout_s: float = 5.0) -> str | None:
    """Why the archive at `url` (http/https) cannot be reached now, or None: one request, a short timeout, before
    any run (a dead network is said at once, not after minutes of retries)."""
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
    from urllib.request import Request, urlopen

    if urlparse(url).scheme.lower() not in ("http", "https"):
        return None
    try:
        with urlopen(Request(url, method="HEAD"), timeout=timeout_s):  # noqa: S310 - the configured archive
            return None
    except HTTPError:
        return None  # it answered (a directory listing may be refused): the network is there
    except (URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        return (f"BINANCE_ARCHIVE_URL={url} cannot be reached ({reason}): this machine looks offline. Unset "
                "BINANCE_ARCHIVE_URL for the bundled sample, or point it at a local mirror of the archive")


def _archive_url() -> str:
    from btc_assets.defs.resources.sources import DEFAULT_ARCHIVE_URL

    return os.environ.get("BINANCE_ARCHIVE_URL") or DEFAULT_ARCHIVE_URL


def run_demo(start: dt.date, end: dt.date, replay_hours: float, replay_speed: float,
             datasets: tuple[str, ...] = DEMO_DATASETS) -> dict:
    import dagster as dg

    from btc_assets.cli import in_process
    from btc_assets.cli.backfill import FUNDING, GOLD, HISTORY, KLINES, MARKET_SILVER
    from btc_assets.definitions import defs
    from btc_assets.cli.settings import quiet_mlflow_prints, run_logs
    from btc_assets.lib.data.market.datasets import DATASETS as MARKET_DATASETS
    from btc_assets.defs.models.assets import (DAILY_SELECTION_DEMO_CONFIG, LSTM_DEMO_CONFIG, TFT_DEMO_CONFIG,
                                               TRANSFORMER_DEMO_CONFIG, XGB_DEMO_CONFIG, XgbTrainingConfig)

    quiet_mlflow_prints()

    instance = dg.DagsterInstance.get()
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - t0
        log.info("%-34s %6.1f s", name, timings[name])

    def range_run(keys: list[list[str]], first: str, last: str):
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey(k) for k in keys})
        result = in_process.execute(job, instance, run_config=run_logs(), tags={
            "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
        if not result.success:
            raise SystemExit(f"run {result.run_id} failed: see `make ui` -> Runs")

    skipped = demo_plan(datasets)
    for step, why in skipped.items():
        log.info("%-34s skipped: %s", step, why)

    def step(name: str, label: str, fn) -> None:
        if name not in skipped:
            timed(label, fn)

    months = (f"{start:%Y-%m}-01", f"{end:%Y-%m}-01")
    step("funding", "funding (bronze+silver, monthly)",
         lambda: range_run(FUNDING, *months))
    days = f"{(end - start).days + 1} days, 1 run"
    timed(f"klines bronze->silver ({days})", lambda: range_run(KLINES, start.isoformat(), end.isoformat()))
    # After the 1m-built bars, so that the archive's monthly 1h/1d bars are compared with them where both exist.
    from btc_assets.defs import partitions as parts

    history = parts.history_monthly.get_partition_keys()
    if history:
        step("long history", f"long history 1h/1d bronze->silver ({len(history)} months, 1 run)", lambda: range_run(
            HISTORY, history[0], history[-1]))
    # After the klines: the order-flow check compares klines rebuilt from aggTrades with silver klines.
    market = [["bronze", n] for n in MARKET_DATASETS] + [["silver", n] for n in MARKET_SILVER]
    step("market data", f"market data bronze->silver ({days})",
         lambda: range_run(market, start.isoformat(), end.isoformat()))
    timed(f"gold features + labels ({days})",
          lambda: range_run(GOLD, start.isoformat(), end.isoformat()))
    cfg = XgbTrainingConfig()
    weeks = _weeks(start, end, cfg.min_train_days + 3)
    def model_subset(*names: str):
        return defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey(["models", n]) for n in names})

    weekly_job = model_subset("xgb_model", "lstm_model", "transformer_model", "ensemble")
    # The demo's LSTM is small (LSTM_DEMO_CONFIG) so the whole graph stays within minutes on 2 cores; the asset's
    # defaults are the full architecture.
    demo_config = {"ops": {"models__xgb_model": {"config": XGB_DEMO_CONFIG},
                           "models__lstm_model": {"config": LSTM_DEMO_CONFIG},
                           "models__transformer_model": {"config": TRANSFORMER_DEMO_CONFIG}}}

    def train_all():
        for week in weeks:
            # One run per week: XGBoost, LSTM and Transformer, then their ensemble. A model that is not promoted is
            # a green run with a WARN check saying why; only a real error fails it.
            _must_succeed(in_process.execute(weekly_job, instance, partition_key=week, tags=NO_RETRY,
                                                        run_config=run_logs(demo_config), raise_on_error=False),
                          f"training week {week}")

    timed(f"models: xgb, lstm, transformer, ensemble ({len(weeks)} weeks)", train_all)
    # The TFT: trained once, for the week the sample starts in, on the years of hourly history before it; its
    # forecasts then serve every sample day (a day uses the latest week's promoted forecaster).
    first_week = parts.weekly.get_partition_keys()[0]
    step("models/tft_model", f"models/tft_model (week {first_week}, hourly history)", lambda: _must_succeed(
        in_process.execute(model_subset("tft_model"), instance, partition_key=first_week, tags=NO_RETRY,
                           run_config=run_logs({"ops": {"models__tft_model": {"config": TFT_DEMO_CONFIG}}}),
                           raise_on_error=False),
        f"models/tft_model {first_week}"))
    step("models/regime_forecast", f"models/regime_forecast ({days})",
         lambda: range_run([["models", "regime_forecast"]], start.isoformat(), end.isoformat()))
    step("models/rf_daily_baseline", "models/rf_daily_baseline", lambda: _must_succeed(
        in_process.execute(model_subset("rf_daily_baseline"), instance, tags=NO_RETRY, run_config=run_logs(),
                                                             raise_on_error=False),
        "models/rf_daily_baseline"))
    step("models/rf_daily_selection", "models/rf_daily_selection (forward selection)", lambda: _must_succeed(
        in_process.execute(model_subset("rf_daily_selection"), instance, tags=NO_RETRY, run_config=run_logs(
            {"ops": {"models__rf_daily_selection": {"config": DAILY_SELECTION_DEMO_CONFIG}}}), raise_on_error=False),
        "models/rf_daily_selection"))
    step("daily strategy", "daily strategy: regimes + backtest", lambda: _plain_run(
        defs, instance, [["strategy_daily", "regimes"], ["strategy_daily", "backtest"]]))
    # The daily signal as the 00:05 schedule runs it, for the sample's last three days (paper broker; the daily
    # forest trades only while promoted, else its target is flat and the log says so).
    daily_job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["strategy_daily", "signal"]), dg.AssetKey(["strategy_daily", "signal_log"])})
    signal_days = [end - dt.timedelta(days=i) for i in (2, 1, 0)]
    step("daily strategy", f"daily strategy: signal + signal log ({len(signal_days)} days)", lambda: [_must_succeed(
        in_process.execute(daily_job, instance, partition_key=d.isoformat(), tags=NO_RETRY, run_config=run_logs(),
                           raise_on_error=False), f"strategy_daily {d}") for d in signal_days])
    timed("models/signals (1 run)", lambda: range_run([["models", "signals"]], weeks[0], end.isoformat()))
    step("backtest/report", "backtest/report", lambda: _plain_run(defs, instance, [["backtest", "report"]]))
    from btc_assets.cli.replay import replay_sensor

    replay_end = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    replay_start = replay_end - dt.timedelta(hours=replay_hours)
    timed(f"replay sensor ({int(replay_hours * 60)} bars)",
          lambda: timings.update(replay_sensor(defs, instance, replay_start, replay_end, replay_speed)))
    # The replayed days' paper account (the daily summary the schedule builds in production).
    pnl_job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey(["trading", "pnl"])})
    replay_days = sorted({replay_start.date(), (replay_end - dt.timedelta(minutes=1)).date()})
    timed("trading/pnl (replayed days)", lambda: [_must_succeed(
        in_process.execute(pnl_job, instance, partition_key=d.isoformat(), run_config=run_logs(),
                                   raise_on_error=False),
        f"trading/pnl {d}") for d in replay_days])
    timed("trading/dashboard", lambda: _plain_run(defs, instance, [["trading", "dashboard"]]))
    timed("trading/books (every strategy and venue)", lambda: _plain_run(defs, instance, [["trading", "books"]]))
    return timings


def _plain_run(defs, instance, keys) -> None:
    import dagster as dg

    from btc_assets.cli import in_process
    from btc_assets.cli.settings import run_logs

    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey(k) for k in keys})
    res = in_process.execute(job, instance, run_config=run_logs())
    if not res.success:
        raise SystemExit(f"run {res.run_id} failed")


NO_RETRY = {"dagster/max_retries": "0"}


def _must_succeed(res, what: str) -> None:
    if not res.success:
        raise SystemExit(f"{what} failed (run {res.run_id}): see `make ui` -> Runs")


def kill_command(clear: bool, reason: str) -> int:
    """Engage (held until cleared) or clear the kill switch in the warehouse's journal."""
    import duckdb

    from btc_assets.defs.resources import build_resources
    from btc_assets.lib.trading import kill_switch

    with duckdb.connect(build_resources()["warehouse"].database) as conn:
        if clear:
            try:
                done = kill_switch.clear(conn, reason)
            except ValueError as e:
                raise SystemExit(str(e)) from e
            _latch_to_lakehouse(conn)
            print("kill switch cleared: trading resumes on the next run" if done else "the kill switch was not engaged")
            return 0
        engaged = kill_switch.latch(conn, [f"engaged by hand: {reason or 'no reason given'}"], by="btc-assets kill")
        _latch_to_lakehouse(conn)
        print("kill switch engaged: the next trading run cancels, flattens and stops; held until "
              "btc-assets kill --clear --reason '...'" if engaged else kill_switch.latched(conn))
    return 0


def _latch_to_lakehouse(conn) -> None:
    """With BTC_LAKEHOUSE_URI set, the latch's new event goes to its Delta table at once (the audit trail)."""
    import os

    from btc_assets.lib.storage.lakehouse import URI_VAR, Lakehouse
    from btc_assets.lib.trading.journal import events_to_lakehouse

    if os.environ.get(URI_VAR):
        events_to_lakehouse(conn, Lakehouse.from_env(), note={"by": "btc-assets kill"})


def main(argv: list[str] | None = None) -> int:
    from btc_assets.cli.settings import help_text, quiet_libraries, validate

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_libraries()
    p = argparse.ArgumentParser(prog="btc-assets", description=__doc__.splitlines()[0], epilog=help_text(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="materialize the whole graph over a date range (default: the bundled sample)",
                       epilog=help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 1, 1))
    d.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2024, 2, 29))
    d.add_argument("--replay-hours", type=float, default=4.0)
    d.add_argument("--replay-speed", type=float, default=1200.0, help="replayed minutes per wall-clock minute")
    d.add_argument("--datasets", type=demo_datasets, default=DEMO_DATASETS,
                   help=f"comma list of the datasets to run (default: all): {DATASET_HELP}")
    d.add_argument("--no-lakehouse", action="store_true",
                   help="the DuckDB warehouse only (default: every window is also committed to its Delta table "
                   "under BTC_LAKEHOUSE_URI, or $BTC_DATA_DIR/lakehouse when unset)")
    b = sub.add_parser("backfill", help="the data layers over any date range in chunks of days, with a progress bar "
                       "(bronze -> silver, then gold; --models: then the weekly models over the range's weeks)")
    b.add_argument("--start", type=dt.date.fromisoformat, required=True)
    b.add_argument("--end", type=dt.date.fromisoformat, required=True)
    b.add_argument("--datasets", type=demo_datasets, default=("klines", "funding"),
                   help=f"comma list of the datasets to run (default: klines,funding): {DATASET_HELP}")
    b.add_argument("--chunk-days", type=int, default=7, help="days per run (one Dagster run each)")
    b.add_argument("--models", action="store_true", help="then train the weekly models (one run for the weeks)")
    b.add_argument("--workers", type=_workers, default=1,
                   help="runs at once, each in its own process (default 1: one after another in this process); "
                   "each run starts once the runs it reads are done (a gold chunk: its warm-up's and next day's silver)")
    sub.add_parser("ui", help="Dagster UI on 127.0.0.1:3000 and MLflow UI on 127.0.0.1:5000 (Ctrl-C stops both)")
    sub.add_parser("proxy", help="nginx with basic auth in front of both UIs (BTC_UI_USERS or BTC_UI_HTPASSWD; "
                   "BTC_PROXY_* settings, see README)")
    sub.add_parser("env", help="write .env at the repo root (BTC_DATA_DIR, DAGSTER_HOME, BINANCE_ARCHIVE_URL) so "
                   "that dg dev / dg launch / dg list defs use the project's instance; make install runs it")
    sub.add_parser("generate-sample", help="rewrite the synthetic datasets of the bundled sample (deterministic)")
    sub.add_parser("restore-warehouse", help="production: rebuild the DuckDB warehouse from its tables on S3")
    m = sub.add_parser("metrics", help="serve the trader's Prometheus metrics on /metrics")
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=int(os.environ.get("BTC_METRICS_PORT", "9108")))
    t = sub.add_parser("trade", help="the live trader as a long-lived worker: live_trading_sensor polled from each "
                       "bar's close, its runs executed in this warm process (paper unless BTC_TRADING_MODE says "
                       "otherwise)")
    t.add_argument("--tick-seconds", type=float, default=0.25, help="polling interval once a bar is due")
    k = sub.add_parser("kill", help="engage the kill switch (held until cleared), or --clear it; journaled in "
                       "trading.kill_switch with who and why")
    k.add_argument("--clear", action="store_true", help="clear the engaged kill switch: trading may resume")
    k.add_argument("--reason", default="", help="why (journaled; required with --clear)")
    sub.add_parser("collect", add_help=False, help="record the live USD-M market streams to hourly bronze files "
                   "until Ctrl-C/SIGTERM (options: btc-assets collect --help)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["collect"]:  # the collector parses its own options
        validate("collect")
        prepare_environment()
        from btc_assets.lib.data.collector.main import main as collect

        return collect(argv[1:])
    args = p.parse_args(argv)
    if args.cmd == "demo" and not os.environ.get("BINANCE_ARCHIVE_URL"):
        # The demo is offline: the bundled sample unless told otherwise (before the definitions load, so the
        # partitions start at the sample's first day).
        from btc_assets.defs.resources.sources import SAMPLE_ARCHIVE

        os.environ["BINANCE_ARCHIVE_URL"] = str(SAMPLE_ARCHIVE)
        log.info("BINANCE_ARCHIVE_URL not set: the demo reads the bundled sample (%s)", SAMPLE_ARCHIVE)
    validate(args.cmd)  # before anything is recorded or run: every problem named with its variable
    if args.cmd in ("demo", "backfill") and (offline := archive_reachable(_archive_url())):
        raise SystemExit(f"btc-assets {args.cmd}: {offline}; nothing was run")
    root = prepare_environment()
    if args.cmd == "demo" and not args.no_lakehouse and not os.environ.get("BTC_LAKEHOUSE_URI"):
        # the demo runs on the lakehouse: every window committed to its Delta table (before the definitions load)
        os.environ["BTC_LAKEHOUSE_URI"] = str(root / "lakehouse")
        log.info("BTC_LAKEHOUSE_URI not set: the demo commits every window to Delta tables under %s",
                 os.environ["BTC_LAKEHOUSE_URI"])
    if args.cmd == "backfill":
        from btc_assets.cli.backfill import backfill

        return backfill(args.start, args.end, args.datasets, args.chunk_days, args.models, workers=args.workers)
    if args.cmd == "demo":
        t0 = time.perf_counter()
        timings = run_demo(args.start, args.end, args.replay_hours, args.replay_speed, args.datasets)
        from btc_assets.cli.summary import print_summary

        print_summary(root, timings, time.perf_counter() - t0)
        return 0
    if args.cmd == "restore-warehouse":
        from btc_assets.defs.resources import build_resources

        warehouse = build_resources()["warehouse"]
        mirror = warehouse.mirror()
        if mirror is None:
            raise SystemExit("restore-warehouse needs BTC_ENV=prod and BTC_S3_BUCKET: locally the DuckDB file is "
                             "the only copy")
        import duckdb

        from btc_assets.lib.storage.table_mirror import restore

        with duckdb.connect(warehouse.database) as conn:
            for table, rows in restore(conn, mirror).items():
                print(f"  {table:<28} {rows:>10,} rows")
        return 0
    if args.cmd == "kill":
        return kill_command(args.clear, args.reason)
    if args.cmd == "env":
        print(f"wrote {write_dg_env(root)}: dg uses DAGSTER_HOME={os.environ['DAGSTER_HOME']}")
        return 0
    if args.cmd == "generate-sample":
        from btc_assets.lib.data.synthetic.__main__ import main as generate_sample

        return generate_sample([]) or 0
    if args.cmd == "metrics":
        from btc_assets.cli.metrics_server import serve_metrics

        return serve_metrics(root / "metrics" / "trading.prom", args.host, args.port)
    if args.cmd == "trade":
        import signal

        import dagster as dg

        from btc_assets.definitions import defs
        from btc_assets.cli.replay import trade_forever

        stop = {"now": False}
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.update(now=True))
        with dg.DagsterInstance.get() as instance:
            print(trade_forever(defs, instance, root / "live_trader.cursor.json", args.tick_seconds,
                                should_stop=lambda: stop["now"]))
        return 0
    if args.cmd == "ui":
        from btc_assets.cli.ui import serve

        return serve(root)
    if args.cmd == "proxy":
        from btc_assets.cli.proxy import ProxyConfigError, serve as serve_proxy

        try:
            return serve_proxy(root)
        except ProxyConfigError as e:
            print(f"btc-assets proxy: {e}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
