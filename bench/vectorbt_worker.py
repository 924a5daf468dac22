"""vectorbt's side of the backtest bench; runs inside .bench/vectorbt-venv (vectorbt 1.2.0, pandas >= 3).

Usage: python bench/vectorbt_worker.py DATA.npz [--first-only]
Loads the bench's bars and long/short entry signals, runs ``Portfolio.from_signals`` (fills at the next bar's open,
taker fee 0.05 %, 1 bp slippage) and prints one JSON line: the first call's seconds (the JIT compile in a fresh
process) and, unless --first-only, the best and median of the warm calls.
"""

import json
import sys
import time

import numpy as np
import pandas as pd

t_import = time.perf_counter()
import vectorbt as vbt  # noqa: E402  (timed on purpose)

t_import = time.perf_counter() - t_import


def inputs(d: dict) -> dict:
    """pandas inputs, built once: only ``from_signals`` itself is timed, as the platform's figure times ``simulate``."""
    # Naive UTC times: vectorbt 1.2 on pandas 3 is ~30x slower with a tz-aware index (1.3-2 s vs ~50 ms warm).
    idx = pd.to_datetime(d["time_ns"])
    sig = d["signal"]
    # The decision at bar t's close is filled at bar t+1's open, as the platform's engine does.
    return {"close": pd.Series(d["close"], idx), "price": pd.Series(d["open"], idx),
            "entries": pd.Series(np.r_[False, sig[:-1] == 1], idx),
            "short_entries": pd.Series(np.r_[False, sig[:-1] == -1], idx)}


def run(x: dict) -> object:
    return vbt.Portfolio.from_signals(x["close"], entries=x["entries"], short_entries=x["short_entries"],
                                      price=x["price"], fees=0.0005, slippage=0.0001, init_cash=10_000.0, freq="1min")


def main() -> None:
    x = inputs(dict(np.load(sys.argv[1])))
    t0 = time.perf_counter()
    pf = run(x)
    first = time.perf_counter() - t0
    out = {"vectorbt_version": vbt.__version__, "pandas_version": pd.__version__, "import_s": t_import,
           "first_call_s": first, "trades": int(pf.trades.count())}
    if "--first-only" not in sys.argv:
        warm = []
        for _ in range(7):
            t0 = time.perf_counter()
            run(x)
            warm.append(time.perf_counter() - t0)
        out |= {"warm_best_s": min(warm), "warm_median_s": float(np.median(warm))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
