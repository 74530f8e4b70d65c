"""The speaker's mouth amplitude from the stream's audio (motion/mouth.py SpeakerAmplitude,
train/mouth.py fit_speaker_amp, the generator's SPEAKER_AMP). Generator tests skip where the shipped
mouth predictor or the Whisper encoder is absent."""
from __future__ import annotations

import numpy as np
import pytest

from weights_util import needs_shipped  # noqa: E402

shipped = needs_shipped("motion_mouth.npz", "mouth predictor")


def _model(path, dim=6, *, v=None, b=0.0, n0=10.0, lo=-0.7, hi=0.7, mu=None, sd=None, bias=None):
    extra = {} if bias is None else {"bias_n": np.asarray(bias[0], np.float32), "bias": np.asarray(bias[1], np.float32)}
    np.savez(path, mu=np.zeros(dim, np.float32) if mu is None else mu, sd=np.ones(dim, np.float32) if sd is None else sd,
             v=np.zeros(dim, np.float32) if v is None else v, b=np.float32(b), n0=np.float32(n0),
             lo=np.float32(lo), hi=np.float32(hi), **extra)
    return path


def test_gain_is_one_until_speech_then_the_shrunk_estimate(tmp_path):
    from chatanyone.motion.mouth import SpeakerAmplitude
    v = np.array([0.5, 0, 0, 0, 0, 0], np.float32)
    sa = SpeakerAmplitude(_model(tmp_path / "a.npz", v=v, b=-0.2, n0=10.0))
    rng = np.random.default_rng(0)
    tok = rng.normal(size=(40, 6)) * np.array([2.0, 1, 1, 1, 1, 1])
    quiet = sa.update(tok[:10], np.full(10, 0.3))          # below 0.5: not speech, nothing counted
    assert np.all(quiet == 1.0) and sa.n == 0
    g = sa.update(tok[10:], np.ones(30))
    std = tok[10:].std(0)
    want = np.exp(np.clip(0.5 * std[0] - 0.2, -0.7, 0.7) * 30 / 40)
    assert g[-1] == pytest.approx(want, rel=1e-5)
    assert g[0] == 1.0  # one speech frame: no spread yet
    sa.reset()
    assert sa.gain() == 1.0 and sa.n == 0


