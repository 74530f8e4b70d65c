"""Face geometry measured by face mesh on any frames: mouth opening, lip landmarks, head pose, eyes.

Every measure works on face-mesh points in *pixels* (x right, y down, z in the unit of x), from
frames of any size and aspect ratio, so a real video frame, a padded 256x384 crop and a full-size
paste-back frame are measured alike. Each face is first brought into the canonical face frame of
the data pipeline (``chatanyone/weights/face_basis.npz``): a similarity fit on the points that do not
move with expression (:data:`chatanyone.spec.keypoint_layout.RIGID_IDX`), so scale (face height 1), head
pose and position drop out and jaw opening does not change the scale.

- **mouth opening**: the inner-lip gap, lower inner lip (14) minus upper inner lip (13) along the
  canonical face's vertical, in face heights (the same definition as ``eval motion``).
- **lip landmarks**: the 16 points ``LIPS`` (outer and inner contour), canonical x-y; **LMD** is
  their mean distance between two tracks in percent of the face height.
- **head pose**: yaw, pitch, roll (radians) of the fit.
- **eye openness**: lid gap over eye width, mean of both eyes (canonical space).
"""
from __future__ import annotations

import logging
from typing import Iterable

import numpy as np

from ..spec.timeline import SAMPLES_PER_FRAME

log = logging.getLogger("chatanyone")

LIPS = [61, 291, 0, 17, 37, 267, 84, 314, 78, 308, 13, 14, 82, 312, 87, 317]  # outer + inner
LOWER_LIP = [17, 84, 314, 14, 87, 317]   # points that go down with the jaw
UPPER_INNER, LOWER_INNER = 13, 14
_EYE_LIDS = (((159, 145), (158, 153), (160, 144)), ((386, 374), (385, 380), (387, 373)))
_EYE_CORNERS = ((33, 133), (263, 362))


def _canonical():
    from ..spec.head import load_basis
    b = load_basis()
    return np.asarray(b.canonical, np.float64), np.asarray(b.rigid_idx)


