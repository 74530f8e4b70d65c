"""How many real-time sessions this machine holds: measured, not guessed.

One Session renders a few seconds of speech offline; its frame cost ``t`` (seconds of CPU per
frame, all its threads) gives the capacity ``floor(usable_cores * headroom / (fps * t))``: the
sessions whose frames fit in the machine's time, with headroom for WebRTC encoding and jitter.
That holds because ``serve`` runs each session in its own process (:mod:`.worker`).
``benchmarks/serve_load.py`` checks it against real concurrent sessions.
"""
from __future__ import annotations

import logging
import math
import os
import time

import numpy as np

log = logging.getLogger("chatanyone")

HEADROOM = 0.75   # share of the cores sessions may use; the rest: VP8/Opus encoding, the event loop


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def measure_frame_cost(avatar, *, preset: str = "fast", fps: float = 25.0, seconds: float = 3.0,
                       threads: int = 1) -> dict:
    """Render ``seconds`` of the built-in speech with one Session; returns ``{"s_per_frame",
    "cpu_per_frame", "frames"}`` measured after the first frame (blocks for the render)."""
    from .. import Session, SessionConfig
    from ..assets import demo_speech

    pcm, rate = demo_speech()
    pcm = pcm[: int(seconds * rate)]
    cfg = SessionConfig(preset=preset, fps=fps, intra_op_threads=threads)
    with Session(avatar, cfg) as s:
        s.feed_audio(pcm, rate)
        s.flush()
        first = s.next_frame()
        if first is None:
            raise RuntimeError("the calibration clip produced no frame")
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        while s.next_frame() is not None:
            n += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if n == 0:
        raise RuntimeError("the calibration clip is too short")
    return {"s_per_frame": wall / n, "cpu_per_frame": cpu / n, "frames": n}


def capacity_from_cost(cpu_per_frame: float, fps: float, cores: int | None = None,
                       headroom: float = HEADROOM) -> int:
    """Sessions whose frames fit: ``floor(cores * headroom / (fps * cpu_per_frame))``, at least 1."""
    if not cpu_per_frame > 0:
        raise ValueError(f"cpu_per_frame must be > 0, got {cpu_per_frame}")
    cores = usable_cores() if cores is None else cores
    return max(1, int(math.floor(cores * headroom / (fps * cpu_per_frame))))


def measure_capacity(avatar, *, preset: str = "fast", fps: float = 25.0, workers: bool = True) -> tuple[int, dict]:
    """``(capacity, figures)`` for this machine (blocks a few seconds).

    ``workers`` (each session in its own process, as ``serve`` runs them): the CPU-time formula
    over the usable cores, but never more sessions than the cores can each keep at real time when
    one session alone is slower than real time. In-process sessions (``workers=False``) share one
    interpreter: measured with benchmarks/serve_load.py on the 2-core machine they did not add up
    across cores (1 session 0.99x real time, 2 sessions 0.50x each), so there one session's *wall*
    time per frame without per-core scaling is used."""
    fig = measure_frame_cost(avatar, preset=preset, fps=fps)
    one = 1.0 / (fps * fig["s_per_frame"])
    if workers:
        cap = capacity_from_cost(fig["cpu_per_frame"], fps)
    else:
        cap = capacity_from_cost(fig["s_per_frame"], fps, cores=1)
    fig.update(cores=usable_cores(), capacity=cap, realtime_one=one, workers=bool(workers))
    if one < 1.0:
        log.warning("this machine renders one session at %.2fx real time: live video will stutter", one)
    return cap, fig
