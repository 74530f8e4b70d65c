"""Face mesh, pose and hands from the shipped TFLite models, without the mediapipe package.

The models are MediaPipe's (``weights/landmarks/``, Apache-2.0; see its NOTICE): a detector finds
the object on the whole image (SSD anchors, weighted non-maximum suppression), a rotated square
region around it is cut out with an affine warp, and a landmark model places the points in that
region, which are mapped back to the image. In tracking mode (``video=True``) the next frame's
region comes from this frame's landmarks and the detector runs only when the landmark model's
presence score says the object is lost. This module implements the steps around the models the
way MediaPipe's graphs configure them (face_mesh with ``refine_landmarks``, pose with
``model_complexity=1``, hands with ``model_complexity=1``), written in numpy/OpenCV.

Coordinates: x, y normalized to the image (x right, y down), z in units of the region width
times the image-normalized width as MediaPipe does (see :mod:`.detect`). Rectangles are
``(x_center, y_center, width, height, rotation)`` normalized to the image, rotation in radians.
"""
from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "landmarks"
VERSION = "litert-mp0.10.21-1"   # the models (MediaPipe 0.10.21's) and this implementation's revision


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -100.0, 100.0)))


def _norm_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def _rotation(p0, p1, target: float, size) -> float:
    """Rotation that turns the vector p0 -> p1 (normalized points) to ``target`` radians."""
    x0, y0 = p0[0] * size[0], p0[1] * size[1]
    x1, y1 = p1[0] * size[0], p1[1] * size[1]
    return _norm_radians(target - math.atan2(-(y1 - y0), x1 - x0))


@dataclasses.dataclass
class Rect:
    xc: float
    yc: float
    w: float
    h: float
    rot: float = 0.0

    def transform(self, size, scale: float, shift_y: float = 0.0) -> "Rect":
        """Shift (in the rect's own frame), make square on the long side, scale."""
        W, H = size
        xc, yc = self.xc, self.yc
        if shift_y:
            if self.rot == 0.0:
                yc += self.h * shift_y
            else:
                xc += (-H * self.h * shift_y * math.sin(self.rot)) / W
                yc += (H * self.h * shift_y * math.cos(self.rot)) / H
        long_side = max(self.w * W, self.h * H)
        return Rect(xc, yc, long_side / W * scale, long_side / H * scale, self.rot)

    def iou(self, o: "Rect") -> float:
        ax0, ay0, bx0, by0 = self.xc - self.w / 2, self.yc - self.h / 2, o.xc - o.w / 2, o.yc - o.h / 2
        ix = max(0.0, min(ax0 + self.w, bx0 + o.w) - max(ax0, bx0))
        iy = max(0.0, min(ay0 + self.h, by0 + o.h) - max(ay0, by0))
        inter = ix * iy
        union = self.w * self.h + o.w * o.h - inter
        return inter / union if union > 0 else 0.0