def canonical_faces(face_px: np.ndarray, ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bring faces into the canonical frame.

    Args:
        face_px: ``[T, 478, 3]`` face mesh in pixels (z in the unit of x); NaN rows = no face.
        ok: ``[T]`` bool, frames to use (default: the finite ones).
    Returns:
        ``(canon [T, 478, 3] float64, head [T, 3] yaw/pitch/roll radians)``, NaN where no face.
    Pure numpy, about 0.1 ms per frame.
    """
    from ..spec.head import matrix_to_euler, umeyama
    f = np.asarray(face_px, np.float64)
    if f.ndim != 3 or f.shape[1:] != (478, 3):
        raise ValueError(f"face_px must be [T, 478, 3], got {f.shape}")
    good = np.all(np.isfinite(f), axis=(1, 2))
    if ok is not None:
        good &= np.asarray(ok, bool).reshape(-1)
    can, rigid = _canonical()
    out = np.full(f.shape, np.nan)
    head = np.full((len(f), 3), np.nan)
    for t in np.flatnonzero(good):
        s, r, tr = umeyama(can[rigid], f[t, rigid])
        out[t] = (f[t] - tr) @ r / s
        head[t] = matrix_to_euler(r)
    return out, head


def opening(canon: np.ndarray) -> np.ndarray:
    """Mouth opening ``[T]`` (face heights) of canonical faces ``[T, 478, 3]``; NaN where no face."""
    c = np.asarray(canon)
    return c[:, LOWER_INNER, 1] - c[:, UPPER_INNER, 1]


def opening_of_lips(lips_: np.ndarray) -> np.ndarray:
    """Mouth opening ``[T]`` of lip tracks ``[T, 16, 2]`` (as :func:`lips` returns)."""
    lp = np.asarray(lips_)
    return lp[:, LIPS.index(LOWER_INNER), 1] - lp[:, LIPS.index(UPPER_INNER), 1]


def lips(canon: np.ndarray) -> np.ndarray:
    """The 16 lip landmarks ``[T, 16, 2]`` (canonical x, y) of canonical faces ``[T, 478, 3]``."""
    return np.asarray(canon)[:, LIPS, :2]


def lmd(lips_a: np.ndarray, lips_b: np.ndarray, sel: np.ndarray | None = None) -> float | None:
    """Mean lip-landmark distance between two ``[T, 16, 2]`` tracks, percent of the face height,
    over frames ``sel`` (default: all) where both are finite. None when no frame qualifies."""
    d = np.linalg.norm(np.asarray(lips_a) - np.asarray(lips_b), axis=-1).mean(-1)  # [T]
    m = np.isfinite(d) if sel is None else np.isfinite(d) & np.asarray(sel, bool)
    return float(100.0 * d[m].mean()) if m.any() else None


def eye_openness(canon: np.ndarray) -> np.ndarray:
    """``[T]`` lid gap over eye width, mean of both eyes, of canonical faces ``[T, 478, 3]``."""
    c = np.asarray(canon)
    out = []
    for lids, (a, b) in zip(_EYE_LIDS, _EYE_CORNERS):
        w = np.linalg.norm(c[:, a] - c[:, b], axis=-1)
        gap = np.mean([np.linalg.norm(c[:, u] - c[:, d], axis=-1) for u, d in lids], axis=0)
        out.append(gap / w)
    return np.mean(out, axis=0)


BLINK_REL = 0.7    # a blink: eye openness below this share of the clip's median (real closed eyes: 0.2-0.4)
BLINK_TOL = 2      # frames a rendered blink may lie off a real one and still agree


def blinks(eo: np.ndarray, sel: np.ndarray | None = None, rel: float = BLINK_REL) -> list[tuple[int, int]]:
    """Blinks of an eye-openness series ``[T]`` (:func:`eye_openness`): runs ``(start, end)``
    (end exclusive) of frames below ``rel`` times its median over the finite frames (and ``sel``).
    Frames outside ``sel`` or not finite break no run and start none."""
    e = np.asarray(eo, np.float64)
    ok = np.isfinite(e) if sel is None else np.isfinite(e) & np.asarray(sel, bool)
    if ok.sum() < 3:
        return []
    low = ok & (e < rel * float(np.median(e[ok])))
    out, start = [], None
    for t, v in enumerate(low):
        if v and start is None:
            start = t
        elif not v and start is not None and ok[t]:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, len(e)))
    return out


def blink_agreement(e_rend: np.ndarray, e_real: np.ndarray, sel: np.ndarray | None = None,
                    tol: int = BLINK_TOL) -> dict:
    """How the rendered eyes blink against the real ones (eye openness ``[T]`` each, frames
    ``sel``): ``blink_f1`` (real and rendered blinks matched within ``tol`` frames: F1 of recall and
    precision; None when neither blinks), ``blink_depth`` (mean over the real blinks of the rendered
    openness's least value within ``tol`` frames of the blink, over its median: how closed the
    rendered eye reads when the real one closes; None without real blinks), ``real_depth`` (the
    same of the real eyes), ``blinks_real`` and ``blinks_rend`` (counts)."""
    br, bd = blinks(e_real, sel), blinks(e_rend, sel)
    er = np.asarray(e_rend, np.float64)
    ea = np.asarray(e_real, np.float64)
    ok = np.isfinite(er) if sel is None else np.isfinite(er) & np.asarray(sel, bool)

    def near(a, b):
        return a[0] - tol < b[1] and b[0] - tol < a[1]

    hit_r = sum(any(near(a, b) for b in bd) for a in br)
    hit_d = sum(any(near(b, a) for a in br) for b in bd)
    f1 = None
    if br or bd:
        rec = hit_r / len(br) if br else 0.0
        prec = hit_d / len(bd) if bd else 0.0
        f1 = 0.0 if rec + prec == 0 else 2 * rec * prec / (rec + prec)
    depth = real = None
    if br and ok.sum() >= 3:
        med = float(np.median(er[ok]))
        okr = np.isfinite(ea) if sel is None else np.isfinite(ea) & np.asarray(sel, bool)
        med_r = float(np.median(ea[okr]))
        d, r = [], []
        for s0, s1 in br:
            w = slice(max(s0 - tol, 0), s1 + tol)
            if np.isfinite(er[w]).any():
                d.append(float(np.nanmin(er[w])) / med)
            r.append(float(np.nanmin(ea[s0:s1])) / med_r)
        depth = float(np.mean(d)) if d else None
        real = float(np.mean(r))
    return {"blink_f1": f1, "blink_depth": depth, "real_depth": real, "blinks_real": len(br),
            "blinks_rend": len(bd)}


def pearson(a: np.ndarray, b: np.ndarray, sel: np.ndarray | None = None) -> float | None:
    """Pearson r over the frames where both are finite (and ``sel``); None with fewer than 3 frames
    or a constant series."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = np.isfinite(a) & np.isfinite(b)
    if sel is not None:
        m &= np.asarray(sel, bool)
    if m.sum() < 3 or a[m].std() < 1e-12 or b[m].std() < 1e-12:
        return None
    return float(np.corrcoef(a[m], b[m])[0, 1])


def amplitude_ratio(a: np.ndarray, b: np.ndarray, sel: np.ndarray | None = None) -> float | None:
    """``std(a) / std(b)`` over the frames where both are finite (and ``sel``); None with fewer than
    3 frames or a constant ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = np.isfinite(a) & np.isfinite(b)
    if sel is not None:
        m &= np.asarray(sel, bool)
    if m.sum() < 3 or b[m].std() < 1e-12:
        return None
    return float(a[m].std() / b[m].std())


def peak_ratio(a: np.ndarray, b: np.ndarray, sel: np.ndarray | None = None, q: float = 0.9) -> float | None:
    """How wide ``a`` opens where ``b`` opens widest: at the frames where ``b`` is at or above its
    ``q`` quantile, the mean of ``a`` above its median over the mean of ``b`` above its median (both
    over the frames where both are finite, and ``sel``). 1: ``a``'s peaks as wide as ``b``'s and at
    the same frames; a predictor that regresses to the mean, or a renderer that keeps less of a wide
    opening, scores below 1. None with fewer than 10 frames or no ``b`` peak above its median."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = np.isfinite(a) & np.isfinite(b)
    if sel is not None:
        m &= np.asarray(sel, bool)
    if m.sum() < 10:
        return None
    am, bm = a[m], b[m]
    top = bm >= np.quantile(bm, q)
    rise = float(bm[top].mean() - np.median(bm))
    if rise < 1e-12:
        return None
    return float((am[top].mean() - np.median(am)) / rise)


def rms_envelope(audio: np.ndarray, n: int, samples_per_frame: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """Per-frame RMS ``[n]`` of 16 kHz audio (frame ``t`` owns samples ``[640 t, 640 (t + 1))``;
    missing samples count as silence)."""
    a = np.zeros(n * samples_per_frame, np.float64)
    x = np.asarray(audio, np.float64).reshape(-1)[: a.size]
    a[: x.size] = x
    return np.sqrt((a.reshape(n, samples_per_frame) ** 2).mean(1))


def speech_frames(audio: np.ndarray, n: int, *, rel_db: float = -25.0, floor: float = 1e-3,
                  dilate: int = 2) -> np.ndarray:
    """``[n]`` bool: frames with speech, by energy: RMS within ``rel_db`` of the clip's loud frames
    (95th percentile) and above ``floor``, widened by ``dilate`` frames on each side (the mouth moves
    a little before and after the sound)."""
    e = rms_envelope(audio, n)
    if n == 0 or e.max() <= 0:
        return np.zeros(n, bool)
    ref = np.percentile(e, 95)
    sp = (e > floor) & (e > ref * 10 ** (rel_db / 20))
    if dilate > 0 and sp.any():
        k = np.ones(2 * dilate + 1)
        sp = np.convolve(sp.astype(float), k, mode="same") > 0
    return sp


def lips_with_opening(base_lips: np.ndarray, base_open: float, target_open: np.ndarray) -> np.ndarray:
    """A jaw-only lip track: the lower-lip points of one face's lips ``[16, 2]`` moved down so that
    its opening follows ``target_open [T]``; ``[T, 16, 2]``. The baselines' landmark track."""
    out = np.repeat(np.asarray(base_lips, np.float64)[None], len(target_open), 0)
    low = [LIPS.index(i) for i in LOWER_LIP]
    out[:, low, 1] += (np.asarray(target_open, np.float64) - base_open)[:, None]
    return out


class FaceMeshTrack:
    """Face mesh (tracking mode) over one sequence of frames of any size; frames may change size.

    >>> with FaceMeshTrack() as fm:
    ...     pts = [fm(img) for img in frames]   # [478, 3] pixels or None each

    Not thread-safe. Blocks about 10-30 ms per frame on one CPU core.
    """

    def __init__(self, *, video: bool = True):
        from ..vision.detect import Detector
        self._det = Detector(video=video, pose=False, hands=False)

    def __call__(self, rgb: np.ndarray, region: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
        """Face mesh of ``rgb [H, W, 3]`` uint8 in pixels ``[478, 3]`` (z in the unit of x), or None.
        ``region = (x0, y0, x1, y1)``: detect only inside it (coordinates stay the frame's)."""
        img = rgb
        x0 = y0 = 0
        if region is not None:
            x0, y0, x1, y1 = region
            img = rgb[y0:y1, x0:x1]
        r = self._det(np.ascontiguousarray(img))
        if not r.face_ok:
            return None
        h, w = img.shape[:2]
        p = np.array(r.face, np.float64)
        p[:, 0] = p[:, 0] * w + x0
        p[:, 1] = p[:, 1] * h + y0
        p[:, 2] *= w
        return p

    def close(self) -> None:
        self._det.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def measure_frames(frames: Iterable[np.ndarray], region=None) -> np.ndarray:
    """Face mesh over a sequence of RGB frames (tracking mode): ``[T, 478, 3]`` pixels, NaN where
    no face. ``region``: as :meth:`FaceMeshTrack.__call__`. Blocks while it runs."""
    out = []
    with FaceMeshTrack() as fm:
        for img in frames:
            p = fm(img, region)
            out.append(np.full((478, 3), np.nan) if p is None else p)
    return np.stack(out) if out else np.zeros((0, 478, 3))
