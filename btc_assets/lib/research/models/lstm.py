"""PyTorch LSTM over windows of the last `window` bars of gold features: training with early stopping, prediction.

Default architecture (the issue's): LSTM(128) -> Dense(64, ReLU) -> softmax over SELL/HOLD/BUY on 60-bar windows.
The network carries its own standardisation (mean/std fitted on the training rows only, stored as buffers), so the
module logged to MLflow maps raw feature windows to class probabilities by itself.

A window ending at bar t holds bars t-window+1..t and is used only if those bars are consecutive minutes; windows
never reach past t, so a prediction at t uses what is known at t's close. Rows without a complete window get the
training class frequencies (counted in `LstmModel.prior_rows`), never a guess from a shorter window.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from btc_assets.lib.research.models import decision
from btc_assets.lib.research.models.device import seed_everything, select_device


SMALL_BATCH = 32


@dataclass(frozen=True)
class LstmParams:
    window: int = 60
    hidden: int = 128
    dense: int = 64
    layers: int = 1
    dropout: float = 0.0
    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    stride: int = 1  # take every stride-th training window (consecutive windows are ~98 % the same data)
    max_train_samples: int = 0  # 0: no cap; else the most recent ones
    seed: int = 7
    device: str = "auto"

    def as_dict(self) -> dict:
        return asdict(self)


class LstmNet(nn.Module):
    """(batch, window, features) raw values -> (batch, 3) class probabilities."""

    def __init__(self, features: list[str], p: LstmParams, mean: np.ndarray, std: np.ndarray, prior: np.ndarray):
        super().__init__()
        self.features, self.window = list(features), p.window
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("prior", torch.tensor(prior, dtype=torch.float32))
        self.lstm = nn.LSTM(len(features), p.hidden, num_layers=p.layers, batch_first=True,
                            dropout=p.dropout if p.layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(p.hidden, p.dense), nn.ReLU(), nn.Linear(p.dense, 3))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)
        out, _ = self.lstm(z)
        return self.head(out[:, -1, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


@dataclass
class LstmModel:
    net: LstmNet
    best_epoch: int
    samples_per_second: list[float] = field(default_factory=list)  # training throughput per epoch
    prior_rows: int = 0  # rows of the last predict_proba call that had no complete window


def window_ends(times: pd.Series | np.ndarray, window: int) -> np.ndarray:
    """Row positions whose previous `window` rows are consecutive minutes (a complete window ends there)."""
    t = times if isinstance(times, np.ndarray) else pd.to_datetime(times).astype("int64").to_numpy()
    if len(t) < window:
        return np.empty(0, dtype=np.int64)
    span = t[window - 1:] - t[: len(t) - window + 1]
    return np.flatnonzero(span == (window - 1) * 60_000_000_000) + window - 1


def gather(x: np.ndarray, ends: np.ndarray, window: int) -> torch.Tensor:
    return torch.from_numpy(x[ends[:, None] + np.arange(-window + 1, 1)])


def train(train_df: pd.DataFrame, val_df: pd.DataFrame, features: list[str], p: LstmParams,
          make_net=None) -> LstmModel:
    """Fit on train_df's windows, early-stop on val_df's (validation loss, `patience` epochs), keep the best epoch.

    `make_net(features, params, mean, std, prior)` builds another sequence network with LstmNet's interface (the
    Transformer: transformer.py); the windows, scaling, early stopping and prediction are the same."""
    device = select_device(p.device)
    seed_everything(p.seed, device)
    xt = train_df[features].to_numpy(dtype=np.float32)
    with warnings.catch_warnings():  # a feature whose source is absent is all NaN: it standardises to 0
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(xt, axis=0), np.nanstd(xt, axis=0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0).astype(np.float32)
    mean = np.nan_to_num(mean).astype(np.float32)
    yt = train_df["label"].astype(int).to_numpy()
    prior = np.bincount(yt, minlength=3) / len(yt)
    ends = window_ends(train_df["open_time"], p.window)[:: max(1, p.stride)]
    if p.max_train_samples:
        ends = ends[-p.max_train_samples:]
    v_ends = window_ends(val_df["open_time"], p.window)
    if len(ends) == 0 or len(v_ends) == 0:
        raise ValueError(f"{type(p).__name__}: no complete {p.window}-bar window in the training ({len(train_df)} rows) or "
                         f"validation ({len(val_df)} rows) slice; train on a longer history or a shorter window")
    net = (make_net or LstmNet)(features, p, mean, std, prior).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=p.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    xv, yv = val_df[features].to_numpy(dtype=np.float32), val_df["label"].astype(int).to_numpy()
    rng = np.random.default_rng(p.seed)
    best, best_state, best_epoch, bad, speeds = np.inf, None, -1, 0, []
    for epoch in range(p.epochs):
        net.train()
        order = rng.permutation(ends)
        t0 = time.perf_counter()
        for i in range(0, len(order), p.batch_size):
            b = order[i:i + p.batch_size]
            opt.zero_grad()
            loss = loss_fn(net.logits(gather(xt, b, p.window).to(device)), torch.from_numpy(yt[b]).to(device))
            loss.backward()
            opt.step()
        speeds.append(len(order) / (time.perf_counter() - t0))
        val_loss = _loss(net, xv, yv, v_ends, p, loss_fn, device)
        if val_loss < best - 1e-6:
            best, best_epoch, bad = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= p.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return LstmModel(net=net.to("cpu"), best_epoch=best_epoch, samples_per_second=speeds)


@torch.no_grad()
def _loss(net: LstmNet, x: np.ndarray, y: np.ndarray, ends: np.ndarray, p: LstmParams, loss_fn, device: str) -> float:
    net.eval()
    total = 0.0
    for i in range(0, len(ends), 2048):
        b = ends[i:i + 2048]
        total += float(loss_fn(net.logits(gather(x, b, p.window).to(device)), torch.from_numpy(y[b]).to(device))) * len(b)
    return total / len(ends)


@torch.inference_mode()
def predict_window_proba(net: LstmNet, x: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for every row of time-sorted features `x` (n, features) at `times` (int64 ns).

    Returns (n, 3) probabilities and a mask of the rows with a complete window (the others get the training
    class frequencies).
    """
    net.eval()
    out = np.tile(net.prior.numpy().astype(float), (len(x), 1))
    ends = window_ends(times, net.window)
    threads = torch.get_num_threads()
    if len(ends) <= SMALL_BATCH:  # one bar at a time (the live path): a second thread costs more than it saves
        torch.set_num_threads(1)  # measured p99 per bar: 5 ms with one thread vs 7-10 ms with two, on a busy host
    try:
        for i in range(0, len(ends), 2048):
            b = ends[i:i + 2048]
            out[b] = net(gather(x, b, net.window)).numpy()
    finally:
        torch.set_num_threads(threads)
    complete = np.zeros(len(x), dtype=bool)
    complete[ends] = True
    return out, complete


