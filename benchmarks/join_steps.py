"""Seams at the motion windows' joins: the frame step at each join over the median frame step.

``python benchmarks/join_steps.py [--seeds 12] [--seconds 4] [--silence 4] [--json out.json]``

Drives a :class:`~chatanyone.motion.MotionGenerator` (shipped weights, mouth mode, as a Session
does: primed first window) with the built-in demo speech from its onset, once per seed, and
measures per channel group (head pose, the expression outside the mouth, body points; each
channel in units of its corpus spread, blinks off so that only the windows' own motion counts):

- ``step[t] = |x[t] - x[t-1]|`` (Euclidean over the group's channels);
- the ratio ``step[join] / median(step)`` at every join (frames ``F, F + hop, ...``, ``F`` the
  primed window's ``FIRST_RELEASE``); also the
  largest step of the few frames after a join over the median (a join smoothed into its next
  frames moves the seam there);
- with ``--silence S``: S seconds of silence after the speech, where the head must keep moving a
  little (its step median in silence over that in speech; 0 would be a frozen head).

Prints per group: first join (mean / max over seeds), later joins (mean / max), the largest join,
and the same "near the join" figure. No assertion: tests/test_motion_shipped.py has the bounds.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def groups(g, f):
    """Normalized channel groups of MotionFrames ``f``: head [n, 6], upper expression [n, E],
    body points [n, 16]."""
    from chatanyone.spec import motion_layout as layout
    st = g.stats
    fm, fs = st["face_mean"], st["face_std"]
    head = (f.head - fm[:layout.HEAD_DIM]) / fs[:layout.HEAD_DIM]
    es = fs[layout.HEAD_DIM:layout.HEAD_DIM + g.n_exp]
    exp = (f.exp / max(g.intensity, 1e-6)) @ g._upper / es
    nb = int(np.prod(layout.BODY_SHAPE))
    body = (f.body.reshape(len(f), -1) - st["body_mean"][:nb]) / st["body_std"][:nb]
    return {"head": head, "exp": exp, "body": body}


def run_seed(seed: int, pcm: np.ndarray, silence_s: float, chunk: int = 1600):
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(seed=seed)
    g.BLINK_DEPTH = 0.0  # blinks are not the windows' seams
    g.prime()
    for i in range(0, pcm.size, chunk):
        g.push_audio(pcm[i:i + chunk])
    if silence_s > 0:
        g.push_audio(np.zeros(int(silence_s * 16000), np.float32))
    g.flush()
    f = g.generate_all()
    return g, f


def measure(seeds, seconds, silence_s, near=3):
    from chatanyone.assets import demo_speech
    from chatanyone.audio.features import to_mono_16k
    pcm, rate = demo_speech()
    pcm = to_mono_16k(pcm, rate)
    on = int(np.argmax(np.abs(pcm) > 0.02 * np.abs(pcm).max()))  # the speech's onset
    pcm = pcm[on:on + int(seconds * 16000)]
    n_sp = pcm.size // 640
    res = {k: {"first": [], "later": [], "first_near": [], "later_near": [], "sil_over_speech": [],
               "std_speech": []} for k in ("head", "exp", "body")}
    hop = None
    for s in seeds:
        g, f = run_seed(s, pcm, silence_s)
        hop = g.hop
        for k, x in groups(g, f).items():
            step = np.r_[np.nan, np.linalg.norm(np.diff(x, axis=0), axis=1)]  # step[t]: t-1 -> t
            sp = step[1:n_sp]
            med = np.median(sp)
            f0 = g._first_release() if hasattr(g, "_first_release") else hop  # primed frames; then every hop
            for j in [f0] + list(range(f0 + hop, n_sp - near, hop)):
                key = "first" if j == f0 else "later"
                res[k][key].append(step[j] / med)
                res[k][key + "_near"].append(step[j:j + near].max() / med)
                res[k].setdefault("profile_" + key, []).append(step[j - 2:j + 6] / med)
            inner = [t for t in range(2, n_sp) if (t - f0) % hop not in (0, 1, 2)]
            res[k].setdefault("inner_near", []).extend(
                [step[t:t + near].max() / med for t in inner if t + near <= n_sp])
            res[k]["std_speech"].append(float(x[:n_sp].std(0).mean()))
            if silence_s > 0:
                sil = step[n_sp + 25:n_sp + int(silence_s * 25) - 5]
                res[k]["sil_over_speech"].append(float(np.median(sil) / med))
    out = {}
    for k, r in res.items():
        out[k] = {m: (float(np.mean(v)), float(np.max(v)), float(np.min(v))) for m, v in r.items()
                  if v and not m.startswith("profile")}
        for m in ("profile_first", "profile_later"):
            out[k][m] = [round(float(v), 2) for v in np.mean(r[m], 0)]
    return out, hop


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--silence", type=float, default=4.0)
    ap.add_argument("--join-frames", type=int, default=None,
                    help="WindowScheduler.JOIN_FRAMES for this run (0: no lead, the join smoothing before)")
    ap.add_argument("--lead-body", action="store_true")
    ap.add_argument("--first-release", type=int, default=None,
                    help="MotionGenerator.FIRST_RELEASE for this run (10: the primed window releases a whole hop)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.first_release is not None:
        from chatanyone.motion.generator import MotionGenerator
        MotionGenerator.FIRST_RELEASE = a.first_release
    if a.join_frames is not None:
        from chatanyone.motion.scheduler import WindowScheduler
        WindowScheduler.JOIN_FRAMES = a.join_frames
    if a.lead_body:
        from chatanyone.motion.scheduler import WindowScheduler
        WindowScheduler.LEAD_BODY = True
    out, hop = measure(range(a.seeds), a.seconds, a.silence)
    print(f"join step / median frame step, {a.seeds} seeds, {a.seconds:g} s of the demo speech "
          f"(a join after the primed window, then every {hop} frames); mean (max)")
    print(f"{'group':6s} {'first join':>14s} {'later joins':>14s} {'first, +3 fr':>14s} "
          f"{'later, +3 fr':>14s} {'silence/speech':>15s} {'spread':>7s}")
    for k, r in out.items():
        c = lambda m: f"{r[m][0]:.2f} ({r[m][1]:.2f})"  # noqa: E731
        sil = f"{r['sil_over_speech'][0]:.2f} ({r['sil_over_speech'][2]:.2f})" if "sil_over_speech" in r else "-"
        print(f"{k:6s} {c('first'):>14s} {c('later'):>14s} {c('first_near'):>14s} {c('later_near'):>14s} "
              f"{sil:>15s} {r['std_speech'][0]:7.3f}")
    print(f"frame step / median around a join (frames join-2 .. join+5; the join's step is the 3rd):")
    for k, r in out.items():
        print(f"{k:6s} first {r['profile_first']}  later {r['profile_later']}  "
              f"(any 3 frames' max step, away from joins: {r['inner_near'][0]:.2f})")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
