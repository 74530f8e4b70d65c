"""Viseme posteriors from the mouth predictor's own Whisper features (issue 12, phoneme supervision).

:class:`VisemeHead` maps Whisper tiny.en features ``[..., 768]`` (one row per video frame, as
``audio/whisper.py`` gives them: a frame's two encoder frames side by side) to posteriors over
:data:`VISEMES`, the mouth shapes that groups of phonemes share. It is a small MLP trained by
``chatanyone.train.phones`` on speech synthesized by espeak-ng in many voices, whose phoneme
timings are exact (``weights/motion_phones.npz``). No PyTorch and no espeak at run time: a few
matrix products in numpy.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .mlp import mlp_forward

log = logging.getLogger("chatanyone")

# The viseme classes (index = class id). Consonants by place of articulation as the lips show it,
# vowels by opening and rounding; "sil" is a pause (the mouth at rest).
VISEMES: tuple[str, ...] = (
    "sil",      # pause
    "pbm",      # lips closed: p b m
    "fv",       # lower lip to teeth: f v
    "th",       # tongue between teeth: θ ð
    "tdnl",     # alveolar stops, nasals, laterals: t d n l ɾ
    "sz",       # s z
    "sh",       # ʃ ʒ tʃ dʒ (lips pushed out)
    "kg",       # velar and glottal: k g ŋ h ʔ x
    "r",        # ɹ r ɚ ɝ (rhotic, lips slightly rounded)
    "wu",       # rounded close: w u ʊ
    "o",        # rounded mid/open: o ɔ ɒ
    "a",        # open: a ɑ æ ʌ ɐ
    "e",        # mid: e ɛ ə ɜ
    "i",        # spread close: i ɪ j y
)
K = len(VISEMES)


class VisemeHead:
    """The viseme head of ``motion_phones.npz``: feature normalization and an MLP (tanh-GELU
    between its layers), softmax output.

    Args:
        path: the npz file (default: the packaged ``weights/motion_phones.npz``).
        arrays, prefix: or the head's arrays from a mapping (keys ``prefix + name``; e.g. the
            mouth predictor's npz, which carries its own copy).

    Raises ValueError for a file whose arrays do not fit together.
    """

    def __init__(self, path: str | Path | None = None, *, arrays=None, prefix: str = ""):
        if arrays is None:
            if path is None:
                from ..runners.base import weights_path
                path = weights_path("motion_phones.npz")
            with np.load(path, allow_pickle=False) as z:
                self._load({k: z[k] for k in z.files}, prefix, str(path))
        else:  # the head's arrays inside another file (keys ``prefix + name``)
            self._load(arrays, prefix, str(path or "arrays"))

    def _load(self, z, p: str, where: str) -> None:
        self.mean = np.asarray(z[p + "mean"], np.float32)
        self.std = np.asarray(z[p + "std"], np.float32)
        n = int(z[p + "n_layers"])
        self.layers = [(np.asarray(z[f"{p}W{i}"], np.float32), np.asarray(z[f"{p}b{i}"], np.float32)) for i in range(n)]
        self.names = tuple(str(s) for s in z[p + "visemes"])
        d = self.mean.shape[0]
        if self.std.shape != (d,) or self.layers[0][0].shape[0] != d:
            raise ValueError(f"{where}: normalization is {self.mean.shape}/{self.std.shape}, first layer "
                             f"takes {self.layers[0][0].shape[0]} inputs")
        for (W, b), (W2, _) in zip(self.layers, self.layers[1:] + [(None, None)]):
            if b.shape != (W.shape[1],) or (W2 is not None and W2.shape[0] != W.shape[1]):
                raise ValueError(f"{where}: layer shapes do not chain")
        if self.layers[-1][0].shape[1] != len(self.names):
            raise ValueError(f"{where}: {self.layers[-1][0].shape[1]} outputs for {len(self.names)} visemes")
        self.dim = d

    def arrays(self, prefix: str = "") -> dict:
        """The head as plain arrays (keys ``prefix + name``), to store inside another npz."""
        out = {prefix + "n_layers": np.int32(len(self.layers)), prefix + "mean": self.mean,
               prefix + "std": self.std, prefix + "visemes": np.array(list(self.names))}
        for i, (W, b) in enumerate(self.layers):
            out[f"{prefix}W{i}"], out[f"{prefix}b{i}"] = W, b
        return out

    @property
    def n_classes(self) -> int:
        return len(self.names)

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """``feats [..., 768]`` raw Whisper features -> ``[..., K]`` unnormalized log-posteriors."""
        f = np.asarray(feats)
        if not np.issubdtype(f.dtype, np.floating):
            raise TypeError(f"VisemeHead: features must be floating point, got {f.dtype}")
        if f.ndim < 1 or f.shape[-1] != self.dim:
            raise ValueError(f"VisemeHead: features must be [..., {self.dim}], got {f.shape}")
        lead = f.shape[:-1]
        h = (f.reshape(-1, self.dim).astype(np.float32) - self.mean) / self.std
        if not np.all(np.isfinite(h)):
            raise ValueError("VisemeHead: features contain NaN or infinite values")
        return mlp_forward(self.layers, h).reshape(*lead, -1)

    def posteriors(self, feats: np.ndarray) -> np.ndarray:
        """``feats [..., 768]`` (e.g. ``[T, 768]``) raw Whisper features -> ``[..., K]`` float32
        viseme posteriors (rows sum to 1). Pure numpy; about 0.4 MFLOP per row; never blocks on I/O."""
        lg = self.logits(feats)
        lg = lg - lg.max(-1, keepdims=True)
        e = np.exp(lg)
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def save_head(path, layers, mean: np.ndarray, std: np.ndarray, names=VISEMES) -> None:
    """Write a viseme head (``layers``: ``[(W [in, out], b [out]), ...]``) in the layout
    :class:`VisemeHead` reads."""
    arrays = {}
    for i, (W, b) in enumerate(layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(W, np.float32), np.asarray(b, np.float32)
    np.savez(path, n_layers=np.int32(len(layers)), mean=np.asarray(mean, np.float32),
             std=np.asarray(std, np.float32), visemes=np.array(list(names)), **arrays)
