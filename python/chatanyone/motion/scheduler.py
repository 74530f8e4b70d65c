"""Which window is generated next, what it releases, and how windows join.

Windows of ``T`` frames start at multiples of ``hop`` frames whatever the audio chunking, so the
result does not depend on it. A window is generated once the audio of its first ``hop`` frames
plus ``L`` frames of lookahead is in (or the audio was flushed) and releases its first ``hop``
frames (fewer at a flushed end). The scheduler keeps no record of the end: it is given the front
end's (:attr:`~.frontend.AudioFrontEnd.eos`) with each question. The last ``P`` released frames
are the next window's prefix, and the seam at a join is smoothed away (:meth:`WindowScheduler.commit`).
"""
from __future__ import annotations

import numpy as np

from ..spec.motion_layout import MotionFrames


class WindowScheduler:
    """The stream's position: next frame, prefix history, released frames.

    Args:
        window, prefix, lookahead: ``T``, ``P``, ``L`` of the model (frames).
        hop: frames released per window, 1..T.
        face_dim, body_dim: widths of the normalized face and body vectors.
    """

    JOIN_TAU = 3.0  # frames: how fast a join's residual offset decays

    def __init__(self, window: int, prefix: int, lookahead: int, hop: int, face_dim: int, body_dim: int):
        self.T, self.P, self.L, self.hop = window, prefix, lookahead, hop
        self.face_dim, self.body_dim = face_dim, body_dim
        self.reset()

    def reset(self) -> None:
        self.next = 0                 # first frame not yet generated
        self.hist_face = np.zeros((0, self.face_dim), np.float32)   # last <= P generated frames (normalized)
        self.hist_body = np.zeros((0, self.body_dim), np.float32)
        self.queue: list[MotionFrames] = []

    def ready(self, frames_available: int, eos: int | None) -> bool:
        """Whether the next window can be generated with ``frames_available`` frames of audio in
        and the audio ending at frame ``eos`` (None: more may come)."""
        if eos is not None:
            return self.next < eos
        return frames_available >= self.next + self.hop + self.L

    def plan(self, eos: int | None) -> tuple[int, int]:
        """``(w0, n_out)``: the next window's first frame and how many frames it releases, the
        audio ending at frame ``eos`` (None: more may come)."""
        w0 = self.next
        return w0, (self.hop if eos is None else min(self.hop, eos - w0))

    @staticmethod
    def _prefix(hist: np.ndarray, P: int) -> tuple[np.ndarray, float]:
        if hist.shape[0] == 0:
            return np.zeros((1, P, hist.shape[1]), np.float32), 0.0
        if hist.shape[0] < P:  # a short first utterance: repeat its first frame
            hist = np.concatenate([np.repeat(hist[:1], P - hist.shape[0], 0), hist])
        return hist[None].astype(np.float32), 1.0

    def prefix_face(self) -> tuple[np.ndarray, float]:
        """``([1, P, Df], keep)``: the clean prefix of the face model (keep 0: none yet)."""
        return self._prefix(self.hist_face, self.P)

    def prefix_body(self) -> tuple[np.ndarray, float]:
        return self._prefix(self.hist_body, self.P)

    def smooth_join(self, x: np.ndarray, hist: np.ndarray, skip_last: int = 0) -> np.ndarray:
        """Remove the seam at a window join: the first frame's offset from the previous window's
        linear extrapolation decays over a few frames (``x [T, D]`` normalized; binary channels
        at the end are left alone). The model already sees the prefix; this takes out the rest."""
        if hist.shape[0] < 2:
            return x
        d = x.shape[1] - skip_last
        expect = hist[-1, :d] + (hist[-1, :d] - hist[-2, :d])
        off = x[0, :d] - expect
        w = np.exp(-np.arange(x.shape[0]) / self.JOIN_TAU)[:, None].astype(np.float32)
        out = x.copy()
        out[:, :d] -= w * off[None]
        return out

    def commit(self, face_n: np.ndarray, body_n: np.ndarray | None, n_out: int,
               skip_body: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """Join a sampled window (``face_n [T, Df]``, ``body_n [T, Db]`` normalized) to the stream:
        smooth the seam, keep its first ``n_out`` frames, remember them as the next prefix and
        advance. Returns the released ``(face [n_out, Df], body [n_out, Db] | None)``."""
        face_n = self.smooth_join(face_n, self.hist_face)[:n_out]
        if body_n is not None:
            body_n = self.smooth_join(body_n, self.hist_body, skip_last=skip_body)[:n_out]
        self.hist_face = np.concatenate([self.hist_face, face_n])[-self.P:]
        if body_n is not None:
            self.hist_body = np.concatenate([self.hist_body, body_n])[-self.P:]
        self.next += n_out
        return face_n, body_n

    def pop(self, max_frames: int | None = None) -> MotionFrames | None:
        """Up to ``max_frames`` (None: a whole window's) released frames, in order; None if none."""
        if not self.queue:
            return None
        first = self.queue[0]
        if max_frames is None or max_frames >= len(first):
            self.queue.pop(0)
            return first
        self.queue[0] = first[max_frames:]
        return first[:max_frames]
