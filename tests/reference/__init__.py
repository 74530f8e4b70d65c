"""Pure-PyTorch / numpy / plain-Python oracles, one per kernel, used by every test of that math
(native kernels, the run-time numpy fallbacks, the training-side PyTorch versions) and by the
benchmarks. Written from the formulas in chatanyone.ops docstrings, independent of the code they
check.

The DDIM and mesh-flow oracles are numpy only; the heatmap and warp oracles need torch (import
them from their modules, or from here: they load on first use).
"""
from .ddim import ddim_sample_ref, ddim_step_ref
from .mesh_flow import mesh_flow_ref

__all__ = ["warp_ref", "heatmaps_ref", "sparse_motion_ref", "pixel_centers", "ddim_step_ref", "ddim_sample_ref",
           "mesh_flow_ref"]


def __getattr__(name):
    if name in ("heatmaps_ref", "sparse_motion_ref", "pixel_centers"):
        from . import heatmaps
        return getattr(heatmaps, name)
    if name == "warp_ref":
        from .warp import warp_ref
        return warp_ref
    raise AttributeError(name)
