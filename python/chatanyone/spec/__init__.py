"""The run-time contract: the numbers, layouts and geometry every part agrees on.

Layer: the bottom of the Python package (above only the native ``_native``/``ops`` layer). Modules
here import numpy and each other, nothing else from chatanyone; everything else may import them.
Offline code (``data/``, ``train/``, ``eval/``) depends on this layer, never the reverse.

- :mod:`.timeline`: sample rate, motion frame rate, the audio feature grid (640 samples a frame,
  4 log-mel frames a frame), sample-rate validation.
- :mod:`.presets`: the frame size of each renderer preset.
- :mod:`.keypoint_layout`: the renderer keypoints (indices, slices, counts, visibility rule).
- :mod:`.motion_layout`: :class:`MotionFrames` (motion as it travels to the Session and the
  renderer), the diffusion vectors, :class:`MotionSpec` (``motion_config.json``).
- :mod:`.head`: canonical face, expression basis, rigid head fit, posing.
- :mod:`.driving`: :class:`SourceState` and :func:`driving_keypoints` (motion + avatar -> keypoints).
"""
from .motion_layout import MotionFrames, MotionSpec

__all__ = ["MotionFrames", "MotionSpec"]
