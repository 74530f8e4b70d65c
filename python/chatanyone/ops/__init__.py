"""Native ops: grid-sample warping, keypoint heatmaps, DDIM, mesh rasterization into a flow field
(see docs/design.md, "Native ops").

Layer 0: the bottom; imports only ``chatanyone._native``. Each kernel has one oracle in
tests/reference/, which every test of that math uses.

Every function takes numpy arrays (CPU), torch tensors (CPU or CUDA) or cupy arrays (CUDA), reads
them without copies through DLPack, returns new arrays of the same kind, and blocks until done.
Wrong dtypes, shapes, layouts or devices raise TypeError/ValueError naming the argument.
"""
from .._native import core as _core
from .ddim import ddim_sample, ddim_step
from .heatmaps import heatmaps, sparse_motion
from .mesh_flow import mesh_flow
from .warp import warp

__all__ = ["warp", "heatmaps", "sparse_motion", "ddim_step", "ddim_sample", "mesh_flow", "get_num_threads",
           "set_num_threads"]


def get_num_threads() -> int:
    """Threads the CPU kernels use (default: all cores, or ``CHATANYONE_NUM_THREADS``)."""
    return int(_core().get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the threads the CPU kernels use (>= 1); benchmarks set it equal to torch's."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    _core().set_num_threads(n)
