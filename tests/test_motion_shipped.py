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
    # the primed window releases FIRST_RELEASE frames, then a window every hop (a join each)
    join = ((np.arange(1, n) - g._first_release()) % g.hop) == 0
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


def _join_ratios(seed: int, pcm: np.ndarray, near: int = 3):
    """Stream ``pcm`` as a Session does (primed first window, 100 ms chunks, frames popped one at
    a time); per channel group (head pose, expression outside the mouth; corpus units, no blinks)
    the step at each join and the largest step of the join's first ``near`` frames, over the
    median frame step."""
    from chatanyone.motion import MotionGenerator
    from chatanyone.spec import motion_layout as layout
    from chatanyone.spec.motion_layout import MotionFrames
    g = MotionGenerator(seed=seed, body=False)
    g.BLINK_DEPTH = 0.0  # blinks are not the windows' seams
    g.prime()
    parts = []
    for i in range(0, pcm.size, 1600):
        g.push_audio(pcm[i:i + 1600])
        while (f := g.pop_frames(1)) is not None:
            parts.append(f)
    g.flush()
    while (f := g.pop_frames(1)) is not None:
        parts.append(f)
    f = MotionFrames.concat(parts)
    n = pcm.size // 640
    fs, fm, h = g.stats["face_std"], g.stats["face_mean"], layout.HEAD_DIM
    groups = {"head": (f.head - fm[:h]) / fs[:h], "exp": (f.exp @ g._upper) / fs[h:h + g.n_exp]}
    out = {}
    for k, x in groups.items():
        step = np.r_[np.nan, np.linalg.norm(np.diff(x[:n], axis=0), axis=1)]  # step[t]: t-1 -> t
        med = np.median(step[1:])
        f0 = g._first_release()  # the primed window releases these; then a window every hop
        joins = [f0] + list(range(f0 + g.hop, n - near, g.hop))
        # the join frame itself is the last window's (led with weight 1), so the seam, if any, is in
        # the frames after it; at the first join the step into it is the primed window's own
        # stream-start motion (1.55x the median for the expression, 12 seeds, as at frame 5 before)
        out[k] = (np.array([step[j] / med for j in joins]),
                  np.array([step[j:j + near].max() / med for j in joins[1:]]),
                  step[joins[0] + 1:joins[0] + 1 + near].max() / med)
    return out


def test_window_joins_leave_no_seam():
    """Each face window starts where the last one was going (scheduler.lead): over 4 seeds and
    4 s of the demo speech, the step at a join and the largest step of the three frames from it
    (after it, at the first join) are ordinary frame steps (the smoothing before this kept the join
    step itself but moved the seam into the next frames: 1.7-1.9x the median there, against
    1.3-1.4x anywhere else)."""
    from chatanyone.assets import demo_speech
    from chatanyone.audio.features import to_mono_16k
    pcm, rate = demo_speech()
    pcm = to_mono_16k(pcm, rate)
    on = int(np.argmax(np.abs(pcm) > 0.02 * np.abs(pcm).max()))
    pcm = pcm[on:on + 4 * 16000]
    res = [_join_ratios(s, pcm) for s in range(4)]
    for k in ("head", "exp"):
        at = np.concatenate([r[k][0] for r in res])
        near = np.concatenate([r[k][1] for r in res])
        first = np.mean([r[k][2] for r in res])
        assert at.mean() < 1.3, f"{k}: join step {at.mean():.2f}x the median"
        assert near.mean() < 1.5, f"{k}: steps just after a join {near.mean():.2f}x the median"
        assert first < 1.8, f"{k}: after the first join (primed window -> speech) {first:.2f}x the median"
