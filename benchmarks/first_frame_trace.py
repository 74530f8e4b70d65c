"""Where the first frame's milliseconds go: a real-time 100 ms feed (as ``chatanyone bench``), traced.

Run: ``python benchmarks/first_frame_trace.py [--runs 5] [--json]``. Each run opens a fresh Session
(the fast preset, the built-in avatar, the demo speech from its onset), feeds 100 ms chunks paced at
the clock from a producer thread and reads the first frame on this thread, as issue 12 defines the
latency. The stages on the way are timed by wrapping them (this script only; nothing in the
package is changed):

- ``audio wait``: until the chunk that completes frame 0's audio and lookahead is fed;
- ``to motion``: from that feed to the motion worker's step starting (the hand-off);
- ``whisper``: the segment's log-mel and encode; ``gate``: the speech gate; ``mouth``: the mouth
  predictor (viseme head included); ``face window``: the face and body denoisers, where one runs in
  that step (since session 8 the stream's first window is sampled at Session creation);
- ``to render``: from the motion step's end to the render worker starting frame 0;
- ``render``: frame 0's render; ``to caller``: from there to ``next_frame`` returning.

Prints each run and the median of each stage. Wall-clock figures on a shared machine: compare
versions in alternating runs, never one figure against an older one.
"""
from __future__ import annotations

import argparse
import functools
import json
import time

import numpy as np


def _wrap(events, t0, obj, name, label):
    f = getattr(obj, name)

    @functools.wraps(f)
    def g(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            if t0[0] is not None:
                events.append((label, (t - t0[0]) * 1e3, (time.perf_counter() - t0[0]) * 1e3))
    setattr(obj, name, g)
    return f


def trace(runs: int = 5) -> list[dict]:
    import chatanyone as ca
    from chatanyone import pipeline as P, session as S
    from chatanyone.assets import default_avatar_image, demo_speech
    from chatanyone.cli.bench import from_speech_onset, realtime_first_frame
    from chatanyone.motion import frontend as F, generator as G, mouth as MO

    events: list = []
    t0 = [None]
    step = "motion_step" if hasattr(P.Pipeline, "motion_step") else "motion"  # what the Session calls
    originals = [(o, n, _wrap(events, t0, o, n, label)) for o, n, label in (
        (S.Session, "feed_audio", "feed"), (P.Pipeline, step, "motion"), (P.Pipeline, "render", "render"),
        (F.AudioFrontEnd, "segment_features", "whisper"), (G.MotionGenerator, "_speech_weights", "gate"),
        (G.MotionGenerator, "_sample_window", "face window"), (MO.MouthPredictor, "predict_segment", "mouth"))]
    try:
        pcm, rate = demo_speech()
        pcm = from_speech_onset(pcm, rate)[: 2 * rate]
        avatar = ca.Avatar.prepare(default_avatar_image())
        out = []
        for _ in range(runs):
            events.clear()
            t = time.perf_counter()
            s = ca.Session(avatar, ca.SessionConfig(preset="fast"))
            create = (time.perf_counter() - t) * 1e3
            first: dict = {}

            def started(t_feed):
                t0[0] = t_feed

            def got_first(latency_s):
                first["lat"] = latency_s * 1e3
                first["evs"] = [e for e in events if e[1] <= first["lat"]]
                t0[0] = None
            with s:
                realtime_first_frame(s, pcm, rate, on_start=started, on_first=got_first)
            lat, evs = first["lat"], first["evs"]
            out.append(_stages(evs, lat) | {"session_create": create})
        return out
    finally:
        for o, n, f in originals:
            setattr(o, n, f)


def _stages(evs, lat: float) -> dict:
    """The stage durations (ms) of one run from its events ``(label, start, end)``."""
    def first(label, after=-1.0):
        return next((e for e in evs if e[0] == label and e[1] >= after), None)

    renders = [e for e in evs if e[0] == "render"]
    r = renders[0] if renders else (None, lat, lat)
    # the motion step that released frame 0: the last one to end before frame 0's render started
    steps = [e for e in evs if e[0] == "motion" and e[2] <= r[1] + 1e-6]
    m = steps[-1] if steps else (None, r[1], r[1])
    feeds = [e for e in evs if e[0] == "feed" and e[2] <= m[1] + 1e-6]
    fd = feeds[-1] if feeds else (None, 0.0, 0.0)
    inside = {k: sum(e[2] - e[1] for e in evs if e[0] == k and m[1] <= e[1] and e[2] <= m[2] + 1e-6)
              for k in ("whisper", "gate", "mouth", "face window")}
    return {"first_frame": lat, "audio wait": fd[2], "to motion": m[1] - fd[2], **inside,
            "motion other": (m[2] - m[1]) - sum(inside.values()), "to render": r[1] - m[2],
            "render": r[2] - r[1], "to caller": lat - r[2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runs = trace(a.runs)
    if a.json:
        print(json.dumps(runs))
        return
    keys = list(runs[0])
    print(" ".join(f"{k:>12}" for k in keys))
    for r in runs:
        print(" ".join(f"{r[k]:12.1f}" for k in keys))
    print(" ".join(f"{float(np.median([r[k] for r in runs])):12.1f}" for k in keys), " (median)")


if __name__ == "__main__":
    main()
