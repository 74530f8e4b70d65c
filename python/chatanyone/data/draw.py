"""Landmark overlays, for ``chatanyone inspect`` and for looking at tracks by eye."""
from __future__ import annotations

import numpy as np

from ..spec import keypoint_layout as L

POSE_EDGES = [(11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
              (0, 2), (0, 5), (2, 7), (5, 8), (9, 10)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
              (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19),
              (19, 20)]
HAND_COLORS = [(255, 220, 0), (255, 0, 220)]  # person's left: yellow, right: magenta


def _px(xy_crop: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.stack([(xy_crop[..., 0] + 1) * 0.5 * w, (xy_crop[..., 1] + 1) * 0.5 * h], -1)


def draw_frame(img: np.ndarray, face=None, pose=None, hands=None, hands_ok=None, *, kp=None, vis=None,
               text: str | None = None, scale: int = 1) -> np.ndarray:
    """Draw landmarks in crop coordinates over ``img [H, W, 3]`` uint8 RGB (returns a copy, upscaled
    by ``scale``). ``face [478, >=2]``, ``pose [33, 4]``, ``hands [2, 21, >=2]``, ``kp [K, 2]``/``vis``.
    Face mesh: small green dots; renderer keypoints: red rings; pose: blue; hands: yellow (left) and
    magenta (right)."""
    import cv2
    out = np.ascontiguousarray(img)
    if scale != 1:
        out = cv2.resize(out, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_LINEAR)
    else:
        out = out.copy()
    h, w = out.shape[:2]

    def pt(p):
        return int(round(float(p[0]))), int(round(float(p[1])))

    if face is not None and np.all(np.isfinite(face[:, :2])):
        f = _px(np.asarray(face)[:, :2], w, h)
        for p in f[:468]:
            cv2.circle(out, pt(p), max(1, scale // 2), (0, 200, 0), -1, cv2.LINE_AA)
        for p in f[468:]:
            cv2.circle(out, pt(p), max(1, scale // 2), (0, 255, 255), -1, cv2.LINE_AA)
    if pose is not None:
        pz = np.asarray(pose)
        pp = _px(pz[:, :2], w, h)
        for a, b in POSE_EDGES:
            if np.all(np.isfinite(pp[[a, b]])) and min(pz[a, 3], pz[b, 3]) >= L.POSE_VIS_MIN:
                cv2.line(out, pt(pp[a]), pt(pp[b]), (40, 90, 255), max(1, scale), cv2.LINE_AA)
        for i in L.KP_BODY_IDX:
            if np.all(np.isfinite(pp[i])) and pz[i, 3] >= L.POSE_VIS_MIN:
                cv2.circle(out, pt(pp[i]), 3 * scale, (40, 90, 255), -1, cv2.LINE_AA)
    if hands is not None:
        hz = np.asarray(hands)
        hok = np.ones(2, bool) if hands_ok is None else np.asarray(hands_ok, bool)
        for s in range(2):
            if not hok[s] or not np.all(np.isfinite(hz[s, :, :2])):
                continue
            hp = _px(hz[s, :, :2], w, h)
            for a, b in HAND_EDGES:
                cv2.line(out, pt(hp[a]), pt(hp[b]), HAND_COLORS[s], max(1, scale), cv2.LINE_AA)
            cv2.putText(out, "LR"[s], pt(hp[0] + [4, 12]), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale,
                        HAND_COLORS[s], max(1, scale), cv2.LINE_AA)
    if kp is not None:
        kpp = _px(np.asarray(kp), w, h)
        vv = np.ones(len(kpp)) if vis is None else np.asarray(vis)
        for p, v in zip(kpp, vv):
            if v > 0:
                cv2.circle(out, pt(p), 2 * scale, (255, 40, 40), 1, cv2.LINE_AA)
    if text:
        cv2.putText(out, text, (4, 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (0, 0, 0),
                    3 * scale, cv2.LINE_AA)
        cv2.putText(out, text, (4, 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (255, 255, 255),
                    max(1, scale), cv2.LINE_AA)
    return out


def grid(images: list[np.ndarray], cols: int) -> np.ndarray:
    """Tile equal-size images ``[H, W, 3]`` into rows of ``cols`` (black fill)."""
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    return out


def trace_plot(series: dict[str, np.ndarray], width: int, height: int, fps: float,
               marks: list[int] | None = None) -> np.ndarray:
    """A small plot of 1-D tracks over time (each normalized to its own range), RGB uint8."""
    import cv2
    out = np.full((height, width, 3), 255, np.uint8)
    colors = [(200, 0, 0), (0, 130, 0), (0, 0, 200), (200, 120, 0), (120, 0, 160), (0, 140, 140)]
    n = max(len(v) for v in series.values())
    for i, (name, v) in enumerate(series.items()):
        v = np.asarray(v, np.float64)
        lo, hi = np.nanmin(v), np.nanmax(v)
        y = (1 - (v - lo) / max(hi - lo, 1e-9)) * (height - 20) + 15
        x = np.arange(len(v)) / max(n - 1, 1) * (width - 1)
        pts = np.stack([x, np.nan_to_num(y, nan=height - 2)], -1).astype(np.int32)
        cv2.polylines(out, [pts], False, colors[i % len(colors)], 1, cv2.LINE_AA)
        cv2.putText(out, name, (4 + 90 * i, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colors[i % len(colors)], 1,
                    cv2.LINE_AA)
    for m in marks or []:
        x = int(m / max(n - 1, 1) * (width - 1))
        cv2.line(out, (x, 14), (x, height - 1), (160, 160, 160), 1)
    cv2.putText(out, f"{n / fps:.1f} s", (width - 40, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    return out
