"""ONNX Runtime runners, one class per ONNX graph (see :class:`base.OnnxRunner`):
:mod:`.motion_graphs` (the motion denoisers and the style encoder), :mod:`.render_graphs` (the
renderer's four graphs and the detail stage).

Layer 2 (run time): imports nothing else of chatanyone (a device is passed in already parsed);
``motion`` and ``render`` build on it (docs/design.md, "Layers")."""
from .base import OnnxRunner, available_providers, choose_providers

__all__ = ["OnnxRunner", "available_providers", "choose_providers"]
