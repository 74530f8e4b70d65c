"""The mouth refiner: a small learned network that only refines the geometry renderer's mouth.

The geometry renderer (:mod:`chatanyone.render.geometry`) moves the photo by its face mesh and
paints the mouth's inside where the photo's lips are closed. This module redraws what lies around
the driven mouth, in a square crop aligned by the driving lip landmarks (:func:`mouth_affine`:
centred on the outer lips, turned with the line between the mouth corners, ``SCALE`` mouth widths
on a side, sampled at ``CROP`` x ``CROP`` pixels). Its input (:func:`features`, ``[1, 8, C, C]``
float32 in [0, 1]):

- channels 0-2: the renderer's image in the crop (painted interior included);
- channel 3: the driven inner mouth (the polygon between the inner lips), antialiased;
- channel 4: the driven lips (the outer lip polygon less the inner one);
- channels 5-7: the photo's own mouth, cropped the same way by the photo's lip landmarks (the
  appearance: lip and teeth colour).

Its output is ``delta [1, 3, C, C]``, already ``alpha * (clamp(image + residual) - image)`` times a
fixed window that is zero on the crop's border (computed inside the graph), so it can change pixels
inside the crop only. :class:`MouthRefiner` warps it back into the region with the inverse affine:
inside the driven inner mouth (its mask dilated by ``MOUTH_DILATE`` crop pixels) the region shows the
refined crop itself (the crop the network saw plus its delta: the painted interior's sharp edges,
finer than the crop, would otherwise show through as a thin outline); elsewhere the delta is added
to the region at its own resolution. Every pixel outside the crop is left as the renderer made it,
bit for bit.

The network is trained by :mod:`chatanyone.train.mouth_refine` (PyTorch, offline) and shipped per
renderer preset (:class:`~chatanyone.render.presets.RenderPreset` ``mouth_refiner``, ``mouth_crop``):
``weights/mouth_refine.onnx`` (fast: a 64 px crop, frames of 512 px) and
``weights/mouth_refine_quality.onnx`` (quality: a 128 px crop, frames of 1024 px; the same pixels per
mouth width, trained on its own pairs). :func:`attach` gives a renderer its preset's refiner. Here
it runs through ONNX Runtime (no PyTorch at run time).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from . import mesh as M

log = logging.getLogger("chatanyone")

CROP = 64            # the crop's side in pixels
SCALE = 1.8          # the crop's side in mouth widths (outer corners 61 - 291)
N_IN = 8             # input channels (see the module docstring)
BORDER = 6           # the window's ramp at the crop's border, crop pixels
MOUTH_DILATE = 1     # crop pixels the inner-mouth mask is widened by where the refined crop replaces the region
MODEL_NAME = "mouth_refine.onnx"

_OUTER = M.LIP_UPPER_OUTER + M.LIP_LOWER_OUTER[1:-1][::-1]     # closed outer contour
_INNER = M.LIP_UPPER_INNER + M.LIP_LOWER_INNER[1:-1][::-1]     # closed inner contour


def border_for(crop: int) -> int:
    """The window's ramp for a crop of side ``crop``: :data:`BORDER` at :data:`CROP`, in proportion."""
    return max(2, int(round(BORDER * crop / CROP)))


def window(crop: int = CROP, border: float = BORDER, *, width: int | None = None) -> np.ndarray:
    """``[crop, crop]`` float32 (``[crop, width]`` with ``width``): 1 inside, ramping to 0 over
    ``border`` pixels at the edge (0 on the outermost pixel)."""
    def ramp(n):
        r = np.arange(n, dtype=np.float32)
        return np.clip(np.minimum(r, n - 1 - r) / float(border), 0.0, 1.0)
    wy = ramp(crop)
    wx = wy if width is None else ramp(width)
    return np.ascontiguousarray(wy[:, None] * wx[None, :])


def mouth_affine(face_px: np.ndarray, crop: int = CROP, scale: float = SCALE) -> np.ndarray:
    """``[2, 3]`` float64 affine taking image pixels (pixel-centre coordinates) to crop pixels, from
    face-mesh points ``face_px [478, >=2]`` in the same image's pixels: centred on the outer lips,
    turned so the mouth corners lie level, ``scale`` mouth widths on the crop's side."""
    p = np.asarray(face_px, np.float64)[:, :2]
    if p.shape[0] < M.N_FACE or not np.all(np.isfinite(p[_OUTER])):
        raise ValueError(f"face_px must be [478, >=2] finite lip points, got shape {np.shape(face_px)}")
    c = p[_OUTER].mean(0)
    v = p[291] - p[61]
    width = max(float(np.hypot(*v)), 1.0)
    ang = float(np.arctan2(v[1], v[0]))
    s = crop / (scale * width)
    ca, sa = np.cos(ang) * s, np.sin(ang) * s
    r = np.array([[ca, sa], [-sa, ca]])            # rotate by -ang, scale by s
    t = (crop - 1) / 2.0 - r @ c
    return np.concatenate([r, t[:, None]], 1)


