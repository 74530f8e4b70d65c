"""The shipped motion model on real speech: window joins and silence. Skipped where the shipped
weights or ../shared/data are absent (a user's machine)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatanyone.runners.base import weights_path

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio"
WAV = SHARED_AUDIO / "sadtalker_hdtf_RD_Radio31_000.wav"

pytestmark = [
    pytest.mark.skipif(not weights_path("motion_face.onnx").is_file(), reason="no shipped motion weights"),
    pytest.mark.skipif(not WAV.is_file(), reason="../shared/data is absent"),
]


def _speech(seconds: float) -> np.ndarray:
    from scipy.io import wavfile

    from chatanyone.audio.features import to_mono_16k
    sr, pcm = wavfile.read(WAV)
    a = to_mono_16k(pcm, int(sr))
    return a[: int(seconds * 16000)]


@pytest.fixture(scope="module")
def speech_then_silence():
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(seed=0)
    a = _speech(10.0)
    n_speech = a.size // 640
    g.push_audio(a)
    g.push_audio(np.zeros(5 * 16000, np.float32))
    g.flush()
    return g, g.generate_all(), n_speech


def _face_norm(g, f):
    from chatanyone.spec import motion_layout as layout
    x = layout.pack_face(f.head, f.exp / g.intensity, f.eye)
    return (x - g.stats["face_mean"]) / g.stats["face_std"]


def test_window_joins_are_ordinary_steps(speech_then_silence):
    g, f, n = speech_then_silence
    x = _face_norm(g, f)[:n]
    step = np.abs(np.diff(x, axis=0)).mean(1)  # step i: frame i -> i+1
    join = (np.arange(1, n) % g.hop) == 0  # windows release hop frames: a join every hop
    ratio = step[join].mean() / step[~join].mean()
    # a join moves no more than an ordinary frame step (with slack for 9 joins' sampling noise)
    assert ratio < 1.5, f"join/inner step ratio {ratio:.2f}"


def test_silence_is_calm_idle(speech_then_silence):
    from chatanyone.eval.motion import LipModel
    g, f, n = speech_then_silence
    try:
        lm = LipModel.packaged()
    except FileNotFoundError:
        pytest.skip("no face_basis.npz")
    gap_speech = lm.gap(f.exp[:n])
    sil = slice(n + 15, n + 125)
    gap_sil = lm.gap(f.exp[sil])
    assert gap_sil.std() < 0.5 * gap_speech.std(), "the mouth keeps talking in silence"
    head_sil = f.head[sil, :3].std(0).mean()
    assert head_sil > 1e-4, "frozen head in silence"
    assert head_sil < 2.0 * f.head[:n, :3].std(0).mean()
