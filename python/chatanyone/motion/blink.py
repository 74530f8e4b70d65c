"""Blinks: when the lids close, and the expression change that closes them.

The face diffusion model's own lid motion did not make blinks that show: in silence it half-closed
the lids (lid gap 0.58x the canonical one on average in room-noise silence; rendered eyes 15 % more
closed than in speech) and let them droop for 0.5-1 s at a time, and in rendered frames its dips did
not close the eyes (motion/design.md, "Eyes"). So :class:`~.generator.MotionGenerator` takes the face
model's lid motion out of the expression (:func:`lid_basis`) and adds blinks of a fixed shape at a
natural rate (:class:`BlinkSchedule`).

- **When.** Blink onsets are a renewal process over the frame index: the gap from blink ``k`` to
  ``k + 1`` is ``BLINK_GAP_S[0]`` plus a gamma variate (shape 2) of mean ``BLINK_GAP_S[1]`` seconds,
  drawn from a generator seeded by ``(seed, k)``: 3.5 s on average (17 a minute: people blink 15-25
  times a minute in conversation), never closer than 1.2 s. A pure function of the seed and the
  frame, so it does not depend on how the audio is chunked.
- **How.** ``BLINK_PROFILE``: the closing per frame (1 = the lids meet), 6 frames (240 ms): down in
  one frame, closed for two, open over three.
- **The lids' change** (:func:`lid_basis`): for each eye, the smallest expression change (in units of
  each coefficient's spread) that opens that eye's lid gap (canonical face, points 145-159 and
  374-386) by one unit, leaving the other eye's gap and the mouth opening unchanged.

Pure numpy, microseconds per frame.
"""
from __future__ import annotations

import numpy as np

from ..spec.timeline import MOTION_FPS

BLINK_PROFILE = (0.5, 1.0, 1.0, 0.7, 0.4, 0.15)
BLINK_GAP_S = (1.2, 2.3)


class BlinkSchedule:
    """Blink closing per frame for one stream (see the module docstring).

    Args:
        seed: the stream's seed; the same seed gives the same blinks.
        profile: closing per frame of one blink (0..1).
        gap_s: ``(least, mean of the rest)`` seconds between blink onsets.

    :meth:`closing` must be asked for frames in increasing order (it keeps the next blink);
    :meth:`reset` starts again at frame 0. Not thread-safe.
    """

    def __init__(self, seed: int, profile=BLINK_PROFILE, gap_s=BLINK_GAP_S):
        self.seed = int(seed)
        self.profile = np.asarray(profile, np.float32)
        self.gap_s = (float(gap_s[0]), float(gap_s[1]))
        if self.profile.ndim != 1 or not len(self.profile) or self.gap_s[0] < 0 or self.gap_s[1] <= 0:
            raise ValueError(f"BlinkSchedule: bad profile {profile!r} or gap_s {gap_s!r}")
        self.reset()

    def _gap(self, k: int) -> int:
        """Frames from blink ``k``'s onset to blink ``k + 1``'s."""
        lo, mean = self.gap_s
        x = np.random.default_rng([self.seed, 0xB1, k]).gamma(2.0, mean / 2.0)
        return max(int(round((lo + x) * MOTION_FPS)), len(self.profile) + 1)

    def reset(self) -> None:
        """Back to frame 0 (a new stream)."""
        lo, mean = self.gap_s
        x = np.random.default_rng([self.seed, 0xB0]).uniform(0.3, lo + mean)
        self._k, self._onset = 0, int(round(x * MOTION_FPS))

    def closing(self, t0: int, n: int) -> np.ndarray:
        """``[n]`` float32 closing (0 open .. 1 the lids meet) of frames ``t0 .. t0 + n - 1``."""
        prof = self.profile
        out = np.zeros(n, np.float32)
        k, on = self._k, self._onset
        for i in range(n):
            t = t0 + i
            while t >= on + len(prof):
                on += self._gap(k)
                k += 1
            if t >= on:
                out[i] = prof[t - on]
        self._k, self._onset = k, on
        return out


def lid_basis(keep_fixed: np.ndarray | None = None,
              lower: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """``(vecs [2, E], rows [2, E], gap0)``: ``exp @ rows.T`` are the right and left lid gaps'
    changes (canonical face heights) of expression ``exp``; ``vecs[i]`` the smallest expression
    change (in units of each coefficient's spread) that opens lid ``i`` by one unit and leaves the
    other lid unchanged and ``exp @ keep_fixed.T`` (``[k, E]``, e.g. the mouth opening) too, then,
    with ``lower`` (``[E, E]``, the mouth predictor's projector onto the face below the nose,
    ``mouth.A``), its part below the nose taken out (``v (I - lower)``) and scaled back to one unit
    per lid: a full blink then moves the lips 0.0005 face heights instead of 0.007; ``gap0`` the
    canonical face's lid gap (mean of both eyes)."""
    from ..spec.head import load_basis
    b = load_basis()
    comp = np.asarray(b.components, np.float64).reshape(b.n_exp, -1, 3)
    rows = np.stack([comp[:, 145, 1] - comp[:, 159, 1], comp[:, 374, 1] - comp[:, 386, 1]])
    cons = rows if keep_fixed is None else np.concatenate([rows, np.atleast_2d(keep_fixed).astype(np.float64)])
    s2 = np.asarray(b.std, np.float64) ** 2
    vecs = (s2[:, None] * cons.T) @ np.linalg.inv((cons * s2) @ cons.T)  # [E, k]: cons @ vecs = I
    vecs = vecs[:, :2].T                                                    # [2, E]
    if lower is not None:
        vecs = vecs @ (np.eye(len(s2)) - np.asarray(lower, np.float64))
        vecs = np.linalg.solve(vecs @ rows.T, vecs)                         # rows @ vecs.T = I again
    can = np.asarray(b.canonical, np.float64)
    gap0 = float(np.mean([can[145, 1] - can[159, 1], can[374, 1] - can[386, 1]]))
    return vecs.astype(np.float32), rows.astype(np.float32), gap0
