"""Triangle-mesh rasterization into a backward flow field (the geometry-first renderer's warp)."""
from __future__ import annotations

from .._native import core
from ._arrays import check, empty, fmt_shape, info

_GUARD_PX = 2**20  # vertices farther than this from the image would overflow the int64 edge functions


def _check_size(size) -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"size: expected a (height, width) pair of ints, got {size!r}")
    out = []
    for v, what in zip(size, ("height", "width")):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"size: expected int {what}, got {type(v).__name__}")
        v = int(v)
        if not 1 <= v <= _GUARD_PX:
            raise ValueError(f"size: expected a {what} in [1, 2**20], got {v}")
        out.append(v)
    return out[0], out[1]


def mesh_flow(dst_vertices, src_vertices, triangles, size, *, depth=None):
    """Rasterize a triangle mesh into a backward flow field: where the output pixel lies in the
    driving mesh, where to read it from in the source image.

    Coordinates are normalized as for :func:`warp` / ``grid_sample`` with ``align_corners=False``:
    x in [-1, 1] left to right, y in [-1, 1] top to bottom; pixel (i, j)'s centre is
    ``x = -1 + (2 j + 1) / W``, ``y = -1 + (2 i + 1) / H``.

    A pixel is covered by a triangle of `dst_vertices` when its centre lies inside it or on one of
    its top or left edges (the rasterization rule of GPUs: an edge shared by two triangles is
    covered exactly once, so a mesh has neither cracks nor double cover). Vertices are first
    snapped to 1/256 pixel, which makes the test exact; triangles of zero area after snapping are
    skipped, and either winding is accepted. Where triangles overlap, the one whose interpolated
    `depth` at the pixel centre is smallest wins; ties, and every overlap when `depth` is None,
    go to the larger triangle index. The result is deterministic and the same on CPU and CUDA.

    Args:
        dst_vertices: ``[V, 2]`` float32 (x, y), the mesh in the output (driving) image. Finite and
            within ``2**20`` pixels of the image (``|x| <= 2**21 / W - 2``, same for y with H).
        src_vertices: ``[V, 2]`` float32 (x, y), the same vertices in the source image; any values.
        triangles: ``[T, 3]`` int32 vertex indices in ``[0, V)``.
        size: ``(H, W)`` of the output, each in ``[1, 2**20]``.
        depth: optional ``[V]`` float32 finite per-vertex depth of `dst_vertices` (smaller = nearer).

    All arrays are numpy (CPU), torch (CPU or CUDA) or cupy (CUDA), on one device, C-contiguous;
    they are read without copies (DLPack).

    Returns:
        ``(grid, mask)``: ``grid [H, W, 2]`` float32, for a covered pixel the barycentric
        interpolation of `src_vertices` over the winning triangle (snapped dst geometry), else the
        pixel's own centre (the identity), ready for ``warp(image, grid[None])``; ``mask [H, W]``
        float32, 1 where covered, 0 elsewhere. New arrays of the inputs' framework and device.

    Blocks until the result is ready. The arguments are validated on the host first: for CUDA
    arrays that reads the index range and the largest vertex and depth value back (a few bytes,
    synchronizing the default stream). The GIL is released while the kernel runs; CPU work uses
    ``chatanyone.ops.get_num_threads()`` threads.
    """
    di = check(dst_vertices, "dst_vertices", ndim=2)
    if di.shape[1] != 2:
        raise ValueError(f"dst_vertices: expected [V, 2] (x, y), got {fmt_shape(di.shape)}")
    v = di.shape[0]
    si = check(src_vertices, "src_vertices", ndim=2, ref=di, ref_name="dst_vertices")
    if si.shape != di.shape:
        raise ValueError(f"src_vertices: expected {fmt_shape(di.shape)} like dst_vertices, got {fmt_shape(si.shape)}")
    ti = info(triangles, "triangles")
    if ti.framework != di.framework or ti.device != di.device:
        raise ValueError(f"triangles: expected a {di.framework} array on {di.device} like dst_vertices, "
                         f"got a {ti.framework} array on {ti.device}")
    if ti.dtype != "int32":
        raise TypeError(f"triangles: expected dtype int32, got {ti.dtype}")
    if len(ti.shape) != 2 or ti.shape[1] != 3:
        raise ValueError(f"triangles: expected [T, 3], got {fmt_shape(ti.shape)}")
    if not ti.contiguous:
        raise ValueError("triangles: expected a C-contiguous array, got a strided view; call "
                         "np.ascontiguousarray(...) or .contiguous() first")
    h, w = _check_size(size)
    if depth is not None:
        zi = check(depth, "depth", ndim=1, ref=di, ref_name="dst_vertices")
        if zi.shape != (v,):
            raise ValueError(f"depth: expected [{v}] (one per vertex), got {fmt_shape(zi.shape)}")
    if ti.shape[0] > 0:
        lo, hi = int(triangles.min()), int(triangles.max())
        if lo < 0 or hi >= v:
            raise ValueError(f"triangles: expected vertex indices in [0, {v}), got values from {lo} to {hi}")
    if v > 0:
        lim_x, lim_y = 2**21 / w - 2, 2**21 / h - 2
        mx, my = float(abs(dst_vertices[:, 0]).max()), float(abs(dst_vertices[:, 1]).max())
        if not (mx <= lim_x and my <= lim_y):
            raise ValueError(f"dst_vertices: expected finite coordinates within 2**20 pixels of the output "
                             f"(|x| <= {lim_x:.6g}, |y| <= {lim_y:.6g}), got max |x| {mx}, max |y| {my}")
        if depth is not None:
            mz = float(abs(depth).max())
            if not mz <= 3e38:
                raise ValueError(f"depth: expected finite values, got max |depth| {mz}")
    grid = empty(dst_vertices, di, (h, w, 2), "float32")
    mask = empty(dst_vertices, di, (h, w), "float32")
    core().mesh_flow(dst_vertices, src_vertices, triangles, depth, grid, mask)
    return grid, mask
