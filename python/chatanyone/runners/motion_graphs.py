"""Runners of the motion diffusion graphs (``onnx_export/motion.py`` writes them)."""
from __future__ import annotations

import numpy as np

from .base import OnnxRunner


class FaceDenoiserRunner(OnnxRunner):
    """``motion_face.onnx``: the face-motion denoiser (one DDIM step's network evaluation).

    ``__call__(x [B,T,Df], t [B], audio [B,N,320], audio_keep [B,N], prefix [B,P,Df], prefix_keep [B],
    style [B,S], style_keep [B], scalars [B,1]) -> [B,T,Df]`` (v-prediction, normalized units).
    Blocks while the graph runs (about a millisecond on a CPU core).
    """

    model_name = "motion_face.onnx"

    def __call__(self, x, t, audio, audio_keep, prefix, prefix_keep, style, style_keep, scalars) -> np.ndarray:
        return self.run(dict(x=x, t=t, audio=audio, audio_keep=audio_keep, prefix=prefix,
                             prefix_keep=prefix_keep, style=style, style_keep=style_keep, scalars=scalars))[0]


class BodyDenoiserRunner(OnnxRunner):
    """``motion_body.onnx``: the body+hands denoiser, conditioned on audio and face motion.

    ``__call__(x [B,T,102], t [B], audio [B,N,320], audio_keep [B,N], prefix [B,P,102], prefix_keep [B],
    face [B,P+T,Df], scalars [B,2]) -> [B,T,102]``.
    """

    model_name = "motion_body.onnx"

    def __call__(self, x, t, audio, audio_keep, prefix, prefix_keep, face, scalars) -> np.ndarray:
        return self.run(dict(x=x, t=t, audio=audio, audio_keep=audio_keep, prefix=prefix,
                             prefix_keep=prefix_keep, face=face, scalars=scalars))[0]


class StyleEncoderRunner(OnnxRunner):
    """``motion_style.onnx``: reference face motion ``[B, R, Df]`` (normalized, any R) -> ``[B, S]``."""

    model_name = "motion_style.onnx"

    def __call__(self, ref: np.ndarray) -> np.ndarray:
        return self.run({"ref": ref})[0]
