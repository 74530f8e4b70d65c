"""The deterministic mouth predictor (motion/mouth.py, train/mouth.py) and the generator's low-latency
mouth mode. Tests of the shipped predictor skip where its weights or the Whisper encoder are absent."""
from __future__ import annotations

import math

import numpy as np
import pytest

from chatanyone.eval.split import role
from chatanyone.runners.base import weights_path


def test_split_role_of_clip_ids_with_dots():
    # corpus folders are clip ids; a dot inside one is not a file suffix
    assert role("tango_hbr_1wrQ6Msp7wM_39.69-45.68") == "dev"
    assert role("/x/corpus/tango_hbr_1wrQ6Msp7wM_39.69-45.68") == "dev"
    assert role("/v/tango_hbr_1wrQ6Msp7wM_39.69-45.68.mp4") == "dev"
    assert role("tango_hbr_speaker12_BVHw8aCPATM_65-70") == "heldout"
    assert role("videos/sadtalker_hdtf_aoc.mp4") == "heldout"
    assert role("tango_hbr_speaker7_iuYlGRnC7J8_0-3.25") == "train"


def _toy_predictor(path, *, past=2, look=1, hop=2, d=4, e=3, seed=0):
    rng = np.random.default_rng(seed)
    k = past + look + 1
    np.savez(path, mean=rng.normal(size=768).astype(np.float32), std=(1 + rng.random(768)).astype(np.float32),
             pca=rng.normal(size=(768, d)).astype(np.float32), W=rng.normal(size=(hop, k * d, e)).astype(np.float32),
             b=rng.normal(size=(hop, e)).astype(np.float32), look=np.int32(look), past=np.int32(past), hop=np.int32(hop),
             seg=np.int32(24), ref_amp=np.float32(0.02), open_vec=rng.normal(size=e).astype(np.float32),
             A=np.eye(e, dtype=np.float32), gain=np.float32(1.3), rest=np.zeros(e, np.float32))


def test_predictor_is_the_documented_linear_map(tmp_path):
    from chatanyone.motion.mouth import MouthPredictor
    _toy_predictor(tmp_path / "m.npz")
    m = MouthPredictor(tmp_path / "m.npz")
    rng = np.random.default_rng(1)
    tok = rng.normal(size=(5, m.n_tokens, 768)).astype(np.float32)
    z = (((tok - m.mean) / m.std) @ m.pca).reshape(5, -1)
    u = m.open_vec / (m.open_vec @ m.open_vec)
    for ex in (0, 1):
        y = z @ m.W[ex] + m.b[ex]
        want = y + (m.gain - 1) * ((z @ m.W[ex]) @ m.open_vec)[:, None] * u[None]
        np.testing.assert_allclose(m.predict(tok, ex), want, rtol=1e-4, atol=1e-4)
        # the gain multiplies the mouth opening about the intercept, nothing else
        np.testing.assert_allclose((m.predict(tok, ex) - m.b[ex]) @ m.open_vec,
                                   m.gain * (z @ m.W[ex]) @ m.open_vec, rtol=1e-4, atol=1e-4)
    # a chunk of 2 frames from one segment: frame j reads tokens j - past .. j + look, and the
    # earlier frame, whose segment ends one frame later than its lookahead, the weights of extra 1
    feats = rng.normal(size=(10, 768)).astype(np.float32)
    seg = m.predict_segment(feats, 2)
    for i, j in enumerate(range(10 - m.look - 2, 10 - m.look)):
        want = m.predict(feats[None, j - m.past:j + m.look + 1], 1 - i)[0]
        np.testing.assert_allclose(seg[i], want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        m.predict(tok[:, :-1], 0)
    with pytest.raises(ValueError):
        m.predict(tok, 2)  # no weights for a segment ending 2 frames late (hop 2)
    with pytest.raises(ValueError):
        m.predict_segment(feats, 3)


def test_lookahead_tokens_index_the_right_segment():
    from chatanyone.train.mouth import MAX_LOOK, N_TOK, lookahead_tokens
    n = 30
    # row r = segment ending at frame r + 1; token slot s of row r is frame r + 1 - N_TOK + s; encode
    # (segment end, frame) in the values
    feat = np.zeros((n + MAX_LOOK, N_TOK, 768), np.float32)
    for r in range(feat.shape[0]):
        for s in range(N_TOK):
            feat[r, s, 0] = r + 1           # segment end
            feat[r, s, 1] = r + 1 - N_TOK + s  # frame
    frames = np.array([5, 6, 20])
    for look in (0, 2, 5):
        tok = lookahead_tokens(feat, frames, look, past=3)
        assert tok.shape == (3, 3 + look + 1, 768)
        np.testing.assert_array_equal(tok[:, :, 0], (frames + 1 + look)[:, None].repeat(3 + look + 1, 1))
        np.testing.assert_array_equal(tok[:, :, 1], frames[:, None] + np.arange(-3, look + 1)[None])
    with pytest.raises(ValueError):
        lookahead_tokens(feat, frames, MAX_LOOK + 1)


def test_ridge_recovers_a_linear_map():
    from chatanyone.train.mouth import ridge
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6)).astype(np.float32)
    W0 = rng.normal(size=(6, 2)).astype(np.float32)
    y = x @ W0 + np.array([0.5, -1.0], np.float32) + 0.01 * rng.normal(size=(2000, 2)).astype(np.float32)
    W, b = ridge(x, y, np.ones(2000, np.float32), 1e-6)
    np.testing.assert_allclose(W, W0, atol=0.02)
    np.testing.assert_allclose(b, [0.5, -1.0], atol=0.02)


@pytest.fixture(scope="module")
def basis():
    from chatanyone.spec.head import load_basis
    try:
        return load_basis()
    except FileNotFoundError:
        pytest.skip("no face_basis.npz")


