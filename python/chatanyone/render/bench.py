"""Time the renderer per stage: ``python -m chatanyone.render.bench [--preset fast] [--threads 2]``.

Reports wall-clock fps and the process CPU time per frame: on a machine shared with other jobs the
wall clock measures the neighbours too, while CPU time per frame (with ``--threads 1``) is what one
free core would need.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from . import _kernels
from . import keypoints as kpm
from ..spec import keypoint_layout as KL


def benchmark(preset: str = "fast", frames: int = 50, threads: int = 2, weights_dir=None) -> dict:
    """Render ``frames`` frames of a synthetic avatar; returns fps, CPU ms/frame and per-stage ms."""
    from .renderer import Renderer
    try:
        from chatanyone import ops
        ops.set_num_threads(threads)
    except (ImportError, AttributeError):
        pass
    r = Renderer(preset, threads=threads, weights_dir=weights_dir)
    H, W = r.size
    rng = np.random.default_rng(0)
    K = kpm.group_matrix().shape[1]
    y, x = np.mgrid[0:H, 0:W]
    crop = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    kp = (rng.uniform(-0.5, 0.5, (K, 2)) * [1, 1]).astype(np.float32)
    kp[KL.HANDS_SLICE] = (rng.normal(0, 0.06, (KL.N_HAND_KP, 2)) + [0.3, 0.6]).astype(np.float32)  # hand-sized hands
    vis = np.ones(K, np.float32)
    t = time.perf_counter()
    cache = r.prepare_source(crop, kp, vis)
    prepare_ms = 1000 * (time.perf_counter() - t)
    for i in range(5):
        r.render(cache, kp, vis)
    r.times.frames = 0
    r.times.seconds = {}
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(frames):
        r.render(cache, kp + 0.02 * np.sin(0.3 * i), vis)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"preset": preset, "threads": threads, "frames": frames, "fps": frames / wall,
            "wall_ms": 1000 * wall / frames, "cpu_ms": 1000 * cpu / frames, "prepare_source_ms": prepare_ms,
            "native_kernels": _kernels.native_available(),
            "stages_ms": {k: round(v, 2) for k, v in r.times.per_frame_ms().items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights-dir", default=None)
    a = ap.parse_args(argv)
    print(json.dumps(benchmark(a.preset, a.frames, a.threads, a.weights_dir), indent=1))


if __name__ == "__main__":
    main()