def _crop(rgb: np.ndarray, rect: Rect, size: int, lo: float, hi: float, *, keep_aspect: bool,
          zero_border: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """Cut ``rect`` out of ``rgb [H, W, 3] uint8`` into a ``[1, size, size, 3] float32`` tensor in
    ``[lo, hi]`` (bilinear, on the uint8 image like MediaPipe's CPU path). Returns the tensor and
    the letterbox padding ``(horizontal, vertical)`` as fractions of the tensor side."""
    import cv2
    H, W = rgb.shape[:2]
    cx, cy, rw, rh = rect.xc * W, rect.yc * H, rect.w * W, rect.h * H
    pad = (0.0, 0.0)
    if keep_aspect:
        roi_aspect = rh / rw
        if 1.0 > roi_aspect:
            pad = (0.0, (1.0 - roi_aspect) / 2.0)
            rh = rw
        else:
            pad = ((1.0 - 1.0 / roi_aspect) / 2.0, 0.0)
            rw = rh
    src = cv2.boxPoints(((cx, cy), (rw, rh), rect.rot * 180.0 / math.pi)).astype(np.float32)
    s = float(size)
    dst = np.array([[0, s], [0, 0], [s, 0], [s, s]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(rgb, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT if zero_border else cv2.BORDER_REPLICATE,
                              borderValue=(0, 0, 0))
    t = out.astype(np.float32) * ((hi - lo) / 255.0) + lo
    return t[None], pad


def _project(pts: np.ndarray, rect: Rect, pad=(0.0, 0.0)) -> np.ndarray:
    """Region-normalized points ``[N, >=3]`` -> image-normalized (z scaled by the rect width)."""
    out = pts.astype(np.float32).copy()
    x = (pts[:, 0] - pad[0]) / (1.0 - 2 * pad[0]) - 0.5
    y = (pts[:, 1] - pad[1]) / (1.0 - 2 * pad[1]) - 0.5
    c, s = math.cos(rect.rot), math.sin(rect.rot)
    out[:, 0] = (c * x - s * y) * rect.w + rect.xc
    out[:, 1] = (s * x + c * y) * rect.h + rect.yc
    out[:, 2] = pts[:, 2] / (1.0 - 2 * pad[0]) * rect.w
    return out


# ---- SSD detectors ---------------------------------------------------------------------------------

def _anchors(size: int, strides: tuple[int, ...]) -> np.ndarray:
    """Anchor centres ``[N, 2]`` (x, y normalized) of MediaPipe's SSD detectors: fixed unit size,
    two anchors per cell per layer (aspect 1 and the interpolated one), layers of equal stride
    sharing a grid."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = 2 * (j - i)
        fm = math.ceil(size / strides[i])
        ys, xs = np.mgrid[0:fm, 0:fm]
        c = np.stack([(xs + 0.5) / fm, (ys + 0.5) / fm], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, n, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


@dataclasses.dataclass
class _Detection:
    box: np.ndarray     # [4] xmin, ymin, xmax, ymax (normalized)
    kps: np.ndarray     # [K, 2]
    score: float


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a [4]`` with boxes ``b [N, 4]``."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class _SSD:
    def __init__(self, file: str, size: int, strides: tuple[int, ...], n_kps: int, lo: float):
        from .litert import TFLiteModel
        self.model = TFLiteModel(WEIGHTS / file)
        self.size, self.n_kps, self.lo = size, n_kps, lo
        self.anchors = _anchors(size, strides)
        shapes = self.model.output_shapes            # boxes [1, N, 4 + 2K], scores [1, N, 1]
        self._reg = next(n for n, sh in shapes.items() if sh[-1] == 4 + 2 * n_kps)
        self._cls = next(n for n, sh in shapes.items() if sh[-1] == 1)

    def __call__(self, rgb: np.ndarray, thresh: float = 0.5) -> list[_Detection]:
        H, W = rgb.shape[:2]
        t, pad = _crop(rgb, Rect(0.5, 0.5, 1.0, 1.0), self.size, self.lo, 1.0, keep_aspect=True,
                       zero_border=True)
        out = self.model(t)
        reg = out[self._reg].reshape(len(self.anchors), -1)
        score = _sigmoid(out[self._cls].reshape(-1).astype(np.float64))
        keep = np.nonzero(score >= thresh)[0]
        if not len(keep):
            return []
        s = float(self.size)
        a = self.anchors[keep]
        r = reg[keep].astype(np.float64)
        xc, yc = r[:, 0] / s + a[:, 0], r[:, 1] / s + a[:, 1]
        w, h = r[:, 2] / s, r[:, 3] / s
        boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], -1)
        kps = r[:, 4:4 + 2 * self.n_kps].reshape(-1, self.n_kps, 2) / s + a[:, None, :]
        dets = self._nms(boxes, kps, score[keep])
        # letterbox removal
        px, py = pad
        for d in dets:
            d.box = (d.box - [px, py, px, py]) / [1 - 2 * px, 1 - 2 * py, 1 - 2 * px, 1 - 2 * py]
            d.kps = (d.kps - [px, py]) / [1 - 2 * px, 1 - 2 * py]
        return dets

    @staticmethod
    def _nms(boxes, kps, scores, thresh: float = 0.3) -> list[_Detection]:
        """Weighted NMS: each kept detection is the score-weighted mean of those it suppresses."""
        order = np.argsort(-scores, kind="stable")
        out = []
        while len(order):
            top = order[0]
            sim = _iou(boxes[top], boxes[order])
            cand = order[sim > thresh]
            rest = order[~(sim > thresh)]
            wsum = scores[cand].sum()
            box = (boxes[cand] * scores[cand, None]).sum(0) / wsum
            kp = (kps[cand] * scores[cand, None, None]).sum(0) / wsum
            out.append(_Detection(box, kp, float(scores[top])))
            order = rest
        return out


def _det_rect(d: _Detection, i0: int, i1: int, target: float, size) -> Rect:
    x0, y0, x1, y1 = d.box
    return Rect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, _rotation(d.kps[i0], d.kps[i1], target, size))


def _alignment_rect(c, e, target: float, size) -> Rect:
    """A square rect centred on ``c`` reaching twice the distance to ``e`` (pose)."""
    W, H = size
    box = math.hypot((e[0] - c[0]) * W, (e[1] - c[1]) * H) * 2
    return Rect(float(c[0]), float(c[1]), box / W, box / H, _rotation(c, e, target, size))


def _landmarks_rect(pts: np.ndarray, i0: int, i1: int, target: float, size) -> Rect:
    x0, y0 = pts[:, 0].min(), pts[:, 1].min()
    x1, y1 = pts[:, 0].max(), pts[:, 1].max()
    return Rect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, _rotation(pts[i0], pts[i1], target, size))


def _hand_rect(pts: np.ndarray, size) -> Rect:
    """MediaPipe's hand-landmarks-to-rect rule on the steadier points (wrist, thumb base, the MCP
    and PIP joints): rotation from the wrist towards the index, middle and ring MCPs; box fitted
    in the rotated frame."""
    W, H = size
    pts = pts[[0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]]
    x1 = ((pts[4, 0] + pts[8, 0]) / 2 + pts[6, 0]) / 2
    y1 = ((pts[4, 1] + pts[8, 1]) / 2 + pts[6, 1]) / 2
    rot = _rotation(pts[0], (x1, y1), math.pi / 2, size)
    rev = _norm_radians(-rot)
    ax = (pts[:, 0].max() + pts[:, 0].min()) / 2
    ay = (pts[:, 1].max() + pts[:, 1].min()) / 2
    ox, oy = (pts[:, 0] - ax) * W, (pts[:, 1] - ay) * H
    px = ox * math.cos(rev) - oy * math.sin(rev)
    py = ox * math.sin(rev) + oy * math.cos(rev)
    pcx, pcy = (px.max() + px.min()) / 2, (py.max() + py.min()) / 2
    cx = pcx * math.cos(rot) - pcy * math.sin(rot) + W * ax
    cy = pcx * math.sin(rot) + pcy * math.cos(rot) + H * ay
    return Rect(cx / W, cy / H, (px.max() - px.min()) / W, (py.max() - py.min()) / H, rot)


def _associate(new: list[Rect], prev: list[Rect], thresh: float = 0.5) -> list[Rect]:
    """Detection rects, then the tracked ones; a later rect replaces earlier ones it overlaps."""
    out: list[Rect] = []
    for r in list(new) + list(prev):
        out = [o for o in out if r.iou(o) <= thresh]
        out.append(r)
    return out


# ---- face mesh (478 points) ------------------------------------------------------------------------

# the attention model's region outputs -> mesh indices (its lips, eye contours; irises 468-477)
_LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
         78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
         76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
         62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407]
_EYE_A = [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
          130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
          226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
          35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
          156, 70, 63, 105, 66, 107, 55, 193]
_EYE_B = [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
          359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
          446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
          265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
          383, 300, 293, 334, 296, 336, 285, 417]


class FaceMesh:
    """Faces: short-range face detector + face landmarks with attention (478 points)."""

    def __init__(self, *, video: bool, max_faces: int = 1, min_detection: float = 0.5,
                 min_presence: float = 0.5):
        from .litert import TFLiteModel
        self.video, self.max_faces = video, max_faces
        self.min_detection, self.min_presence = min_detection, min_presence
        self.det = _SSD("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 6, -1.0)
        self.lm = TFLiteModel(WEIGHTS / "face_landmark_with_attention.tflite")
        self._prev: list[Rect] = []

    def reset(self) -> None:
        self._prev = []

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Faces ``[478, 3]`` each on one RGB frame (blocks)."""
        size = (rgb.shape[1], rgb.shape[0])
        prev = self._prev if self.video else []
        rects = list(prev)
        if len(prev) < self.max_faces:
            dets = self.det(rgb, self.min_detection)[:self.max_faces]
            rects = _associate([_det_rect(d, 0, 1, 0.0, size).transform(size, 1.5) for d in dets], prev)
        faces, nxt = [], []
        for r in rects:
            pts = self._landmarks(rgb, r)
            if pts is None:
                continue
            faces.append(pts)
            nxt.append(_landmarks_rect(pts, 33, 263, 0.0, size).transform(size, 1.5))
        self._prev = nxt
        return faces

    def _landmarks(self, rgb, rect: Rect) -> np.ndarray | None:
        t, _ = _crop(rgb, rect, 192, 0.0, 1.0, keep_aspect=False, zero_border=False)
        o = self.lm(t)
        if float(_sigmoid(o["conv_faceflag"].reshape(-1)[0])) < self.min_presence:
            return None
        pts = o["output_mesh_identity"].reshape(468, 3) / 192.0
        full = np.zeros((478, 3), np.float32)
        full[:468] = pts
        full[_LIPS, :2] = o["output_lips"].reshape(80, 2) / 192.0
        full[_EYE_A, :2] = o["output_left_eye"].reshape(71, 2) / 192.0
        full[_EYE_B, :2] = o["output_right_eye"].reshape(71, 2) / 192.0
        full[468:473, :2] = o["output_left_iris"].reshape(5, 2) / 192.0
        full[473:478, :2] = o["output_right_iris"].reshape(5, 2) / 192.0
        full[468:473, 2] = full[_EYE_A[:16], 2].mean()
        full[473:478, 2] = full[_EYE_B[:16], 2].mean()
        return _project(full, rect)


# ---- pose (33 points + visibility) -----------------------------------------------------------------

class _OneEuro:
    """One-euro filter as MediaPipe's landmark smoothing runs it (derivative from the last raw
    value, scaled by ``value_scale``), for the pose tracking region's two auxiliary points."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.freq = 30.0
        self.t = 0      # last timestamp (µs); MediaPipe treats 0 as "none yet"
        self.raw = self.x = self.dx = None

    def _alpha(self, cutoff):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.freq)

    def __call__(self, v: np.ndarray, t: int, value_scale: float) -> np.ndarray:
        """Filter ``v`` at time ``t`` (µs, > 0)."""
        if self.t >= t:
            return v
        if self.t != 0 and t != 0:
            self.freq = 1e6 / (t - self.t)
        self.t = t
        dv = np.zeros_like(v) if self.raw is None else (v - self.raw) * value_scale * self.freq
        a = self._alpha(self.d_cutoff)
        self.dx = dv if self.dx is None else a * dv + (1 - a) * self.dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx))
        self.x = v if self.x is None else a * v + (1 - a) * self.x
        self.raw = v
        return self.x.copy()


class Pose:
    """One body: pose detector + full pose landmark model (33 points with visibility)."""

    def __init__(self, *, video: bool, min_detection: float = 0.5, min_presence: float = 0.5):
        from .litert import TFLiteModel
        self.video, self.min_detection, self.min_presence = video, min_detection, min_presence
        self.det = _SSD("pose_detection.tflite", 224, (8, 16, 32, 32, 32), 4, -1.0)
        self.lm = TFLiteModel(WEIGHTS / "pose_landmark_full.tflite")
        self.reset()

    def reset(self) -> None:
        self._prev: Rect | None = None
        self._t = 0                      # µs; frames are stamped 33333 apart (MediaPipe's solutions)
        self._filter = _OneEuro(0.01, 10.0, 1.0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """``[33, 4]`` x, y, z, visibility, or None (blocks)."""
        size = (rgb.shape[1], rgb.shape[0])
        self._t += 33333
        rect = self._prev if self.video else None
        if rect is None:
            dets = self.det(rgb, self.min_detection)
            if not dets:
                self._prev = None
                return None
            rect = _alignment_rect(dets[0].kps[0], dets[0].kps[1], math.pi / 2, size).transform(size, 1.25)
        t, pad = _crop(rgb, rect, 256, 0.0, 1.0, keep_aspect=True, zero_border=False)
        o = self.lm(t)
        names = self.lm.output_names
        flag = float(o[names[1]].reshape(-1)[0])
        if flag < self.min_presence:
            self._prev = None
            self._filter = _OneEuro(0.01, 10.0, 1.0)
            return None
        raw = o[names[0]].reshape(39, 5).astype(np.float32)
        pts = np.empty((39, 4), np.float32)
        pts[:, :3] = raw[:, :3] / 256.0
        pts[:, 3] = _sigmoid(raw[:, 3])
        self._refine(pts, o[names[3]][0])
        img = _project(pts[:, :3], rect, pad)
        out = np.concatenate([img, pts[:, 3:4]], 1)
        if self.video:
            aux = out[33:35, :2].astype(np.float64)
            r = _alignment_rect(aux[0], aux[1], math.pi / 2, size)
            scale = 1.0 / max(1e-9, (r.w * size[0] + r.h * size[1]) / 2)
            aux_px = aux * np.array(size)
            aux = self._filter(aux_px, self._t, scale) / np.array(size)
            self._prev = _alignment_rect(aux[0], aux[1], math.pi / 2, size).transform(size, 1.25)
        return out[:33]

    @staticmethod
    def _refine(pts: np.ndarray, hm: np.ndarray, k: int = 9) -> None:
        """Refine x, y from the heatmap: confidence-weighted mean over a k x k window (MediaPipe 0.10.21
        runs its calculator with the default 9; later graphs say 7)."""
        h, w = hm.shape[:2]
        off = (k - 1) // 2
        for i in range(pts.shape[0]):
            c, r = int(pts[i, 0] * w), int(pts[i, 1] * h)
            if not (0 <= c < w and 0 <= r < h):
                continue
            r0, r1, c0, c1 = max(0, r - off), min(h, r + off + 1), max(0, c - off), min(w, c + off + 1)
            conf = _sigmoid(hm[r0:r1, c0:c1, i].astype(np.float64))
            s = conf.sum()
            if conf.max() >= 0.5 and s > 0:
                rows, cols = np.mgrid[r0:r1, c0:c1]
                pts[i, 0] = (cols * conf).sum() / w / s
                pts[i, 1] = (rows * conf).sum() / h / s


# ---- hands (21 points + handedness) ----------------------------------------------------------------

class Hands:
    """Up to two hands: palm detector + full hand landmark model."""

    def __init__(self, *, video: bool, max_hands: int = 2, min_detection: float = 0.5,
                 min_presence: float = 0.5):
        from .litert import TFLiteModel
        self.video, self.max_hands = video, max_hands
        self.min_detection, self.min_presence = min_detection, min_presence
        self.det = _SSD("palm_detection_full.tflite", 192, (8, 16, 16, 16), 7, 0.0)
        self.lm = TFLiteModel(WEIGHTS / "hand_landmark_full.tflite")
        self._prev: list[Rect] = []

    def reset(self) -> None:
        self._prev = []

    def __call__(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        """Hands found: ``(points [21, 3], handedness score of "Left" in MediaPipe's mirrored
        convention, presence)`` each (blocks)."""
        size = (rgb.shape[1], rgb.shape[0])
        prev = self._prev if self.video else []
        rects = list(prev)
        if len(prev) < self.max_hands:
            dets = self.det(rgb, self.min_detection)[:self.max_hands]
            rects = _associate([_det_rect(d, 0, 2, math.pi / 2, size).transform(size, 2.6, -0.5)
                                for d in dets], prev)
        found, nxt = [], []
        for r in rects:
            t, pad = _crop(rgb, r, 224, 0.0, 1.0, keep_aspect=True, zero_border=False)
            o = self.lm(t)
            n = self.lm.output_names
            flag = float(o[n[1]].reshape(-1)[0])
            if flag < self.min_presence:
                continue
            left = float(o[n[2]].reshape(-1)[0])
            pts = o[n[0]].reshape(21, 3).astype(np.float32) / 224.0
            pts[:, 2] /= 0.4
            img = _project(pts, r, pad)
            found.append((img, left, flag))
            nxt.append(_hand_rect(img, size).transform(size, 2.0, -0.1))
        self._prev = nxt
        return found


# ---- person mask (evaluation) ----------------------------------------------------------------------

class SelfieSegmentation:
    """Person mask: MediaPipe's landscape selfie segmentation model (``model_selection=1``)."""

    def __init__(self):
        from .litert import TFLiteModel
        self.model = TFLiteModel(WEIGHTS / "selfie_segmentation_landscape.tflite")
        _, self.h, self.w, _ = self.model.input_shape

    def raw(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb [H, W, 3] uint8`` -> person probability ``[h, w] float32`` in [0, 1] at the model's
        own resolution, the whole image stretched onto it (resize it to any size of the image)."""
        import cv2
        H, W = rgb.shape[:2]
        src = np.float32([[0, H], [0, 0], [W, 0], [W, H]])
        dst = np.float32([[0, self.h], [0, 0], [self.w, 0], [self.w, self.h]])
        t = cv2.warpPerspective(rgb, cv2.getPerspectiveTransform(src, dst), (self.w, self.h),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        o = self.model((t.astype(np.float32) / 255.0)[None])
        return np.ascontiguousarray(next(iter(o.values()))[0, :, :, 0], np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb [H, W, 3] uint8`` -> person probability ``[H, W] float32`` in [0, 1] (blocks)."""
        import cv2
        H, W = rgb.shape[:2]
        return cv2.resize(self.raw(rgb), (W, H), interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=None)
def model_files() -> tuple[str, ...]:
    """The shipped model files this module runs."""
    return ("face_detection_short_range.tflite", "face_landmark_with_attention.tflite",
            "pose_detection.tflite", "pose_landmark_full.tflite", "palm_detection_full.tflite",
            "hand_landmark_full.tflite", "selfie_segmentation_landscape.tflite")
