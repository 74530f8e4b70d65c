"""Which window is generated next, what it releases, and how windows join.

Windows of ``T`` frames start at multiples of ``hop`` frames whatever the audio chunking, so the
result does not depend on it. A window is generated once the audio of its first ``hop`` frames
plus ``L`` frames of lookahead is in (or the audio was flushed) and releases its first ``hop``
frames (fewer at a flushed end). The scheduler keeps no record of the end: it is given the front
end's (:attr:`~.frontend.AudioFrontEnd.eos`) with each question. The last ``P`` released frames
are the next window's prefix. At a join the face window is led (:meth:`WindowScheduler.lead`): its
first frames are pulled, while it is sampled, to where the previous window was going (that window's
frames beyond those it released), 1 at the join and 0 after ``JOIN_FRAMES``, so no seam is left;
the body keeps the older smoothing (:meth:`WindowScheduler.smooth_join`). See ``design.md``, "Joins".
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

    JOIN_TAU = 3.0  # frames: how fast a join's residual offset decays (windows sampled without a lead)
    JOIN_FRAMES = 8  # frames of a window led by the previous window's unreleased tail (lead())
    # the body is not led: led, its spread fell to 0.73x (its windows' tails move less), and the
    # smoothing before leaves no seam that the gesture smoothing downstream does not take out
    LEAD_BODY = False

    def __init__(self, window: int, prefix: int, lookahead: int, hop: int, face_dim: int, body_dim: int):
        self.T, self.P, self.L, self.hop = window, prefix, lookahead, hop
        self.face_dim, self.body_dim = face_dim, body_dim
        self.reset()

    def reset(self) -> None:
        self.next = 0                 # first frame not yet generated
        self.hist_face = np.zeros((0, self.face_dim), np.float32)   # last <= P generated frames (normalized)
        self.hist_body = np.zeros((0, self.body_dim), np.float32)
        # the last window's sampled frames after those it released (normalized): where it was going
        self.tail_face = np.zeros((0, self.face_dim), np.float32)
        self.tail_body = np.zeros((0, self.body_dim), np.float32)
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

    def lead(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """``(face [1, K, Df], body [1, K, Db] | None, weight [K])`` for the next window's first
        ``K`` frames: the previous window's own frames there (sampled with it, not released) and
        how hard to hold them, 1 at the join falling to 0 on a half cosine over
        ``K = min(JOIN_FRAMES, hop)`` frames (a window still releases motion of its own).
        Sampled with this lead (``window.sample_window``) a window starts where the last one was
        going and turns into its own motion over ``K`` frames: no seam.
        ``(None, None, None)`` when there is no tail (stream start, ``hop == T``)."""
        k = min(self.JOIN_FRAMES, self.hop, self.tail_face.shape[0])
        if k == 0:
            return None, None, None
        w = (0.5 * (1.0 + np.cos(np.pi * np.arange(k) / k))).astype(np.float32)
        body = self.tail_body[None, :k] if self.LEAD_BODY and self.tail_body.shape[0] >= k else None
        return self.tail_face[None, :k], body, w

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
               skip_body: int = 0, led: bool = False, led_body: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Join a sampled window (``face_n [T, Df]``, ``body_n [T, Db]`` normalized) to the stream:
        smooth the seam (``led``: it was sampled with :meth:`lead`, which joined it already;
        else :meth:`smooth_join`), keep its first ``n_out`` frames, remember them as the next
        prefix and the rest as the tail that leads the next window, and advance. Returns the
        released ``(face [n_out, Df], body [n_out, Db] | None)``."""
        if not led:
            face_n = self.smooth_join(face_n, self.hist_face)
        if body_n is not None and not led_body:
            body_n = self.smooth_join(body_n, self.hist_body, skip_last=skip_body)
        self.tail_face = face_n[n_out:].astype(np.float32)
        self.tail_body = (body_n[n_out:] if body_n is not None else np.zeros((0, self.body_dim))).astype(np.float32)
        face_n = face_n[:n_out]
        if body_n is not None:
            body_n = body_n[:n_out]
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
