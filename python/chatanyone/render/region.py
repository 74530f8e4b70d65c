"""The animated region of a photo: what the geometry renderer moves, chosen from what the photo shows.

A frame is the whole photo (at its own aspect ratio); only the region inside it is warped and pasted
back. The region always lies inside the photo, so nothing the user sees is invented padding.

Three kinds, decided from the detected landmarks (face mesh, pose, hands):

- ``"upper_body"``: a hand (or a wrist) is in the photo. The region covers the head, the shoulders,
  the arms and the hands, with a margin.
- ``"head_shoulders"``: both shoulders are in the photo. The region spans from above the hair to
  about 1.4 face heights below the chin (3.1 face heights in all, so the face is about a third of it)
  and as wide as the shoulders.
- ``"head"``: anything else (a close portrait). The region is the head with its hair and neck.

Face height is mediapipe point 10 (top of the forehead) to 152 (chin), as in :mod:`chatanyone.vision.framing`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..spec.keypoint_layout import POSE_VIS_MIN as VIS_MIN  # pose visibility that counts as seen

KINDS = ("head", "head_shoulders", "upper_body")
HAIR_ABOVE = 0.75       # face heights above the forehead point the region starts (hair, head motion)
HEAD_BELOW = 0.65       # head kind: face heights below the chin (neck)
SHOULDERS_BELOW = 1.4   # head_shoulders: face heights below the chin
HEAD_HALF_W = 1.05      # face heights either side of the face centre for the head
SHOULDER_MARGIN = 0.35  # face heights beyond the shoulder points
BODY_MARGIN = 0.45      # upper_body: face heights around arms and hands


@dataclasses.dataclass(frozen=True)
class Region:
    """An axis-aligned rectangle in the photo's pixels, inside the photo, and what it shows."""
    x0: float
    y0: float
    x1: float
    y1: float
    kind: str

    def as_array(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x1, self.y1], np.float64)

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def width(self) -> float:
        return self.x1 - self.x0


def _in_photo(xy: np.ndarray, wh, margin: float = 0.0) -> np.ndarray:
    w, h = wh
    return ((xy[..., 0] >= -margin) & (xy[..., 0] <= w + margin)
            & (xy[..., 1] >= -margin) & (xy[..., 1] <= h + margin))


def choose_region(face_px: np.ndarray, pose_px: np.ndarray | None, hands_px: np.ndarray | None,
                  hands_ok: np.ndarray | None, image_wh: tuple[int, int]) -> Region:
    """The animated region of one photo.

    Args:
        face_px: ``[478, >=2]`` face mesh in the photo's pixels.
        pose_px: ``[33, 4]`` pose (x, y in pixels, z, visibility) or None (no body found).
        hands_px: ``[2, 21, >=2]`` hands in pixels (NaN where not seen) or None.
        hands_ok: ``[2]`` bool, the plausible hands.
        image_wh: ``(W, H)`` of the photo.
    Returns:
        A :class:`Region` clipped to the photo.
    Raises:
        ValueError: the face points are not finite.
    """
    f = np.asarray(face_px, np.float64)[:, :2]
    if f.shape != (478, 2) or not np.all(np.isfinite(f[:468])):
        raise ValueError(f"face_px must be a finite [478, 2|3] face mesh, got {np.shape(face_px)}")
    w, h = image_wh
    top, chin = f[10], f[152]
    fh = float(np.linalg.norm(chin - top))
    cx = float(np.median(f[:468, 0]))
    y_top = min(float(top[1]), float(f[:468, 1].min())) - HAIR_ABOVE * fh
    head_x0, head_x1 = cx - HEAD_HALF_W * fh, cx + HEAD_HALF_W * fh
    kind = "head"
    x0, x1, y0, y1 = head_x0, head_x1, y_top, chin[1] + HEAD_BELOW * fh
    pose = None if pose_px is None else np.asarray(pose_px, np.float64)
    if pose is not None and np.all(np.isfinite(pose[[11, 12], :2])):
        sh = pose[[11, 12]]
        seen = (np.nan_to_num(sh[:, 3]) >= VIS_MIN) & _in_photo(sh[:, :2], image_wh, 0.02 * fh)
        if seen.all():
            kind = "head_shoulders"
            x0 = min(x0, sh[:, 0].min() - SHOULDER_MARGIN * fh)
            x1 = max(x1, sh[:, 0].max() + SHOULDER_MARGIN * fh)
            y1 = max(y1, chin[1] + SHOULDERS_BELOW * fh, sh[:, 1].max() + 0.5 * fh)
    pts = []
    if hands_px is not None and hands_ok is not None:
        hp = np.asarray(hands_px, np.float64)[..., :2]
        for s in range(2):
            if bool(np.asarray(hands_ok)[s]) and np.all(np.isfinite(hp[s])):
                inside = _in_photo(hp[s], image_wh)
                if inside.mean() > 0.5:
                    pts.append(hp[s][inside])
    if pose is not None:
        for i in (15, 16):  # wrists in the photo
            p = pose[i]
            if np.all(np.isfinite(p[:2])) and np.nan_to_num(p[3]) >= VIS_MIN and _in_photo(p[:2], image_wh):
                pts.append(pose[[i - 2, i], :2][np.nan_to_num(pose[[i - 2, i], 3]) >= VIS_MIN])
    if pts:
        kind = "upper_body"
        q = np.concatenate(pts)
        x0 = min(x0, q[:, 0].min() - BODY_MARGIN * fh)
        x1 = max(x1, q[:, 0].max() + BODY_MARGIN * fh)
        y1 = max(y1, q[:, 1].max() + BODY_MARGIN * fh, chin[1] + SHOULDERS_BELOW * fh)
    return Region(max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1), kind)


