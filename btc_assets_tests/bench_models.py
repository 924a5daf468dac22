"""`python -m btc_assets_tests.bench_models`: speed figures of the model layer on this machine's CPU.

1. XGBoost (hist) fit on a year of 1m bars x 100 features (525,600 synthetic rows: the bundled sample has 60 days),
   400 rounds without early stopping (the upper bound of a weekly fit) and with early stopping as the asset trains;
2. LSTM training throughput (samples/s per epoch) at the default architecture (LSTM(128) -> Dense(64), 60-bar
   windows of 124 features) and at the demo configuration;
3. inference latency per bar (p50/p99, one bar at a time as the live path asks) for XGBoost, the LSTM, the
   Transformer and the ensemble. Target: XGBoost year fit < 2 min, p99 < 10 ms (the Transformer's too);
4. Transformer training throughput at the default architecture (60-bar windows, d_model 64, 4 heads, 2 layers);
5. the TFT on the bundled five years of real hourly bars (2019-10 .. 2024-12): training throughput at the default
   architecture (168-hour encoder, hidden 16) measured over a capped number of batches, and the weekly fit's time
   extrapolated from it (an epoch is every window once; the asset fits n_folds + 1 times, each at most max_epochs).
Results are also written to .bench/models.json. Threads: at most 2 (the machine is shared).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from btc_assets.lib.research.models import ensemble, lstm, transformer, xgb  # sets OMP_WAIT_POLICY first

REPO = Path(__file__).resolve().parents[1]
YEAR = 525_600


def frame(n: int, n_features: int, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(n_features)]
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    score = 0.3 * x[:, 0] + 0.2 * x[:, 1] + rng.normal(size=n)
    df = pd.DataFrame(x, columns=names)
    df.insert(0, "open_time", pd.date_range("2023-01-01", periods=n, freq="1min", tz="UTC"))
    df["label"] = np.where(score > 0.8, 2, np.where(score < -0.8, 0, 1))
    return df, names


def bench_xgb_year() -> dict[str, float]:
    df, names = frame(YEAR, 100)
    cut = int(YEAR * 0.85)
    out = {}
    for name, rounds, early in (("xgb_year_fit_400_rounds_s", 400, 10_000), ("xgb_year_fit_early_stopping_s", 400, 30)):
        t0 = time.perf_counter()
        booster = xgb.train(df[:cut], df[cut:], names, xgb.XgbParams(n_estimators=rounds, early_stopping_rounds=early))
        out[name] = time.perf_counter() - t0
        out[name[:-2] + "_rounds"] = float(booster.num_boosted_rounds())
    return out


def bench_lstm_training() -> dict[str, float]:
    df, names = frame(40_000, 124)
    out = {}
    for label, p in (("default", lstm.LstmParams(epochs=1, stride=4, max_train_samples=8000, device="cpu")),
                     ("demo", lstm.LstmParams(window=30, hidden=32, dense=16, epochs=1, stride=1,
                                              max_train_samples=8000, device="cpu"))):
        m = lstm.train(df[:32_000], df[32_000:34_000], names, p)
        out[f"lstm_{label}_train_samples_per_s"] = float(np.mean(m.samples_per_second))
    return out


def latency(fn, n: int) -> tuple[float, float]:
    fn(0)  # warm-up (first call allocates)
    times = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def bench_latency(n: int = 300) -> dict[str, float]:
    df, names = frame(6000, 124)
    booster = xgb.train(df[:4000], df[4000:5000], names, xgb.XgbParams(n_estimators=400, early_stopping_rounds=10_000))
    net = lstm.train(df[:4000], df[4000:5000], names, lstm.LstmParams(epochs=1, stride=10, device="cpu")).net
    base = 5000

    def xgb_bar(i: int) -> np.ndarray:
        return xgb.predict_proba(booster, df.iloc[base + i:base + i + 1], names)

    def lstm_bar(i: int) -> np.ndarray:
        row = df.iloc[base + i:base + i + 1]
        return lstm.predict_proba(net, row, df.iloc[base + i - 59:base + i])

    tnet = transformer.train(df[:4000], df[4000:5000], names,
                             transformer.TransformerParams(epochs=1, stride=10, device="cpu")).net

    def transformer_bar(i: int) -> np.ndarray:
        row = df.iloc[base + i:base + i + 1]
        return transformer.predict_proba(tnet, row, df.iloc[base + i - 59:base + i])

    def ens_bar(i: int) -> np.ndarray:  # the default members: XGBoost, LSTM and the Transformer
        return ensemble.signal_proba(xgb_bar(i), lstm_bar(i), transformer_bar(i))

    out = {}
    for name, fn in (("xgb", xgb_bar), ("lstm", lstm_bar), ("transformer", transformer_bar), ("ensemble", ens_bar)):
        p50, p99 = latency(fn, n)
        out[f"{name}_latency_p50_ms"], out[f"{name}_latency_p99_ms"] = p50, p99
    return out


def bench_transformer_training() -> dict[str, float]:
    df, names = frame(40_000, 124)
    p = transformer.TransformerParams(epochs=1, stride=4, max_train_samples=8000, device="cpu")
    m = transformer.train(df[:32_000], df[32_000:34_000], names, p)
    return {"transformer_default_train_samples_per_s": float(np.mean(m.samples_per_second))}


def bench_tft_five_years(batches: int = 40) -> dict[str, float]:
    import io
    import zipfile

    from btc_assets.lib.research.models import tft

    folder = REPO / "btc_assets" / "sample_data" / "archive" / "data" / "futures" / "um" / "monthly" / "klines" / \
        "BTCUSDT" / "1h"
    frames = []
    for f in sorted(folder.glob("BTCUSDT-1h-*.zip")):
        with zipfile.ZipFile(f) as zf:
            frames.append(pd.read_csv(io.BytesIO(zf.read(zf.namelist()[0]))))
    k = pd.concat(frames, ignore_index=True)
    bars = pd.DataFrame({"open_time": pd.to_datetime(k["open_time"], unit="ms", utc=True), "open": k["open"],
                         "high": k["high"], "low": k["low"], "close": k["close"], "volume": k["volume"],
                         "taker_buy_volume": k["taker_buy_volume"]})
    rows = tft.usable(tft.hourly_frame(bars))
    cut = pd.Timestamp(bars["open_time"].max()) + pd.Timedelta(hours=1)
    p = tft.TftParams(max_epochs=1, batches_per_epoch=batches)
    train, val = tft.split_for(rows, cut, p)
    m = tft.fit(train, val, p)
    per_epoch = len(train) / m.samples_per_second
    default = tft.TftParams()
    return {"tft_hourly_rows": float(len(rows)), "tft_train_windows": float(len(train)),
            "tft_default_train_samples_per_s": m.samples_per_second,
            "tft_epoch_s_extrapolated": per_epoch,
            "tft_weekly_fit_s_extrapolated_upper_bound": per_epoch * default.max_epochs * 3}


def main() -> None:
    import torch

    torch.set_num_threads(2)
    results: dict[str, float] = {}
    for part in (bench_latency, bench_lstm_training, bench_transformer_training, bench_tft_five_years,
                 bench_xgb_year):
        t0 = time.perf_counter()
        results.update(part())
        print(f"{part.__name__}: {time.perf_counter() - t0:.1f} s", flush=True)
    width = max(map(len, results))
    for k, v in results.items():
        print(f"  {k:<{width}} {v:12,.2f}")
    out = REPO / ".bench"
    out.mkdir(exist_ok=True)
    (out / "models.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
