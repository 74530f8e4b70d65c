"""chatanyone.ops kernels against torch on the CPU, same run, same thread count.

Run: ``python -m pytest benchmarks/test_bench_ops.py`` (CHATANYONE_BENCH_THREADS=n to pin threads).
Shapes are the renderer's: 2-D warp [1,64,96,64] by [1,192,128,2]; 3-D warp [1,32,16,64,64] by
[1,16,64,64,3]; heatmaps of K=90 keypoints at 96x64. Grids: "flow" is identity plus a smooth
random displacement (what a dense-motion network produces; neighbouring pixels read neighbouring
memory), "random" is uniform in [-1.1, 1.1] (every tap a cache miss: the worst case).
"""
import pytest
import torch
import torch.nn.functional as F

from chatanyone import ops


def flow_grid(shape, amp=0.15, seed=0):
    """Identity grid (pixel centres) plus a smooth random displacement of about `amp`."""
    gen = torch.Generator().manual_seed(seed)
    nd, spatial = shape[-1], shape[1:-1]
    axes = [(2 * torch.arange(s) + 1) / s - 1 for s in spatial]
    identity = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], -1)[None]  # 1,(Do,)Ho,Wo,nd
    coarse = torch.randn((1, nd) + tuple(max(2, s // 16) for s in spatial), generator=gen)
    disp = F.interpolate(coarse, size=spatial, mode="bilinear" if nd == 2 else "trilinear", align_corners=False)
    return (identity + amp * disp.movedim(1, -1)).contiguous()


def random_grid(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2.2 - 1.1


WARPS = {
    "warp2d": ((1, 64, 96, 64), (1, 192, 128, 2)),
    "warp3d": ((1, 32, 16, 64, 64), (1, 16, 64, 64, 3)),
}


@pytest.mark.parametrize("kind", ["flow", "random"])
@pytest.mark.parametrize("op", ["warp2d", "warp3d"])
@pytest.mark.parametrize("impl", ["torch", "chatanyone"])
def test_warp(benchmark, op, kind, impl):
    fshape, gshape = WARPS[op]
    x = torch.randn(fshape, generator=torch.Generator().manual_seed(1))
    g = flow_grid(gshape) if kind == "flow" else random_grid(gshape)
    benchmark.group = f"{op}-{kind}"
    benchmark.name = f"{impl} {op} {kind}"
    if impl == "torch":
        out = benchmark(F.grid_sample, x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    else:
        out = benchmark(ops.warp, x, g)
    torch.testing.assert_close(out, F.grid_sample(x, g, align_corners=False), atol=1e-4, rtol=1e-5)


def heatmaps_torch(kp, h, w, sigma):
    """FOMM's kp2gaussian, vectorized: exp(-0.5 * |grid - kp|^2 / sigma^2) over [N,K,H,W]."""
    ys = (2 * torch.arange(h) + 1) / h - 1
    xs = (2 * torch.arange(w) + 1) / w - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)  # H,W,2 (x, y)
    d = grid[None, None] - kp[:, :, None, None, :]  # N,K,H,W,2
    return torch.exp(-0.5 * (d * d).sum(-1) / sigma**2)


def heatmaps_torch_separable(kp, h, w, sigma):
    """A stronger torch baseline: the same Gaussian as an outer product of x and y factors."""
    ys = (2 * torch.arange(h) + 1) / h - 1
    xs = (2 * torch.arange(w) + 1) / w - 1
    gx = torch.exp(-0.5 * (xs - kp[..., 0:1]) ** 2 / sigma**2)  # N,K,W
    gy = torch.exp(-0.5 * (ys - kp[..., 1:2]) ** 2 / sigma**2)  # N,K,H
    return gy[..., :, None] * gx[..., None, :]


@pytest.mark.parametrize("impl", ["torch", "torch-separable", "chatanyone"])
def test_heatmaps(benchmark, impl):
    kp = torch.rand(1, 90, 2, generator=torch.Generator().manual_seed(2)) * 2.2 - 1.1
    benchmark.group = "heatmaps-K90-96x64"
    benchmark.name = f"{impl} heatmaps"
    fn = {"torch": heatmaps_torch, "torch-separable": heatmaps_torch_separable}.get(impl, ops.heatmaps)
    out = benchmark(fn, kp, 96, 64, 0.1)
    torch.testing.assert_close(out, heatmaps_torch(kp, 96, 64, 0.1), atol=1e-6, rtol=1e-5)


def sparse_motion_torch(ks, kd, h, w, sigma):
    n, k, _ = ks.shape
    diff = heatmaps_torch(kd, h, w, sigma) - heatmaps_torch(ks, h, w, sigma)
    diff = torch.cat([torch.zeros(n, 1, h, w), diff], 1)  # N,K+1,H,W
    ys = (2 * torch.arange(h) + 1) / h - 1
    xs = (2 * torch.arange(w) + 1) / w - 1
    ident = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)[None, None]  # 1,1,H,W,2
    grids = ident - kd[:, :, None, None] + ks[:, :, None, None]  # N,K,H,W,2
    return diff, torch.cat([ident.expand(n, 1, h, w, 2), grids], 1)


@pytest.mark.parametrize("impl", ["torch", "chatanyone"])
def test_sparse_motion(benchmark, impl):
    gen = torch.Generator().manual_seed(3)
    ks, kd = torch.rand(1, 90, 2, generator=gen) * 2 - 1, torch.rand(1, 90, 2, generator=gen) * 2 - 1
    benchmark.group = "sparse_motion-K90-96x64"
    benchmark.name = f"{impl} sparse_motion"
    fn = sparse_motion_torch if impl == "torch" else ops.sparse_motion
    diff, grids = benchmark(fn, ks, kd, 96, 64, 0.1)
    rd, rg = sparse_motion_torch(ks, kd, 96, 64, 0.1)
    torch.testing.assert_close(diff, rd, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grids, rg)


def ddim_step_torch(x, m, a, ap):
    x0 = (x - (1 - a) ** 0.5 * m) / a**0.5
    return ap**0.5 * x0 + (1 - ap) ** 0.5 * m


@pytest.mark.parametrize("impl", ["torch", "chatanyone"])
def test_ddim_step(benchmark, impl):
    gen = torch.Generator().manual_seed(4)
    x, m = torch.randn(4, 100, 256, generator=gen), torch.randn(4, 100, 256, generator=gen)  # B,T,D latents
    benchmark.group = "ddim_step-4x100x256"
    benchmark.name = f"{impl} ddim_step"
    fn = ddim_step_torch if impl == "torch" else ops.ddim_step
    out = benchmark(fn, x, m, 0.3, 0.5)
    torch.testing.assert_close(out, ddim_step_torch(x, m, 0.3, 0.5), atol=1e-5, rtol=1e-5)
