"""Whisper tiny.en features: our log-mel against faster-whisper's, and the segment contract that
makes run-time features equal the training features."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone.audio import whisper as W


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.3 * t)
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(h * ph) / h for h in range(1, 10))
    return (0.2 * env * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_log_mel_matches_faster_whisper():
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    fe = fw.FeatureExtractor(feature_size=80)
    np.testing.assert_allclose(W.mel_filters(), fe.mel_filters, rtol=1e-5, atol=1e-7)
    for n in (640 * 35, 16000 * 3 + 320):
        a = _speechlike(n / 16000 + 0.01)[:n]
        ref = fe(a, padding=0)
        ours = W.whisper_log_mel(a)
        assert ours.shape == (80, n // 160)
        np.testing.assert_allclose(ours, ref[:, : ours.shape[1]], atol=2e-5)


def test_log_mel_rejects_too_short():
    with pytest.raises(ValueError, match="at least"):
        W.whisper_log_mel(np.zeros(10, np.float32))


def test_segment_features_shape_and_determinism():
    enc = W.shared_encoder()
    seg = _speechlike(35 * 640 / 16000 + 0.01)[: 35 * 640]
    f1 = W.segment_features(enc, seg, 23)
    f2 = W.segment_features(enc, seg.copy(), 23)
    assert f1.shape == (23, 768) and np.isfinite(f1).all()
    np.testing.assert_array_equal(f1, f2)
    # the batch path gives the same numbers as one segment at a time
    fb = W.segment_features_batch(enc, np.stack([seg, seg[::-1].copy()]), 23)
    np.testing.assert_allclose(fb[0], f1, atol=1e-4)
    # speech and silence give different features (the encoder hears the audio)
    f0 = W.segment_features(enc, np.zeros_like(seg), 23)
    assert np.abs(f0 - f1).mean() > 0.1


def test_segment_features_errors():
    enc = W.shared_encoder()
    with pytest.raises(ValueError, match="whole video frames"):
        W.segment_features(enc, np.zeros(1000, np.float32), 1)
    with pytest.raises(ValueError, match="n_tokens"):
        W.segment_features(enc, np.zeros(640 * 4, np.float32), 5)
    with pytest.raises(ValueError, match="mel must be"):
        enc.encode(np.zeros((1, 80, 7), np.float32))


def test_missing_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATANYONE_WHISPER_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="no Whisper model"):
        W.model_dir()
