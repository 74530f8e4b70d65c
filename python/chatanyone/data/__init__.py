"""Real video in: decoding, landmarks, framing, motion features and the training corpus.

Modules: :mod:`.video` (PyAV decoding at a fixed fps, 16 kHz mono audio), :mod:`.detect`
(mediapipe face mesh, pose, hands), :mod:`.framing` (the 2:3 upper-body box), :mod:`.landmarks`
(the renderer's keypoint set), :mod:`.smoothing`, :mod:`.motion` (head pose, expression, eyes,
body, hands), :mod:`.compose` (driving keypoints at run time), :mod:`.corpus` (``prepare-data``).
Heavy dependencies (mediapipe, cv2) load only when used.
"""
from __future__ import annotations

import os

__all__ = ["default_avatar_image", "default_avatar_path"]


def default_avatar_path() -> str:
    """Path of the bundled default portrait: matplotlib's public-domain photo of Grace Hopper
    (512x600, head and shoulders; matplotlib comes with mediapipe)."""
    import matplotlib
    p = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if not os.path.exists(p):  # pragma: no cover - every matplotlib wheel ships it
        raise FileNotFoundError(f"matplotlib's sample photo is missing: {p}")
    return p


def default_avatar_image():
    """The bundled default portrait as RGB ``[600, 512, 3]`` uint8."""
    from ..avatar import load_image
    return load_image(default_avatar_path())