def test_blend_takes_the_lower_face_from_the_mouth(basis):
    from chatanyone.motion.mouth import blend, mouth_projector
    from chatanyone.train.mouth import mouth_open_vector
    A = mouth_projector(basis.components, basis.canonical)
    E = A.shape[0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, E)).astype(np.float32) * basis.std
    np.testing.assert_allclose(blend(x, x, A), x, rtol=1e-5, atol=1e-6)
    other = rng.normal(size=(4, E)).astype(np.float32) * basis.std
    out = blend(other, x, A)
    mesh = lambda e: (e @ basis.components).reshape(len(e), -1, 3)  # noqa: E731
    c = basis.canonical
    lower = c[:468, 1] > c[2, 1]
    # the lower face (lips, jaw) follows the mouth expression, the upper face (brows, eyes) the other
    err_lower = np.abs(mesh(out)[:, lower] - mesh(x)[:, lower]).mean()
    err_upper = np.abs(mesh(out)[:, ~lower] - mesh(other)[:, ~lower]).mean()
    scale = np.abs(mesh(x) - mesh(other)).mean()
    assert err_lower < 0.35 * scale and err_upper < 0.35 * scale, (err_lower, err_upper, scale)
    # the inner-lip gap is the mouth's
    u = mouth_open_vector(basis.components)
    np.testing.assert_allclose(out @ u, x @ u, atol=0.1 * np.abs(x @ u).max())


SHIPPED = weights_path("motion_mouth.npz")


def _whisper_ok() -> bool:
    try:
        from chatanyone.audio.whisper import model_dir
        model_dir()
        return True
    except Exception:
        return False


shipped = pytest.mark.skipif(not (SHIPPED.is_file() and _whisper_ok()),
                             reason="no shipped mouth predictor or no Whisper encoder")


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    return (0.3 * env * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def gen():
    from chatanyone.motion import MotionGenerator
    return MotionGenerator(seed=3, body=False)


@shipped
def test_mouth_mode_frame_count_chunking_and_seed(gen):
    from chatanyone.spec.motion_layout import MotionFrames
    assert gen.mouth is not None
    a = _speechlike(1.83)
    gen.reset()
    gen.push_audio(a)
    gen.flush()
    whole = gen.generate_all()
    assert len(whole) == math.ceil(a.size / 640)  # ceil(S x fps)
    gen.reset()  # the same audio in ragged chunks, frames popped one by one
    parts, i = [], 0
    rng = np.random.default_rng(5)
    while i < a.size:
        n = int(rng.integers(50, 4000))
        gen.push_audio(a[i:i + n])
        i += n
        while (f := gen.pop_frames(1)) is not None:
            parts.append(f)
    gen.flush()
    while (f := gen.pop_frames()) is not None:
        parts.append(f)
    chunked = MotionFrames.concat(parts)
    assert [p.start for p in parts] == sorted(p.start for p in parts)
    for k in ("head", "exp", "eye"):
        np.testing.assert_array_equal(chunked[k], whole[k])
    gen.seed = 4  # another seed: the sampled head differs, the predicted mouth does not depend on it
    gen.reset()
    gen.push_audio(a)
    gen.flush()
    other = gen.generate_all()
    gen.seed = 3
    assert np.abs(other.head - whole.head).max() > 1e-4


@shipped
def test_first_frame_before_400_ms_of_audio(gen):
    gen.reset()
    a = _speechlike(1.0)
    fed = 0
    while gen.pop_frames(1) is None:
        assert fed < a.size, "no frame after a second of audio"
        gen.push_audio(a[fed:fed + 160])  # 10 ms at a time
        fed += 160
    assert fed / 16.0 < 400.0, f"first frame after {fed / 16.0:.0f} ms of audio"
    assert gen.lookahead_samples + 640 <= fed <= gen.lookahead_samples + 640 + 160


def test_mlp_forward_matches_torch():
    torch = pytest.importorskip("torch")
    from chatanyone.motion.mouth import mlp_forward
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(16, 16),
                              torch.nn.GELU(approximate="tanh"), torch.nn.Linear(16, 3))
    layers = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in net if isinstance(m, torch.nn.Linear)]
    x = np.random.default_rng(0).normal(size=(9, 7)).astype(np.float32)
    np.testing.assert_allclose(mlp_forward(layers, x), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


@shipped
def test_style_reference_sets_the_mouth_amplitude(gen):
    """A reference speaker whose mouth opens twice as wide as the median moves the predicted mouth
    twice as much (the gain is clipped to 0.5..2); no reference: 1."""
    m = gen.mouth
    t = np.arange(200)
    u = m.open_vec / float(m.open_vec @ m.open_vec)
    for scale in (2.0, 0.5):
        exp = (np.sin(t / 3.0)[:, None] * u[None] * m.ref_amp * scale * np.sqrt(2)).astype(np.float32)
        ref = {"head": np.zeros((200, 6), np.float32), "exp": exp, "eye": np.ones((200, 4), np.float32)}
        gen.set_style(ref)
        assert gen.mouth_gain == pytest.approx(scale, rel=0.02)
    gen.set_style(None)
    assert gen.mouth_gain == 1.0


@shipped
def test_mouth_rests_in_digital_silence(gen):
    """After speech, digital silence: the mouth goes to the predictor's rest pose and stays still."""
    gen.reset()
    gen.push_audio(_speechlike(2.0))
    gen.push_audio(np.zeros(2 * 16000, np.float32))
    gen.flush()
    f = gen.generate_all()
    u = gen.mouth.open_vec
    gap = f.exp @ u
    speech, silence = gap[5:45], gap[60:]
    assert silence.std() < 0.2 * speech.std(), (silence.std(), speech.std())
