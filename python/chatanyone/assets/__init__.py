"""Demo inputs: the speech clip shipped in the package (synthesized here with flite's "slt"
voice, so it carries no third-party recording) and the default portrait (matplotlib's public-domain
photo of Grace Hopper; matplotlib is a run-time dependency)."""
from __future__ import annotations

import os
from importlib import resources

import numpy as np


def demo_speech() -> tuple[np.ndarray, int]:
    """The built-in speech clip: ``(pcm [S] float32 mono, 16000)`` (6.7 s, English)."""
    from ..media import read_audio

    with resources.as_file(resources.files(__package__) / "demo_speech.flac") as path:
        pcm, rate = read_audio(path)
    return pcm.mean(axis=1), rate


def default_avatar_path() -> str:
    """Path of the default portrait: matplotlib's public-domain photo of Grace Hopper (512x600,
    head and shoulders)."""
    import matplotlib
    p = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if not os.path.exists(p):  # pragma: no cover - every matplotlib wheel ships it
        raise FileNotFoundError(f"matplotlib's sample photo is missing: {p}")
    return p


def default_avatar_image():
    """The default portrait as RGB ``[600, 512, 3]`` uint8."""
    from ..avatar import load_image
    return load_image(default_avatar_path())
