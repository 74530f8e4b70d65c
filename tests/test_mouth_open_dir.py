"""The direction a gain opens the mouth along (``MouthPredictor.open_dir``, session 11): the real
faces' jaw and lips together, not the inner lips alone. Tests of the shipped predictor skip where
its weights are absent."""
from __future__ import annotations

import numpy as np
import pytest

from weights_util import needs_shipped  # noqa: E402

shipped = needs_shipped("motion_mouth.npz", "mouth predictor")


def test_opening_direction_recovers_how_faces_open():
    """Clips whose coefficients move along one direction with the opening (each clip its own
    amplitude, length and noise): the average slope is that direction, scaled to open by 1."""
    from chatanyone.motion.mouth import opening_direction
    rng = np.random.default_rng(0)
    E = 6
    ov = rng.normal(size=E)
    true = rng.normal(size=E)
    clips = []
    for i in range(8):
        n = 50 + 30 * i
        a = rng.normal(size=n) * (0.5 + i)                 # the clip's own opening signal
        e = a[:, None] * true[None] + 0.05 * rng.normal(size=(n, E)) + rng.normal(size=E)
        clips.append(e)
    d = opening_direction(clips, ov)
    assert float(d @ ov) == pytest.approx(1.0, abs=1e-5)
    cos = float(d @ true / np.linalg.norm(d) / np.linalg.norm(true))
    assert abs(cos) > 0.999                                # true, scaled (by a negative number where
    # true closes the mouth)
    # kept to a subspace by the projector, and still opening by 1
    P = np.diag([1.0, 1, 1, 1, 0, 0])
    dp = opening_direction(clips, ov, P)
    assert np.all(dp[4:] == 0) and float(dp @ ov) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        opening_direction([np.ones((20, E))], ov)         # no clip whose opening moves


def _toy(path, open_dir=None, e=3):
    rng = np.random.default_rng(0)
    arrays = dict(mean=rng.normal(size=768).astype(np.float32), std=(1 + rng.random(768)).astype(np.float32),
                  pca=rng.normal(size=(768, 4)).astype(np.float32), W=rng.normal(size=(1, 8, e)).astype(np.float32),
                  b=rng.normal(size=(1, e)).astype(np.float32), look=np.int32(0), past=np.int32(1), hop=np.int32(1),
                  seg=np.int32(24), ref_amp=np.float32(0.02), open_vec=np.array([1.0, 2.0, 0.5], np.float32),
                  A=np.eye(e, dtype=np.float32), gain=np.float32(1.6), rest=np.zeros(e, np.float32))
    if open_dir is not None:
        arrays["open_dir"] = np.asarray(open_dir, np.float32)
    np.savez(path, **arrays)
    return path


