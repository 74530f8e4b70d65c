"""Streaming resampler to 16 kHz whose output does not depend on how the input was chunked.

Output sample ``j`` is a Kaiser-windowed sinc interpolation of the input around position
``j * rate / 16000``: a pure function of global sample indices, so feeding one sample at a time or
a whole file gives the same samples (tested). Each output needs ``half_width`` input samples of
lookahead (under 3 ms at 44.1 kHz); :meth:`StreamResampler.flush` pads the end with zeros.
"""
from __future__ import annotations

import math

import numpy as np

from ..inputs import sample_rate_hz
from ..spec.timeline import SAMPLE_RATE

_ZEROS = 16  # zero crossings of the sinc on each side: ~80 dB stop band with beta 8.6
_BETA = 8.6


class StreamResampler:
    """Resample a mono float32 stream from ``rate`` Hz to 16 kHz.

    Args:
        rate: input sample rate in Hz (positive int).
    """

    def __init__(self, rate: int):
        self.rate = sample_rate_hz(rate)
        self._passthrough = self.rate == SAMPLE_RATE
        # cutoff in cycles per input sample: just under the lower Nyquist frequency
        self._wc = 0.5 * min(self.rate, SAMPLE_RATE) / self.rate * 0.95
        self.half_width = int(math.ceil(_ZEROS / (2.0 * self._wc)))
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0      # global input index of _buf[0]
        self._n_in = 0           # input samples received
        self._n_out = 0          # output samples produced
        # the taps repeat with period L = 16000 / gcd(rate, 16000) outputs: tabulate them once
        L = SAMPLE_RATE // math.gcd(self.rate, SAMPLE_RATE)
        self._taps = None
        if not self._passthrough and L <= 8192:
            j = np.arange(L)
            p = self._pos(j)
            t = p[:, None] - (np.floor(p)[:, None] + np.arange(-self.half_width + 1, self.half_width + 1)[None, :])
            self._taps = (2 * self._wc * np.sinc(2 * self._wc * t) * _kaiser(t / self.half_width)).astype(np.float32)

    def _pos(self, j: np.ndarray) -> np.ndarray:
        return j.astype(np.float64) * (self.rate / SAMPLE_RATE)

    def _produce(self, n_out_target: int) -> np.ndarray:
        out = []
        W = self.half_width
        d = np.arange(-W + 1, W + 1)
        while self._n_out < n_out_target:
            j = np.arange(self._n_out, min(n_out_target, self._n_out + 4096))
            p = self._pos(j)
            k = np.floor(p).astype(np.int64)[:, None] + d[None, :]  # [n, 2W] global input indices
            if self._taps is not None:
                w = self._taps[j % self._taps.shape[0]]  # [n, 2W]
            else:
                t = p[:, None] - k
                w = 2 * self._wc * np.sinc(2 * self._wc * t) * _kaiser(t / W)
            idx = k - self._buf_start
            valid = (idx >= 0) & (idx < self._buf.size)  # before 0 or past the end: zeros
            x = np.where(valid, self._buf[np.clip(idx, 0, self._buf.size - 1)], 0.0) if self._buf.size \
                else np.zeros(idx.shape, np.float32)
            out.append(np.einsum("ij,ij->i", x.astype(np.float32), w).astype(np.float32))
            self._n_out = int(j[-1]) + 1
        # drop input no later output can need
        keep_from = int(math.floor(self._pos(np.array([self._n_out]))[0])) - W
        drop = max(0, min(keep_from - self._buf_start, self._buf.size))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add ``[S]`` float32 input samples; return the 16 kHz samples now complete."""
        x = np.asarray(x, np.float32).reshape(-1)
        if self._passthrough:
            self._n_in += x.size
            self._n_out += x.size
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += x.size
        # output j is complete once input index floor(pos(j)) + W exists
        n_ready = int(math.floor((self._n_in - 1 - self.half_width) * SAMPLE_RATE / self.rate)) + 1
        while n_ready > 0 and math.floor(self._pos(np.array([n_ready - 1]))[0]) + self.half_width > self._n_in - 1:
            n_ready -= 1
        return self._produce(max(n_ready, self._n_out))

    def flush(self) -> np.ndarray:
        """End of stream: return the remaining samples (``round(n_in * 16000 / rate)`` in all)."""
        total = int(round(self._n_in * SAMPLE_RATE / self.rate))
        if self._passthrough:
            return np.zeros(0, np.float32)
        return self._produce(max(total, self._n_out))

    def reset(self) -> None:
        """Forget all input (a new stream at the same rate)."""
        self.__init__(self.rate)


def _kaiser(u: np.ndarray) -> np.ndarray:
    """Kaiser window on u in [-1, 1] (zero outside)."""
    inside = np.abs(u) < 1.0
    arg = _BETA * np.sqrt(np.clip(1.0 - u * u, 0.0, None))
    return np.where(inside, np.i0(arg) / np.i0(_BETA), 0.0)
