"""Gaussian keypoint heatmaps and the sparse-motion inputs of a dense-motion network."""
from __future__ import annotations

from .._native import core
from ._arrays import check, check_float, check_int, empty, fmt_shape


def _check_kp(kp, name, ref=None, ref_name=""):
    i = check(kp, name, ndim=3, ref=ref, ref_name=ref_name)
    if i.shape[2] != 2:
        raise ValueError(f"{name}: expected [N, K, 2] (x, y), got {fmt_shape(i.shape)}")
    return i


def _check_weights(weights, ki, ref_name):
    if weights is None:
        return
    wi = check(weights, "weights", ref=ki, ref_name=ref_name)
    if wi.shape != ki.shape[:2]:
        raise ValueError(f"weights: expected {fmt_shape(ki.shape[:2])} ([N, K]), got {fmt_shape(wi.shape)}")


def heatmaps(kp, height: int, width: int, sigma: float, *, weights=None):
    """Gaussian heatmaps of K keypoints on an ``height x width`` grid.

    ``out[n, k, i, j] = w[n, k] * exp(-((x_j - kp[n, k, 0])**2 + (y_i - kp[n, k, 1])**2) / (2 * sigma**2))``
    where ``x_j = (2 j + 1) / width - 1`` and ``y_i = (2 i + 1) / height - 1`` are the pixel centres in
    normalized coordinates (the ``align_corners=False`` convention of ``grid_sample`` and of the
    keypoints, see docs/design.md), and ``w = weights`` or 1. Computed as the product of the x and y
    factors (separable), which equals the formula within float32 rounding. Keypoints off the map
    (|x| > 1) simply give faint or zero maps.

    Args:
        kp: ``[N, K, 2]`` float32 (x, y) in normalized coordinates; numpy, torch or cupy.
        height, width: output size in pixels (>= 1).
        sigma: standard deviation in normalized units (> 0); FOMM's ``kp_variance=0.01`` is ``sigma=0.1``.
        weights: optional ``[N, K]`` float32 per-keypoint weights (e.g. visibility 0/1).

    Returns:
        ``[N, K, height, width]`` float32, a new array of `kp`'s framework and device. Blocks until ready.
    """
    ki = _check_kp(kp, "kp")
    height = check_int(height, "height")
    width = check_int(width, "width")
    sigma = check_float(sigma, "sigma", positive=True)
    _check_weights(weights, ki, "kp")
    n, k = ki.shape[:2]
    out = empty(kp, ki, (n, k, height, width), "float32")
    core().heatmaps(kp, weights, out, sigma)
    return out


def sparse_motion(kp_source, kp_driving, height: int, width: int, sigma: float, *, weights=None):
    """Sparse-motion inputs of a first-order-motion-model dense-motion network.

    With ``heat(kp)`` as in :func:`heatmaps` (same `sigma` and `weights`) and the identity grid
    ``identity[i, j] = (x_j, y_i)`` (pixel centres, ``align_corners=False``):

    - ``heatmap_diff[:, 0] = 0`` (background) and
      ``heatmap_diff[:, 1 + k] = heat(kp_driving)[:, k] - heat(kp_source)[:, k]``;
    - ``grids[:, 0] = identity`` (background) and
      ``grids[:, 1 + k] = identity - kp_driving[:, k] + kp_source[:, k]``, i.e. each driving pixel
      mapped to the source by the translation of keypoint k (FOMM's ``driving_to_source`` without
      jacobians). Sample the source with :func:`warp` (``align_corners=False``) at these grids.

    Args:
        kp_source, kp_driving: ``[N, K, 2]`` float32 (x, y) normalized, same framework and device.
        height, width: output size in pixels (>= 1).
        sigma: Gaussian standard deviation in normalized units (> 0).
        weights: optional ``[N, K]`` float32; scales both heatmaps of keypoint k (not the grids).

    Returns:
        ``(heatmap_diff [N, K+1, H, W], grids [N, K+1, H, W, 2])``, float32, new arrays. Blocks until ready.
    """
    si = _check_kp(kp_source, "kp_source")
    di = _check_kp(kp_driving, "kp_driving", ref=si, ref_name="kp_source")
    if di.shape != si.shape:
        raise ValueError(f"kp_driving: expected the shape of kp_source {fmt_shape(si.shape)}, "
                         f"got {fmt_shape(di.shape)}")
    height = check_int(height, "height")
    width = check_int(width, "width")
    sigma = check_float(sigma, "sigma", positive=True)
    _check_weights(weights, si, "kp_source")
    n, k = si.shape[:2]
    diff = empty(kp_source, si, (n, k + 1, height, width), "float32")
    grids = empty(kp_source, si, (n, k + 1, height, width, 2), "float32")
    core().sparse_motion(kp_source, kp_driving, weights, diff, grids, sigma)
    return diff, grids
