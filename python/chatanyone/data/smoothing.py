"""Smoothing of landmark tracks: removes detector jitter without lagging fast motion (the mouth).

The filter is the One-Euro filter (Casiez et al., CHI 2012): a first-order low-pass whose cutoff
rises with the signal's speed, so a still point is smoothed hard and a moving lip barely at all.
A causal One-Euro lags a little on fast moves; offline (the corpus) we run it forwards and
backwards and average the two passes, which cancels the lag (zero phase to first order).
:func:`one_euro` is the causal version for streams.

Tracks may have gaps (NaN where a detector found nothing). Gaps up to ``max_gap`` frames are filled
by linear interpolation first; each remaining run of valid frames is filtered on its own.
"""
from __future__ import annotations

import math

import numpy as np

# defaults tuned on the corpus (see docs/design.md, "Smoothing"): coordinates in crop units
MIN_CUTOFF = 1.0   # Hz: cutoff of a still point
BETA = 4.0         # cutoff increase per (crop unit / s) of speed
D_CUTOFF = 1.0     # Hz: cutoff of the speed estimate


def _alpha(cutoff, dt):
    r = 2 * math.pi * cutoff * dt
    return r / (r + 1)


def one_euro(x: np.ndarray, fps: float, *, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
             d_cutoff: float = D_CUTOFF, speed_axes: int | None = None) -> np.ndarray:
    """Causal One-Euro filter along axis 0.

    Args:
        x: ``[T, ...]`` finite values (no NaN).
        fps: samples per second.
        speed_axes: if given, the speed that sets the cutoff is the norm over the last
            ``speed_axes`` axes (e.g. 1 for ``[T, N, 2]`` points: one cutoff per point, shared by x
            and y); otherwise each value has its own cutoff.
    Returns:
        ``[T, ...]`` float64.
    """
    x = np.asarray(x, np.float64)
    if x.shape[0] == 0:
        return x.copy()
    dt = 1.0 / fps
    y = np.empty_like(x)
    y[0] = x[0]
    dx = np.zeros_like(x[0])
    a_d = _alpha(d_cutoff, dt)
    for t in range(1, x.shape[0]):
        d = (x[t] - y[t - 1]) / dt
        dx = dx + a_d * (d - dx)
        speed = np.abs(dx)
        if speed_axes:
            speed = np.sqrt((dx ** 2).sum(axis=tuple(range(-speed_axes, 0)), keepdims=True))
        cutoff = min_cutoff + beta * speed
        r = 2 * np.pi * cutoff * dt
        a = r / (r + 1)
        y[t] = y[t - 1] + a * (x[t] - y[t - 1])
    return y


def one_euro_zero_phase(x: np.ndarray, fps: float, **kw) -> np.ndarray:
    """Forward and backward :func:`one_euro` averaged: no lag, for offline tracks."""
    f = one_euro(x, fps, **kw)
    b = one_euro(x[::-1], fps, **kw)[::-1]
    return 0.5 * (f + b)


