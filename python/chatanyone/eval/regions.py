"""Where a rendered frame's error sits: the person's pixels split into regions of the real frame.

``chatanyone eval render --regions`` (raw videos) adds, per method, the person-pixel squared error
split over the real (driving) frame's regions, from the real frame's own landmarks:

- ``mouth``: the outer lips' hull, grown by :data:`GROW` face heights;
- ``eyes``: each eye's hull, grown as much;
- ``face``: the rest of the face oval;
- ``outline``: the real person above the chin outside the oval (hair, ears, the head's edge);
- ``arms``: the real person inside capsules round the pose's arms and the hands' hulls;
- ``torso``: the rest of the real person (neck, chest, legs);
- ``uncovered``: the source frame's person where the real frame shows none (what a moving person
  uncovers, or where the rendered person stays that the real one left).

The pixels are those of ``psnr_person`` (the real person's or the source's, by selfie
segmentation), so the regions' errors add up to that figure's squared error. Per region:
``share`` of the person's pixels, ``mse`` (per channel, 0-255 scale) and ``error_share`` of the
person's squared error, each pooled over the frames measured (pixel-weighted, unlike
``psnr_person``, which averages each frame's PSNR). A region with a large ``error_share`` is where
the renderer loses most; its ``mse`` against the source repeated shows whether the renderer
follows the real frame there at all.
"""
from __future__ import annotations

import numpy as np

REGIONS = ("face", "mouth", "eyes", "outline", "arms", "torso", "uncovered")
GROW = 0.03          # face heights: the mouth's and eyes' hulls are grown by this much


def labels(hw: tuple[int, int], real_person: np.ndarray, src_person: np.ndarray,
           face_px: np.ndarray | None, pose_px: np.ndarray | None = None,
           hands_px: list | None = None) -> np.ndarray:
    """``[H, W] int8``: each person pixel's region (an index into :data:`REGIONS`), -1 elsewhere.

    ``real_person``/``src_person``: ``[H, W]`` bool masks of the real and the source frame's person;
    ``face_px``: the real frame's face mesh ``[478, >=2]`` in the same pixels (None or non-finite:
    no face regions, the person is all ``torso``); ``pose_px``: ``[33, 4]`` (x, y, z or anything,
    visibility); ``hands_px``: a list of ``[21, >=2]`` hands."""
    import cv2
    from ..render import mesh as M
    from ..reenact import _limbs_mask
    h, w = int(hw[0]), int(hw[1])
    rp, sp = np.asarray(real_person, bool), np.asarray(src_person, bool)
    if rp.shape != (h, w) or sp.shape != (h, w):
        raise ValueError(f"regions.labels: person masks must be {(h, w)}, got {rp.shape} and {sp.shape}")
    lab = np.full((h, w), -1, np.int8)
    lab[sp & ~rp] = REGIONS.index("uncovered")
    lab[rp] = REGIONS.index("torso")
    f = None if face_px is None else np.asarray(face_px, np.float64)[:, :2]
    if f is None or not np.all(np.isfinite(f)):
        return lab
    fh = float(np.linalg.norm(f[152] - f[10]))
    lab[rp & (np.arange(h)[:, None] < f[152, 1])] = REGIONS.index("outline")
    person = rp | sp

    def hull(idx, grow):
        m = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(np.round(f[idx]).astype(np.int32)), 1)
        if grow > 0:
            r = max(1, int(round(grow * fh)))
            m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        return (m != 0) & person

    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(f[M.FACE_OVAL]).astype(np.int32)], 1)
    lab[(oval != 0) & person] = REGIONS.index("face")
    lab[hull(M.RIGHT_EYE_UPPER + M.RIGHT_EYE_LOWER, GROW)] = REGIONS.index("eyes")
    lab[hull(M.LEFT_EYE_UPPER + M.LEFT_EYE_LOWER, GROW)] = REGIONS.index("eyes")
    lab[hull(M.LIP_UPPER_OUTER + M.LIP_LOWER_OUTER, GROW)] = REGIONS.index("mouth")
    if pose_px is not None or hands_px:     # last: a hand in front of the face is the hand's
        pose = np.full((33, 4), np.nan) if pose_px is None else np.asarray(pose_px, np.float64)
        limbs = _limbs_mask((h, w), pose, [np.asarray(q, np.float64)[:, :2] for q in (hands_px or [])], fh) != 0
        lab[limbs & rp] = REGIONS.index("arms")
    return lab


class Budget:
    """Squared error and pixel counts per region, pooled over frames (see the module docstring)."""

    def __init__(self):
        self.err = np.zeros(len(REGIONS))
        self.n = np.zeros(len(REGIONS), np.int64)

    def add(self, lab: np.ndarray, out: np.ndarray, real: np.ndarray) -> None:
        """One frame: ``lab`` from :func:`labels`, ``out`` and ``real`` ``[H, W, 3]`` uint8."""
        if out.shape != real.shape or lab.shape != out.shape[:2]:
            raise ValueError(f"Budget.add: shapes differ: labels {lab.shape}, out {out.shape}, real {real.shape}")
        e = ((out.astype(np.float64) - real) ** 2).mean(-1)
        sel = lab >= 0
        self.err += np.bincount(lab[sel], weights=e[sel], minlength=len(REGIONS))
        self.n += np.bincount(lab[sel], minlength=len(REGIONS))

    def summary(self) -> dict | None:
        total_n, total_e = int(self.n.sum()), float(self.err.sum())
        if total_n == 0:
            return None
        return {r: {"share": float(self.n[i] / total_n),
                    "mse": float(self.err[i] / self.n[i]) if self.n[i] else None,
                    "error_share": float(self.err[i] / total_e) if total_e > 0 else 0.0}
                for i, r in enumerate(REGIONS)}


def format_budget(res: dict) -> str:
    """The regions' lines of a ``chatanyone eval render --regions`` result (one per clip and method):
    per region, its share of the person's pixels, then MSE and share of the error."""
    lines = ["person-pixel error by region of the real frame: region pixel-share% mse (error-share%)"]
    for r in res["clips"]:
        for m in res.get("methods", ()):
            b = r.get(m, {}).get("regions")
            if not b:
                continue
            parts = [f"{k} {v['share'] * 100:.0f}% {v['mse']:.0f} ({v['error_share'] * 100:.0f}%)"
                     for k, v in b.items() if v["mse"] is not None]
            lines.append(f"{r['clip'][:30]:30s} {m:>12s}: " + ", ".join(parts))
    return "\n".join(lines)
