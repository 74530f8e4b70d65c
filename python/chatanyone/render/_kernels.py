"""The three kernels the renderer runs between its ONNX graphs, through ``chatanyone.ops``.

When the native extension cannot be loaded, numpy versions with the same math run instead (slow,
logged once): they keep the renderer usable and are the run-time twins of the PyTorch references
in ``chatanyone.train.render``.

Conventions (docs/design.md): normalized coordinates, ``align_corners=False``; pixel ``j`` of a
width-``W`` map sits at ``x = (2j + 1) / W - 1``. Heatmap of keypoint ``k``:
``w_k * exp(-|p - kp_k|^2 / (2 sigma^2))``. Sparse motion channel 0 is the background (zero
heatmap, identity grid); channel ``k+1`` holds ``H(kp_driving_k) - H(kp_source_k)`` and the grid
``p - kp_driving_k + kp_source_k``.
"""
from __future__ import annotations

import functools
import logging

import numpy as np

log = logging.getLogger("chatanyone")
_native_ok: bool | None = None


def _ops():
    """``chatanyone.ops`` if the native kernels load, else None (logged once)."""
    global _native_ok
    if _native_ok is False:
        return None
    try:
        from chatanyone import ops
        from chatanyone._native import core
        core()
        _native_ok = True
        return ops
    except (ImportError, AttributeError) as exc:
        if _native_ok is None:
            log.warning("renderer: native kernels unavailable (%s); using the slow numpy path", exc)
        _native_ok = False
        return None


def native_available() -> bool:
    return _ops() is not None


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs = (2 * np.arange(width, dtype=np.float32) + 1) / width - 1
    ys = (2 * np.arange(height, dtype=np.float32) + 1) / height - 1
    return xs, ys


@functools.lru_cache(maxsize=16)
def identity_grid(height: int, width: int) -> np.ndarray:
    """``[H, W, 2]`` float32 (x, y) pixel centres. Cached (the renderer asks for the same few sizes
    every frame), so read-only."""
    xs, ys = _coords(height, width)
    g = np.stack(np.meshgrid(xs, ys), -1).astype(np.float32)
    g.flags.writeable = False
    return g


def heatmaps_np(kp, height, width, sigma, weights=None):
    """``kp [N,K,2]`` -> ``[N,K,H,W]`` float32 Gaussian heatmaps."""
    xs, ys = _coords(height, width)
    kp = np.asarray(kp, np.float32)
    gx = np.exp(-(xs[None, None, :] - kp[..., 0:1]) ** 2 / (2 * sigma ** 2))   # [N,K,W]
    gy = np.exp(-(ys[None, None, :] - kp[..., 1:2]) ** 2 / (2 * sigma ** 2))   # [N,K,H]
    out = gy[..., :, None] * gx[..., None, :]
    if weights is not None:
        out = out * np.asarray(weights, np.float32)[..., None, None]
    return out.astype(np.float32)


def sparse_motion_np(kp_source, kp_driving, height, width, sigma, weights=None):
    """``-> (heatmap_diff [N,K+1,H,W], grids [N,K+1,H,W,2])``."""
    kp_source = np.asarray(kp_source, np.float32)
    kp_driving = np.asarray(kp_driving, np.float32)
    n, k = kp_source.shape[:2]
    diff = heatmaps_np(kp_driving, height, width, sigma, weights) - heatmaps_np(kp_source, height, width, sigma, weights)
    hd = np.concatenate([np.zeros((n, 1, height, width), np.float32), diff], 1)
    ident = identity_grid(height, width)
    shift = np.concatenate([np.zeros((n, 1, 2), np.float32), kp_source - kp_driving], 1)  # [N,K+1,2]
    grids = ident[None, None] + shift[:, :, None, None, :]
    return hd, grids.astype(np.float32)


def warp_np(features, grid, padding="zeros", mask=None):
    """Bilinear grid sample, ``align_corners=False``: ``[N,C,H,W]`` by ``[N,Ho,Wo,2]``."""
    n, c, h, w = features.shape
    x = ((grid[..., 0] + 1) * w - 1) / 2
    y = ((grid[..., 1] + 1) * h - 1) / 2
    if padding == "border":
        x = np.clip(x, 0, w - 1)
        y = np.clip(y, 0, h - 1)
    x0 = np.floor(x).astype(np.int64); y0 = np.floor(y).astype(np.int64)
    fx = (x - x0).astype(np.float32); fy = (y - y0).astype(np.float32)
    out = np.zeros((n, c) + grid.shape[1:3], np.float32)
    for b in range(n):
        for dy, wy in ((0, 1 - fy[b]), (1, fy[b])):
            for dx, wx in ((0, 1 - fx[b]), (1, fx[b])):
                yy = y0[b] + dy; xx = x0[b] + dx
                ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                v = features[b][:, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]   # [C,Ho,Wo]
                out[b] += v * (wy * wx * ok)[None]
    if mask is not None:
        m = mask.reshape(n, 1, *grid.shape[1:3])
        out *= m
    return out


def sparse_motion(kp_source, kp_driving, height, width, sigma, weights=None):
    ops = _ops()
    if ops is not None:
        return ops.sparse_motion(kp_source, kp_driving, height, width, sigma, weights=weights)
    return sparse_motion_np(kp_source, kp_driving, height, width, sigma, weights)


def heatmaps(kp, height, width, sigma, weights=None):
    ops = _ops()
    if ops is not None:
        return ops.heatmaps(kp, height, width, sigma, weights=weights)
    return heatmaps_np(kp, height, width, sigma, weights)


def warp(features, grid, *, padding="zeros", mask=None):
    ops = _ops()
    if ops is not None:
        return ops.warp(features, grid, padding=padding, align_corners=False, mask=mask)
    return warp_np(features, grid, padding, mask)


def upsample_grid(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """``grid [N,h,w,2] -> [N,height,width,2]``: the displacement (grid minus identity) resized
    bilinearly (half-pixel centres, as ``F.interpolate(align_corners=False)``), plus the identity
    of the new size. The twin of ``chatanyone.train.render._resize_flow``."""
    import cv2
    grid = np.asarray(grid, np.float32)
    if grid.ndim != 4 or grid.shape[-1] != 2:
        raise ValueError(f"grid: expected [N, h, w, 2], got {list(grid.shape)}")
    n, h, w, _ = grid.shape
    disp = grid - identity_grid(h, w)[None]
    out = np.stack([cv2.resize(d, (width, height), interpolation=cv2.INTER_LINEAR) for d in disp])
    return (out + identity_grid(height, width)[None]).astype(np.float32)


def affine_grids(grids: np.ndarray, kp_drv_ctrl: np.ndarray, affines: np.ndarray, height: int, width: int) -> np.ndarray:
    """Turn the translation grids of ``ops.sparse_motion`` into local affine ones, in place:
    channel ``k+1`` becomes ``c_src_k + A_k (p - c_drv_k)`` (it was ``p + c_src_k - c_drv_k``). ``affines`` from
    :func:`chatanyone.render.keypoints.group_affines`.

    ``grids [N, G+1, h, w, 2]``, ``kp_drv_ctrl [N, G, 2]`` (the driving control points the grids
    were made with), ``affines [N, G, 2, 2]``. Returns ``grids``.
    """
    delta = identity_grid(height, width)[None, None] - np.asarray(kp_drv_ctrl, np.float32)[:, :, None, None, :]
    m = np.asarray(affines, np.float32) - np.eye(2, dtype=np.float32)
    grids[:, 1:] += np.einsum("ngij,nghwj->nghwi", m, delta)
    return grids
