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
    for h in range(2):
        if not hands_ok[h]:
            continue
        p = (hands[h] + 1.0) * 0.5 * np.array([width, height], np.float32) - 0.5  # [21,2] px
        r = 3.0 * line_px + 1
        x0 = int(max(np.floor(p[:, 0].min() - r), 0)); x1 = int(min(np.ceil(p[:, 0].max() + r) + 1, width))
        y0 = int(max(np.floor(p[:, 1].min() - r), 0)); y1 = int(min(np.ceil(p[:, 1].max() + r) + 1, height))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        q = np.stack([xx.ravel(), yy.ravel()], -1)                      # [P,2]
        a = p[BONES[:, 0]]; b = p[BONES[:, 1]]                          # [B,2]
        ab = b - a
        t = ((q[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-6)[None]
        t = np.clip(t, 0.0, 1.0)                                        # [P,B]
        d2 = ((q[:, None] - (a[None] + t[..., None] * ab[None])) ** 2).sum(-1)
        bones = np.exp(-d2.min(1) / (2 * line_px ** 2))                 # [P]
        dj = ((q[:, None] - p[None]) ** 2).sum(-1)                      # [P,21]
        j = dj.argmin(1)
        joints = np.exp(-dj[np.arange(len(q)), j] / (2 * (1.5 * line_px) ** 2)) * _FINGER_OF[j]
        sl = (slice(y0, y1), slice(x0, x1))
        out[h][sl] = np.maximum(out[h][sl], bones.reshape(y1 - y0, x1 - x0))
        out[2][sl] = np.maximum(out[2][sl], joints.reshape(y1 - y0, x1 - x0))
    return out
