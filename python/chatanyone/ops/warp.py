"""Bilinear grid sampling of feature maps (2-D and 3-D), the renderer's warp."""
from __future__ import annotations

from .._native import core
from ._arrays import check, check_bool, empty, fmt_shape

_PADDING = {"zeros": 0, "border": 1}


def _prod(xs) -> int:
    p = 1
    for x in xs:
        p *= int(x)
    return p


def warp(features, grid, *, padding: str = "zeros", align_corners: bool = False, mask=None):
    """Sample `features` at the normalized positions of `grid`, bilinearly.

    Equal to ``torch.nn.functional.grid_sample(features, grid, mode="bilinear", padding_mode=padding,
    align_corners=align_corners)`` (times `mask` when given), within float32 rounding.

    Args:
        features: ``[N, C, H, W]`` (2-D) or ``[N, C, D, H, W]`` (3-D) float32 array; float16 also on
            CUDA. numpy, torch or cupy, C-contiguous; read without a copy (DLPack).
        grid: ``[N, Ho, Wo, 2]`` (2-D, last axis x, y) or ``[N, Do, Ho, Wo, 3]`` (3-D, x, y, z), same
            dtype and device as `features`. -1 and 1 are the edges of the input (``align_corners=False``:
            the outer pixel edges; ``True``: the outer pixel centres). Any value is allowed, NaN too:
            what falls outside reads zeros (``padding="zeros"``) or the nearest edge (``"border"``).
        padding: ``"zeros"`` or ``"border"``.
        align_corners: as in ``grid_sample``.
        mask: optional occlusion mask ``[N, 1, Ho, Wo]`` or ``[N, Ho, Wo]`` (3-D: ``[N, 1, Do, Ho, Wo]``
            or ``[N, Do, Ho, Wo]``), same dtype and device; the result is multiplied by it, fused.

    Returns:
        ``[N, C, Ho, Wo]`` or ``[N, C, Do, Ho, Wo]``, a new array of the same framework, dtype and device.

    Blocks until the result is ready (CUDA: runs on the default stream and synchronizes it). The
    GIL is released while the kernel runs; CPU work uses ``chatanyone.ops.get_num_threads()`` threads.
    """
    fi = check(features, "features", f16_on_cuda=True, ndim=(4, 5))
    nd = len(fi.shape) - 2
    gi = check(grid, "grid", f16_on_cuda=True, ndim=nd + 2, ref=fi, ref_name="features")
    n, c = fi.shape[:2]
    want = "[N, Ho, Wo, 2]" if nd == 2 else "[N, Do, Ho, Wo, 3]"
    if gi.shape[0] != n or gi.shape[-1] != nd:
        raise ValueError(f"grid: expected {want} with N={n} for features of shape {fmt_shape(fi.shape)}, "
                         f"got {fmt_shape(gi.shape)}")
    out_spatial = tuple(gi.shape[1:-1])
    if 0 in fi.shape[2:] and n * c * _prod(out_spatial) > 0:  # nothing to sample from
        raise ValueError(f"features: expected non-empty spatial dimensions, got {fmt_shape(fi.shape)}")
    if padding not in _PADDING:
        raise ValueError(f"padding: expected 'zeros' or 'border', got {padding!r}")
    align_corners = check_bool(align_corners, "align_corners")
    if mask is not None:
        mi = check(mask, "mask", f16_on_cuda=True, ref=fi, ref_name="features")
        if tuple(mi.shape) not in ((n, 1) + out_spatial, (n,) + out_spatial):
            raise ValueError(f"mask: expected {fmt_shape((n, 1) + out_spatial)} or {fmt_shape((n,) + out_spatial)}, "
                             f"got {fmt_shape(mi.shape)}")
    out = empty(features, fi, (n, c) + out_spatial)
    core().warp(features, grid, mask, out, _PADDING[padding], align_corners)
    return out
