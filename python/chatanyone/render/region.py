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
