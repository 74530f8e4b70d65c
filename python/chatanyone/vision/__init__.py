"""Photo and video frames in, landmarks and crops out (run time, layer 2).

- :mod:`.detect`: face mesh, pose and hands in one :class:`~.detect.Detector`, and the filter that
  drops hands without an arm (:func:`~.detect.plausible_hands`).
- :mod:`.landmarks`: mediapipe's models (shipped in ``weights/landmarks``) with the steps around
  them (detectors, regions, crops, tracking); :mod:`.litert` runs TFLite models by LiteRT,
  including the custom operators of the attention face model.
- :mod:`.framing`: the renderer's 2:3 upper-body box, cropping with padding, and image <-> crop
  coordinates (:func:`~.framing.to_crop_space`).

Used by ``Avatar.prepare`` at run time and by the corpus builder offline. May import ``spec``
only (and ai-edge-litert, cv2 when used); see ``design.md``.
"""
