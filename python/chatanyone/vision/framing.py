"""The renderer's 2:3 upper-body framing, decided in one place for the corpus and for avatars.

The box depends on the face only (its centre and its size), so that every clip and every avatar is
framed at the same scale relative to the person's head: 1 face height (mediapipe point 10, top of
the forehead, to 152, the chin) is ``BOX_H / FACE_UNITS_H`` of the crop's height, whatever the
source. Shoulders and hands then land at about the same place in every crop.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..spec.presets import PRESET_SIZES

ASPECT = 2.0 / 3.0      # width / height of every crop
FACE_UNITS_H = 5.4      # crop height in face heights (forehead-to-chin)
FACE_CENTER_Y = 0.27    # the face centre sits this far down the crop (fraction of its height)
FAST_SIZE = PRESET_SIZES["fast"]        # (W, H) of the fast preset
QUALITY_SIZE = PRESET_SIZES["quality"]  # (W, H) of the quality preset
HEAD_SIZE = 256          # square head crop side


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned box in source pixels; may extend beyond the image (that part is padded)."""
    x0: float  # left edge
    y0: float  # top edge
    w: float   # width
    h: float   # height

    def as_array(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.w, self.h], np.float64)

    @classmethod
    def from_array(cls, a) -> "Box":
        a = np.asarray(a, np.float64).reshape(4)
        return cls(float(a[0]), float(a[1]), float(a[2]), float(a[3]))