def test_predictor_gain_adds_along_its_open_dir(tmp_path):
    from chatanyone.motion.mouth import MouthPredictor
    d = np.array([0.2, 0.3, 0.4], np.float32)           # d @ open_vec = 0.2 + 0.6 + 0.2 = 1
    m = MouthPredictor(_toy(tmp_path / "d.npz", d))
    m0 = MouthPredictor(_toy(tmp_path / "m.npz"))       # no open_dir: the smallest change, as before
    np.testing.assert_allclose(m0.open_dir, m0.open_vec / (m0.open_vec @ m0.open_vec), rtol=1e-6)
    tok = np.random.default_rng(1).normal(size=(5, 2, 768)).astype(np.float32)
    y, y0 = m.predict(tok, 0), m0.predict(tok, 0)
    raw = (((tok - m.mean) / m.std) @ m.pca).reshape(5, -1) @ m.W[0] + m.b[0]
    o = (raw - m.b[0]) @ m.open_vec
    np.testing.assert_allclose(y, raw + (m.gain - 1) * o[:, None] * d[None], rtol=1e-4, atol=1e-4)
    # both open the mouth by the gain; they differ only in what moves with it
    np.testing.assert_allclose((y - m.b[0]) @ m.open_vec, m.gain * o, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose((y0 - m.b[0]) @ m.open_vec, m.gain * o, rtol=1e-4, atol=1e-4)
    assert np.abs(y - y0).max() > 1e-3
    # an open_dir that does not open the mouth by 1, or of the wrong length, is refused
    for bad in (2 * d, np.ones(4)):
        with pytest.raises(ValueError, match="open_dir"):
            MouthPredictor(_toy(tmp_path / "bad.npz", bad))


@shipped
def test_shipped_gain_opens_the_jaw_instead_of_thinning_the_lips(basis):
    """What a gain adds to the shipped predictor's opening: the lower lip's outer edge (mesh point
    17) and the chin (152) go down with its inner edge (14), as a real mouth opens, so the lower lip
    keeps its thickness. The smallest opening change (the gains before session 11) moved the inner
    lips alone: a wide gained mouth was a thin ring of lip round a hole."""
    from chatanyone.motion.mouth import MouthPredictor, min_open_dir
    from chatanyone.runners.base import weights_path
    m = MouthPredictor(weights_path("motion_mouth.npz"))
    comp = np.asarray(basis.components, np.float64).reshape(basis.n_exp, -1, 3)

    def moves(d):   # y movement of points 13, 14, 17, 152 per unit of opening added along d
        dy = (np.asarray(d, np.float64) @ np.asarray(m.A, np.float64)) @ comp[:, :, 1]
        return {k: float(dy[k]) for k in (13, 14, 17, 152)}

    new, old = moves(m.open_dir), moves(min_open_dir(m.open_vec))
    for mv in (new, old):
        assert mv[14] - mv[13] == pytest.approx(1.0, abs=0.05)     # both open the inner lips by 1
    # the lower lip's thickness (17 below 14) changes by under a quarter of the opening ...
    assert abs(new[17] - new[14]) < 0.25
    assert new[152] > 0.25                                       # ... and the chin drops with it
    # the old direction thinned the lower lip by most of the opening, the chin stayed
    assert new[17] - new[14] > old[17] - old[14] + 0.3
    assert abs(old[152]) < 0.2


@shipped
def test_generator_gains_open_along_open_dir():
    """The render gain's (and the speaker gain's) extra opening moves the face along open_dir."""
    from chatanyone.motion import MotionGenerator
    from test_mouth import _speechlike
    a = _speechlike(1.2)

    def run(gain):
        g = MotionGenerator(seed=3, body=False)
        g.mouth_gate = None
        g.MOUTH_RENDER_GAIN = gain
        g.push_audio(a)
        g.flush()
        return g.generate_all().exp.astype(np.float64)

    from chatanyone.motion.mouth import min_open_dir
    g = MotionGenerator(seed=3, body=False)
    diff = run(1.5) - run(1.0)
    big = np.abs(diff @ g.mouth.open_vec) > 1e-3
    assert big.sum() > 5

    def cos(d):
        w = np.asarray(d, np.float64) @ np.asarray(g.mouth.A, np.float64)
        return np.abs(diff[big] @ w) / np.linalg.norm(diff[big], axis=1) / np.linalg.norm(w)
    # (the lids' correction, generator._eyes, takes a little off the lower face)
    assert cos(g.mouth.open_dir).min() > 0.98
    assert cos(g.mouth.open_dir).min() > cos(min_open_dir(g.mouth.open_vec)).max() + 0.1


@shipped
def test_lipsync_variant_open_dir():
    from chatanyone.eval.lipsync import apply_variant
    from chatanyone.motion import MotionGenerator
    from chatanyone.motion.mouth import min_open_dir
    g = MotionGenerator(seed=3, body=False)
    shipped_dir = g.mouth.open_dir.copy()
    apply_variant(g, {"open_dir": "1"})
    np.testing.assert_array_equal(g.mouth.open_dir, shipped_dir)
    apply_variant(g, {"open_dir": "0"})
    np.testing.assert_allclose(g.mouth.open_dir, min_open_dir(g.mouth.open_vec))
    with pytest.raises(ValueError):
        apply_variant(g, {"open_dir": "2"})


def test_peak_ratio_says_how_wide_the_wide_openings_are():
    from chatanyone.eval.mouth import peak_ratio
    rng = np.random.default_rng(0)
    real = np.abs(rng.normal(size=400)) * 0.05 + 0.02
    assert peak_ratio(real, real) == pytest.approx(1.0)
    assert peak_ratio(0.5 * real + 1.0, real) == pytest.approx(0.5)          # half as wide, any offset
    squashed = np.minimum(real, np.quantile(real, 0.8))                       # the widest openings cut
    assert peak_ratio(squashed, real) < 0.8
    assert abs(peak_ratio(rng.permutation(real), real)) < 0.3                 # wide, but at other frames
    nan = real.copy()
    nan[:5] = np.nan
    assert peak_ratio(nan, real) == pytest.approx(1.0)                        # unfound faces left out
    sel = np.zeros(400, bool)
    sel[:5] = True
    assert peak_ratio(real, real, sel) is None                                # too few frames
    assert peak_ratio(real, np.full(400, 0.03)) is None                       # no real peak
