"""The deterministic mouth predictor (motion/mouth.py, train/mouth.py) and the generator's low-latency
mouth mode. Tests of the shipped predictor skip where its weights or the Whisper encoder are absent."""
from __future__ import annotations

import math

import numpy as np
import pytest

from chatanyone.eval.split import role
from weights_util import needs_shipped  # noqa: E402


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


shipped = needs_shipped("motion_mouth.npz", "mouth predictor")


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
def test_first_window_is_primed_before_any_audio(gen):
    """The stream's first face window hears only the silence before the stream, so it is sampled
    before any audio (prime(), as a Session does at creation) with the result the first chunk gets
    lazily; the audio decides the mouth from frame 0 and the head from the second window on."""
    hop = gen._first_release()
    gen.reset()
    primed = gen.prime()
    assert primed is not None and primed.start == 0 and len(primed) == hop
    assert gen.prime() is primed  # idempotent
    out = {}
    for seed in (1, 2):
        gen.reset()  # lazily this time: the first chunk samples the same window
        gen.push_audio(_speechlike(1.2, seed=seed) * (1.0 if seed == 1 else 0.3))
        gen.flush()
        out[seed] = gen.generate_all()
        assert gen.prime() is None  # frames were released: nothing to prime
    np.testing.assert_array_equal(out[1].head[:hop], primed.head)
    np.testing.assert_array_equal(out[2].head[:hop], primed.head)
    np.testing.assert_array_equal(out[1].eye[:hop], out[2].eye[:hop])  # (blinks are added on release)
    assert np.abs(out[1].head[hop:] - out[2].head[hop:]).max() > 1e-4  # later windows hear the audio
    assert np.abs(out[1].exp[:hop] - out[2].exp[:hop]).max() > 1e-3      # the mouth does from frame 0


@shipped
def test_style_change_before_the_stream_reprimes_frame_0(gen):
    """A style set after the first window was primed (nothing released yet) samples that window
    again, at frame 0 (it was sampled again at frame 10 and sliced at a negative offset)."""
    gen.reset()
    first = gen.prime()
    gen.set_style(None)
    again = gen.prime()
    assert again is not first and again.start == 0 and len(again) == gen._first_release()
    np.testing.assert_array_equal(again.head, first.head)  # the same style: the same window
    assert gen.scheduler.next == gen._first_release()


@shipped
def test_first_frame_before_400_ms_of_audio(gen):
    gen.reset()
    a = _speechlike(1.0)
    fed = 0
    while gen.pop_frames(1) is None:
        assert fed < a.size, "no frame after a second of audio"
        gen.push_audio(a[fed:fed + 160])  # 10 ms at a time
        fed += 160
    # issue 12 asks for the first frame before 400 ms of audio; the shipped predictor's 4-frame
    # lookahead lets it out after 200 ms (its own 40 ms and 160 ms ahead: nothing more is waited for),
    # so a producer feeding 100 ms chunks gets it with its second chunk
    assert gen.mouth.look == 4 and gen.lookahead_samples == 2560
    assert fed / 16.0 <= 200.0, f"first frame after {fed / 16.0:.0f} ms of audio"
    assert gen.lookahead_samples + 640 <= fed < gen.lookahead_samples + 640 + 160


@shipped
def test_first_frame_waits_for_exactly_its_lookahead(gen):
    """Frame 0 needs its own 640 samples and the predictor's lookahead, to the sample: one sample
    short, nothing; that sample, frame 0 alone (frame 1 needs 640 more)."""
    gen.reset()
    a = _speechlike(1.0, seed=5)
    need = 640 + gen.lookahead_samples
    gen.push_audio(a[:need - 1])
    assert gen.pop_frames(1) is None
    gen.push_audio(a[need - 1:need])
    f = gen.pop_frames(2)
    assert f is not None and f.exp.shape[0] == 1
    gen.push_audio(a[need:need + 639])
    assert gen.pop_frames(1) is None
    gen.push_audio(a[need + 639:need + 640])
    assert gen.pop_frames(1) is not None


