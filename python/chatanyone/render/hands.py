"""Rasterize the driving hands into a small image: the hand image injected into the decoder.

The same numpy code builds the training inputs and the run-time input, so both see identical
pixels. Three channels at the decoder's 1/2 resolution: bones of the image-left hand slot (corpus
hand 0), bones of hand 1, and joints whose brightness codes the finger (thumb darkest), so the
decoder can tell fingers apart.
"""
from __future__ import annotations

import numpy as np

# mediapipe hand skeleton: 5 fingers of 4 bones from the wrist, plus the palm arc
_FINGERS = [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16], [0, 17, 18, 19, 20]]
BONES = np.array([(f[i], f[i + 1]) for f in _FINGERS for i in range(4)] + [(5, 9), (9, 13), (13, 17)])
_FINGER_OF = np.zeros(21, np.float32)
for _fi, _f in enumerate(_FINGERS):
    _FINGER_OF[_f[1:]] = (_fi + 1) / 5.0
_FINGER_OF[0] = 0.6


def rasterize_hands(hands: np.ndarray, hands_ok: np.ndarray, height: int, width: int,
                    line_px: float = 1.0) -> np.ndarray:
    """Draw both hands.

    Args:
        hands: ``[2, 21, 2]`` hand keypoints in normalized crop coordinates (align_corners=False).
        hands_ok: ``[2]``; a hand with 0 is not drawn.
        height, width: output size (the preset's half resolution).
        line_px: Gaussian line half-width in output pixels.
    Returns:
        ``[3, height, width]`` float32 in [0, 1].
    """
    out = np.zeros((3, height, width), np.float32)
    hands = np.asarray(hands, np.float32)
    r = int(np.ceil(3.0 * line_px)) + 1
    scale = np.array([width, height], np.float32)
    for h in range(2):
        if not hands_ok[h]:
            continue
        p = (hands[h] + 1.0) * 0.5 * scale - 0.5                     # [21,2] px
        for i, j in BONES:   # each bone in its own small box
            a, b = p[i], p[j]
            x0, y0 = np.maximum(np.floor(np.minimum(a, b)) - r, 0).astype(int)
            x1 = int(min(np.ceil(max(a[0], b[0])) + r + 1, width))
            y1 = int(min(np.ceil(max(a[1], b[1])) + r + 1, height))
            if x1 <= x0 or y1 <= y0:
                continue
            xx = np.arange(x0, x1, dtype=np.float32)[None, :]
            yy = np.arange(y0, y1, dtype=np.float32)[:, None]
            ab = b - a
            t = ((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-6)
            t = np.clip(t, 0.0, 1.0)
            d2 = (xx - a[0] - t * ab[0]) ** 2 + (yy - a[1] - t * ab[1]) ** 2
            sl = out[h, y0:y1, x0:x1]
            np.maximum(sl, np.exp(-d2 / (2 * line_px ** 2)), out=sl)
        rj = int(np.ceil(4.5 * line_px)) + 1
        for k in range(21):
            x0, y0 = np.maximum(np.floor(p[k]) - rj, 0).astype(int)
            x1 = int(min(np.ceil(p[k, 0]) + rj + 1, width))
            y1 = int(min(np.ceil(p[k, 1]) + rj + 1, height))
            if x1 <= x0 or y1 <= y0:
                continue
            xx = np.arange(x0, x1, dtype=np.float32)[None, :]
            yy = np.arange(y0, y1, dtype=np.float32)[:, None]
            d2 = (xx - p[k, 0]) ** 2 + (yy - p[k, 1]) ** 2
            sl = out[2, y0:y1, x0:x1]
            np.maximum(sl, np.exp(-d2 / (2 * (1.5 * line_px) ** 2)) * _FINGER_OF[k], out=sl)
    return out
