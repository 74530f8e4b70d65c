"""The renderer: hybrid-control warping generator with face refine and hand injection.

``Renderer(preset="fast")``: ``prepare_source(crop, kp, vis) -> cache`` once per avatar, then
``render(cache, kp_driving, vis) -> uint8 [H, W, 3]`` per frame. See ``design.md`` in this folder.
"""
from .presets import PRESETS, RenderPreset, get_preset

__all__ = ["Renderer", "RenderPreset", "PRESETS", "get_preset"]


def __getattr__(name):  # lazy: onnxruntime is imported only when a Renderer is built
    if name == "Renderer":
        from .renderer import Renderer
        return Renderer
    raise AttributeError(f"module 'chatanyone.render' has no attribute {name!r}")
