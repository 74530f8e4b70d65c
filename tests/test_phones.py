"""The viseme head (motion/phones.py) and its training data tool (train/phones.py). Tests of the
shipped head skip where its weights or the Whisper encoder are absent; those that synthesize speech
skip where espeak-ng (a training-side tool) is not installed."""
from __future__ import annotations

import ctypes.util

import numpy as np
import pytest

from chatanyone.motion.phones import K, VISEMES, VisemeHead, save_head
from weights_util import needs_shipped  # noqa: E402


def _toy_head(path, *, d=768, hidden=5, seed=0):
    rng = np.random.default_rng(seed)
    layers = [(rng.normal(size=(d, hidden)), rng.normal(size=hidden)), (rng.normal(size=(hidden, K)), rng.normal(size=K))]
    save_head(path, layers, rng.normal(size=d), 1 + rng.random(d))
    return layers


def test_head_is_the_documented_mlp(tmp_path):
    layers = _toy_head(tmp_path / "h.npz")
    h = VisemeHead(tmp_path / "h.npz")
    assert h.n_classes == K and h.names == VISEMES
    x = np.random.default_rng(1).normal(size=(7, 768)).astype(np.float32)
    z = (x - h.mean) / h.std
    a = z @ layers[0][0] + layers[0][1]
    a = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))
    lg = a @ layers[1][0] + layers[1][1]
    want = np.exp(lg - lg.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    p = h.posteriors(x)
    assert p.shape == (7, K) and p.dtype == np.float32
    np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    # any leading shape; rows are independent of their batch; deterministic
    p3 = h.posteriors(np.stack([x, x[::-1]]))
    assert p3.shape == (2, 7, K)
    np.testing.assert_allclose(p3[1], p[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h.posteriors(x), p)


def test_head_bad_input_is_a_clear_error(tmp_path):
    _toy_head(tmp_path / "h.npz")
    h = VisemeHead(tmp_path / "h.npz")
    with pytest.raises(ValueError, match="768"):
        h.posteriors(np.zeros((3, 384), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        h.posteriors(np.full((2, 768), np.nan, np.float32))
    with pytest.raises(TypeError, match="floating"):
        h.posteriors(np.zeros((2, 768), np.int64))
    # a file whose layers do not chain
    rng = np.random.default_rng(0)
    save_head(tmp_path / "bad.npz", [(rng.normal(size=(768, 5)), np.zeros(5)), (rng.normal(size=(6, K)), np.zeros(K))],
              np.zeros(768), np.ones(768))
    with pytest.raises(ValueError, match="chain"):
        VisemeHead(tmp_path / "bad.npz")


def test_viseme_classes_of_phones():
    from chatanyone.train.phones import viseme_of
    cases = {"p": "pbm", "m": "pbm", "f": "fv", "ð": "th", "t": "tdnl", "s": "sz", "tʃ": "sh", "dʒ": "sh",
             "ŋ": "kg", "ɹ": "r", "ɚ": "r", "w": "wu", "uː": "wu", "oʊ": "o", "aɪ": "a", "æ": "a",
             "ɜː": "e", "ə": "e", "iː": "i", "ɪ": "i", "": "sil", "ˈ": "sil"}
    for ph, v in cases.items():
        assert VISEMES[viseme_of(ph)] == v, ph
    with pytest.raises(ValueError, match="unknown phone"):
        viseme_of("☃")


def test_frame_labels_cover_each_frame_by_overlap():
    from chatanyone.train.phones import frame_labels
    pbm, a = VISEMES.index("pbm"), VISEMES.index("a")
    # pause 0-0.05 s, "m" 0.05-0.10 s, "a" 0.10-0.18 s, pause after (frames of 40 ms)
    y = frame_labels([(0.05, pbm), (0.10, a)], 6, 0.18)
    assert y.shape == (6, K)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(y[0, 0], 1.0)                       # 0-40 ms: pause
    np.testing.assert_allclose(y[1, [0, pbm]], [0.25, 0.75], atol=1e-6)  # 40-80 ms: 10 ms pause, 30 ms m
    np.testing.assert_allclose(y[2, [pbm, a]], [0.5, 0.5], atol=1e-6)    # 80-120 ms
    np.testing.assert_allclose(y[4, [a, 0]], [0.5, 0.5], atol=1e-6)      # 160-200 ms: a ends at 180
    np.testing.assert_allclose(y[5, 0], 1.0)


# ------------------------------------------------------------------------ the shipped head

shipped = needs_shipped("motion_phones.npz", "viseme head")
have_espeak = ctypes.util.find_library("espeak-ng") is not None


@shipped
def test_shipped_head_calls_digital_silence_a_pause():
    from chatanyone.audio.whisper import segment_features, shared_encoder
    f = segment_features(shared_encoder(1, "int8"), np.zeros(24 * 640, np.float32), 13)
    p = VisemeHead().posteriors(f)
    assert p.shape == (13, K)
    assert np.all(p.argmax(1) == VISEMES.index("sil")), p.argmax(1)


@shipped
@pytest.mark.skipif(not have_espeak, reason="espeak-ng (a training-side tool) is not installed")
def test_shipped_head_finds_the_phones_of_an_unseen_voice():
    """A held-out espeak-ng voice: the head's frame accuracy is far above the majority class."""
    from chatanyone.audio.whisper import shared_encoder
    from chatanyone.train.phones import Espeak, make_utterance, utterance_tokens
    rng = np.random.default_rng(3)
    a, y = make_utterance(Espeak(), "Maybe we should move over the bridge before the rain comes.", "en-us+m3", rng)
    x, yy, d = utterance_tokens(shared_encoder(1, "int8"), a, y, 4, rng)
    p = VisemeHead().posteriors(x.astype(np.float32))
    yt = yy.astype(np.float32).argmax(1)
    acc = float(np.mean(p.argmax(1) == yt))
    chance = np.bincount(yt, minlength=K).max() / len(yt)
    assert acc > chance + 0.2, (acc, chance)


def test_mouth_predictor_with_viseme_inputs(tmp_path):
    """A predictor file that carries a viseme head appends the tokens' standardized viseme
    log-posteriors to its PCA inputs (motion/mouth.py); a mismatched file is refused."""
    from chatanyone.motion.mouth import MouthPredictor, phone_columns
    rng = np.random.default_rng(0)
    past, look, hop, d, e = 2, 1, 1, 4, 3
    k = past + look + 1
    _toy_head(tmp_path / "h.npz")
    head = VisemeHead(tmp_path / "h.npz")
    arrays = dict(mean=rng.normal(size=768).astype(np.float32), std=(1 + rng.random(768)).astype(np.float32),
                  pca=rng.normal(size=(768, d)).astype(np.float32), W=rng.normal(size=(hop, k * (d + K), e)).astype(np.float32),
                  b=rng.normal(size=(hop, e)).astype(np.float32), look=np.int32(look), past=np.int32(past), hop=np.int32(hop),
                  seg=np.int32(24), ref_amp=np.float32(0.02), open_vec=rng.normal(size=e).astype(np.float32),
                  A=np.eye(e, dtype=np.float32), gain=np.float32(1.0), rest=np.zeros(e, np.float32),
                  ph_cm=rng.normal(size=k * K).astype(np.float32), ph_cs=(1 + rng.random(k * K)).astype(np.float32),
                  **head.arrays("ph_"))
    np.savez(tmp_path / "m.npz", **arrays)
    m = MouthPredictor(tmp_path / "m.npz")
    assert m.phones is not None and m.phones.n_classes == K
    tok = rng.normal(size=(5, k, 768)).astype(np.float32)
    z = (((tok - m.mean) / m.std) @ m.pca).reshape(5, -1)
    lp = np.log(np.maximum(head.posteriors(tok), 1e-4)).reshape(5, -1)
    x = np.concatenate([z, (lp - arrays["ph_cm"]) / arrays["ph_cs"]], 1)
    np.testing.assert_allclose(m.predict(tok, 0), x @ m.W[0] + m.b[0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(phone_columns(head.posteriors(tok), arrays["ph_cm"], arrays["ph_cs"]),
                               x[:, k * d:], rtol=1e-5, atol=1e-5)
    # weights sized for the PCA inputs alone do not fit a file with a viseme head
    np.savez(tmp_path / "bad.npz", **dict(arrays, W=arrays["W"][:, :k * d]))
    with pytest.raises(ValueError, match="W is"):
        MouthPredictor(tmp_path / "bad.npz")


def test_aligned_labels_map_arpabet_to_visemes(tmp_path):
    import json
    from chatanyone.train.phones import aligned_labels
    f = tmp_path / "clip.json"
    f.write_text(json.dumps({"text": "ma", "seconds": 0.3,
                             "phones": [[0.0, 0.08, "SIL"], [0.08, 0.16, "M"], [0.16, 0.24, "AA"]]}))
    y = aligned_labels(f, 8)
    assert y.shape == (8, K)
    assert [VISEMES[i] for i in y.argmax(1)] == ["sil", "sil", "pbm", "pbm", "a", "a", "sil", "sil"]
    f.write_text(json.dumps({"text": "", "seconds": 0.3, "phones": []}))
    assert aligned_labels(f, 8) is None


@pytest.mark.skipif(not have_espeak, reason="espeak-ng (a training-side tool) is not installed")
def test_pocketsphinx_finds_the_phones_espeak_says():
    """Forced alignment (the real-speech labels) against the exact phone times of synthetic speech:
    every closed-lip phone (p/b/m) pocketsphinx places in "my mother bought maps" starts within 60 ms
    of a closed-lip phone of espeak-ng's (the alignment can swap neighbours: the m of "maps" lands
    on its p), and each of espeak-ng's five is found."""
    pytest.importorskip("pocketsphinx")
    from chatanyone.train.phones import SR, Espeak, _resample, align_phones
    es = Espeak()
    wav, ev = es.synth("my mother bought maps", "en-us", rate=150)
    a = np.concatenate([np.zeros(SR // 4, np.float32), _resample(wav, es.rate)])
    truth = np.array([s / es.rate + 0.25 for s, p in ev if p in ("m", "b", "p")])
    got = np.array([t0 for t0, _, p in align_phones(a, "my mother bought maps") if p in ("M", "B", "P")])
    assert len(truth) == len(got) == 5, (got, truth)
    assert np.abs(got[:, None] - truth[None]).min(1).max() < 0.06, (got, truth)
