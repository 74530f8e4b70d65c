"""`chatanyone bench`: per-stage and end-to-end timing of the Session on this machine."""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import threading
import time

import numpy as np

from ..spec.presets import PRESET_LONG_SIDE
from ..spec.timeline import MOTION_FPS


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time each stage and the whole Session on this machine",
                       description=__doc__)
    p.add_argument("--preset", default="fast", choices=list(PRESET_LONG_SIDE))
    p.add_argument("--seconds", type=float, default=6.0, help="seconds of speech to stream (default 6)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps of the motion sampler")
    p.add_argument("--refine-mouth", action=argparse.BooleanOptionalAction, default=None,
                   help="with or without the learned mouth refiner (default: SessionConfig's, off)")
    p.add_argument("--refine-region", action=argparse.BooleanOptionalAction, default=None,
                   help="with or without the learned region refiner (default: SessionConfig's)")
    p.add_argument("--latency-runs", type=int, default=3,
                   help="real-time first-frame latency runs, a fresh Session each (default 3; the median is reported)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def from_speech_onset(pcm: np.ndarray, rate: int) -> np.ndarray:
    """``pcm [S]`` from its speech onset on: the first 40 ms frame louder than -34 dBFS (RMS 0.02)
    (all of it when none is). A latency figure measured from there is "first chunk fed -> first
    frame that shows speech"."""
    spf = int(rate) // MOTION_FPS
    fr = np.asarray(pcm, np.float32)[: len(pcm) // spf * spf].reshape(-1, spf)
    loud = np.flatnonzero(np.sqrt((fr ** 2).mean(1)) > 0.02)
    return pcm[(int(loud[0]) if loud.size else 0) * spf:]


def realtime_first_frame(session, pcm: np.ndarray, rate: int, *, on_start=None, on_first=None) -> float:
    """Feed ``pcm`` to ``session`` from a producer thread in 100 ms chunks paced at the clock, then
    flush; read every frame of the utterance on the caller's thread. Returns the seconds from the
    first chunk fed to the first frame read. ``on_start(t0)`` is called with the ``perf_counter``
    time the feed starts at, ``on_first(latency_s)`` once the first frame is read (for tracing).
    Blocks for about ``len(pcm) / rate`` seconds."""
    chunk = int(rate) // 10

    def produce():
        t_start = time.perf_counter()
        for j, i in enumerate(range(0, len(pcm), chunk)):
            time.sleep(max(0.0, t_start + j * 0.1 - time.perf_counter()))
            session.feed_audio(pcm[i:i + chunk], rate)
        session.flush()

    feeder = threading.Thread(target=produce)
    t0 = time.perf_counter()
    if on_start is not None:
        on_start(t0)
    feeder.start()
    session.next_frame()
    latency = time.perf_counter() - t0
    if on_first is not None:
        on_first(latency)
    while session.next_frame() is not None:
        pass
    feeder.join()
    return latency


def bench(preset: str = "fast", seconds: float = 6.0, steps: int | None = None, *,
          refine_mouth: bool | None = None, latency_runs: int = 3, refine_region: bool | None = None) -> dict:
    """Time a Session on the demo speech and return the figures as a dict: avatar preparation;
    Session creation; first-frame latency with a real-time producer (100 ms chunks paced at the
    clock, 3 s, speech from the first sample: the first frame shows speech), measured on the
    caller's thread, ``latency_runs`` times with a fresh Session each (``first_frame_latency_s``:
    their median; ``first_frame_latency_runs_s``: each, the first in a process that has run no
    Session yet); steady and end-to-end fps with ``seconds`` of speech queued at once; per-stage
    mean times; peak resident memory. Blocks for about ``3 * latency_runs + 2 * seconds`` seconds
    on 2 CPU cores.

    Raises:
        CliError (a ValueError): ``seconds`` not in (0, 3600], ``steps`` not in [1, 100] or
            ``latency_runs`` not in [1, 100].
    """
    _check_args(seconds, steps, latency_runs)
    from ..assets import demo_speech
    from ..avatar import Avatar
    from ..config import SessionConfig
    from ..assets import default_avatar_image
    from ..session import Session

    pcm, rate = demo_speech()
    # the latency figure is "first chunk fed -> first frame that shows speech": start the feed at
    # the speech onset (the first 40 ms frame louder than -34 dBFS), so that frame is frame 0
    pcm = from_speech_onset(pcm, rate)
    reps = int(np.ceil(seconds * rate / len(pcm)))
    pcm = np.tile(pcm, reps)[: int(seconds * rate)]
    t = time.perf_counter()
    avatar = Avatar.prepare(default_avatar_image())
    prep_s = time.perf_counter() - t
    kw = ({"preset": preset} | ({} if refine_mouth is None else {"refine_mouth": bool(refine_mouth)})
          | ({} if refine_region is None else {"refine_region": bool(refine_region)})
          | ({"ddim_steps": steps} if steps else {}))
    cfg = SessionConfig(**kw)
    # 1) a real-time producer: 100 ms chunks paced at the clock; latency = first chunk -> first frame
    latencies, create = [], []
    for _ in range(latency_runs):
        t = time.perf_counter()
        s = Session(avatar, cfg)
        create.append(time.perf_counter() - t)
        with s:
            latencies.append(realtime_first_frame(s, pcm[: 3 * rate], rate))
    # 2) throughput: all audio queued at once, frames pulled as fast as they come
    chunk = rate // 10
    with Session(avatar, cfg) as s:
        t0 = time.perf_counter()
        for i in range(0, len(pcm), chunk):
            s.feed_audio(pcm[i:i + chunk], rate)
        s.flush()
        stamps = []
        while s.next_frame() is not None:
            stamps.append(time.perf_counter() - t0)
        stages = s.timings()
        size = s.frame_size
    n = len(stamps)
    steady = (n - 1 - n // 4) / (stamps[-1] - stamps[n // 4]) if n > 8 else float("nan")
    return {
        "preset": preset, "refine_mouth": cfg.refine_mouth, "refine_region": cfg.region_refiner_on(False), "size": list(size), "frames": n, "speech_s": len(pcm) / rate,
        "avatar_prepare_s": prep_s, "session_create_s": float(np.median(create)),
        "first_frame_latency_s": float(np.median(latencies)), "first_frame_latency_runs_s": latencies,
        "steady_fps": steady, "end_to_end_fps": n / stamps[-1] if stamps else None,
        "stage_ms": {k: 1000 * v for k, v in stages.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_count": os.cpu_count(),
    }


MAX_SECONDS = 3600.0


def _check_args(seconds, steps, latency_runs=1) -> None:
    """bench's arguments: ``seconds`` a finite number in (0, 3600], ``steps`` None or 1..100,
    ``latency_runs`` 1..100."""
    from . import CliError

    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or not 0 < seconds <= MAX_SECONDS:
        raise CliError(f"--seconds must be a number of seconds in (0, {MAX_SECONDS:g}], got {seconds!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100):
        raise CliError(f"--steps must be an integer in [1, 100], got {steps!r}")
    if isinstance(latency_runs, bool) or not isinstance(latency_runs, int) or not 1 <= latency_runs <= 100:
        raise CliError(f"--latency-runs must be an integer in [1, 100], got {latency_runs!r}")


def run(args) -> int:
    runs = getattr(args, "latency_runs", 3)
    _check_args(args.seconds, args.steps, runs)
    r = bench(args.preset, args.seconds, args.steps, refine_mouth=getattr(args, "refine_mouth", None),
              latency_runs=runs, refine_region=getattr(args, "refine_region", None))
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"chatanyone bench: preset {r['preset']} {r['size'][0]}x{r['size'][1]}, "
          f"{r['speech_s']:.1f} s of speech, {r['cpu_count']} CPUs")
    rows = [("avatar prepare (once)", f"{r['avatar_prepare_s'] * 1000:.0f} ms"),
            ("session creation (warm-up included)", f"{r['session_create_s'] * 1000:.0f} ms"),
            ("first-frame latency (real-time feed, speech at once), median", f"{r['first_frame_latency_s'] * 1000:.0f} ms"),
            ("  each run", " ".join(f"{x * 1000:.0f}" for x in r["first_frame_latency_runs_s"]) + " ms"),
            ("steady fps", f"{r['steady_fps']:.1f}"),
            ("end-to-end fps", f"{r['end_to_end_fps']:.1f}")]
    rows += [(f"stage: {k}", f"{v:.2f} ms") for k, v in r["stage_ms"].items()]
    rows.append(("peak memory (RSS)", f"{r['peak_rss_mb']:.0f} MB"))
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"  {a:<{w}}  {b:>10}")
    return 0
