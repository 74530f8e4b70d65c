"""Mesh warp of a face: chatanyone.ops.mesh_flow + ops.warp against OpenCV per-triangle affine
warps, same run, same thread count (cv2.setNumThreads too).

Run: ``python -m pytest benchmarks/test_bench_mesh_flow.py`` (CHATANYONE_BENCH_THREADS=n to pin).
The scene (benchmarks/mesh_scene.py): the default portrait's 478-point face mesh with mediapipe's
FACEMESH_TESSELATION (854 triangles) driven with an open mouth and a head turn, plus a coarse outer
mesh anchored beyond the border; 1000-odd triangles covering the whole frame, at the fast
preset's 384x256 and the quality preset's 768x512 (H x W). Both sides produce the warped RGB frame
in float32 ([3, H, W] for chatanyone, [H, W, 3] for OpenCV, each library's native layout) and
draw overlaps in depth order (OpenCV: painter's order by mean depth; mesh_flow: per-pixel depth).
"""
import os

import cv2
import numpy as np
import pytest

from chatanyone import ops
from mesh_scene import build_scene, painter_order, to_pixels, warp_triangles_cv2

SIZES = [(384, 256), (768, 512)]


@pytest.fixture(scope="module", autouse=True)
def cv2_threads():
    n0 = cv2.getNumThreads()
    cv2.setNumThreads(int(os.environ.get("CHATANYONE_BENCH_THREADS", os.cpu_count() or 1)))
    yield
    cv2.setNumThreads(n0)


_scenes = {}


def scene_for(size):
    if size not in _scenes:
        _scenes[size] = build_scene(*size)
    return _scenes[size]


def chatanyone_warp(image_chw, s):
    grid, mask = ops.mesh_flow(s.dst, s.src, s.triangles, s.size, depth=s.depth)
    return ops.warp(image_chw, grid[None])[0]  # [3, H, W]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("impl", ["opencv", "opencv-uint8", "chatanyone", "chatanyone-mesh_flow-only"])
def test_mesh_warp(benchmark, size, impl):
    s = scene_for(size)
    h, w = size
    src_px, dst_px = to_pixels(s.src, h, w), to_pixels(s.dst, h, w)
    order = painter_order(s)
    image_chw = np.ascontiguousarray(s.image.transpose(2, 0, 1))[None]  # [1, 3, H, W]
    benchmark.group = f"mesh-warp-{h}x{w}"
    benchmark.name = f"{impl} ({len(s.triangles)} triangles)"
    if impl == "opencv":
        out = benchmark(warp_triangles_cv2, s.image, src_px, dst_px, s.triangles, order)
    elif impl == "opencv-uint8":
        img8 = np.round(s.image * 255).astype(np.uint8)
        out = benchmark(warp_triangles_cv2, img8, src_px, dst_px, s.triangles, order).astype(np.float32) / 255
    elif impl == "chatanyone":
        out = benchmark(chatanyone_warp, image_chw, s).transpose(1, 2, 0)
    else:
        grid, mask = benchmark(ops.mesh_flow, s.dst, s.src, s.triangles, s.size, depth=s.depth)
        assert mask.mean() > 0.99  # the outer mesh covers the frame, all but the opened mouth
        out = ops.warp(image_chw, grid[None])[0].transpose(1, 2, 0)
    # Both compute the same warp: they may differ only along triangle edges (OpenCV's filled
    # polygons include boundary pixels, and its painter's order is per triangle, not per pixel).
    ref = warp_triangles_cv2(s.image, src_px, dst_px, s.triangles, order)
    moved = np.abs(ref - s.image).max(-1) > 0.05
    assert moved.mean() > 0.02  # the driving mesh really moves the face
    diff = np.abs(out - ref).max(-1)
    assert np.mean(diff > 0.05) < 0.01, f"{np.mean(diff > 0.05):.4f} of the pixels differ by > 0.05"
    assert np.median(diff) < 2e-3
