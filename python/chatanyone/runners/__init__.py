"""ONNX Runtime runners, one class per ONNX graph (see :class:`base.OnnxRunner`)."""
from .base import OnnxRunner, available_providers, choose_providers

__all__ = ["OnnxRunner", "available_providers", "choose_providers"]
