"""Admission's capacity: the measured costs (rendering + VP8 encoding) and the formula."""
import numpy as np
import pytest

from chatanyone.serve import capacity as C


def _frames(n, h=256, w=218, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def test_encode_cost_is_measured_and_grows_with_frame_size():
    small = C.measure_encode_cost(_frames(8, 128, 110))
    large = C.measure_encode_cost(_frames(8, 512, 436))
    assert small > 0 and large > 0
    assert large > small          # 16x the pixels costs more CPU per frame to encode


def test_encode_cost_refuses_no_frames():
    with pytest.raises(ValueError, match="at least one frame"):
        C.measure_encode_cost([])


def test_capacity_formula():
    # 2 cores, half of them for measured costs, 25 fps: 20 ms per frame -> 1 s / 0.5 s = 2 sessions
    assert C.capacity_from_cost(0.020, 25.0, cores=2, headroom=0.5) == 2
    assert C.capacity_from_cost(0.010, 25.0, cores=2, headroom=0.5) == 4
    assert C.capacity_from_cost(1.0, 25.0, cores=2, headroom=0.5) == 1     # never below one
    with pytest.raises(ValueError, match="cpu_per_frame"):
        C.capacity_from_cost(0.0, 25.0)


def test_measured_capacity_counts_vp8(monkeypatch):
    """measure_capacity adds the VP8 cost to the rendering's before applying the formula."""
    monkeypatch.setattr(C, "measure_frame_cost", lambda *a, **k: {
        "s_per_frame": 0.010, "cpu_per_frame": 0.010, "frames": 50, "encode_cpu_per_frame": 0.010})
    monkeypatch.setattr(C, "usable_cores", lambda: 2)
    cap, fig = C.measure_capacity(None)
    assert cap == C.capacity_from_cost(0.020, 25.0, cores=2)
    assert cap < C.capacity_from_cost(0.010, 25.0, cores=2)