def fill_gaps(x: np.ndarray, ok: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate runs of up to ``max_gap`` missing frames between two valid ones.

    Args:
        x: ``[T, ...]`` values (anything where ``ok`` is False is ignored).
        ok: ``[T]`` bool.
    Returns:
        ``(x_filled, ok_filled)``: a copy with the short gaps filled and marked valid.
    """
    x = np.array(x, np.float64, copy=True)
    ok = np.asarray(ok, bool).copy()
    idx = np.flatnonzero(ok)
    if idx.size < 2:
        return x, ok
    for a, b in zip(idx[:-1], idx[1:]):
        gap = b - a - 1
        if 0 < gap <= max_gap:
            w = (np.arange(1, gap + 1) / (gap + 1)).reshape((-1,) + (1,) * (x.ndim - 1))
            x[a + 1:b] = x[a] * (1 - w) + x[b] * w
            ok[a + 1:b] = True
    return x, ok


def runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in ``ok [T]``."""
    ok = np.asarray(ok, bool).astype(np.int8)
    d = np.diff(np.concatenate([[0], ok, [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def smooth_track(x: np.ndarray, ok: np.ndarray, fps: float, *, max_gap: int = 5,
                 speed_axes: int | None = 1, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Fill short gaps, then zero-phase One-Euro each valid run of ``x [T, ...]``.

    Returns ``(smoothed [T, ...] float32 with NaN where still invalid, ok [T])``.
    """
    xf, okf = fill_gaps(x, ok, max_gap)
    out = np.full(xf.shape, np.nan, np.float64)
    for a, b in runs(okf):
        out[a:b] = one_euro_zero_phase(xf[a:b], fps, speed_axes=speed_axes, **kw)
    return out.astype(np.float32), okf


def jitter(x: np.ndarray) -> float:
    """RMS of the second temporal difference of ``x [T, ...]`` (NaN frames skipped): the
    frame-to-frame noise of a track that should move smoothly."""
    x = np.asarray(x, np.float64)
    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    d2 = d2[np.all(np.isfinite(d2.reshape(d2.shape[0], -1)), axis=1)]
    return float(np.sqrt(np.mean(d2 ** 2))) if d2.size else float("nan")


# --- faces: rigid motion and shape smoothed apart -------------------------------------------------

HEAD_MIN_CUTOFF = 1.0  # Hz, head pose (angles, translation, log scale)
HEAD_BETA = 6.0
SHAPE_MIN_CUTOFF = 1.0  # Hz, canonical shape of the slow parts (forehead, nose, cheeks, brows)
SHAPE_BETA = 4.0
MOUTH_MIN_CUTOFF = 4.0  # Hz, canonical shape of the fast parts (lips, jaw, eyelids, irises): barely
MOUTH_BETA = 200.0      # smoothed, so speech and blinks keep their speed and depth


def fast_points(canonical: np.ndarray) -> np.ndarray:
    """``[478]`` bool: the face-mesh points that move fast (below the nose: lips and jaw; around the
    eyes: lids and irises), from the canonical face's geometry."""
    c = np.asarray(canonical, np.float64)
    fast = c[:, 1] > c[2, 1]   # point 2: just below the nose tip
    for a, b in ((33, 133), (263, 362)):  # eye corners
        mid = 0.5 * (c[a] + c[b])
        w = np.linalg.norm(c[a] - c[b])
        fast |= (np.abs(c[:, 0] - mid[0]) < 0.65 * w) & (np.abs(c[:, 1] - mid[1]) < 0.38 * w)
    fast[468:] = True
    return fast


def smooth_face(face: np.ndarray, ok: np.ndarray, fps: float, canonical: np.ndarray | None = None, *,
                max_gap: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Smooth a face-mesh track ``[T, 478, 3]`` (crop coordinates) without dulling the mouth.

    Detector jitter is mostly a rigid shake of the whole mesh; speech is a fast local deformation of
    the lips and blinks of the lids. So each frame is split into a rigid head pose (similarity fit of
    ``canonical``) and a canonical-space shape; the pose is smoothed with one One-Euro setting, the
    slow parts of the shape with a strong one and the fast parts (:func:`fast_points`) with a light
    one; then the two are recombined.
    Without ``canonical`` (no basis yet) it falls back to per-point One-Euro of the whole mesh.

    Returns ``(smoothed [T, 478, 3] float32, NaN where no face; ok [T])``.
    """
    from ..spec import head as M
    if canonical is None:
        return smooth_track(face, ok, fps, max_gap=max_gap)
    xf, okf = fill_gaps(face, ok, max_gap)
    fit = M.fit_head(xf, okf, canonical)
    fast = fast_points(canonical)
    out = np.full(xf.shape, np.nan, np.float64)
    for a, b in runs(okf & np.isfinite(fit.residual)):
        head = one_euro_zero_phase(fit.head[a:b].astype(np.float64), fps, min_cutoff=HEAD_MIN_CUTOFF,
                                   beta=HEAD_BETA)
        q = fit.canon[a:b].astype(np.float64)
        qs = np.empty_like(q)
        qs[:, ~fast] = one_euro_zero_phase(q[:, ~fast], fps, min_cutoff=SHAPE_MIN_CUTOFF, beta=SHAPE_BETA,
                                           speed_axes=1)
        qs[:, fast] = one_euro_zero_phase(q[:, fast], fps, min_cutoff=MOUTH_MIN_CUTOFF, beta=MOUTH_BETA,
                                          speed_axes=1)
        for i, t in enumerate(range(a, b)):
            out[t] = M.pose_points(qs[i], head[i])
    return out.astype(np.float32), okf & np.isfinite(fit.residual)
