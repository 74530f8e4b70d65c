"""Log-mel features at 100 Hz, computed the same way in training (corpus) and at run time (stream).

Frame ``i`` of :func:`log_mel` is centred on the 10 ms hop ``[i*160, (i+1)*160)``: it reads samples
``[i*160 - 120, i*160 + 280)`` (zeros outside the signal). So ``len(audio) / 160`` frames come out
for a length that is a multiple of 160, four per video frame at 25 fps, and a streaming caller needs
only 120 samples (7.5 ms) beyond the hop it wants.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..spec.timeline import HOP, N_FFT, N_MELS, PAD, SAMPLE_RATE, WIN


@functools.lru_cache(maxsize=None)
def _mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
                    fmin: float = 55.0, fmax: float = 7600.0) -> np.ndarray:
    """Triangular HTK-style mel filters, ``[n_fft//2+1, n_mels]`` float32."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz = mel_to_hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((bins.size, n_mels), dtype=np.float64)
    for m in range(n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        up = (bins - lo) / max(c - lo, 1e-9)
        down = (hi - bins) / max(hi - c, 1e-9)
        fb[:, m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _window() -> np.ndarray:
    return np.hanning(WIN + 1)[:-1].astype(np.float32)


def log_mel(audio: np.ndarray, *, left_context: np.ndarray | None = None) -> np.ndarray:
    """Log-mel spectrogram of 16 kHz mono audio.

    Args:
        audio: ``[S]`` float32 samples in [-1, 1]. ``S`` should be a multiple of 160; a remainder
            is dropped.
        left_context: optional ``[120]`` samples that precede ``audio`` (streaming); zeros if None.
            The 120 samples after ``audio`` are taken as zeros; a streaming caller that has them
            passes them at the end of ``audio`` and drops the last frame.
    Returns:
        ``[S // 160, 80]`` float32, natural log of mel energy floored at 1e-5.
    """
    spec = power_spectrum(audio, left_context=left_context)  # [n, 257]
    if spec.shape[0] == 0:
        return np.zeros((0, N_MELS), np.float32)
    # The projection is a BLAS matrix product whose blocking (and so its float rounding) depends on
    # the number of rows and the CPU; streamed and whole-clip log-mel agree to ~1e-6, not bit for bit.
    mel = spec @ _mel_filterbank()
    return np.log(np.maximum(mel, 1e-5)).astype(np.float32)


def power_spectrum(audio: np.ndarray, *, left_context: np.ndarray | None = None) -> np.ndarray:
    """Framed, windowed power spectrum behind :func:`log_mel` (same arguments).

    Each row depends only on its own 400 samples and is computed row by row, so a streamed
    spectrum equals the whole-clip one exactly.

    Returns:
        ``[S // 160, 257]`` float32.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n = audio.size // HOP
    if n == 0:
        return np.zeros((0, N_FFT // 2 + 1), np.float32)
    left = np.zeros(PAD, np.float32) if left_context is None else np.asarray(left_context, np.float32)[-PAD:]
    if left.size < PAD:
        left = np.concatenate([np.zeros(PAD - left.size, np.float32), left])
    x = np.concatenate([left, audio[: n * HOP], np.zeros(PAD, np.float32)])
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]  # [n, 400]
    frames = x[idx] * _window()
    return np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)).astype(np.float32) ** 2  # [n, 257]


def to_mono_16k(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Convert PCM to float32 mono at 16 kHz.

    Args:
        pcm: ``[S]`` or ``[S, C]`` (channels last); any dtype :func:`as_mono_float32` takes.
        sample_rate: the rate of ``pcm`` in Hz (positive integer).
    Returns:
        ``[round(S * 16000 / sample_rate)]`` float32 at 16 kHz, through the same band-limited
        :class:`~chatanyone.audio.resample.StreamResampler` the Session uses, so corpus audio and
        streamed audio are resampled identically.
    Raises:
        ValueError / TypeError naming the argument for an empty rate, a wrong dtype or shape.
    """
    from ..inputs import sample_rate_hz

    sample_rate = sample_rate_hz(sample_rate)
    a = as_mono_float32(pcm)
    if sample_rate == SAMPLE_RATE or a.size == 0:
        return np.ascontiguousarray(a, dtype=np.float32)
    from .resample import StreamResampler  # the run-time resampler: corpus and stream agree

    r = StreamResampler(sample_rate)
    return np.concatenate([r.push(a), r.flush()]).astype(np.float32, copy=False)


def as_mono_float32(pcm) -> np.ndarray:
    """Check ``pcm`` (``[S]`` or ``[S, C]``) and return float32 mono ``[S]`` in [-1, 1] (channels
    averaged), at the same rate: :func:`chatanyone.inputs.pcm_mono_float32` (uint8, int8, int16,
    int32, float16/32/64; NaN/Inf refused). Raises ValueError/TypeError naming ``pcm``."""
    from ..inputs import pcm_mono_float32

    return pcm_mono_float32(pcm)