def test_gain_is_clipped_and_independent_of_chunking(tmp_path):
    from chatanyone.motion.mouth import SpeakerAmplitude
    sa = SpeakerAmplitude(_model(tmp_path / "a.npz", v=np.full(6, 5.0, np.float32), n0=0.0, hi=0.4))
    rng = np.random.default_rng(1)
    tok = rng.normal(size=(60, 6)) * 3
    w = (rng.random(60) > 0.3).astype(np.float32)
    whole = sa.update(tok, w)
    assert whole[-1] == pytest.approx(np.exp(0.4), rel=1e-6)  # a large spread: clipped at hi
    sa.reset()
    parts, i = [], 0
    for n in (1, 7, 13, 2, 37):
        parts.append(sa.update(tok[i:i + n], w[i:i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_small_sample_bias_is_taken_off_by_speech_frames_heard(tmp_path):
    """The file's bias table (by speech frames heard, interpolated in log n, 0 past its end) is
    subtracted from the estimate before clipping."""
    from chatanyone.motion.mouth import SpeakerAmplitude
    sa = SpeakerAmplitude(_model(tmp_path / "a.npz", b=0.3, n0=0.0, bias=([2, 10, 40], [0.6, 0.2, 0.0])))
    std = np.ones(6)
    assert sa.log_gain(std) == pytest.approx(0.3, abs=1e-6)             # many frames: no bias
    assert sa.log_gain(std, 2) == pytest.approx(-0.3, abs=1e-6)
    assert sa.log_gain(std, 10) == pytest.approx(0.1, abs=1e-6)
    assert sa.log_gain(std, np.sqrt(10 * 40)) == pytest.approx(0.2, abs=1e-6)  # half way in log n
    assert sa.log_gain(std, 500) == pytest.approx(0.3, abs=1e-6)
    rng = np.random.default_rng(4)
    g = sa.update(rng.normal(size=(12, 6)), np.ones(12))
    assert g[9] == pytest.approx(np.exp(0.1), rel=1e-5)                # 10 speech frames heard
    with pytest.raises(ValueError):
        SpeakerAmplitude(_model(tmp_path / "b.npz", bias=([10, 2], [0.1, 0.2])))


def test_bad_model_files_and_inputs_are_refused(tmp_path):
    from chatanyone.motion.mouth import SpeakerAmplitude
    with pytest.raises(FileNotFoundError):
        SpeakerAmplitude(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        SpeakerAmplitude(tmp_path / "junk.npz")
    with pytest.raises(ValueError):
        SpeakerAmplitude(_model(tmp_path / "s.npz", sd=np.zeros(6, np.float32)))
    with pytest.raises(ValueError):
        SpeakerAmplitude(_model(tmp_path / "l.npz", lo=0.2))
    np.savez(tmp_path / "k.npz", mu=np.zeros(3))
    with pytest.raises(ValueError):
        SpeakerAmplitude(tmp_path / "k.npz")
    sa = SpeakerAmplitude(_model(tmp_path / "a.npz"))
    with pytest.raises(ValueError):
        sa.update(np.zeros((4, 5)), np.ones(4))
    with pytest.raises(ValueError):
        sa.update(np.zeros((4, 6)), np.ones(3))


def test_fit_recovers_a_spread_to_gain_map_and_centres_it():
    from chatanyone.train.mouth import _amp_estimate, fit_speaker_amp
    rng = np.random.default_rng(2)
    rows = []
    for i in range(40):
        std = np.abs(rng.normal(1.0, 0.3, size=20))
        rows.append({"std": std, "y": float(0.8 * (std[3] - 1.0) + 0.3)})
    m = fit_speaker_amp(rows, d=20)
    est = np.array([_amp_estimate(m, r["std"]) for r in rows])
    ys = np.array([r["y"] for r in rows])
    assert np.corrcoef(est, ys)[0, 1] > 0.99
    assert np.median(est) == pytest.approx(0.0, abs=1e-6)  # the median clip keeps gain 1
    with pytest.raises(ValueError):
        fit_speaker_amp(rows[:5], d=8)


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    return (0.3 * env * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def _run(g, a):
    g.reset()
    g.push_audio(a)
    g.flush()
    return g.generate_all()


@shipped
def test_generator_scales_the_opening_by_the_speaker_gain(tmp_path):
    """A model that says 1.5x for every voice (n0 0): once speech frames are heard the frames
    equal those of a render gain 1.5x larger (from the second: a spread needs two); off, or with a
    style reference, nothing changes."""
    from chatanyone.motion import MotionGenerator
    from chatanyone.motion.mouth import SpeakerAmplitude
    a = _speechlike(1.2)
    g = MotionGenerator(seed=3, body=False)
    g.mouth_gate = None  # every frame speech
    g.SPEAKER_AMP = False
    base = _run(g, a)
    g.speaker_amp = SpeakerAmplitude(_model(tmp_path / "a.npz", dim=768, b=np.log(1.5), n0=0.0))
    assert _run(g, a).exp.tolist() == base.exp.tolist()  # SPEAKER_AMP off
    g.SPEAKER_AMP = True
    on = _run(g, a)
    g.SPEAKER_AMP = False
    g.MOUTH_RENDER_GAIN = MotionGenerator.MOUTH_RENDER_GAIN * 1.5
    ref = _run(g, a)
    np.testing.assert_allclose(on.exp[1:], ref.exp[1:], atol=2e-5)
    np.testing.assert_array_equal(on.exp[:1], base.exp[:1])  # one speech frame heard: no spread yet
    assert np.abs(on.exp[1:] - base.exp[1:]).max() > 1e-3
    # a style reference sets the amplitude itself: the speaker gain stays out
    g.MOUTH_RENDER_GAIN = MotionGenerator.MOUTH_RENDER_GAIN
    g.SPEAKER_AMP = True
    rng = np.random.default_rng(0)
    ref_clip = {"head": np.zeros((60, 6), np.float32), "exp": (0.3 * rng.normal(size=(60, g.n_exp))).astype(np.float32),
                "eye": np.ones((60, 4), np.float32)}
    g.set_style(ref_clip)
    styled_on = _run(g, a)
    g.SPEAKER_AMP = False
    np.testing.assert_array_equal(_run(g, a).exp, styled_on.exp)


@shipped
def test_lipsync_variant_keys_for_the_speaker_gain(tmp_path):
    from chatanyone.eval.lipsync import apply_variant
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(seed=3, body=False)
    p = _model(tmp_path / "a.npz", dim=768)
    apply_variant(g, {"amp_model": str(p)})
    assert g.SPEAKER_AMP and g.speaker_amp is not None
    apply_variant(g, {"spk_amp": "0"})
    assert not g.SPEAKER_AMP
    g.speaker_amp = None
    with pytest.raises(ValueError):
        apply_variant(g, {"spk_amp": "1"})


def test_cv_by_group_narrows_a_spread_the_tokens_carry():
    """Synthetic clips whose needed gain is carried by one token dimension's spread: leave-one-
    group-out finds it (r near 1) and the online gain narrows the amplitude spread across clips."""
    from chatanyone.train.mouth import speaker_amp_cv
    rng = np.random.default_rng(3)
    rows = []
    for i in range(24):
        k = rng.uniform(0.5, 2.0)                       # this speaker's amplitude over the predictor's
        n = 300
        tok = rng.normal(size=(n, 12)).astype(np.float32)
        tok[:, 2] *= k                                   # ... which the tokens' spread shows
        pred = np.sin(np.arange(n) / 3.0) * 0.02
        real = k * pred + 0.002 * rng.normal(size=n)
        sp = np.ones(n, bool)
        rows.append(dict(name=f"c{i}", speaker=f"s{i // 2}", source=f"src{i // 6}", std=tok.std(0).astype(np.float64),
                         y=float(np.log(real.std() / pred.std())), tokens=tok, speech=sp, ok=sp, pred=pred, real=real))
    for group in ("speaker", "source"):
        res = speaker_amp_cv(rows, group, d=12, n0=10.0)
        assert res["clips"] == 24 and res["r"] > 0.9
        assert res["log_amp_spread"][1] < 0.5 * res["log_amp_spread"][0]
        assert res["in_band"][1] > res["in_band"][0]
