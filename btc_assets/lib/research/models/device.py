"""Where models train: CUDA when a GPU is present, the CPU otherwise, with reproducible settings for torch."""

from __future__ import annotations

import os
import random

import numpy as np

MAX_CPU_THREADS = 2  # the machine is shared: never take more than two cores


def select_device(prefer: str = "auto") -> str:
    """'cuda' if asked for (or 'auto') and available, else 'cpu'."""
    import torch

    if prefer not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device {prefer!r} is not one of auto, cuda, cpu")
    if prefer != "cpu" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def seed_everything(seed: int, device: str = "cpu") -> None:
    """Seed python, numpy and torch, and make torch use deterministic kernels (raising where none exists)."""
    import torch

    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS needs a fixed workspace
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(MAX_CPU_THREADS, torch.get_num_threads()))
