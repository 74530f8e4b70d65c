"""How many real-time sessions this machine holds: measured, not guessed.

One Session renders a few seconds of speech offline, and its frames are VP8-encoded as a WebRTC
sender does (libvpx through PyAV, realtime, 500 kbit/s, one thread); the two CPU costs per frame
``t`` give the capacity ``floor(usable_cores * headroom / (fps * t))``: the sessions whose frames
fit in the machine's time, with the rest of the cores (``HEADROOM``) left for what is not measured
here (RTP packetization, SRTP and DTLS in Python, Opus, the event loop, the frame pipe) and for
jitter. That holds because ``serve`` runs each session in its own process (:mod:`.worker`).
``benchmarks/serve_load.py`` checks it against real concurrent sessions.
"""
from __future__ import annotations

import logging
import math
import os
import time

import numpy as np

log = logging.getLogger("chatanyone")

# share of the cores the measured costs (rendering + VP8) may fill. Measured on the 2-core machine
# (benchmarks/serve_load.py, load 0.8, 2026-11-30): rendering 11.9 ms + VP8 ~5.5 ms of CPU per frame,
# yet 2 worker sessions held real time (0.88-0.94, server 1.0) and 3 did not (0.59-0.61): what is not
# measured (RTP/SRTP in Python, the event loop, the pipe; there also the loopback clients) costs about
# as much again. 0.75 (rendering alone) admitted 5 there; 0.5 with VP8 counted admits 2.
HEADROOM = 0.5


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
        n, kept = 0, []
        while (f := s.next_frame()) is not None:
            n += 1
            if len(kept) < ENCODE_FRAMES:
                kept.append(np.asarray(f.image))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if n == 0:
        raise RuntimeError("the calibration clip is too short")
    return {"s_per_frame": wall / n, "cpu_per_frame": cpu / n, "frames": n,
            "encode_cpu_per_frame": measure_encode_cost(kept, fps)}


ENCODE_FRAMES = 40


def measure_encode_cost(frames: list, fps: float = 25.0) -> float:
    """CPU seconds per frame to VP8-encode ``frames`` (``[H, W, 3] uint8`` each) the way aiortc's
    sender does: libvpx through PyAV, realtime deadline, ``cpu-used -6``, 500 kbit/s CBR, one thread
    (blocks for the encode)."""
    import fractions

    import av

    if not frames:
        raise ValueError("measure_encode_cost needs at least one frame")
    h, w = frames[0].shape[:2]
    cc = av.CodecContext.create("libvpx", "w")
    cc.width, cc.height = w - w % 2, h - h % 2
    cc.pix_fmt = "yuv420p"
    cc.bit_rate = 500_000
    cc.time_base = fractions.Fraction(1, int(round(fps)))
    cc.thread_count = 1
    cc.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
                  "minrate": "500000", "maxrate": "500000", "bufsize": "500000"}
    c0 = time.process_time()
    for i, img in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:cc.height, :cc.width]), format="rgb24")
        vf.pts = i
        vf.time_base = cc.time_base
        for _ in cc.encode(vf):
            pass
    for _ in cc.encode(None):
        pass
    return (time.process_time() - c0) / len(frames)


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
    on rendering plus VP8 encoding
    over the usable cores, but never more sessions than the cores can each keep at real time when
    one session alone is slower than real time. In-process sessions (``workers=False``) share one
    interpreter: measured with benchmarks/serve_load.py on the 2-core machine they did not add up
    across cores (1 session 0.99x real time, 2 sessions 0.50x each), so there one session's *wall*
    time per frame without per-core scaling is used."""
    fig = measure_frame_cost(avatar, preset=preset, fps=fps)
    enc = fig["encode_cpu_per_frame"]
    one = 1.0 / (fps * (fig["s_per_frame"] + enc))
    if workers:
        cap = capacity_from_cost(fig["cpu_per_frame"] + enc, fps)
    else:
        cap = capacity_from_cost(fig["s_per_frame"] + enc, fps, cores=1)
    fig.update(cores=usable_cores(), capacity=cap, realtime_one=one, workers=bool(workers))
    if one < 1.0:
        log.warning("this machine renders one session at %.2fx real time: live video will stutter", one)
    return cap, fig
