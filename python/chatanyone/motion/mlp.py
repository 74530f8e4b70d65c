"""The small numpy MLP the mouth predictor and the viseme head both run (no PyTorch)."""
from __future__ import annotations

import numpy as np


def mlp_forward(layers, x: np.ndarray) -> np.ndarray:
    """``x [n, k]`` through ``[(W, b), ...]`` with tanh-GELU between the layers (as trained)."""
    h = np.asarray(x, np.float32)
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i + 1 < len(layers):
            h = 0.5 * h * (1.0 + np.tanh(0.7978845608028654 * (h + 0.044715 * h ** 3)))
    return h
