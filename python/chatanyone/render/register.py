"""Image registration: a few motion parameters of a masked part of one image against another.

Video-driven reenactment (:mod:`chatanyone.reenact`) uses it to measure how the driving person's
body moves (the pixels below the chin) relative to the driving video's reference frame, the same
kind of *relative* motion the face mesh gives for the head: one small transform per frame, not a
dense flow (a dense flow of the driving video would mean nothing on another person's photo).

:func:`register` fits one 2-D transform by ECC (OpenCV's enhanced correlation coefficient,
``cv2.findTransformECC``) on grey levels: the template's pixels under a mask are matched in the
other image. :func:`to_similarity` projects an affine map onto the nearest similarity.
:func:`smooth` filters a series of transforms over time. Pure numpy + OpenCV; no network.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("chatanyone")

MOTIONS = ("translation", "euclidean", "similarity", "affine")
MIN_MASK_PIXELS = 64          # fewer template pixels than this cannot be registered


def identity() -> np.ndarray:
    """The ``[2, 3]`` identity map."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _grey(img, name: str) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a grey [H, W] or RGB [H, W, 3] image, got shape {np.shape(img)}")
    if min(a.shape) < 8:
        raise ValueError(f"{name} is too small to register: {a.shape[1]}x{a.shape[0]} px")
    return np.ascontiguousarray(a, np.float32)


def to_similarity(a: np.ndarray) -> np.ndarray:
    """The similarity (turn, uniform scale, shift) nearest to the affine ``a [2, 3]`` (least
    squares on the linear part; the shift is kept)."""
    a = np.asarray(a, np.float64)
    p = 0.5 * (a[0, 0] + a[1, 1])
    q = 0.5 * (a[1, 0] - a[0, 1])
    return np.array([[p, -q, a[0, 2]], [q, p, a[1, 2]]])


def register(template, image, mask, *, motion: str = "affine", init=None, iterations: int = 60,
             eps: float = 1e-4, blur: int = 5) -> np.ndarray | None:
    """The map ``A [2, 3]`` that takes the template's masked pixels to where they lie in ``image``:
    ``image(A @ [x, y, 1]) ~ template(x, y)`` for ``(x, y)`` under ``mask`` (pixels, x right, y down).

    Args:
        template: ``[H, W]`` grey or ``[H, W, 3]`` RGB (any numeric type).
        image: the same size as ``template``.
        mask: ``[H, W]`` bool (or 0/1) of the template's pixels to match.
        motion: ``"translation"``, ``"euclidean"`` (turn + shift), ``"similarity"`` (an affine fit
            projected by :func:`to_similarity`) or ``"affine"``.
        init: a ``[2, 3]`` starting map (e.g. the previous frame's); None: the identity.
        iterations, eps: ECC's stopping criteria; blur: ECC's Gaussian pre-filter size (odd).
    Returns:
        the map (float64), or None when ECC did not converge (a flat or occluded masked area).
    Raises:
        ValueError: images of different sizes or not images, a mask of another size, a mask with
            fewer than :data:`MIN_MASK_PIXELS` pixels, an unknown ``motion``, a bad ``init``.
    Blocks: a few ms for a 200x200 image.
    """
    import cv2
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    t = _grey(template, "template")
    i = _grey(image, "image")
    if t.shape != i.shape:
        raise ValueError(f"template and image must have the same size, got {t.shape[1]}x{t.shape[0]} "
                         f"and {i.shape[1]}x{i.shape[0]}")
    m = np.asarray(mask)
    if m.shape != t.shape:
        raise ValueError(f"mask must be [H, W] = {list(t.shape)} like the template, got {list(m.shape)}")
    m = (m != 0).astype(np.uint8)
    if int(m.sum()) < MIN_MASK_PIXELS:
        raise ValueError(f"mask has {int(m.sum())} pixels: at least {MIN_MASK_PIXELS} are needed to register")
    w = identity() if init is None else np.array(init, np.float64)
    if w.shape != (2, 3) or not np.all(np.isfinite(w)):
        raise ValueError(f"init must be a finite [2, 3] map, got shape {np.shape(init)}")
    kind = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
            "similarity": cv2.MOTION_AFFINE, "affine": cv2.MOTION_AFFINE}[motion]
    if motion == "translation":
        w[:, :2] = np.eye(2)
    elif motion == "euclidean":
        s = to_similarity(w)
        r = np.hypot(s[0, 0], s[1, 0])
        w[:, :2] = s[:, :2] / max(r, 1e-9)
    warp = w.astype(np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, int(iterations), float(eps))
    try:
        _, warp = cv2.findTransformECC(t, i, warp, kind, crit, m, int(blur) | 1)
    except cv2.error as exc:      # did not converge / correlation undefined
        log.debug("register: ECC failed (%s)", str(exc).strip().splitlines()[-1] if str(exc) else exc)
        return None
    out = np.asarray(warp, np.float64)
    if not np.all(np.isfinite(out)):
        return None
    return to_similarity(out) if motion == "similarity" else out


def smooth(maps: np.ndarray, ok: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter over time of ``maps [T, 2, 3]`` (frames where ``ok`` is False are left out
    and take the filtered value of their neighbours; no frame ok: identities). ``sigma`` in
    frames; 0 returns the maps, the failed ones replaced by their nearest ok neighbour."""
    a = np.asarray(maps, np.float64)
    ok = np.asarray(ok, bool)
    if a.ndim != 3 or a.shape[1:] != (2, 3) or len(ok) != len(a):
        raise ValueError(f"maps must be [T, 2, 3] with ok [T], got {a.shape} and {ok.shape}")
    n = len(a)
    if not ok.any():
        return np.repeat(identity()[None], n, 0)
    idx = np.flatnonzero(ok)
    filled = a.copy()
    near = idx[np.clip(np.searchsorted(idx, np.arange(n)), 0, len(idx) - 1)]
    left = idx[np.clip(np.searchsorted(idx, np.arange(n)) - 1, 0, len(idx) - 1)]
    near = np.where(np.abs(np.arange(n) - left) <= np.abs(near - np.arange(n)), left, near)
    filled[~ok] = a[near[~ok]]
    if sigma <= 0:
        return filled
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    out = np.empty_like(filled)
    wts = ok.astype(np.float64)
    for t in range(n):
        lo, hi = max(0, t - r), min(n, t + r + 1)
        kk = k[lo - t + r: hi - t + r] * wts[lo:hi]
        if kk.sum() <= 0:
            out[t] = filled[t]
        else:
            out[t] = np.tensordot(kk / kk.sum(), filled[lo:hi], axes=1)
    return out


def compose_crop(a_px: np.ndarray, box_xywh) -> np.ndarray:
    """A map in image pixels ``[.., 2, 3]`` expressed in the normalized coordinates of the box
    ``(x0, y0, w, h)`` (``u = (x - x0) / w * 2 - 1``, likewise v): ``C A C^-1``."""
    x0, y0, bw, bh = (float(v) for v in box_xywh)
    c = np.array([[2 / bw, 0, -2 * x0 / bw - 1], [0, 2 / bh, -2 * y0 / bh - 1], [0, 0, 1]])
    ci = np.linalg.inv(c)
    a = np.asarray(a_px, np.float64)
    full = np.zeros(a.shape[:-2] + (3, 3))
    full[..., :2, :] = a
    full[..., 2, 2] = 1
    return (c @ full @ ci)[..., :2, :]


def apply(a: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``a [2, 3]`` applied to points ``[N, 2]``."""
    p = np.asarray(pts, np.float64)
    return p @ np.asarray(a, np.float64)[:, :2].T + np.asarray(a, np.float64)[:, 2]