def _arrays(df: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return (df[features].to_numpy(dtype=np.float32),
            pd.DatetimeIndex(pd.to_datetime(df["open_time"], utc=True)).as_unit("ns").asi8)


def predict_proba(model: LstmModel | LstmNet, df: pd.DataFrame, context: pd.DataFrame | None = None) -> np.ndarray:
    """Probabilities for the rows of `df`; `context` (earlier feature rows, no labels) completes their windows."""
    net = model.net if isinstance(model, LstmModel) else model
    x, t = _arrays(df, net.features)
    skip = 0
    if context is not None and len(context):
        cx, ct = _arrays(context.tail(net.window - 1), net.features)  # numpy, not pd.concat: one bar costs ~ms less
        x, t, skip = np.vstack([cx, x]), np.concatenate([ct, t]), len(cx)
    proba, complete = predict_window_proba(net, x, t)
    if isinstance(model, LstmModel):
        model.prior_rows = int((~complete[skip:]).sum())
    # the net's own calibration (attach_decision), fitted on its validation slice
    return decision.Calibrator.from_json(getattr(net, "calibration_json", "")).apply(proba[skip:])


def attach_decision(net: LstmNet, train_df: pd.DataFrame, val_df: pd.DataFrame,
                    policy: decision.DecisionPolicy) -> str:
    """Calibrate on the validation slice and fit the edge rule on the training slice; both stored on the net
    (pickled with it into MLflow). Meta-labelling is XGBoost's: said, not fitted."""
    net.calibration_json, net.decision_json = "", ""
    raw = predict_proba(net, val_df)
    cal = decision.fit_calibrator(raw, val_df["label"].astype(int).to_numpy(), policy.calibration)
    net.calibration_json = cal.to_json()
    if policy.rule == "edge":
        net.decision_json = decision.fit_edge_rule(train_df, policy.cost).to_json()
    kinds = "/".join(cal.kinds) if cal.params else "none"
    said = f"calibration {cal.method} (SELL/HOLD/BUY: {kinds}) on {len(val_df)} validation rows; " + policy.describe()
    return said + ("; meta-labelling is offered for XGBoost only: not fitted" if policy.meta_labelling else "")


def predict_signal(net: LstmNet, df: pd.DataFrame, context: pd.DataFrame | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated probabilities, signal): the net's edge rule when it has one, else the most probable class."""
    proba = predict_proba(net, df, context)
    rule = getattr(net, "decision_json", "")
    if not rule:
        return proba, proba.argmax(axis=1).astype("int8")
    return proba, decision.EdgeRule.from_json(rule).signal(proba)


def fit_predict(features: list[str], params: LstmParams, policy: decision.DecisionPolicy | None = None,
                make_net=None):
    """A walk-forward callback: the scaler inside the net is fitted on the fold's training slice only; with a
    policy, the net is calibrated and decides (attach_decision) and (probabilities, signal) is returned."""
    def fn(train_df: pd.DataFrame, val_df: pd.DataFrame, test_df: pd.DataFrame, context: pd.DataFrame):
        model = train(train_df, val_df, features, params, make_net)
        if policy is None:
            return predict_proba(model, test_df, context)
        attach_decision(model.net, train_df, val_df, policy)
        return predict_signal(model.net, test_df, context)
    return fn