def face_center_size(face_px: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre ``[2]`` and height (forehead 10 to chin 152, in pixels) of one face ``[478, >=2]`` in pixels.

    The centre is the midpoint of the forehead-chin segment, x from the nose bridge (168).
    """
    top, chin = face_px[10, :2], face_px[152, :2]
    size = float(np.linalg.norm(chin - top))
    c = np.array([face_px[168, 0] * 0.5 + (top[0] + chin[0]) * 0.25, (top[1] + chin[1]) * 0.5])
    return c, size


def upper_body_box(face_px: np.ndarray, *, face_ok: np.ndarray | None = None) -> Box:
    """The 2:3 upper-body box for one image or a whole clip (median over frames; fixed per clip).

    Args:
        face_px: ``[478, 2|3]`` face landmarks of one image, or ``[T, 478, 2|3]`` of a clip, in pixels
            (x right, y down). Frames whose landmarks are NaN are ignored.
        face_ok: optional ``[T]`` bool mask of frames to use.
    Returns:
        A :class:`Box` in pixels (it may extend beyond the image: :func:`crop` pads).
    Raises:
        ValueError: no usable face.
    """
    f = np.asarray(face_px, np.float64)
    if f.ndim == 2:
        f = f[None]
    if f.ndim != 3 or f.shape[1] != 478 or f.shape[2] < 2:
        raise ValueError(f"face_px must be [478, 2|3] or [T, 478, 2|3], got {np.shape(face_px)}")
    ok = np.all(np.isfinite(f[:, [10, 152, 168], :2]), axis=(1, 2))
    if face_ok is not None:
        ok &= np.asarray(face_ok, bool).reshape(-1)
    if not ok.any():
        raise ValueError("upper_body_box: no frame with a face")
    cs, ss = zip(*(face_center_size(fr) for fr in f[ok]))
    c = np.median(np.stack(cs), axis=0)
    size = float(np.median(ss))
    h = FACE_UNITS_H * size
    w = ASPECT * h
    return Box(float(c[0] - w / 2), float(c[1] - FACE_CENTER_Y * h), float(w), float(h))


def head_box(face_px: np.ndarray, *, face_ok: np.ndarray | None = None) -> Box:
    """A square head box (1.8 face heights, face centred), fixed per clip like :func:`upper_body_box`."""
    f = np.asarray(face_px, np.float64)
    if f.ndim == 2:
        f = f[None]
    ok = np.all(np.isfinite(f[:, [10, 152, 168], :2]), axis=(1, 2))
    if face_ok is not None:
        ok &= np.asarray(face_ok, bool).reshape(-1)
    if not ok.any():
        raise ValueError("head_box: no frame with a face")
    cs, ss = zip(*(face_center_size(fr) for fr in f[ok]))
    c = np.median(np.stack(cs), axis=0)
    s = 1.8 * float(np.median(ss))
    return Box(float(c[0] - s / 2), float(c[1] - s / 2), s, s)


def crop(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Cut ``box`` out of ``image [H, W, C]`` and resize it to ``size = (W, H)``.

    Parts of the box outside the image are filled by repeating the border pixels (a plain
    continuation of the background, no black bars). One affine warp, area-like quality by
    pre-shrinking large sources.
    """
    import cv2
    ow, oh = size
    sx = box.w / ow
    img = image
    offx = offy = 1.0
    if sx > 2.0:  # shrink first so the bilinear warp does not alias
        k = int(sx // 1.5)
        img = cv2.resize(image, (max(1, image.shape[1] // k), max(1, image.shape[0] // k)),
                         interpolation=cv2.INTER_AREA)
        offx, offy = image.shape[1] / img.shape[1], image.shape[0] / img.shape[0]
    # output pixel centre i sits at source x0 + (i + 0.5) * w / ow (continuous coordinates, pixel
    # j spans [j, j+1)); OpenCV puts pixel centres at integers, hence the -0.5
    a = np.array([[box.w / ow / offx, 0, 0], [0, box.h / oh / offy, 0]], np.float64)
    a[0, 2] = (box.x0 / offx) + 0.5 * a[0, 0] - 0.5
    a[1, 2] = (box.y0 / offy) + 0.5 * a[1, 1] - 0.5
    out = cv2.warpAffine(img, a, (ow, oh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.full(img.shape[:2], 255, np.uint8), a, (ow, oh),
                            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    if inside.min() == 0:
        # padded area: the repeated border pixels fade into the border's mean colour (no streaks
        # far from the photo, no hard black bars)
        dist = cv2.distanceTransform((inside == 0).astype(np.uint8), cv2.DIST_L2, 3)
        fade = np.exp(-dist / (0.04 * ow + 1.0))[..., None]
        edge = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).reshape(-1, img.shape[2])
        mean = edge.mean(0).astype(np.float32)
        out = (out * fade + mean * (1 - fade) + 0.5).astype(np.uint8)
    return out


def valid_rect(box: Box, image_wh: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of a crop of ``size = (W, H)`` that shows real pixels (not padding):
    ``(x0, y0, x1, y1)`` in crop pixels, end exclusive."""
    iw, ih = image_wh
    ow, oh = size
    x0 = max(0.0, -box.x0 / box.w * ow)
    y0 = max(0.0, -box.y0 / box.h * oh)
    x1 = min(float(ow), (iw - box.x0) / box.w * ow)
    y1 = min(float(oh), (ih - box.y0) / box.h * oh)
    return int(np.ceil(x0)), int(np.ceil(y0)), int(np.floor(x1)), int(np.floor(y1))


def to_crop_coords(xy_px: np.ndarray, box: Box) -> np.ndarray:
    """Pixels ``[..., 2]`` -> normalized crop coordinates (grid_sample, align_corners=False)."""
    xy = np.asarray(xy_px, np.float64)
    out = np.empty_like(xy)
    out[..., 0] = (xy[..., 0] - box.x0) / box.w * 2 - 1
    out[..., 1] = (xy[..., 1] - box.y0) / box.h * 2 - 1
    return out


def from_crop_coords(xy_crop: np.ndarray, box: Box) -> np.ndarray:
    """Normalized crop coordinates ``[..., 2]`` -> pixels of the source image."""
    xy = np.asarray(xy_crop, np.float64)
    out = np.empty_like(xy)
    out[..., 0] = (xy[..., 0] + 1) / 2 * box.w + box.x0
    out[..., 1] = (xy[..., 1] + 1) / 2 * box.h + box.y0
    return out


def to_crop_space(pts_norm: np.ndarray, img_wh: tuple[int, int], box: Box) -> np.ndarray:
    """Image-normalized landmarks ``[..., >=2]`` (x, y in [0, 1], z in image widths, extra channels
    kept) -> crop coordinates: x, y normalized to the crop, z in the same unit as x."""
    w, h = img_wh
    out = np.array(pts_norm, np.float32, copy=True)
    px = np.stack([out[..., 0] * w, out[..., 1] * h], -1)
    out[..., :2] = to_crop_coords(px, box)
    if out.shape[-1] >= 3:
        out[..., 2] = out[..., 2] * w * 2.0 / box.w
    return out
