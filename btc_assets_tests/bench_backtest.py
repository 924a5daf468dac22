"""Backtest speed bench: the numba engine with everything enabled vs vectorbt's ``Portfolio.from_signals``.

``python -m btc_assets_tests.bench_backtest`` (``make bench`` calls it):
1. builds a year of 1m bars (525,600), SYNTHETIC: the 1m returns, wicks and volumes of the 60 real bundled days
   tiled end to end from the first real price, with the real January-February 2024 funding rates tiled on the
   8-hourly grid; long/short entries from a 5-minute momentum rule;
2. times ``simulate`` (Kelly sizing, ATR stops, take-profit, time exit, 5 positions, isolated margin, liquidation,
   funding, breakers, filters, liquidation guard, step/tick/min-notional) warm, then its first call in a fresh
   process (numba's on-disk cache), then ``evaluate`` and the report page;
3. runs vectorbt 1.2.0 on the same bars and signals in its own virtualenv (.bench/vectorbt-venv, created once from
   bench/requirements-vectorbt.txt: vectorbt needs pandas >= 3, the platform pins 2.3);
4. prints the ratios and writes .bench/backtest_results.json.
Targets: warm ratio <= 1.0; fresh-process first call >= 5x faster than vectorbt's; report under 2 s.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
VENV = BENCH / "vectorbt-venv"
DATA = BENCH / "backtest_year.npz"
UM = REPO / "btc_assets" / "sample_data" / "archive" / "data" / "futures" / "um"
N_BARS = 525_600


def _csv(path: Path) -> pd.DataFrame:
    with zipfile.ZipFile(path) as zf:
        return pd.read_csv(io.BytesIO(zf.read(zf.namelist()[0])))


def year_of_bars() -> dict[str, np.ndarray]:
    k = pd.concat([_csv(p) for p in sorted((UM / "daily/klines/BTCUSDT/1m").glob("*.zip"))])
    c = k["close"].to_numpy(float)
    r = np.diff(np.log(c))
    reps = N_BARS // len(r) + 1
    close = c[0] * np.exp(np.concatenate([[0.0], np.cumsum(np.tile(r, reps))[: N_BARS - 1]]))
    rel = {col: np.tile(k[col].to_numpy(float)[1:] / c[1:], reps)[: N_BARS - 1] for col in ("open", "high", "low")}
    open_, high, low = (np.concatenate([[k[col].iloc[0]], close[1:] * rel[col]]) for col in ("open", "high", "low"))
    high, low = np.maximum.reduce([high, open_, close]), np.minimum.reduce([low, open_, close])
    qv = np.tile(k["quote_volume"].to_numpy(float), reps)[:N_BARS]
    time_ns = pd.date_range("2024-01-01", periods=N_BARS, freq="1min", tz="UTC").asi8
    ret5 = np.r_[np.zeros(5), close[5:] / close[:-5] - 1.0]
    signal = np.where(ret5 > 0.003, 1, np.where(ret5 < -0.003, -1, 0)).astype(np.int8)
    monthly = sorted((UM / "monthly/fundingRate/BTCUSDT").glob("BTCUSDT-fundingRate-2024-0*.zip"))
    f = pd.concat([_csv(p) for p in monthly])
    rates = f["last_funding_rate"].to_numpy(float)
    f_times = pd.date_range("2024-01-01", periods=365 * 3, freq="8h", tz="UTC").asi8
    return {"time_ns": time_ns, "open": open_, "high": high, "low": low, "close": close, "quote_volume": qv,
            "signal": signal, "funding_time_ns": f_times, "funding_rate": np.resize(rates, len(f_times))}


def frames(d: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    times = pd.to_datetime(d["time_ns"], utc=True)
    bars = pd.DataFrame({"open_time": times, **{k: d[k] for k in ("open", "high", "low", "close", "quote_volume")}})
    funding = pd.DataFrame({"funding_time": pd.to_datetime(d["funding_time_ns"], utc=True), "rate": d["funding_rate"]})
    return bars, pd.Series(d["signal"], times), funding


def first_call_worker() -> None:
    """Run in a fresh process: import, then time the first simulate (numba loads the compiled code from disk)."""
    t0 = time.perf_counter()
    from btc_assets.lib.research.backtest import simulate
    t_import = time.perf_counter() - t0
    bars, sig, funding = frames(dict(np.load(DATA)))
    t0 = time.perf_counter()
    simulate(bars, sig, funding)
    print(json.dumps({"import_s": t_import, "first_call_s": time.perf_counter() - t0}))


def ensure_bench_venv(venv: Path, requirements: str, what: str) -> Path:
    """The python of a bench-only virtualenv (a reference library that cannot share the platform's pins), created
    once from bench/<requirements>."""
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} ({what}) once; needs PyPI access", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(REPO / "bench" / requirements)], check=True)
    return py


def ensure_vectorbt_venv() -> Path:
    return ensure_bench_venv(VENV, "requirements-vectorbt.txt", "vectorbt 1.2.0, pandas >= 3")


def _json_run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"bench worker {cmd} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from btc_assets.lib.research.backtest import simulate
    from btc_assets.lib.research.backtest.metrics import evaluate
    from btc_assets.lib.research.backtest.report import render_report

    BENCH.mkdir(exist_ok=True)
    d = year_of_bars()
    np.savez(DATA, **d)
    bars, sig, funding = frames(d)
    res = simulate(bars, sig, funding)  # compiles (first ever) or loads the cache
    warm = []
    for _ in range(7):
        t0 = time.perf_counter()
        res = simulate(bars, sig, funding)
        warm.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ev = evaluate(res, bars, funding)
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    html = render_report(res, ev, title="bench", subtitle="SYNTHETIC: the real sample's returns tiled to a year")
    t_report = time.perf_counter() - t0
    ours_first = _json_run([sys.executable, "-m", "btc_assets_tests.bench_backtest", "--first-call-worker"])
    vpy = str(ensure_vectorbt_venv())
    vbt_fresh = _json_run([vpy, str(REPO / "bench" / "vectorbt_worker.py"), str(DATA)])
    r = {"bars": N_BARS, "data": "synthetic: 60 real days' 1m returns tiled to a year, real funding tiled",
         "signals": int((d["signal"] != 0).sum()), "trades": len(res.trades), "skipped": res.skipped,
         "ours_warm_best_s": min(warm), "ours_warm_median_s": float(np.median(warm)), "evaluate_s": t_eval,
         "report_s": t_report, "report_mb": len(html) / 1e6, "ours_fresh": ours_first, "vectorbt": vbt_fresh,
         "warm_ratio": float(np.median(warm)) / vbt_fresh["warm_median_s"],
         "first_call_speedup": vbt_fresh["first_call_s"] / ours_first["first_call_s"]}
    (BENCH / "backtest_results.json").write_text(json.dumps(r, indent=2))
    print(f"{N_BARS:,} bars (synthetic, tiled real returns), {r['signals']:,} signals")
    print(f"ours   warm median {r['ours_warm_median_s'] * 1e3:7.1f} ms (best {r['ours_warm_best_s'] * 1e3:.1f}), "
          f"{r['trades']:,} trades; fresh-process first call {ours_first['first_call_s'] * 1e3:.0f} ms "
          f"(+ import {ours_first['import_s'] * 1e3:.0f} ms)")
    print(f"vbt    warm median {vbt_fresh['warm_median_s'] * 1e3:7.1f} ms (best {vbt_fresh['warm_best_s'] * 1e3:.1f}), "
          f"{vbt_fresh['trades']:,} trades; fresh-process first call {vbt_fresh['first_call_s']:.2f} s "
          f"(+ import {vbt_fresh['import_s']:.2f} s)")
    print(f"warm ratio ours/vbt {r['warm_ratio']:.2f} (target <= 1.0); first call {r['first_call_speedup']:.1f}x "
          f"faster (target >= 5x); evaluate {t_eval * 1e3:.0f} ms; report {t_report:.2f} s (target < 2 s)")


if __name__ == "__main__":
    first_call_worker() if "--first-call-worker" in sys.argv else main()
