"""A Transformer encoder over windows of the last `window` bars of gold features: SELL/HOLD/BUY probabilities and a
confidence.

Built from torch's own blocks (nn.TransformerEncoderLayer: multi-head self-attention and a feed-forward layer,
pre-norm). The window's bars are projected to `d_model`, given a positional encoding (`positional`: sinusoidal,
learned, or none) and encoded; the last bar's encoding (or the window's mean, `pooling`) goes through a linear head.
Attention runs only inside the window, and a window ending at bar t holds bars t-window+1..t: nothing after t's
close is seen. Windows, scaling (fitted on the training rows only, stored in the net), early stopping, calibration,
the edge rule and prediction are the LSTM's (lstm.py), so the two families differ only in the network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from btc_assets.lib.research.models import decision, lstm

POSITIONAL = ("sinusoidal", "learned", "none")
POOLING = ("last", "mean")


@dataclass(frozen=True)
class TransformerParams:
    window: int = 60
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    feedforward: int = 128
    dropout: float = 0.1
    positional: str = "sinusoidal"
    pooling: str = "last"
    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 5e-4
    stride: int = 1
    max_train_samples: int = 0
    seed: int = 7
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.positional not in POSITIONAL:
            raise ValueError(f"transformer positional={self.positional!r}: use one of {POSITIONAL}")
        if self.pooling not in POOLING:
            raise ValueError(f"transformer pooling={self.pooling!r}: use one of {POOLING}")
        if self.d_model % self.heads:
            raise ValueError(f"transformer d_model={self.d_model} must be a multiple of heads={self.heads}")
        if self.window < 1:
            raise ValueError(f"transformer window={self.window}: use at least 1 bar")

    def as_dict(self) -> dict:
        return asdict(self)


def sinusoidal(window: int, d_model: int) -> torch.Tensor:
    """The fixed encoding of 'Attention is all you need': sin/cos of the position at geometric frequencies."""
    pos = torch.arange(window, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(window, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return pe


class TransformerNet(nn.Module):
    """(batch, window, features) raw values -> (batch, 3) class probabilities (LstmNet's interface)."""

    def __init__(self, features: list[str], p: TransformerParams, mean: np.ndarray, std: np.ndarray,
                 prior: np.ndarray):
        super().__init__()
        self.features, self.window, self.pooling = list(features), p.window, p.pooling
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("prior", torch.tensor(prior, dtype=torch.float32))
        self.project = nn.Linear(len(features), p.d_model)
        if p.positional == "learned":
            self.position = nn.Parameter(torch.zeros(p.window, p.d_model))
            nn.init.normal_(self.position, std=0.02)
        else:
            self.register_buffer("position", sinusoidal(p.window, p.d_model) if p.positional == "sinusoidal"
                                 else torch.zeros(p.window, p.d_model))
        layer = nn.TransformerEncoderLayer(p.d_model, p.heads, dim_feedforward=p.feedforward, dropout=p.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.d_model)
        self.head = nn.Linear(p.d_model, 3)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)
        h = self.encoder(self.project(z) + self.position[: z.shape[1]])
        h = self.norm(h[:, -1, :] if self.pooling == "last" else h.mean(dim=1))
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


def confidence(proba: np.ndarray) -> np.ndarray:
    """1 - normalised entropy of each row's class probabilities: 0 for a uniform guess, 1 for certainty."""
    p = np.clip(np.asarray(proba, float), 1e-12, 1.0)
    return 1.0 - (-(p * np.log(p)).sum(axis=1) / np.log(p.shape[1]))


def train(train_df: pd.DataFrame, val_df: pd.DataFrame, features: list[str], p: TransformerParams) -> lstm.LstmModel:
    return lstm.train(train_df, val_df, features, p, make_net=TransformerNet)


def fit_predict(features: list[str], params: TransformerParams, policy: decision.DecisionPolicy | None = None):
    return lstm.fit_predict(features, params, policy, make_net=TransformerNet)


# Prediction, calibration and the edge rule are the sequence models' (the net carries what it needs).
predict_proba = lstm.predict_proba
predict_signal = lstm.predict_signal
attach_decision = lstm.attach_decision
window_ends, gather = lstm.window_ends, lstm.gather
