"""Check every CUDA kernel of chatanyone.ops against its CPU path, time them, then check frames
on the GPU (DLPack) and time the Session per preset.

Run through benchmarks/gpu_check.sh (which builds with CUDA first), or alone on an installed CUDA
build: ``python benchmarks/gpu_check.py``. Exits 1 on any mismatch, 2 when no CUDA is usable.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

import chatanyone
from chatanyone import ops

failures: list[str] = []


def check(name, got, want, atol, rtol=1e-5):
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    err = (got - want).abs().max().item() if got.numel() else 0.0
    ok = got.shape == want.shape and torch.allclose(got, want, atol=atol, rtol=rtol)
    print(f"  {'ok  ' if ok else 'FAIL'} {name:<58} max abs err {err:.2e}")
    if not ok:
        failures.append(name)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def check_warp():
    print("warp (CUDA vs CPU; float16 vs CPU float32 of the rounded inputs)")
    cases = [((2, 5, 9, 7), (2, 6, 8, 2)), ((1, 1, 1, 1), (1, 3, 3, 2)), ((1, 64, 96, 64), (1, 192, 128, 2)),
             ((2, 3, 5, 6, 7), (2, 4, 5, 3, 3)), ((1, 32, 16, 64, 64), (1, 16, 64, 64, 3))]
    for i, (fs, gs) in enumerate(cases):
        x = torch.randn(fs, generator=gen(i))
        g = (torch.rand(gs, generator=gen(100 + i)) * 2 - 1) * 1.8
        m = torch.rand((gs[0],) + gs[1:-1], generator=gen(200 + i))
        for padding in ("zeros", "border"):
            for ac in (False, True):
                for mask in (None, m):
                    cpu = ops.warp(x, g, padding=padding, align_corners=ac, mask=mask)
                    gpu = ops.warp(x.cuda(), g.cuda(), padding=padding, align_corners=ac,
                                   mask=None if mask is None else mask.cuda())
                    check(f"warp {list(fs)} {padding} ac={ac} mask={mask is not None}", gpu, cpu, atol=1e-4)
        xh, gh = x.half(), g.half()
        cpu = ops.warp(xh.float(), gh.float())
        check(f"warp float16 {list(fs)}", ops.warp(xh.cuda(), gh.cuda()), cpu, atol=3e-3, rtol=3e-3)
        check(f"warp vs torch.cuda grid_sample {list(fs)}", ops.warp(x.cuda(), g.cuda()),
              F.grid_sample(x.cuda(), g.cuda(), align_corners=False), atol=1e-4)


def check_heatmaps():
    print("heatmaps / sparse_motion (CUDA vs CPU)")
    for i, (n, k, h, w) in enumerate([(1, 1, 1, 1), (2, 7, 13, 11), (1, 90, 96, 64)]):
        ks = (torch.rand(n, k, 2, generator=gen(i)) * 2 - 1) * 1.5
        kd = (torch.rand(n, k, 2, generator=gen(50 + i)) * 2 - 1) * 1.5
        wt = torch.rand(n, k, generator=gen(90 + i))
        for weights in (None, wt):
            wc = None if weights is None else weights.cuda()
            check(f"heatmaps {[n, k, h, w]} weights={weights is not None}",
                  ops.heatmaps(ks.cuda(), h, w, 0.1, weights=wc), ops.heatmaps(ks, h, w, 0.1, weights=weights),
                  atol=1e-6)
            d_c, g_c = ops.sparse_motion(ks, kd, h, w, 0.1, weights=weights)
            d_g, g_g = ops.sparse_motion(ks.cuda(), kd.cuda(), h, w, 0.1, weights=wc)
            check(f"sparse_motion diff {[n, k, h, w]}", d_g, d_c, atol=1e-6)
            check(f"sparse_motion grids {[n, k, h, w]}", g_g, g_c, atol=1e-6)


def check_ddim():
    print("ddim_step / ddim_sample (CUDA vs CPU)")
    x, m, u, z = (torch.randn(3, 40, 17, generator=gen(i)) for i in range(4))
    for pred in ("eps", "v", "x0"):
        for guided in (False, True):
            for eta in (0.0, 0.8):
                for clip in (None, 1.0):
                    kw = dict(prediction=pred, guidance=2.0, eta=eta, clip_x0=clip)
                    cpu = ops.ddim_step(x, m, 0.3, 0.6, uncond=u if guided else None, noise=z if eta else None, **kw)
                    gpu = ops.ddim_step(x.cuda(), m.cuda(), 0.3, 0.6, uncond=u.cuda() if guided else None,
                                        noise=z.cuda() if eta else None, **kw)
                    check(f"ddim_step {pred} guided={guided} eta={eta} clip={clip}", gpu, cpu, atol=1e-5)
    ac = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    ts = list(range(999, -1, -100))
    noise = torch.randn((len(ts),) + tuple(x.shape), generator=gen(9))
    den = lambda v, t: (0.2 * v + t / 1000.0, 0.1 * v)  # noqa: E731  (cond, uncond), same device as v
    cpu = ops.ddim_sample(den, x, ts, ac, guidance=3.0, eta=0.5, noise=noise)
    gpu = ops.ddim_sample(den, x.cuda(), ts, ac, guidance=3.0, eta=0.5, noise=noise.cuda())
    check("ddim_sample 10 steps, guidance, eta=0.5", gpu, cpu, atol=1e-4, rtol=1e-4)


def cuda_time_ms(fn, iters=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def timings():
    print("timings on the GPU (ms per call, including the call's synchronize; torch for reference)")
    rows = []
    for name, fs, gs in [("warp2d [1,64,96,64] by [1,192,128,2]", (1, 64, 96, 64), (1, 192, 128, 2)),
                         ("warp3d [1,32,16,64,64] by [1,16,64,64,3]", (1, 32, 16, 64, 64), (1, 16, 64, 64, 3))]:
        x = torch.randn(fs, device="cuda")
        g = torch.rand(gs, device="cuda") * 2 - 1
        for dt in (torch.float32, torch.float16):
            xd, gd = x.to(dt), g.to(dt)
            ours = cuda_time_ms(lambda: ops.warp(xd, gd))
            ref = cuda_time_ms(lambda: F.grid_sample(xd, gd, align_corners=False))
            rows.append((f"{name} {str(dt)[6:]}", ours, ref))
    kp = torch.rand(1, 90, 2, device="cuda") * 2 - 1
    ys = (2 * torch.arange(96, device="cuda") + 1) / 96 - 1
    xs = (2 * torch.arange(64, device="cuda") + 1) / 64 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)

    def heat_ref():
        d = grid[None, None] - kp[:, :, None, None]
        return torch.exp(-0.5 * (d * d).sum(-1) / 0.01)

    rows.append(("heatmaps K=90 96x64", cuda_time_ms(lambda: ops.heatmaps(kp, 96, 64, 0.1)), cuda_time_ms(heat_ref)))
    rows.append(("sparse_motion K=90 96x64", cuda_time_ms(lambda: ops.sparse_motion(kp, kp, 96, 64, 0.1)), float("nan")))
    x, m = torch.randn(4, 100, 256, device="cuda"), torch.randn(4, 100, 256, device="cuda")
    rows.append(("ddim_step [4,100,256]", cuda_time_ms(lambda: ops.ddim_step(x, m, 0.3, 0.5)),
                 cuda_time_ms(lambda: (0.5**0.5) * ((x - 0.7**0.5 * m) / 0.3**0.5) + 0.5**0.5 * m)))
    print(f"  {'kernel':<52} {'chatanyone':>11} {'torch':>9} {'ratio':>7}")
    for name, ours, ref in rows:
        print(f"  {name:<52} {ours:11.4f} {ref:9.4f} {ref / ours:7.2f}")


def check_pipeline():
    """Frames on the GPU through DLPack, then the Session timing per preset with the providers this
    onnxruntime has (CUDA with onnxruntime-gpu; otherwise the figures are the CPU provider's)."""
    import numpy as np
    import chatanyone as ca
    from chatanyone.cli.bench import bench
    from chatanyone.runners.base import available_providers
    print(f"pipeline (onnxruntime providers: {available_providers()})")
    if "CUDAExecutionProvider" in available_providers():
        pcm = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
        from chatanyone.data import default_avatar_image
        av = ca.Avatar.prepare(default_avatar_image())
        frames = {}
        for dev in ("host", "cuda"):
            with ca.Session(av, ca.SessionConfig(frame_device=dev, seed=1)) as s:
                s.feed_audio(pcm, 16000)
                s.flush()
                frames[dev] = list(s.frames())
        for a, b in zip(frames["host"], frames["cuda"]):
            t = torch.from_dlpack(b.image)
            if t.device.type != "cuda":
                failures.append("frame_device=cuda gave a frame off the GPU")
                break
            check("Session frame_device=cuda vs host", t, torch.from_numpy(a.image), atol=0)
            break
    else:
        print("  no CUDAExecutionProvider (install onnxruntime-gpu): GPU frames not checked")
    for preset in ("fast", "quality"):
        r = bench(preset, seconds=6.0)
        print(f"  {preset}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in r.items() if not isinstance(v, dict)))


def main() -> int:
    info = chatanyone.build_info()
    print(f"build_info: {info}")
    if "cuda" not in info.get("backends", []) or not torch.cuda.is_available() or info.get("cuda_devices", 0) <= 0:
        print("no usable CUDA: needs a CUDA build (CHATANYONE_CUDA=ON), a GPU and torch with CUDA")
        return 2
    print(f"device: {torch.cuda.get_device_name()}")
    check_warp()
    check_heatmaps()
    check_ddim()
    timings()
    check_pipeline()
    print(f"{len(failures)} mismatches" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