@shipped
def test_eval_variant_with_another_lookahead(gen, tmp_path):
    """eval lipsync's ``mouth:`` variant takes a predictor that reads another lookahead; the
    generator's lookahead (and so the Session's wait) follows it, and frame 0 waits for it."""
    from chatanyone.eval.lipsync import apply_variant
    from chatanyone.motion.mouth import MouthPredictor
    from chatanyone.motion.generator import _weights_dir
    shipped_path = _weights_dir() / "motion_mouth.npz"
    z = dict(np.load(shipped_path))
    # one frame less of past, one more of lookahead: the same input layout, read one frame later
    z["past"], z["look"] = np.int32(int(z["past"]) - 1), np.int32(int(z["look"]) + 1)
    other = tmp_path / "later.npz"
    np.savez(other, **z)
    base = gen.lookahead_samples
    try:
        apply_variant(gen, {"mouth": str(other)})
        assert isinstance(gen.mouth, MouthPredictor) and gen.mouth.look == int(z["look"])
        assert gen.lookahead_samples == base + 640
        a = _speechlike(1.0, seed=6)
        gen.push_audio(a[:640 + base + 639])
        assert gen.pop_frames(1) is None
        gen.push_audio(a[640 + base + 639:640 + base + 640])
        assert gen.pop_frames(1) is not None
        short = dict(z, seg=np.int32(int(z["look"]) + 1))
        np.savez(tmp_path / "short.npz", **short)
        with pytest.raises(ValueError, match="segment"):
            apply_variant(gen, {"mouth": str(tmp_path / "short.npz")})
    finally:
        apply_variant(gen, {"mouth": str(shipped_path)})
    assert gen.lookahead_samples == base


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
    """After speech, digital silence: the mouth closes smoothly to the predictor's rest pose and
    stays still."""
    gen.reset()
    gen.push_audio(_speechlike(2.0))
    gen.push_audio(np.zeros(2 * 16000, np.float32))
    gen.flush()
    f = gen.generate_all()
    u = gen.mouth.open_vec
    gap = f.exp @ u
    speech, silence = gap[5:45], gap[80:]  # silence from frame 50; the close takes about half a second
    assert silence.std() < 0.05 * speech.std(), (silence.std(), speech.std())
    assert abs(silence[-1] - float(gen.mouth.rest @ u) * gen.intensity) < 0.1 * speech.std()
    steps = np.abs(np.diff(gap))
    assert steps[50:].max() < steps[5:45].max(), "the mouth snapped shut"


def _room(seconds: float, level: float, seed: int) -> np.ndarray:
    """Room noise: low-passed white noise at RMS ``level``."""
    x = np.random.default_rng(seed).normal(size=int(seconds * 16000))
    x = np.convolve(x, np.ones(8) / 8, mode="same")
    return (level * x / x.std()).astype(np.float32)


