"""Session 8's mouth predictor: the ridge + MLP average on the viseme inputs, the output smoothed
over frames (``MouthPredictor.smooth``, trained to lead the real mouth by ``lead`` frames), and the
shipped file (motion/mouth.py, train/mouth.py)."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone.motion.mouth import MouthPredictor, ema, phone_columns
from chatanyone.motion.phones import K, VisemeHead, save_head
from weights_util import needs_shipped  # noqa: E402


def test_ema_is_the_documented_recursion_and_chunking_free():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(23, 4)).astype(np.float32)
    out, last = ema(y, 0.6)
    want = [y[0]]
    for t in range(1, len(y)):
        want.append(0.4 * y[t] + 0.6 * want[-1])
    np.testing.assert_allclose(out, np.array(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(last, out[-1])
    # cut anywhere, carried state: the same numbers, bit for bit
    parts, state = [], None
    for a, b in ((0, 1), (1, 1), (1, 8), (8, 15), (15, 23)):
        o, state = ema(y[a:b], 0.6, state)
        parts.append(o)
    np.testing.assert_array_equal(np.concatenate(parts), out)
    np.testing.assert_array_equal(state, last)
    # a constant stays itself (the smoothing keeps the predictor's mean and rest shape)
    c = np.tile(rng.normal(size=(1, 4)).astype(np.float32), (10, 1))
    np.testing.assert_allclose(ema(c, 0.8)[0], c, rtol=1e-6)


def _toy_ensemble(tmp_path, *, alpha=0.3, smooth=0.5, **override):
    """An MLP kind predictor with a viseme head, written as ``with_ridge`` makes it: returns the
    file's arrays and its parts (the MLP alone, the ridge)."""
    from chatanyone.train.mouth import with_ridge
    rng = np.random.default_rng(1)
    past, look, d, e, h = 2, 1, 4, 3, 6
    k = past + look + 1
    save_head(tmp_path / "h.npz", [(rng.normal(size=(768, 5)), rng.normal(size=5)), (rng.normal(size=(5, K)), rng.normal(size=K))],
              rng.normal(size=768), 1 + rng.random(768))
    head = VisemeHead(tmp_path / "h.npz")
    n_in = k * (d + K) + 1                                                     # PCA + viseme columns + place flag
    mlp = dict(kind="mlp", layers=[(rng.normal(size=(n_in, h)).astype(np.float32) / 5, rng.normal(size=h).astype(np.float32)),
                                   (rng.normal(size=(h, e)).astype(np.float32), rng.normal(size=e).astype(np.float32))],
               ymean=rng.normal(size=e).astype(np.float32))
    W, b = rng.normal(size=(n_in - 1, e)).astype(np.float32) / 5, rng.normal(size=e).astype(np.float32)
    ens = with_ridge(mlp, W, b, alpha)
    arrays = dict(kind="mlp", n_layers=np.int32(2), mlp_W0=ens["layers"][0][0], mlp_b0=ens["layers"][0][1],
                  mlp_W1=ens["layers"][1][0], mlp_b1=ens["layers"][1][1], skip_W=ens["skip"][0], skip_b=ens["skip"][1],
                  ymean=mlp["ymean"], mean=rng.normal(size=768).astype(np.float32),
                  std=(1 + rng.random(768)).astype(np.float32), pca=(rng.normal(size=(768, d)) / 30).astype(np.float32),
                  look=np.int32(look), past=np.int32(past), hop=np.int32(1), seg=np.int32(24),
                  ref_amp=np.float32(0.02), open_vec=rng.normal(size=e).astype(np.float32), A=np.eye(e, dtype=np.float32),
                  gain=np.float32(1.3), rest=np.zeros(e, np.float32), smooth=np.float32(smooth), lead=np.int32(1),
                  ph_cm=rng.normal(size=k * K).astype(np.float32), ph_cs=(1 + rng.random(k * K)).astype(np.float32),
                  **head.arrays("ph_"))
    arrays.update(override)
    np.savez(tmp_path / "m.npz", **arrays)
    return arrays, head, mlp, (W, b)


