"""Renderer time per frame: the geometry renderer against the neural renderer it replaced.

Both run in the same process on the built-in avatar with the same motion frames: the geometry
renderer at each preset's frame size (fast: 512 px on the long side, quality: 1024), the neural
renderer at its own (fast: 256x384 crop, quality: 512x768). The geometry renderer's time covers the
whole frame (mesh, flow, warp, mouth, paste-back); the neural one's covers keypoint composition and
its four (five) graphs. ``extra_info`` holds the per-stage means.

    python -m pytest benchmarks/test_geometry_bench.py
"""
import numpy as np
import pytest

N_FRAMES = 16


@pytest.fixture(scope="module")
def avatar():
    import chatanyone as ca
    from chatanyone.assets import default_avatar_image

    return ca.Avatar.prepare(default_avatar_image())


@pytest.fixture(scope="module")
def motions():
    from chatanyone.spec.head import load_basis

    b = load_basis()
    rng = np.random.default_rng(0)
    out = []
    for i in range(N_FRAMES):
        out.append({"head": (rng.standard_normal(6) * [0.05, 0.03, 0.03, 0.01, 0.01, 0.01]).astype(np.float32),
                    "exp": (rng.standard_normal(b.n_exp) * b.std).astype(np.float32),
                    "eye": np.array([1, 1, 0, 0], np.float32),
                    "body": (rng.standard_normal((8, 2)) * 0.01).astype(np.float32),
                    "hands": np.zeros((2, 21, 2), np.float32), "hands_ok": np.zeros(2, np.float32)})
    return out


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_geometry_renderer(benchmark, avatar, motions, preset):
    from chatanyone.render.geometry import GeomRenderer
    from chatanyone.spec.presets import PRESET_LONG_SIDE

    r = GeomRenderer(avatar, PRESET_LONG_SIDE[preset])
    r.render(motions[0])
    r.times.clear()
    r.frames = 0

    def run():
        for m in motions:
            r.render(m)

    benchmark.group = f"renderer {preset}"
    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update({"frame_size": list(r.size), "region": list(r.rect),
                                 "ms_per_frame_min": benchmark.stats.stats.min * 1e3 / N_FRAMES,
                                 **{f"stage_{k}_ms": v for k, v in r.per_frame_ms().items()}})


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_neural_renderer(benchmark, avatar, motions, preset):
    from chatanyone.render import Renderer

    r = Renderer(preset)
    crop = avatar.crop if preset == "fast" else avatar.crop_hq
    cache = r.prepare_source(crop, avatar.kp, avatar.vis)

    def run():
        for m in motions:
            kp, vis = avatar.driving_keypoints(m)
            r.render(cache, kp, vis)

    run()
    benchmark.group = f"renderer {preset}"
    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update({"frame_size": [r.size[1], r.size[0]],
                                 "ms_per_frame_min": benchmark.stats.stats.min * 1e3 / N_FRAMES})


@pytest.fixture(scope="module")
def hands_avatar():
    """An upper-body photo with a hand (../shared/data; skipped without it)."""
    import os

    import chatanyone as ca
    p = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "portraits",
                     "musetalk_video1_waving.png")
    if not os.path.exists(p):
        pytest.skip("../shared/data/portraits/musetalk_video1_waving.png not available")
    a = ca.Avatar.prepare(p)
    if not a.hands_ok.any():
        pytest.skip("no hand found in the photo")
    return a


@pytest.mark.parametrize("hands", ["articulated", "similarity"])
def test_geometry_renderer_hands(benchmark, hands_avatar, motions, hands):
    """The fast preset on a photo with a hand, its fingers driven (articulated hand mesh against the
    older similarity per hand), in the same run."""
    from chatanyone.render.geometry import GeomRenderer

    a = hands_avatar
    rel = np.nan_to_num(np.asarray(a.hands, np.float32)[:, :, :2] - np.asarray(a.hands, np.float32)[:, :1, :2])
    rng = np.random.default_rng(1)
    ms = [dict(m, hands=(rel * (1 + 0.1 * rng.standard_normal((2, 21, 1)))).astype(np.float32),
               hands_ok=np.asarray(a.hands_ok, np.float32)) for m in motions]
    r = GeomRenderer(a, 512, hands=hands)

    def run():
        for m in ms:
            r.render(m)

    run()
    r.times.clear()
    r.frames = 0
    benchmark.group = "renderer fast, hands"
    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update({"hands": hands, "vertices": len(r.src_vertices), "triangles": len(r.triangles),
                                 "ms_per_frame_min": benchmark.stats.stats.min * 1e3 / N_FRAMES,
                                 **{f"stage_{k}_ms": v for k, v in r.per_frame_ms().items()}})
