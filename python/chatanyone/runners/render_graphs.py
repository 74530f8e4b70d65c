"""Runners of the renderer's four ONNX graphs (``weights/render_<preset>_*.onnx``).

Native kernels run between them (see ``chatanyone.render.renderer``): the graphs never need a
custom op. All arrays are float32, batch 1.
"""
from __future__ import annotations

import numpy as np

from .base import OnnxRunner


class _RenderGraph(OnnxRunner):
    part = ""

    def __init__(self, preset: str = "fast", path=None, **kw):
        self.model_name = f"render_{preset}_{self.part}.onnx"
        super().__init__(path, **kw)


class AppearanceEncoderRunner(_RenderGraph):
    """Graph A, once per avatar: ``image [1,3,H,W]`` in [0,1] ->
    ``(feat_h [1,Ch,H/2,W/2], feat_q [1,Cq,H/4,W/4], image_q [1,3,H/4,W/4])``."""
    part = "encoder"

    def __call__(self, image: np.ndarray):
        return self.run({"image": image})


class FaceRefineRunner(_RenderGraph):
    """Graph R: ``c_src, c_drv [1,G,2]``, ``w_src, w_drv [1,G]`` -> ``(d_src, d_drv [1,G,2])``, the
    learned offsets of the control points (facial refine for the driving face, body offsets for both)."""
    part = "refine"

    def __call__(self, c_src, c_drv, w_src, w_drv):
        return self.run({"c_src": c_src, "c_drv": c_drv, "w_src": w_src, "w_drv": w_drv})


class DenseMotionRunner(_RenderGraph):
    """Graph B: ``heatmap_diff [1,G+1,h,w]``, ``deformed [1,3(G+1),h,w]``, ``grids [1,G+1,h,w,2]``,
    ``heat_drv [1,G+1,h,w]`` (driving heatmaps, zero background channel; 1/4 res) ->
    ``(grid_q [1,h,w,2], grid_h [1,2h,2w,2], grid_f [1,4h,4w,2], occ_q [1,1,h,w], occ_h [1,1,2h,2w])``."""
    part = "motion"

    def __call__(self, heatmap_diff, deformed, grids, heat_drv):
        return self.run({"heatmap_diff": heatmap_diff, "deformed": deformed, "grids": grids,
                         "heat_drv": heat_drv})


class DecoderRunner(_RenderGraph):
    """Graph C: ``warped_q [1,Cq,h,w]``, ``warped_h [1,Ch,2h,2w]``, ``warped_image [1,3,H,W]``,
    ``hand [1,3,H/2,W/2]`` -> ``(image [1,3,H,W] in [0,1], gate [1,1,H,W])`` (the gate: where the
    decoder's own RGB replaced the warped source; the quality preset's detail stage uses it)."""
    part = "decoder"

    def __call__(self, warped_q, warped_h, warped_image, hand):
        image, gate = self.run({"warped_q": warped_q, "warped_h": warped_h, "warped_image": warped_image,
                                "hand": hand})
        return image, gate


class DetailRunner(_RenderGraph):
    """Graph D of a preset with a core (quality): ``core_image [1,3,h,w]``, ``core_gate [1,1,h,w]``
    (the core's decoder outputs) and ``warped_full [1,3,2h,2w]`` (the full-size source warped by
    the core's flow) -> ``image [1,3,2h,2w]``."""
    part = "detail"

    def __call__(self, core_image, core_gate, warped_full):
        return self.run({"core_image": core_image, "core_gate": core_gate, "warped_full": warped_full})[0]
