"""Gestures of the generated motion made smooth enough to show (the Session's arms and hands).

The motion model's body offsets jitter: on the demo speech (167 frames, seed 0) its wrists step
0.034 crop units from one frame to the next while they spread only 0.037 (standard deviation) in
all: most of their motion is frame-to-frame noise (a real gesturing clip, tango_hbr_1wrQ6Msp7wM:
steps of 0.011, spread 0.063). Its hands' finger points are worse: a hand's fitted turn changes by
0.2-0.7 rad from frame to frame, and their fingers are 3-12x the length of a photo's. Drawn as they
are, arms shake and hands flicker; clamped as the coarse mesh did, hardly anything moved.

:class:`GestureSmoother` (used by :class:`chatanyone.pipeline.Pipeline` on every released frame)
keeps what reads as a gesture: the body offsets pass two cascaded exponential moving averages
(causal: about 0.3 s of lag at 25 fps, which a gesture tolerates and the mouth never sees: face,
head and eyes are untouched) and are scaled by :data:`GAIN` (the smoothing takes most of their
spread away); the generated finger points are dropped (``hands_ok`` 0), so each hand keeps its
photo's shape and rides on its forearm (:mod:`chatanyone.render.limbs`). Pure numpy, stateful
across calls; :meth:`GestureSmoother.reset` starts a new stream.
"""
from __future__ import annotations

import numpy as np

from ..spec.motion_layout import MotionFrames

ALPHA = 0.25       # each moving average's weight of the new frame (two in cascade)
GAIN = 1.5         # the smoothed offsets, scaled about the neutral pose


class GestureSmoother:
    """Smooths the body offsets of consecutive :class:`MotionFrames` and drops generated hands.

    Args:
        alpha: weight of the new frame in each of the two moving averages, in (0, 1].
        gain: scale of the smoothed offsets (>= 0).
        keep_hands: True passes the generated finger points through.
    """

    def __init__(self, alpha: float = ALPHA, gain: float = GAIN, keep_hands: bool = False):
        if not 0 < float(alpha) <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not float(gain) >= 0:
            raise ValueError(f"gain must be >= 0, got {gain}")
        self.alpha, self.gain, self.keep_hands = float(alpha), float(gain), bool(keep_hands)
        self._s1: np.ndarray | None = None
        self._s2: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the stream so far (the next frame starts the averages afresh)."""
        self._s1 = self._s2 = None

    def __call__(self, frames: MotionFrames) -> MotionFrames:
        """The same frames with smoothed, scaled body offsets (and no generated hands). Frames must
        come in stream order, each call continuing the last; returns a new object."""
        body = np.asarray(frames.body, np.float64)
        out = np.empty_like(body)
        a = self.alpha
        s1, s2 = self._s1, self._s2
        for i in range(body.shape[0]):
            if s1 is None:
                s1, s2 = body[i].copy(), body[i].copy()
            else:
                s1 = s1 + a * (body[i] - s1)
                s2 = s2 + a * (s1 - s2)
            out[i] = s2
        self._s1, self._s2 = s1, s2
        hands, ok = frames.hands, frames.hands_ok
        if not self.keep_hands:
            hands, ok = np.zeros_like(hands), np.zeros_like(ok)
        return MotionFrames(frames.start, frames.head, frames.exp, frames.eye,
                            (self.gain * out).astype(np.asarray(frames.body).dtype), hands, ok)
