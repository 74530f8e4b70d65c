"""chatanyone.ops.warp against torch.nn.functional.grid_sample (tests/reference/warp.py).

Tolerance: float32 atol 1e-4, rtol 1e-5 on N(0,1) features. Pixel coordinates reach a few hundred,
where one float32 ulp is ~3e-5, so the tap weights of two correct implementations differ by that
much; float16 (CUDA) atol 2e-3, rtol 2e-3 against the float32 reference of the rounded inputs.
"""
import zlib

import numpy as np
import pytest
import torch

from chatanyone import ops
from reference import warp_ref
from reference.devices import DEVICES

F32 = dict(atol=1e-4, rtol=1e-5)


def _gen(*key):
    """A generator seeded from the test's parameters (stable across runs, unlike hash())."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def _grid(gen, shape, spread):
    return (torch.rand(shape, generator=gen) * 2 - 1) * spread  # uniform in [-spread, spread]


# (N, C, H, W, Ho, Wo): 1x1 maps, odd sizes, N > 1, output bigger and smaller than input
SHAPES_2D = [(1, 1, 1, 1, 1, 1), (2, 3, 1, 1, 5, 7), (1, 5, 7, 3, 4, 9), (3, 2, 13, 17, 11, 5),
             (2, 16, 9, 11, 1, 1), (1, 33, 31, 29, 37, 23)]
# (N, C, D, H, W, Do, Ho, Wo)
SHAPES_3D = [(1, 1, 1, 1, 1, 1, 1, 1), (2, 3, 1, 5, 7, 2, 3, 3), (1, 4, 5, 3, 7, 3, 5, 4), (3, 2, 7, 9, 5, 4, 6, 5)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES_2D)
@pytest.mark.parametrize("padding", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("spread", [1.0, 3.5])  # 3.5: grids reaching far outside [-1, 1]
def test_warp_2d_matches_grid_sample(device, shape, padding, align_corners, spread):
    n, c, h, w, ho, wo = shape
    gen = _gen(shape, padding, align_corners, spread)
    x = torch.randn(n, c, h, w, generator=gen).to(device)
    g = _grid(gen, (n, ho, wo, 2), spread).to(device)
    out = ops.warp(x, g, padding=padding, align_corners=align_corners)
    assert out.shape == (n, c, ho, wo) and out.device.type == device and out.dtype == torch.float32
    torch.testing.assert_close(out, warp_ref(x, g, padding=padding, align_corners=align_corners), **F32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES_3D)
@pytest.mark.parametrize("padding", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("spread", [1.0, 3.5])
def test_warp_3d_matches_grid_sample(device, shape, padding, align_corners, spread):
    n, c, d, h, w, do, ho, wo = shape
    gen = _gen(shape, padding, align_corners, spread)
    x = torch.randn(n, c, d, h, w, generator=gen).to(device)
    g = _grid(gen, (n, do, ho, wo, 3), spread).to(device)
    out = ops.warp(x, g, padding=padding, align_corners=align_corners)
    assert out.shape == (n, c, do, ho, wo)
    torch.testing.assert_close(out, warp_ref(x, g, padding=padding, align_corners=align_corners), **F32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_shape", ["n1hw", "nhw"])
def test_warp_fused_mask(device, mask_shape):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 9, 7, generator=gen).to(device)
    g = _grid(gen, (2, 6, 8, 2), 1.2).to(device)
    m = torch.rand(2, 1, 6, 8, generator=gen).to(device)
    mm = m if mask_shape == "n1hw" else m[:, 0].contiguous()
    out = ops.warp(x, g, mask=mm, padding="border")
    torch.testing.assert_close(out, warp_ref(x, g, padding="border", mask=m), **F32)


@pytest.mark.parametrize("device", DEVICES)
def test_warp_3d_fused_mask(device):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 3, 4, 5, 6, generator=gen).to(device)
    g = _grid(gen, (1, 2, 3, 4, 3), 1.2).to(device)
    m = torch.rand(1, 1, 2, 3, 4, generator=gen).to(device)
    torch.testing.assert_close(ops.warp(x, g, mask=m), warp_ref(x, g, mask=m), **F32)


def test_warp_numpy_in_numpy_out():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 6, 5), dtype=np.float32)
    g = rng.uniform(-1.3, 1.3, (1, 3, 8, 2)).astype(np.float32)
    out = ops.warp(x, g, align_corners=True)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    ref = warp_ref(torch.from_numpy(x), torch.from_numpy(g), align_corners=True).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-5)


def test_warp_identity_grid_reproduces_input():
    """Pixel-centre grid with align_corners=False samples each pixel exactly."""
    h, w = 7, 5
    x = torch.randn(1, 3, h, w)
    ys = (2 * torch.arange(h) + 1) / h - 1
    xs = (2 * torch.arange(w) + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    g = torch.stack([gx, gy], -1)[None]  # 1,H,W,2
    torch.testing.assert_close(ops.warp(x, g), x, atol=1e-5, rtol=1e-5)


def test_warp_far_outside_and_nan_grid_is_safe():
    """Huge and NaN coordinates never index out of bounds: zeros padding gives 0 far outside."""
    x = torch.randn(1, 2, 4, 4)
    g = torch.tensor([[[[1e30, 0.0], [-1e30, 0.0], [0.0, 1e9], [float("inf"), float("-inf")]]]])
    out = ops.warp(x, g)
    assert torch.equal(out, torch.zeros_like(out))
    g_nan = torch.full((1, 3, 3, 2), float("nan"))
    for padding in ("zeros", "border"):
        assert ops.warp(x, g_nan, padding=padding).shape == (1, 2, 3, 3)  # defined, finite-size result
    ob = ops.warp(x, g, padding="border")
    torch.testing.assert_close(ob, warp_ref(x, g, padding="border"), **F32)


def test_warp_empty_output():
    x = torch.randn(2, 3, 4, 4)
    out = ops.warp(x, torch.zeros(2, 0, 5, 2))
    assert out.shape == (2, 3, 0, 5)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_warp_thread_counts_agree(threads):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, 7, 19, 23, generator=gen)
    g = _grid(gen, (2, 31, 29, 2), 1.5)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(threads)
        out = ops.warp(x, g)
    finally:
        ops.set_num_threads(before)
    torch.testing.assert_close(out, warp_ref(x, g), **F32)


@pytest.mark.parametrize("device", [p for p in DEVICES if p.id == "cuda"])
@pytest.mark.parametrize("nd", [2, 3])
def test_warp_float16_cuda(device, nd):
    gen = torch.Generator().manual_seed(5)
    if nd == 2:
        x, g = torch.randn(2, 5, 9, 11, generator=gen), _grid(gen, (2, 7, 6, 2), 1.5)
    else:
        x, g = torch.randn(1, 3, 5, 6, 7, generator=gen), _grid(gen, (1, 4, 3, 5, 3), 1.5)
    xh, gh = x.half().to(device), g.half().to(device)
    out = ops.warp(xh, gh)
    assert out.dtype == torch.float16
    ref = warp_ref(xh.float(), gh.float())
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=2e-3)


def test_read_only_inputs_are_accepted_without_copy():
    """Memory-mapped (np.load(mmap_mode='r')) and other read-only arrays are valid inputs."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 5, 6), dtype=np.float32)
    g = rng.uniform(-1, 1, (1, 4, 4, 2)).astype(np.float32)
    m = rng.uniform(0, 1, (1, 4, 4)).astype(np.float32)
    for a in (x, g, m):
        a.setflags(write=False)
    out = ops.warp(x, g, mask=m)
    ref = warp_ref(torch.from_numpy(x.copy()), torch.from_numpy(g.copy()), mask=torch.from_numpy(m.copy()))
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-4, rtol=1e-5)
    kp = np.zeros((1, 2, 2), np.float32)
    kp.setflags(write=False)
    assert ops.heatmaps(kp, 3, 3, 0.5).shape == (1, 2, 3, 3)
    assert ops.sparse_motion(kp, kp, 3, 3, 0.5)[1].shape == (1, 3, 3, 3, 2)
    assert ops.ddim_step(x, x, 0.5, 0.6).shape == x.shape
