"""Pure-PyTorch / numpy / plain-Python oracles for the native ops (one per kernel), used by tests and
benchmarks. Written from the formulas in chatanyone.ops docstrings, independent of the kernels."""
from .ddim import ddim_sample_ref, ddim_step_ref
from .heatmaps import heatmaps_ref, pixel_centers, sparse_motion_ref
from .mesh_flow import mesh_flow_ref
from .warp import warp_ref

__all__ = ["warp_ref", "heatmaps_ref", "sparse_motion_ref", "pixel_centers", "ddim_step_ref", "ddim_sample_ref",
           "mesh_flow_ref"]
