"""Silence and pauses (issue 12, point 3): the speech gate's edges (motion/vad.py), the mouth still in
a pause as ``eval lipsync`` finds pauses, and the eyes blinking and the head moving in a long
silence. Tests of the generator skip where the shipped mouth predictor or the Whisper encoder is
absent; the gate's own tests need nothing."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone.motion.vad import SpeechGate
from weights_util import needs_shipped  # noqa: E402


def _levels(*runs: tuple[int, float]) -> np.ndarray:
    """Frame levels (dBFS): runs of ``(frames, level)``."""
    return np.concatenate([np.full(n, lv) for n, lv in runs])


def test_gate_onset_release_and_bridge():
    """``onset``: the mouth starts that many frames before a word (never earlier); ``hold`` +
    ``release``: it is still that many frames after the last one; ``bridge``: gaps of up to that
    many frames between words keep full weight, longer gaps (pauses) rest."""
    lv = _levels((10, -200.0), (8, -20.0), (3, -200.0), (8, -20.0), (12, -200.0), (8, -20.0), (10, -200.0))
    old = SpeechGate(3).weights(lv)
    new = SpeechGate(3, hold=0, release=2, onset=2, bridge=4).weights(lv)
    first = 10
    assert old[first - 3] > 0 and new[first - 3] == 0.0 and 0 < new[first - 1] < 1  # onset: 3 -> 2 frames
    gap = slice(18, 21)  # 3 frames between two words
    assert new[gap].min() == 1.0 and old[gap].min() < 1.0
    pause = slice(29, 41)  # 12 frames: the old gate moves 5 frames into it and 3 before the word, the new 2 + 2
    assert np.count_nonzero(old[pause]) == 5 + 3 and np.count_nonzero(new[pause]) == 2 + 2
    assert np.abs(np.diff(new)).max() <= 0.5  # tapered, no jump from rest to full speech
    np.testing.assert_array_equal(SpeechGate(3, onset=3).weights(lv), old)  # the defaults are the old gate
    for bad in (dict(onset=4), dict(onset=-1), dict(bridge=-1)):
        with pytest.raises(ValueError):
            SpeechGate(3, **bad)


shipped = needs_shipped("motion_mouth.npz", "mouth predictor")


def _speech(seconds: float, seed: int) -> np.ndarray:
    """Syllables (a 180 Hz buzz at 4 per second) under faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = (np.sin(2 * np.pi * 4 * t + seed) > -0.2).astype(np.float32)
    return (0.3 * env * np.sin(2 * np.pi * 180 * t) + 0.003 * rng.normal(size=t.size)).astype(np.float32)


def _room(seconds: float, level: float, seed: int) -> np.ndarray:
    x = np.convolve(np.random.default_rng(seed).normal(size=int(seconds * 16000)), np.ones(8) / 8, mode="same")
    return (level * x / x.std()).astype(np.float32)


@pytest.fixture(scope="module")
def gen():
    from chatanyone.motion import MotionGenerator
    return MotionGenerator(seed=5, body=False)


@shipped
def test_mouth_still_in_pauses_as_eval_finds_them(gen):
    """Phrases with pauses of room noise (-60 dBFS) of 0.4-0.8 s: on the frames that ``eval
    lipsync`` calls pauses (``eval.mouth.speech_frames``, edges included) the generated mouth
    opening moves at most 0.1x its motion in speech with ``FAST_REST_GATE``, at most 0.2x with the
    default gate (hold 1 + release 2, onset 2, bridge 4), and more than 0.2x with the gate before
    (``PREVIOUS_GATE``: hold 2 + release 3, onset 3)."""
    from chatanyone.eval.mouth import speech_frames
    parts = []
    for k, pause_s in enumerate((0.6, 0.4, 0.8)):
        parts += [_speech(0.8, k), _room(pause_s, 0.001, 10 + k)]
    a = np.concatenate(parts)
    a = a[: a.size // 640 * 640]
    sp = speech_frames(a, a.size // 640)
    assert (~sp).sum() >= 20

    def rest(edges):
        saved = gen.GATE_HOLD, gen.GATE_RELEASE, gen.GATE_ONSET, gen.GATE_BRIDGE
        try:
            gen.GATE_HOLD, gen.GATE_RELEASE, gen.GATE_ONSET, gen.GATE_BRIDGE = edges
            gen.reset()
            gen.push_audio(a)
            gen.flush()
            gap = gen.generate_all().exp @ gen.mouth.open_vec
        finally:
            gen.GATE_HOLD, gen.GATE_RELEASE, gen.GATE_ONSET, gen.GATE_BRIDGE = saved
            gen.reset()
        return gap[~sp].std() / gap[sp].std()

    assert rest(gen.FAST_REST_GATE) < 0.1
    assert rest((gen.GATE_HOLD, gen.GATE_RELEASE, gen.GATE_ONSET, gen.GATE_BRIDGE)) < 0.2
    assert rest(gen.PREVIOUS_GATE) > 0.2


@shipped
def test_blinks_and_head_motion_in_a_long_silence(gen):
    """6 s of room noise after a phrase: the mouth is still (the rest of the face leaks a little
    into the lips' gap), but the lids close and open again (the expression's lid gap, which is what
    the renderer moves, dips below half its median at least twice) and the head keeps moving
    (rotation spread above 0.3 degrees)."""
    from chatanyone.spec.head import load_basis
    b = load_basis()
    comp = np.asarray(b.components).reshape(b.n_exp, 468, 3)
    lid = (comp[:, 145, 1] - comp[:, 159, 1] + comp[:, 374, 1] - comp[:, 386, 1]) / 2
    lid0 = float(np.mean([b.canonical[145, 1] - b.canonical[159, 1], b.canonical[374, 1] - b.canonical[386, 1]]))
    gen.reset()
    gen.push_audio(np.concatenate([_speech(1.0, 0), _room(6.0, 0.001, 1)]))
    gen.flush()
    f = gen.generate_all()
    quiet = slice(50, len(f))
    gap = lid0 + f.exp[quiet] @ lid  # lid gap, canonical face heights
    closed = gap < 0.5 * np.median(gap)
    blinks = int(np.count_nonzero(closed[1:] & ~closed[:-1]))
    assert blinks >= 2, (blinks, np.median(gap), gap.min())
    assert np.degrees(f.head[quiet, :3].std(0)).max() > 0.3
    mouth = f.exp @ gen.mouth.open_vec
    assert mouth[60:].std() < 0.1 * mouth[3:22].std()


@shipped
def test_lipsync_variant_sets_the_gate():
    """``eval lipsync --variant NAME=hold:0,release:2,onset:2,bridge:4`` (``FAST_REST_GATE``)
    reaches the generator's gate; an onset beyond the predictor's lookahead is refused."""
    from chatanyone.eval.lipsync import apply_variant
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(seed=3, body=False)
    onset = g.mouth.look if g.GATE_ONSET is None else g.GATE_ONSET
    assert (g._gate.hold, g._gate.release, g._gate.onset, g._gate.bridge) == (
        g.GATE_HOLD, g.GATE_RELEASE, onset, g.GATE_BRIDGE)
    apply_variant(g, {"hold": "0", "release": "2", "onset": "2", "bridge": "4"})
    assert (g._gate.hold, g._gate.release, g._gate.onset, g._gate.bridge) == (0, 2, 2, 4)
    with pytest.raises(ValueError):
        apply_variant(g, {"onset": str(g.mouth.look + 1)})
