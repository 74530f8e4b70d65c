"""End-to-end Session timings (pytest-benchmark): first-frame latency and steady frame rate per
preset, beside the renderer alone and the motion generator alone in the same run.

Run: ``python -m pytest benchmarks/test_session_bench.py --benchmark-only``. The measured table is
in benchmarks/README.md; ``chatanyone bench`` prints the same figures for one preset.
"""
import time

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import demo_speech
from chatanyone.assets import default_avatar_image


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


@pytest.fixture(scope="module")
def speech():
    pcm, rate = demo_speech()
    return pcm[: 4 * rate], rate


def _stream(avatar, pcm, rate, preset):
    """Feed 100 ms chunks, pull every frame; return (first-frame latency s, frames, seconds)."""
    with ca.Session(avatar, ca.SessionConfig(preset=preset)) as s:
        t0 = time.perf_counter()
        first = None
        for i in range(0, len(pcm), rate // 10):
            s.feed_audio(pcm[i:i + rate // 10], rate)
        s.flush()
        n = 0
        while s.next_frame() is not None:
            n += 1
            if first is None:
                first = time.perf_counter() - t0
        return first, n, time.perf_counter() - t0


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_session_stream(benchmark, avatar, speech, preset):
    pcm, rate = speech
    first, n, wall = benchmark.pedantic(_stream, args=(avatar, pcm, rate, preset), rounds=2, iterations=1)
    benchmark.extra_info.update(first_frame_s=first, frames=n, fps=n / wall, realtime_factor=(n / 25) / wall)
    assert n == 100


def test_renderer_alone(benchmark, avatar):
    from chatanyone.render import Renderer

    r = Renderer("fast")
    cache = r.prepare_source(avatar.crop, avatar.kp, avatar.vis)
    kp = avatar.kp + np.float32(0.01)
    benchmark(r.render, cache, kp, avatar.vis)


def test_motion_window_alone(benchmark):
    from chatanyone.motion import MotionGenerator

    g = MotionGenerator(seed=0)
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)

    def one_window():
        g.reset()
        g.push_audio(audio)
        return g.generate_window()

    out = benchmark(one_window)
    assert out is not None


def _realtime_first_frame(avatar, pcm, rate):
    """A producer thread sends 100 ms chunks paced at the clock, starting with speech; returns the
    time from the first chunk fed to the first frame, on the caller's thread (issue 12's figure)."""
    from chatanyone.cli.bench import from_speech_onset, realtime_first_frame

    with ca.Session(avatar, ca.SessionConfig(preset="fast")) as s:
        return realtime_first_frame(s, from_speech_onset(pcm, rate)[: 2 * rate], rate)


def test_first_frame_latency_realtime_feed(benchmark, avatar, speech):
    pcm, rate = speech
    lat = benchmark.pedantic(_realtime_first_frame, args=(avatar, pcm, rate), rounds=3, iterations=1)
    benchmark.extra_info.update(first_frame_latency_s=lat)
