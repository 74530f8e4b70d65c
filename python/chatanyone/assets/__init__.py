"""Small files shipped in the package: the demo's speech clip (synthesized here with flite's
"slt" voice, so it carries no third-party recording)."""
from __future__ import annotations

from importlib import resources

import numpy as np


def demo_speech() -> tuple[np.ndarray, int]:
    """The built-in speech clip: ``(pcm [S] float32 mono, 16000)`` (6.7 s, English)."""
    from ..media import read_audio

    with resources.as_file(resources.files(__package__) / "demo_speech.flac") as path:
        pcm, rate = read_audio(path)
    return pcm.mean(axis=1), rate
