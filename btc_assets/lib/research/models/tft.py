"""Temporal Fusion Transformer for multi-day horizons on hourly bars: quantile forecasts of the log return over the
next 1, 7 and 30 days, with mean, spread and skew.

Implementation: pytorch-forecasting's `TemporalFusionTransformer` (maintained, sktime; it installs with the pinned
torch and brings Lightning for the training loop), not a re-implementation: variable selection, gated residual
networks, an LSTM encoder, interpretable multi-head attention and quantile outputs are the library's. This module
decides what it sees and when.

Point in time. One row per hour (its bar known at its close). The forecast made at the close of hour j-1 is the
prediction for row j: the encoder holds rows j-L..j-1 (their features: returns, ranges, volatilities, volume and
taker share, all from bars closed by then); the decoder step holds only row j's calendar (hour of day, day of
week: known in advance). The targets of row j are the forward log returns from the close of hour j-1 over
24/168/720 hours. Targets are never inputs (not in the encoder's reals, a fixed target normaliser fitted on the
training rows, no target scales), so a prediction cannot read a future return: tested by changing every target
and comparing the forecasts.

Baselines: a zero return at every quantile, and the training rows' own quantiles per horizon (historical). Scores:
pinball (quantile) loss per horizon and the coverage of the 10-90 % interval.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

HORIZONS: dict[str, int] = {"1d": 24, "7d": 168, "30d": 720}  # hours
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
TARGETS = [f"fwd_{h}" for h in HORIZONS]
FEATURES = ["ret_1h", "range_1h", "ret_24h", "ret_168h", "vol_24h", "vol_168h", "volume_z", "taker_share"]
KNOWN = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True)
class TftParams:
    encoder_hours: int = 168
    hidden_size: int = 16
    attention_heads: int = 2
    dropout: float = 0.1
    hidden_continuous_size: int = 8
    learning_rate: float = 3e-3
    max_epochs: int = 10
    patience: int = 2  # early stopping on the validation slice's loss
    batch_size: int = 128
    batches_per_epoch: int = 0  # 0: every training window each epoch
    validation_days: int = 60
    seed: int = 7

    def __post_init__(self) -> None:
        if self.encoder_hours < 24:
            raise ValueError(f"tft encoder_hours={self.encoder_hours}: use at least 24 hours of history")
        if self.hidden_size % self.attention_heads:
            raise ValueError(f"tft hidden_size={self.hidden_size} must be a multiple of attention_heads="
                             f"{self.attention_heads}")

    def as_dict(self) -> dict:
        return asdict(self)


def hourly_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The model's rows from hourly bars (open_time, open, high, low, close, volume, taker_buy_volume; one per
    hour, no gaps): point-in-time features of each hour, the calendar, and the targets of the forecast made at the
    previous hour's close (NaN where the future is not in `bars`)."""
    b = bars.sort_values("open_time").reset_index(drop=True)
    t = pd.to_datetime(b["open_time"], utc=True)
    steps = np.diff(t.astype("int64").to_numpy())
    if len(steps) and (steps != HOUR_NS).any():
        i = int(np.flatnonzero(steps != HOUR_NS)[0])
        raise ValueError(f"hourly bars are not contiguous: {t.iloc[i]} is followed by {t.iloc[i + 1]}; the TFT needs "
                         "every hour (silver/klines_1h_history checks it): fill the gap upstream")
    close = b["close"].astype(float)
    logc = np.log(close)
    r1 = logc.diff()
    vol = b["volume"].astype(float)
    logv = np.log1p(vol)
    out = pd.DataFrame({
        "open_time": t, "time_idx": (t.astype("int64") // HOUR_NS).astype("int64"), "series": "BTCUSDT",
        "ret_1h": r1, "range_1h": np.log(b["high"].astype(float) / b["low"].astype(float)),
        "ret_24h": logc.diff(24), "ret_168h": logc.diff(168),
        "vol_24h": r1.rolling(24).std(), "vol_168h": r1.rolling(168).std(),
        "volume_z": (logv - logv.rolling(720, min_periods=24).mean()) / logv.rolling(720, min_periods=24).std(),
        "taker_share": (b["taker_buy_volume"].astype(float) / vol.where(vol > 0)).fillna(0.5),
        "hour_sin": np.sin(2 * np.pi * t.dt.hour / 24), "hour_cos": np.cos(2 * np.pi * t.dt.hour / 24),
        "dow_sin": np.sin(2 * np.pi * t.dt.dayofweek / 7), "dow_cos": np.cos(2 * np.pi * t.dt.dayofweek / 7),
        "origin_close": close.shift(1),
    })
    for name, h in HORIZONS.items():
        # from the close of the previous hour (the forecast's origin) to the close h hours later
        out[f"fwd_{name}"] = logc.shift(-(h - 1)) - logc.shift(1)
    return out


def origin_row(at: pd.Timestamp) -> pd.DataFrame:
    """The decoder row of a forecast made at `at` (an hour's close) before the hour opening at `at` has closed:
    its calendar, and zeros where the model's unknown inputs would be (the decoder does not read them)."""
    t = pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at, tz="UTC")
    row = {"open_time": t, "time_idx": int(t.value // HOUR_NS), "series": "BTCUSDT", **{f: 0.0 for f in FEATURES},
           "hour_sin": np.sin(2 * np.pi * t.hour / 24), "hour_cos": np.cos(2 * np.pi * t.hour / 24),
           "dow_sin": np.sin(2 * np.pi * t.dayofweek / 7), "dow_cos": np.cos(2 * np.pi * t.dayofweek / 7),
           "origin_close": np.nan, **{c: np.nan for c in TARGETS}}
    return pd.DataFrame([row])


def usable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose features are all known (the rolling windows warmed up)."""
    return frame.dropna(subset=FEATURES).reset_index(drop=True)


def _dataset(train: pd.DataFrame, p: TftParams):
    from pytorch_forecasting import TimeSeriesDataSet
    from pytorch_forecasting.data import MultiNormalizer, TorchNormalizer

    return TimeSeriesDataSet(
        train, time_idx="time_idx", target=TARGETS, group_ids=["series"],
        max_encoder_length=p.encoder_hours, min_encoder_length=p.encoder_hours,
        max_prediction_length=1, min_prediction_length=1,
        time_varying_known_reals=KNOWN, time_varying_unknown_reals=FEATURES,
        target_normalizer=MultiNormalizer([TorchNormalizer(method="standard") for _ in TARGETS]),
        add_relative_time_idx=False, add_target_scales=False, add_encoder_length=False)


def _quiet():
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="pytorch_forecasting")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


@dataclass
class TftModel:
    net: object  # pytorch_forecasting.TemporalFusionTransformer (carries its dataset parameters)
    best_epoch: int
    epochs_run: int
    train_seconds: float
    samples_per_second: float
    train_rows: int


def fit(train_rows: pd.DataFrame, val_rows: pd.DataFrame, p: TftParams) -> TftModel:
    """Fit on `train_rows` (every target known), early-stop on `val_rows`' loss; keep the best epoch's weights."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback, EarlyStopping
    from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
    from pytorch_forecasting.metrics import MultiLoss, QuantileLoss

    _quiet()
    if len(train_rows) <= p.encoder_hours or len(val_rows) < 1:
        raise ValueError(f"TFT: {len(train_rows)} training rows and {len(val_rows)} validation rows; it needs more "
                         f"than encoder_hours={p.encoder_hours} training rows and a validation slice: load more "
                         "hourly history (silver/klines_1h_history) or shorten encoder_hours")
    pl.seed_everything(p.seed, workers=True, verbose=False)
    training = _dataset(train_rows, p)
    # validation windows: their encoders may reach back into the training rows, their targets are the slice's
    both = pd.concat([train_rows, val_rows], ignore_index=True)
    validation = TimeSeriesDataSet.from_dataset(training, both, min_prediction_idx=int(val_rows["time_idx"].min()),
                                                stop_randomization=True)
    train_dl = training.to_dataloader(train=True, batch_size=p.batch_size, num_workers=0)
    val_dl = validation.to_dataloader(train=False, batch_size=512, num_workers=0)
    net = TemporalFusionTransformer.from_dataset(
        training, learning_rate=p.learning_rate, hidden_size=p.hidden_size, attention_head_size=p.attention_heads,
        dropout=p.dropout, hidden_continuous_size=p.hidden_continuous_size,
        loss=MultiLoss([QuantileLoss(list(QUANTILES)) for _ in TARGETS]), output_size=[len(QUANTILES)] * len(TARGETS),
        log_interval=-1, reduce_on_plateau_patience=1000)

    class Best(Callback):
        """Keeps the weights of the epoch with the lowest validation loss (no checkpoint files)."""

        def __init__(self):
            self.best, self.epoch, self.state, self.epochs = np.inf, -1, None, 0

        def on_validation_epoch_end(self, trainer, module):
            self.epochs += not trainer.sanity_checking
            loss = float(trainer.callback_metrics.get("val_loss", np.inf))
            if loss < self.best - 1e-9 and not trainer.sanity_checking:
                self.best, self.epoch = loss, trainer.current_epoch
                self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    best = Best()
    trainer = pl.Trainer(
        max_epochs=p.max_epochs, accelerator="cpu", devices=1, gradient_clip_val=0.1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_train_batches=p.batches_per_epoch or 1.0, deterministic=False,
        callbacks=[EarlyStopping(monitor="val_loss", patience=p.patience, mode="min"), best])
    t0 = time.perf_counter()
    trainer.fit(net, train_dataloaders=train_dl, val_dataloaders=val_dl)
    seconds = time.perf_counter() - t0
    if best.state is not None:
        net.load_state_dict(best.state)
    net.eval()
    seen = min(len(training), (p.batches_per_epoch or np.inf) * p.batch_size) * best.epochs
    return TftModel(net=net, best_epoch=best.epoch, epochs_run=best.epochs, train_seconds=seconds,
                    samples_per_second=float(seen / seconds) if seconds > 0 else float("nan"),
                    train_rows=len(train_rows))


def forecast(net, history: pd.DataFrame, origins: pd.DataFrame) -> pd.DataFrame:
    """Quantile forecasts for the rows `origins` (rows of `hourly_frame`: the forecast made at the close of the
    previous hour), from `history` (the rows before them, at least encoder_hours). Their targets are not read.

    Returns one row per origin row and horizon: open_time (the origin row's), horizon, q10..q90, mean, spread
    (q90 - q10) and skew (Bowley: (q90 + q10 - 2 q50) / (q90 - q10))."""
    from pytorch_forecasting import TimeSeriesDataSet

    _quiet()
    rows = pd.concat([history, origins], ignore_index=True).drop_duplicates("time_idx", keep="last")
    rows = rows.sort_values("time_idx").reset_index(drop=True)
    rows[TARGETS] = rows[TARGETS].fillna(0.0)  # unknown futures: the library needs a number, the model never reads it
    ds = TimeSeriesDataSet.from_parameters(net.dataset_parameters, rows, predict=False,
                                           min_prediction_idx=int(origins["time_idx"].min()),
                                           stop_randomization=True)
    out = net.predict(ds.to_dataloader(train=False, batch_size=512, num_workers=0), mode="quantiles",
                      return_index=True, trainer_kwargs={"accelerator": "cpu", "logger": False,
                                                         "enable_progress_bar": False,
                                                         "enable_model_summary": False})
    q_list, index = out.output, out.index
    times = pd.to_datetime(index["time_idx"].to_numpy() * HOUR_NS, utc=True)
    frames = []
    for name, q in zip(HORIZONS, q_list):
        q = q.detach().cpu().numpy()[:, 0, :]
        q = np.sort(q, axis=1)  # quantile crossing, if any, is undone by sorting
        frames.append(summarise(times, name, q))
    res = pd.concat(frames, ignore_index=True)
    wanted = set(pd.to_datetime(origins["open_time"], utc=True))
    return res[res["open_time"].isin(wanted)].sort_values(["open_time", "horizon"]).reset_index(drop=True)


def summarise(times, horizon: str, q: np.ndarray) -> pd.DataFrame:
    cols = {f"q{int(round(x * 100)):02d}": q[:, i] for i, x in enumerate(QUANTILES)}
    spread = q[:, -1] - q[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(spread > 0, (q[:, -1] + q[:, 0] - 2 * q[:, QUANTILES.index(0.5)]) / spread, 0.0)
    return pd.DataFrame({"open_time": times, "horizon": horizon, **cols,
                         "mean": _mean_from_quantiles(q), "spread": spread, "skew": skew})


def _mean_from_quantiles(q: np.ndarray) -> np.ndarray:
    """The distribution's mean from its quantiles (trapezoid over the quantile function, tails held flat)."""
    levels = np.asarray(QUANTILES)
    grid = np.concatenate([[0.0], levels, [1.0]])
    vals = np.concatenate([q[:, :1], q, q[:, -1:]], axis=1)
    return ((vals[:, 1:] + vals[:, :-1]) / 2 * np.diff(grid)).sum(axis=1)


def pinball(y: np.ndarray, q: np.ndarray) -> float:
    """Mean quantile loss of forecasts q (n, len(QUANTILES)) for outcomes y (n,)."""
    levels = np.asarray(QUANTILES)[None, :]
    d = y[:, None] - q
    return float(np.mean(np.maximum(levels * d, (levels - 1) * d)))


def coverage(y: np.ndarray, q: np.ndarray) -> float:
    """Share of outcomes inside the 10-90 % interval (80 % if calibrated)."""
    return float(np.mean((y >= q[:, 0]) & (y <= q[:, -1])))


def historical_quantiles(train_rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The baseline: each horizon's quantiles of the training rows' own outcomes."""
    return {h: np.quantile(train_rows[f"fwd_{h}"].dropna(), QUANTILES) for h in HORIZONS}


def score(forecasts: pd.DataFrame, rows: pd.DataFrame, hist: dict[str, np.ndarray]) -> dict[str, float]:
    """Pinball loss and coverage per horizon of the forecasts, the zero-return and the historical baselines, on
    the rows whose outcome is known."""
    qcols = [f"q{int(round(x * 100)):02d}" for x in QUANTILES]
    out: dict[str, float] = {}
    truth = rows.set_index("open_time")
    for h in HORIZONS:
        f = forecasts[forecasts["horizon"] == h].set_index("open_time")
        y = truth[f"fwd_{h}"].reindex(f.index).to_numpy(float)
        ok = np.isfinite(y)
        y, q = y[ok], f[qcols].to_numpy(float)[ok]
        out[f"n_{h}"] = float(ok.sum())
        if not ok.any():
            continue
        out[f"pinball_{h}"] = pinball(y, q)
        out[f"coverage_{h}"] = coverage(y, q)
        out[f"zero_pinball_{h}"] = pinball(y, np.zeros_like(q))
        out[f"historical_pinball_{h}"] = pinball(y, np.tile(hist[h], (len(y), 1)))
        out[f"historical_coverage_{h}"] = coverage(y, np.tile(hist[h], (len(y), 1)))
    return out


LONGEST = max(HORIZONS.values())


def known_by(rows: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """Rows whose every outcome is known at `cut`: the 30-day return from a row's origin ends LONGEST hours after
    the row opens (its origin is the previous hour's close)."""
    t = pd.to_datetime(rows["open_time"], utc=True)
    return rows[t + pd.Timedelta(hours=LONGEST) <= cut]


def split_for(rows: pd.DataFrame, cut: pd.Timestamp, p: TftParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, validation) rows for a model used from `cut` on: the validation slice is the last
    `validation_days` of rows whose outcomes are known at `cut`, the training rows those whose outcomes are known
    before the slice starts (purged by the longest horizon: no training target overlaps a validation one)."""
    known = known_by(rows, cut)
    if known.empty:
        return known, known
    val_start = pd.to_datetime(known["open_time"], utc=True).max() - pd.Timedelta(days=p.validation_days)
    t = pd.to_datetime(known["open_time"], utc=True)
    val = known[t > val_start]
    train = known_by(known[t <= val_start], val_start + pd.Timedelta(hours=1))
    return train, val


@dataclass
class TftWalkForward:
    forecasts: pd.DataFrame  # out of sample, pooled over folds (with `fold`)
    overall: dict[str, float]
    fold_metrics: list[dict[str, float]]
    models: list[TftModel]


def walk_forward(rows: pd.DataFrame, cut: pd.Timestamp, p: TftParams, n_folds: int = 2,
                 test_days: int = 60) -> TftWalkForward:
    """`n_folds` consecutive test windows of `test_days` ending where outcomes stop being known at `cut`; each
    fold trains (split_for) only on rows whose outcomes were known before its test window started."""
    known = known_by(rows, cut)
    if known.empty:
        raise ValueError(f"TFT walk-forward: no row before {cut} has its {LONGEST}-hour outcome yet: load more hourly "
                         "history")
    end = pd.to_datetime(known["open_time"], utc=True).max() + pd.Timedelta(hours=1)
    t_all = pd.to_datetime(rows["open_time"], utc=True)
    frames, folds, models = [], [], []
    for k in range(n_folds):
        start = end - pd.Timedelta(days=test_days * (n_folds - k))
        stop = start + pd.Timedelta(days=test_days)
        train, val = split_for(rows[t_all < start], start, p)
        test = rows[(t_all >= start) & (t_all < stop)]
        m = fit(train, val, p)
        history = rows[t_all < start].tail(p.encoder_hours)
        fc = forecast(m.net, history, test).assign(fold=k)
        hist = historical_quantiles(train)
        folds.append(score(fc, test, hist) | {"train_rows": float(len(train)), "fold": float(k)})
        frames.append(fc)
        models.append(m)
    pooled = pd.concat(frames, ignore_index=True)
    # the historical baseline of each fold is its own training rows' quantiles
    return TftWalkForward(forecasts=pooled, overall=_pool(folds), fold_metrics=folds, models=models)


def _pool(folds: list[dict[str, float]]) -> dict[str, float]:
    """Row-weighted means of the folds' scores, and their averages over the horizons."""
    out: dict[str, float] = {}
    for h in HORIZONS:
        n = np.array([f.get(f"n_{h}", 0.0) for f in folds])
        out[f"n_{h}"] = float(n.sum())
        for m in ("pinball", "coverage", "zero_pinball", "historical_pinball", "historical_coverage"):
            v = np.array([f.get(f"{m}_{h}", np.nan) for f in folds])
            ok = np.isfinite(v) & (n > 0)
            out[f"{m}_{h}"] = float(np.average(v[ok], weights=n[ok])) if ok.any() else float("nan")
    for m in ("pinball", "zero_pinball", "historical_pinball", "coverage"):
        out[m] = float(np.nanmean([out[f"{m}_{h}"] for h in HORIZONS]))
    out["skill_vs_zero"] = 1 - out["pinball"] / out["zero_pinball"] if out["zero_pinball"] > 0 else float("nan")
    out["skill_vs_historical"] = (1 - out["pinball"] / out["historical_pinball"]
                                  if out["historical_pinball"] > 0 else float("nan"))
    return out


def verdict(overall: dict[str, float]) -> tuple[bool, str]:
    """Promoted (its forecasts may steer trading) only if its pooled out-of-sample quantile loss, averaged over
    the horizons, beats both naive baselines."""
    ll, z, hq = overall.get("pinball", np.nan), overall.get("zero_pinball", np.nan), overall.get("historical_pinball", np.nan)
    if not all(np.isfinite([ll, z, hq])):
        return False, "no out-of-sample forecast was scored"
    beats = ll < z and ll < hq
    words = (f"out-of-sample quantile loss {ll:.5f} vs zero return {z:.5f} and historical quantiles {hq:.5f} "
             f"(coverage of the 10-90 % interval {overall.get('coverage', np.nan):.0%}, 80 % if calibrated)")
    return bool(beats), ("beats both naive baselines: " if beats else "does not beat the naive baselines: ") + words