def _apply(a: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ a[:, :2].T + a[:, 2]


def lip_masks(face_px: np.ndarray, a: np.ndarray, crop: int = CROP) -> tuple[np.ndarray, np.ndarray]:
    """``(inner [C, C], lips [C, C])`` float32 in [0, 1]: the inner-mouth polygon and the lips (outer
    polygon less inner) of ``face_px`` drawn in the crop of affine ``a`` (antialiased)."""
    import cv2
    p = _apply(a, np.asarray(face_px, np.float64)[:, :2])
    shift = 4
    inner = np.zeros((crop, crop), np.uint8)
    outer = np.zeros((crop, crop), np.uint8)
    cv2.fillPoly(inner, [np.round(p[_INNER] * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    cv2.fillPoly(outer, [np.round(p[_OUTER] * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    fi = inner.astype(np.float32) / 255.0
    fo = outer.astype(np.float32) / 255.0
    return fi, np.clip(fo - fi, 0.0, 1.0)


def crop_image(img: np.ndarray, a: np.ndarray, crop: int = CROP) -> np.ndarray:
    """``img [H, W, 3]`` (any dtype) sampled into the crop of affine ``a``: ``[C, C, 3]`` float32 in
    the image's units (bilinear, border replicated)."""
    import cv2
    src = img if img.dtype == np.float32 else img.astype(np.float32)
    return cv2.warpAffine(src, a, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def features(warped_crop: np.ndarray, inner: np.ndarray, lips: np.ndarray, src_crop: np.ndarray) -> np.ndarray:
    """The network's input ``[1, 8, C, C]`` float32 from crops in 0-255 ``[C, C, 3]`` and masks
    ``[C, C]`` in [0, 1]."""
    x = np.concatenate([warped_crop / 255.0, inner[..., None], lips[..., None], src_crop / 255.0], -1)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def default_path(preset: str = "fast") -> Path:
    """The shipped refiner of renderer preset ``preset`` (``ValueError`` for an unknown preset)."""
    from ..runners.base import weights_path
    from .presets import get_preset
    return weights_path(get_preset(preset).mouth_refiner)


def available(preset: str = "fast") -> bool:
    """Whether the shipped refiner weights of ``preset`` are installed."""
    return default_path(preset).is_file()


def attach(renderer, preset: str = "fast", path: str | os.PathLike | None = None, **kw) -> bool:
    """Give ``renderer`` (a :class:`~chatanyone.render.geometry.GeomRenderer`; its
    ``refine_mouth=True, refine_preset=...`` call this) the mouth refiner of renderer preset
    ``preset``; True when it has one.

    ``path``: another refiner file (any crop; ``FileNotFoundError`` when missing). Without it, the
    preset's shipped file, which must take the preset's crop (``ValueError`` naming the file
    otherwise); when it is not installed the renderer is left without a refiner (logged). ``kw``
    goes to :class:`MouthRefiner` (threads, providers). Blocks for loading the graph."""
    from .presets import get_preset
    p = get_preset(preset)
    if path is None:
        path, crop = default_path(preset), p.mouth_crop
        if not path.is_file():
            log.warning("mouth refiner of preset %r not installed (%s): the mouth is shown as the renderer "
                        "draws it", preset, path)
            renderer.refiner = None
            return False
    else:
        path, crop = Path(path), None
        if not path.is_file():
            raise FileNotFoundError(f"mouth refiner not found: {os.fspath(path)!r}")
    renderer.refiner = MouthRefiner(renderer._base, renderer.src_face_px, path, crop=crop, **kw)
    return True


class MouthRefiner:
    """Runs the mouth refiner on the renderer's region image, in place (see the module docstring).

    Args:
        src_region: ``[h, w, 3]`` the photo's animated region (uint8 or float 0-255), as the
            renderer warps it.
        src_face_px: ``[478, >=2]`` the photo's face mesh in that region's pixel-centre coordinates.
        path: the ONNX file (default: ``weights/mouth_refine.onnx``, the fast preset's).
        crop: the crop side the graph must take (``ValueError`` naming the file when it takes
            another, e.g. the fast preset's 64 px refiner given where the quality preset's 128 px
            one is wanted); None: whatever it takes.
        threads: ONNX Runtime intra-op threads (1: the refiner is small; the renderer's thread).

    Thread safety: one frame at a time per instance.
    """

    def __init__(self, src_region: np.ndarray, src_face_px: np.ndarray, path: str | os.PathLike | None = None,
                 *, crop: int | None = None, threads: int = 1, providers=("CPUExecutionProvider",)):
        from ..runners.base import OnnxRunner
        path = Path(path) if path is not None else default_path()
        try:
            runner = OnnxRunner(path, providers=list(providers), threads=threads)
        except FileNotFoundError:
            raise
        except Exception as exc:    # ONNX Runtime's own errors (a truncated or foreign file)
            raise ValueError(f"{path}: not a mouth refiner ONNX graph ({exc})") from exc
        ins, outs = runner.session.get_inputs(), runner.session.get_outputs()
        shp = ins[0].shape if len(ins) == 1 else None
        want = crop
        crop = shp[2] if shp is not None and len(shp) == 4 else None
        if (crop is None or not isinstance(crop, int) or shp[1] != N_IN or shp[3] != crop or crop < 16
                or len(outs) != 1):
            raise ValueError(f"{path}: a mouth refiner takes one input [1, {N_IN}, C, C] (C >= 16) and gives one "
                             f"output; this graph takes {[i.shape for i in ins]} and gives {len(outs)} outputs")
        oshp = outs[0].shape
        if len(oshp) != 4 or oshp[1] != 3 or oshp[2] != crop or oshp[3] != crop:
            raise ValueError(f"{path}: a mouth refiner's output is [1, 3, {crop}, {crop}], this one's is {oshp}")
        if want is not None and crop != int(want):
            raise ValueError(f"{path}: a mouth refiner for a {int(want)} px crop is wanted here, this one takes "
                             f"{crop} px crops (another preset's file?)")
        self._runner = runner
        self.crop = int(crop)           # the crop's side (CROP for the fast preset's weights)
        a_src = mouth_affine(src_face_px, self.crop)
        self._src_crop = crop_image(np.asarray(src_region), a_src, self.crop)
        c = self.crop
        self._corners = np.array([[-0.5, -0.5], [c - 0.5, -0.5], [-0.5, c - 0.5], [c - 0.5, c - 0.5]])
        self._win = window(self.crop, border_for(self.crop))

    def delta(self, img: np.ndarray, face_px: np.ndarray):
        """``(delta [C, C, 3], crop [C, C, 3], inner [C, C], affine [2, 3])`` for region image ``img``
        and the driving face ``face_px [478, >=2]`` (region pixel centres): the network's change
        and the crop it saw (float32, 0-255 units), the driven inner mouth. Blocks for one network
        run."""
        a = mouth_affine(face_px, self.crop)
        wc = crop_image(img, a, self.crop)
        inner, lips = lip_masks(face_px, a, self.crop)
        x = features(wc, inner, lips, self._src_crop)
        d = self._runner.run({self._runner.input_names[0]: x})[0][0]
        return np.ascontiguousarray(d.transpose(1, 2, 0) * 255.0, np.float32), wc, inner, a

    def __call__(self, img: np.ndarray, face_px: np.ndarray) -> None:
        """Refine the mouth of ``img [h, w, 3]`` float32 (0-255, modified in place), driven by
        ``face_px [478, >=2]`` (region pixel centres). Only pixels within the crop change."""
        import cv2
        d, wc, inner, a = self.delta(img, face_px)
        k = 2 * MOUTH_DILATE + 1
        m = cv2.dilate(inner, np.ones((k, k), np.uint8)) * self._win           # [C, C], 0 on the border
        # the region becomes img * (1 - M) + M * crop + delta: one warp of (M * crop + delta), one of M
        d = np.dstack([d + m[..., None] * wc, m])
        h, w = img.shape[:2]
        inv = cv2.invertAffineTransform(a)
        cs = _apply(inv, self._corners)
        x0, y0 = (max(0, int(np.floor(v))) for v in cs.min(0))
        x1, y1 = int(min(w, np.ceil(cs[:, 0].max()) + 1)), int(min(h, np.ceil(cs[:, 1].max()) + 1))
        if x1 <= x0 or y1 <= y0:
            return
        # crop -> the box's pixels: (box px + origin) = inv(crop px)
        a_box = a.copy()
        a_box[:, 2] = a[:, 2] + a[:, :2] @ np.array([x0, y0], np.float64)
        back = cv2.warpAffine(d, a_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        patch = img[y0:y1, x0:x1]
        patch *= 1.0 - back[..., 3:4]
        patch += back[..., :3]