def test_ensemble_on_viseme_inputs_is_the_weighted_sum_of_its_parts(tmp_path):
    from chatanyone.train.mouth import mlp_predict
    alpha = 0.3
    a, head, mlp, (W, b) = _toy_ensemble(tmp_path, alpha=alpha)
    m = MouthPredictor(tmp_path / "m.npz")
    assert m.kind == "mlp" and m.phones is not None and m.smooth == pytest.approx(0.5)
    rng = np.random.default_rng(2)
    tok = rng.normal(size=(7, m.n_tokens, 768)).astype(np.float32)
    z = (((tok - a["mean"]) / a["std"]) @ a["pca"]).reshape(7, -1)
    x = np.concatenate([z, phone_columns(head.posteriors(tok), a["ph_cm"], a["ph_cs"])], 1)
    y = (1 - alpha) * mlp_predict(mlp, x) + alpha * (x @ W + b)     # the parts, weighted
    ov = a["open_vec"]
    want = y + (a["gain"] - 1) * ((y - a["ymean"]) @ ov)[:, None] * (ov / (ov @ ov))[None]
    np.testing.assert_allclose(m.predict(tok, 0), want, rtol=1e-4, atol=1e-4)
    # the smoothing is the predictor's documented EMA of what predict gives, frame after frame
    sm, _ = m.smooth_frames(m.predict(tok, 0))
    np.testing.assert_allclose(sm, ema(want, 0.5)[0], rtol=1e-4, atol=1e-4)


def test_bad_smoothing_is_a_clear_error(tmp_path):
    for bad in (1.0, -0.1, np.nan):
        _toy_ensemble(tmp_path, smooth=np.float32(bad))
        with pytest.raises(ValueError, match="smooth"):
            MouthPredictor(tmp_path / "m.npz")
    _toy_ensemble(tmp_path, ph_cm=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="phone column"):
        MouthPredictor(tmp_path / "m.npz")


class _Clip:
    def __init__(self, n=12, shift=0):
        self.n, self.shift = n, shift
        self.ok = np.ones(n, bool)
        self.ok[5] = False
        self.exp = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
        self.amp = 1.0


def test_lead_pairs_each_frame_with_a_later_target():
    from chatanyone.train.mouth import aligned_frames, design_rows
    c = _Clip(shift=1)
    f0, s0 = aligned_frames(c)
    f2, s2 = aligned_frames(c, 2)
    np.testing.assert_array_equal(s0, f0 - 1)
    np.testing.assert_array_equal(s2, f2 + 1)              # 2 frames after the aligned one
    assert 5 not in s2 and s2.max() == c.n - 1             # untracked and absent frames dropped
    z = np.arange(c.n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    x, y, _ = design_rows([c], [z], 1.0, {"lead": 2})
    np.testing.assert_array_equal(y[:, 0], x[:, 0] + 1)    # frame t's row, frame t + 2 - shift's target


def test_ensemble_grid_in_cv_and_one_weight_in_fit():
    from chatanyone.train.mouth import CV_CONFIGS, _ensemble_weights, fit_mlp
    assert _ensemble_weights({"ensemble": 0.5}) == (0.5,)
    assert _ensemble_weights({"ensemble_grid": (0.3, 0.7)}) == (0.3, 0.7)
    assert _ensemble_weights({}) == ()
    with pytest.raises(ValueError, match="one weight"):
        fit_mlp([], [], 3, dict(CV_CONFIGS["ens_mlp256_phones_grid"], name="g"), wstats=(0, 1), phones=object())
    with pytest.raises(ValueError, match="viseme inputs"):
        fit_mlp([], [], 3, dict(CV_CONFIGS["ens_mlp256_phones_grid"], name="g"), wstats=(0, 1))


shipped = needs_shipped("motion_mouth.npz", "mouth predictor")


@shipped
def test_shipped_predictor_is_finite_and_chunking_independent():
    from chatanyone.audio.whisper import segment_features, shared_encoder
    from chatanyone.runners.base import weights_path
    m = MouthPredictor(weights_path("motion_mouth.npz"))
    rng = np.random.default_rng(0)
    t = np.arange(m.seg * 640) / 16000
    audio = (0.3 * (np.sin(2 * np.pi * 3 * t) > 0) * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.normal(size=t.size))
    n = 6
    feats = segment_features(shared_encoder(1, "int8"), audio.astype(np.float32), m.n_tokens + n - 1)
    j = np.arange(m.past, m.past + n)                      # the frames whose windows fit in the tokens
    whole = m.predict(feats[j[:, None] + np.arange(-m.past, m.look + 1)[None]], 0)
    assert whole.shape == (n, m.n_exp) and np.all(np.isfinite(whole))
    # the frames one by one, as a stream releases them (hop 1), give the same numbers
    one = np.concatenate([m.predict_segment(feats[:i + m.look + 1], 1) for i in j])
    np.testing.assert_allclose(one, whole, rtol=1e-5, atol=1e-5)
    sm, state = m.smooth_frames(whole)
    a, st = m.smooth_frames(whole[:2])
    b, st = m.smooth_frames(whole[2:], st)
    np.testing.assert_array_equal(np.concatenate([a, b]), sm)
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(m.rest))