# letterbox / pillarbox bars (see :func:`letterbox`): a row (column) at the photo's edge belongs to a
# bar where its luminance (0-255) stays at or below BAR_LUM over BAR_SHARE of it and spreads over no
# more than BAR_SPREAD; a bar is at least BAR_MIN of the side (and 2 px) and at most BAR_MAX of it,
# and the picture beside it starts with a step of at least BAR_STEP in mean luminance
BAR_LUM = 40.0
BAR_SPREAD = 14.0
BAR_SHARE = 0.97
BAR_MIN = 0.01
BAR_MAX = 0.35
BAR_STEP = 10.0


def letterbox(image: np.ndarray, face_px: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """The dark, uniform bars round a letterboxed (or pillarboxed) picture.

    A video letterboxed for another aspect ratio carries bars that are no part of the scene: when
    the camera moves or zooms, the picture moves inside them and the bars stay. The renderer keeps
    them out of the animated region, so they are never warped (issue #11: a zooming, letterboxed
    driving clip moved the bar's edge with the body's registered map).

    Args:
        image: ``[H, W, 3]`` (or ``[H, W]``) uint8 photo.
        face_px: optional ``[N, >=2]`` face points in the photo's pixels; a bar never reaches their
            middle (the box of the points' 25th to 75th percentiles: a face cut by a bar is fine, a
            dark background beside a dark face is no bar).
    Returns:
        ``(top, bottom, left, right)``: each bar's thickness in pixels (0: none).
    Raises:
        ValueError: not an ``[H, W]`` or ``[H, W, 3]`` image.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] >= 3:
        lum = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim == 2:
        lum = a.astype(np.float32)
    else:
        raise ValueError(f"image must be [H, W] or [H, W, 3], got shape {a.shape}")
    h, w = lum.shape
    lo_q, hi_q = (1 - BAR_SHARE) * 100, BAR_SHARE * 100
    face = None if face_px is None else np.asarray(face_px, np.float64)[:, :2]
    face = None if face is None or not np.all(np.isfinite(face)) else face

    def run(lines: np.ndarray, side: int, limit: float | None) -> int:
        """Bar thickness along ``lines [n, m]`` (the first line at the photo's edge)."""
        n = lines.shape[0]
        p_lo, p_hi = np.percentile(lines, [lo_q, hi_q], axis=1)
        bar = (p_hi <= BAR_LUM) & (p_hi - p_lo <= BAR_SPREAD)
        k = int(np.argmin(bar)) if not bar.all() else n
        if k < max(2, BAR_MIN * side) or k > BAR_MAX * side or k >= n:
            return 0
        if limit is not None and k > limit:
            return 0
        inner = lines[k + 1: k + 3].mean()        # the picture's first lines (past one of transition)
        if abs(float(inner) - float(lines[max(0, k - 2): k].mean())) < BAR_STEP:
            return 0
        return k

    lim = [None] * 4
    if face is not None:
        (qx0, qy0), (qx1, qy1) = np.percentile(face, 25, axis=0), np.percentile(face, 75, axis=0)
        lim = [qy0, h - qy1, qx0, w - qx1]
    top = run(lum, h, lim[0])
    bottom = run(lum[::-1], h, lim[1])
    left = run(lum.T, w, lim[2])
    right = run(lum.T[::-1], w, lim[3])
    return top, bottom, left, right
