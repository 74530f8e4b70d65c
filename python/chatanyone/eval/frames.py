"""Which pixels of a rendered frame are real, and the real frame seen the same way.

A Session's frame is either the avatar's crop at the preset's size (``Avatar.box`` in the photo,
padded where the box leaves the photo) or the photo itself at its own aspect ratio (paste-back). The
evaluations compare real pixels only, so for a frame of a given size they need:

- :func:`valid_region`: the rectangle of the frame that shows the photo (not padding);
- :func:`real_view`: a real video frame (the photo's size) mapped onto the rendered frame's pixels.

The kind of frame is recognized from its size, so the evaluations keep working when the renderer's
frame size changes.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("chatanyone")

Region = tuple  # (x0, y0, x1, y1) in frame pixels, end exclusive


def _layout(avatar, frame_hw: tuple[int, int]) -> str:
    """``"crop"`` (the avatar's box at some size) or ``"photo"`` (the photo at its aspect ratio)."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    iw, ih = avatar.image_size
    photo_like = abs(w / h - iw / ih) <= 0.02 * iw / ih
    if photo_like and getattr(avatar, "region", None) is not None:
        return "photo"    # an avatar with an animated region: frames are its photo (paste-back)
    crops = [getattr(avatar, k, None) for k in ("crop", "crop_hq")]
    if any(c is not None and tuple(c.shape[:2]) == (h, w) for c in crops):
        return "crop"
    if photo_like:
        return "photo"
    box = getattr(avatar, "box", None)
    if box is not None and abs(w / h - box[2] / box[3]) <= 0.02 * box[2] / box[3]:
        return "crop"
    raise ValueError(f"a {w}x{h} frame is neither the avatar's crop nor its {iw}x{ih} photo: "
                     "cannot tell which pixels are real")


def valid_region(avatar, frame_hw: tuple[int, int]) -> Region:
    """``(x0, y0, x1, y1)`` of a ``frame_hw = (H, W)`` frame rendered for ``avatar`` that shows the
    photo's real pixels (the whole frame unless the renderer pads)."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    if _layout(avatar, (h, w)) == "photo":
        return 0, 0, w, h
    from ..vision import framing
    x0, y0, x1, y1 = framing.valid_rect(framing.Box.from_array(avatar.box), tuple(avatar.image_size), (w, h))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise ValueError("the avatar's frame shows almost none of its photo")
    return x0, y0, x1, y1


def real_view(avatar, real: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """A real frame ``[ih, iw, 3]`` (the avatar photo's size: the driving video in
    self-reenactment) as it appears in a ``frame_hw`` rendered frame: the same crop, or the same
    resize. Returns ``[H, W, 3]`` uint8."""
    import cv2
    h, w = int(frame_hw[0]), int(frame_hw[1])
    iw, ih = avatar.image_size
    if real.shape[:2] != (ih, iw):
        real = cv2.resize(real, (iw, ih), interpolation=cv2.INTER_AREA)
    if _layout(avatar, (h, w)) == "photo":
        if (h, w) == real.shape[:2]:
            return real
        interp = cv2.INTER_AREA if w < iw else cv2.INTER_LINEAR
        return cv2.resize(real, (w, h), interpolation=interp)
    from ..vision import framing
    return framing.crop(real, framing.Box.from_array(avatar.box), (w, h))


def photo_to_frame(avatar, xy_px: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Points ``[..., 2]`` in the photo's pixels -> the same points in a ``frame_hw`` rendered
    frame's pixels (through the crop box, or the resize)."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    xy = np.array(xy_px, np.float64, copy=True)
    if _layout(avatar, (h, w)) == "photo":
        iw, ih = avatar.image_size
        xy[..., 0] *= w / iw
        xy[..., 1] *= h / ih
        return xy
    x0, y0, bw, bh = np.asarray(avatar.box, np.float64)
    xy[..., 0] = (xy[..., 0] - x0) / bw * w
    xy[..., 1] = (xy[..., 1] - y0) / bh * h
    return xy
