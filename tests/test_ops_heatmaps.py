"""chatanyone.ops.heatmaps / sparse_motion against the float64 torch references
(tests/reference/heatmaps.py). Tolerance: atol 1e-6, rtol 1e-5 (values in [0, 1]; the kernel
multiplies two float32 exps where the reference takes one float64 exp)."""
import zlib

import numpy as np
import pytest
import torch

from chatanyone import ops
from reference import heatmaps_ref, pixel_centers, sparse_motion_ref
from reference.devices import DEVICES

TOL = dict(atol=1e-6, rtol=1e-5)
# (N, K, H, W): 1x1 maps, one keypoint, odd sizes, N > 1
SHAPES = [(1, 1, 1, 1), (2, 3, 1, 5), (1, 4, 7, 1), (3, 5, 13, 11), (2, 90, 24, 16)]


def _kp(key, n, k, spread=1.6):
    gen = torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))
    return (torch.rand(n, k, 2, generator=gen) * 2 - 1) * spread, torch.rand(n, k, generator=gen)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.7])
@pytest.mark.parametrize("weighted", [False, True])
def test_heatmaps_match_reference(device, shape, sigma, weighted):
    n, k, h, w = shape
    kp, wt = _kp((shape, sigma, weighted), n, k)  # spread 1.6: some keypoints off the map
    kp, wt = kp.to(device), wt.to(device)
    out = ops.heatmaps(kp, h, w, sigma, weights=wt if weighted else None)
    assert out.shape == (n, k, h, w) and out.device.type == device
    torch.testing.assert_close(out, heatmaps_ref(kp, h, w, sigma, wt if weighted else None), **TOL)


def test_heatmap_peak_at_keypoint_pixel_centre():
    """A keypoint on the centre of pixel (row 2, col 3) gives exactly 1 there and < 1 elsewhere."""
    h, w = 5, 7
    kp = torch.tensor([[[float(pixel_centers(w)[3]), float(pixel_centers(h)[2])]]])
    out = ops.heatmaps(kp, h, w, 0.2)[0, 0]
    assert out[2, 3] == pytest.approx(1.0, abs=1e-7)
    assert int(out.argmax()) == 2 * w + 3
    assert float(out.flatten().sort().values[-2]) < 1.0


def test_heatmap_far_off_map_is_zero():
    kp = torch.tensor([[[50.0, -40.0]]])
    assert torch.count_nonzero(ops.heatmaps(kp, 9, 9, 0.1)) == 0


def test_heatmaps_numpy():
    kp = np.array([[[0.1, -0.2], [2.0, 2.0]]], np.float32)
    out = ops.heatmaps(kp, 6, 4, 0.3, weights=np.array([[1.0, 0.5]], np.float32))
    assert isinstance(out, np.ndarray)
    ref = heatmaps_ref(torch.from_numpy(kp), 6, 4, 0.3, torch.tensor([[1.0, 0.5]])).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_motion_matches_reference(device, shape, weighted):
    n, k, h, w = shape
    ks, wt = _kp(("s", shape, weighted), n, k)
    kd, _ = _kp(("d", shape, weighted), n, k)
    ks, kd, wt = ks.to(device), kd.to(device), wt.to(device)
    diff, grids = ops.sparse_motion(ks, kd, h, w, 0.1, weights=wt if weighted else None)
    rdiff, rgrids = sparse_motion_ref(ks, kd, h, w, 0.1, wt if weighted else None)
    assert diff.shape == (n, k + 1, h, w) and grids.shape == (n, k + 1, h, w, 2)
    torch.testing.assert_close(diff, rdiff, **TOL)
    torch.testing.assert_close(grids, rgrids, atol=1e-6, rtol=1e-6)
    assert torch.count_nonzero(diff[:, 0]) == 0  # background channel


def test_sparse_motion_grid_moves_source_keypoint_onto_driving():
    """Warping the source with grid k moves what sat at kp_source[k] to kp_driving[k]."""
    h, w = 16, 16
    src = torch.zeros(1, 1, h, w)
    src[0, 0, 3, 4] = 1.0  # a bright pixel at row 3, col 4
    ks = torch.tensor([[[float(pixel_centers(w)[4]), float(pixel_centers(h)[3])]]])
    kd = torch.tensor([[[float(pixel_centers(w)[10]), float(pixel_centers(h)[12])]]])
    _, grids = ops.sparse_motion(ks, kd, h, w, 0.1)
    warped = ops.warp(src, grids[:, 1].contiguous())  # [1,1,H,W]
    assert int(warped.flatten().argmax()) == 12 * w + 10
    assert float(warped.max()) == pytest.approx(1.0, abs=1e-5)