def _phrases_and_pauses(gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Three 1.2 s phrases of speech-like sound separated by 1.2 s pauses of room noise (-50 dBFS)
    with a breath (-44 dBFS, 200 ms) in each, the whole thing under room noise. Returns the audio
    and a per-frame bool: inside a pause, away from the phrases by more than 400 ms."""
    parts, pause = [], []
    for k in range(3):
        parts.append(_speechlike(1.2, seed=k))
        pause += [False] * 30
        br = np.concatenate([_room(0.5, 0.003, 10 + k), _room(0.2, 0.006, 20 + k), _room(0.5, 0.003, 30 + k)])
        parts.append(br)
        pause += [False] * 10 + [True] * 10 + [False] * 10
    a = np.concatenate(parts)
    a = a + _room(a.size / 16000, 0.003, 99)
    return (gain * a).astype(np.float32), np.array(pause)


@shipped
@pytest.mark.parametrize("gain", [1.0, 0.1])
def test_mouth_rests_in_real_pauses(gen, gain):
    """Pauses with room noise and breaths (not digital silence): the mouth moves at most 0.2x as
    much as in speech, at a loud and a 20 dB quieter recording level (the gate is relative to the
    stream's own speech level), and it moves in the phrases."""
    a, pause = _phrases_and_pauses(gain)
    gen.reset()
    gen.push_audio(a)
    gen.flush()
    f = gen.generate_all()
    gap = f.exp @ gen.mouth.open_vec
    speech = np.zeros(len(gap), bool)
    for k in range(3):
        speech[60 * k + 3:60 * k + 27] = True
    assert gap[speech].std() > 0.003
    assert gap[pause[:len(gap)]].std() < 0.2 * gap[speech].std(), (gap[pause[:len(gap)]].std(), gap[speech].std())
    gen.mouth_gate = "digital"  # the gate before: room noise moves the mouth
    try:
        gen.reset()
        gen.push_audio(a)
        gen.flush()
        old = gen.generate_all().exp @ gen.mouth.open_vec
    finally:
        gen.mouth_gate = "speech"
    assert old[pause[:len(old)]].std() > gap[pause[:len(gap)]].std()


def test_speech_gate_weights():
    """The gate alone: 0 in room noise and digital silence, 1 in speech, tapered edges (no jump
    from 0 to 1 between two frames), the same for a quieter copy of the stream."""
    from chatanyone.motion.vad import SpeechGate, frame_levels
    a, pause = _phrases_and_pauses()
    g = SpeechGate(3)
    w = g.weights(frame_levels(a[: a.size // 640 * 640]))
    assert w[pause[:len(w)]].max() == 0.0
    assert w[8:22].min() >= 0.5 and w[8:22].mean() > 0.85  # syllable gaps of 160 ms dip a little
    assert np.abs(np.diff(w)).max() <= 0.5
    w_quiet = SpeechGate(3).weights(frame_levels(0.05 * a[: a.size // 640 * 640]))
    np.testing.assert_allclose(w_quiet, w, atol=0.1)
    z = SpeechGate(3).weights(np.full(50, -200.0), with_settle=True)
    assert z[0].max() == 0.0 and z[1][-1] > 0.95  # digital silence: still, closed
    with pytest.raises(ValueError):
        g.step(np.zeros(3))
    with pytest.raises(ValueError):
        SpeechGate(-1)


@shipped
def test_batched_encodes_match_one_at_a_time(gen):
    """With many frames ready at once the Whisper segments are encoded in batches (up to
    MAX_BATCH per call): one call releases several frames, and they equal those of one encode per
    frame."""
    a = _speechlike(1.0, seed=7)
    gen.reset()
    gen.push_audio(a)
    gen.flush()
    first = gen.generate_window()
    assert len(first) == 1  # a stream's first frame goes out alone (its latency: one encode)
    second = gen.generate_window()
    assert len(second) == gen.MAX_BATCH and second.start == 1
    batched = gen.generate_all()  # the frames queued so far (``first`` among them) and the rest
    one = type(gen).MAX_BATCH
    try:
        gen.MAX_BATCH = 1
        gen.reset()
        gen.push_audio(a)
        gen.flush()
        assert len(gen.generate_window()) == 1
        gen.reset()
        gen.push_audio(a)
        gen.flush()
        single = gen.generate_all()
    finally:
        gen.MAX_BATCH = one
    assert len(single) == len(batched) == math.ceil(a.size / 640)
    np.testing.assert_allclose(single.exp, batched.exp, atol=1e-5)
    np.testing.assert_allclose(single.head, batched.head, atol=1e-5)
    np.testing.assert_array_equal(batched[:len(first)].exp, first.exp)
    feats = gen.frontend.segment_features([24, 30], 24, 5)
    assert feats.shape == (2, 5, 768)
    with pytest.raises(ValueError):
        gen.frontend.segment_features([], 24, 5)


@shipped
def test_style_reference_scales_head_and_expression(gen):
    """The generated head and upper-face expression take on a style reference's spread: with a
    reference that moves 4x as much as another (the model's own motion, scaled about its mean),
    they spread clearly more (the model's own conditioning alone moved them little or the wrong
    way); no reference: no scaling. The lids are left out of the expression's spread: they are
    the generator's blinks, which no style scales (motion/blink.py)."""
    up = gen._upper
    if gen._lids is not None:  # exp @ up without the lid gaps' directions
        vecs, rows, _ = gen._lids
        up = up @ (np.eye(len(up), dtype=np.float32) - rows.T @ vecs)
    gen.set_style(None)
    gen.reset()
    gen.push_audio(_speechlike(6.0, seed=3))
    gen.flush()
    own = gen.generate_all()
    spreads = {}
    for scale in (2.0, 0.5):
        head = own.head.mean(0) + scale * (own.head - own.head.mean(0))
        exp = own.exp.mean(0) + scale * (own.exp - own.exp.mean(0))
        gen.set_style({"head": head, "exp": exp, "eye": own.eye})
        ref_h = head[:, :3].std(0).mean()
        assert gen._style_ref[0] == pytest.approx(ref_h, rel=1e-3)
        gen.reset()
        gen.push_audio(_speechlike(4.0))
        gen.flush()
        f = gen.generate_all()
        d = slice(25, None)  # after the first second (the running spread starts at the model's typical)
        spreads[scale] = (f.head[d, :3].std(0).mean(), np.sqrt(np.mean((f.exp[d] @ up).var(0))))
    gen.set_style(None)
    assert gen._style_ref is None
    assert spreads[2.0][0] > 1.5 * spreads[0.5][0] and spreads[2.0][1] > 1.5 * spreads[0.5][1], spreads


def test_pause_frames_for_closeups():
    from chatanyone.eval.lipsync import pause_frames
    sp = np.ones(100, bool)
    sp[10:20] = False   # 10 frames
    sp[40:70] = False   # 30 frames, the longest
    sp[80:84] = False   # too short
    assert pause_frames(sp) == [15, 55]
    assert pause_frames(sp, k=1) == [55]
    assert pause_frames(np.ones(50, bool)) == []


def test_lipsync_variant_specs(tmp_path):
    from chatanyone.eval.lipsync import parse_variant
    assert parse_variant("shipped=") == ("shipped", {})
    assert parse_variant("g=gain_x:1.2,gate:none") == ("g", {"gain_x": "1.2", "gate": "none"})
    for bad in ("nogate", "=gain:1", "x=gain"):
        with pytest.raises(ValueError):
            parse_variant(bad)


@shipped
def test_lipsync_variants_change_the_generator(gen):
    from chatanyone.eval.lipsync import apply_variant
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(seed=3, body=False)
    g0 = float(g.mouth.gain)
    apply_variant(g, {"gain_x": "1.5", "gate": "none", "shift": "0.01"})
    assert g.mouth.gain == pytest.approx(1.5 * g0) and g.mouth_gate is None
    assert float(g._mouth_shift @ g.mouth.open_vec) == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(ValueError):
        apply_variant(g, {"gate": "sometimes"})
    with pytest.raises(ValueError):
        apply_variant(g, {"colour": "red"})
