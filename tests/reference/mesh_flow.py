"""Oracle of chatanyone.ops.mesh_flow in plain numpy, written from its docstring: every pixel
centre is tested against every triangle (slow, obviously right), in int64 and float64.

The rule it implements: snap each dst vertex to 1/256 pixel (pixel (i, j)'s centre at (256 j, 256 i));
a pixel is in a triangle when each of the three edge functions is > 0, or == 0 on a top or left
edge; zero-area triangles cover nothing; the nearest interpolated depth wins, ties to the larger
triangle index; the grid is the barycentric interpolation of the source vertices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def snap(v, size):
    """Normalized coordinate(s) -> pixel coordinate in 1/256 px, rounded to nearest (int64)."""
    q = (np.asarray(v, np.float32).astype(np.float64) + 1.0) * (0.5 * size) - 0.5
    return np.floor(q * 256.0 + 0.5).astype(np.int64)


@dataclass
class MeshFlowRef:
    grid: np.ndarray   # [H, W, 2] float32
    mask: np.ndarray   # [H, W] float32
    owner: np.ndarray  # [H, W] int64, the winning triangle or -1
    count: np.ndarray  # [H, W] int64, how many triangles cover the pixel
    gap: np.ndarray    # [H, W] float64, second-nearest minus nearest depth (inf under < 2 triangles)


def mesh_flow_ref(dst, src, triangles, size, depth=None) -> MeshFlowRef:
    dst = np.asarray(dst, np.float32)
    src = np.asarray(src, np.float32).astype(np.float64)
    tris = np.asarray(triangles, np.int64)
    h, w = size
    py, px = np.meshgrid(np.arange(h, dtype=np.int64) * 256, np.arange(w, dtype=np.int64) * 256, indexing="ij")
    best = np.full((h, w), np.inf)
    second = np.full((h, w), np.inf)
    owner = np.full((h, w), -1, np.int64)
    count = np.zeros((h, w), np.int64)
    lam_best = np.zeros((h, w, 3))
    verts_best = np.zeros((h, w, 3), np.int64)
    for t, idx in enumerate(tris):
        xs, ys = snap(dst[idx, 0], w), snap(dst[idx, 1], h)
        area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (ys[1] - ys[0]) * (xs[2] - xs[0])
        if area == 0:
            continue
        order = [0, 1, 2] if area > 0 else [0, 2, 1]  # make the area positive
        xs, ys, idx, area = xs[order], ys[order], idx[order], abs(area)
        inside = np.ones((h, w), bool)
        e = []
        for k in range(3):
            a, b = (k + 1) % 3, (k + 2) % 3  # edge k faces vertex k
            dx, dy = xs[b] - xs[a], ys[b] - ys[a]
            ek = dx * (py - ys[a]) - dy * (px - xs[a])  # > 0 on the triangle's side
            left_edge = dy < 0           # y grows downwards: the interior lies to the right
            top_edge = dy == 0 and dx > 0  # horizontal with the interior below
            inside &= (ek > 0) | ((ek == 0) & (left_edge or top_edge))
            e.append(ek)
        lam = np.stack(e, -1) / float(area)  # H,W,3 barycentrics
        z = np.zeros((h, w))
        if depth is not None:  # d0 + l1 (d1 - d0) + l2 (d2 - d0): equal depths tie exactly
            d = np.asarray(depth, np.float32).astype(np.float64)[idx]
            z = d[0] + lam[..., 1] * (d[1] - d[0]) + lam[..., 2] * (d[2] - d[0])
        count += inside
        win = inside & (z <= best)  # later triangles win ties
        second = np.where(win, best, np.where(inside, np.minimum(second, z), second))
        best = np.where(win, z, best)
        owner = np.where(win, t, owner)
        lam_best = np.where(win[..., None], lam, lam_best)
        verts_best = np.where(win[..., None], idx, verts_best)
    covered = owner >= 0
    ys_c = (2 * np.arange(h) + 1) / h - 1
    xs_c = (2 * np.arange(w) + 1) / w - 1
    grid = np.stack(np.meshgrid(xs_c, ys_c, indexing="xy"), -1)  # H,W,2 identity
    interp = np.einsum("hwk,hwkc->hwc", lam_best, src[verts_best])
    grid = np.where(covered[..., None], interp, grid)
    with np.errstate(invalid="ignore"):  # inf - inf where nothing covers the pixel
        gap = np.where(np.isinf(second), np.inf, second - best)
    return MeshFlowRef(grid.astype(np.float32), covered.astype(np.float32), owner, count, gap)
