"""Long-run memory soak of a Session (issue 14): resident memory at 1, 10, 30 and 60 minutes of
simulated audio time.

    python benchmarks/soak.py --minutes 60                      # everything real (slow on 2 cores)
    python benchmarks/soak.py --minutes 60 --render-every 25    # real renderer on 1 frame in 25

"Simulated time" is the Session's own timeline (offline mode, a fast clock): speech is fed in
100 ms chunks as fast as the Session takes it and every frame is pulled, so an hour of audio runs
in whatever time the machine needs. The speech is the built-in clip, looped, in utterances of 4 to
12 s separated by 0.5-2 s pauses (flush() at each end), with an interrupt() every 5th utterance,
so every code path of a long conversation runs. The motion model always runs for real; with
``--render-every N`` the renderer runs for real on every N-th frame and the others get a blank
image of the right size (everything else, the Session's buffers included, is unchanged), which is
what makes an hour fit in reasonable wall time on a 2-core machine.

Prints one line per simulated minute and a JSON summary (``--json PATH`` writes it too): RSS in MB
at each checkpoint and the growth after warm-up (1 min -> end). Not a CI test: it runs for minutes.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

import numpy as np


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux /proc; ru_maxrss elsewhere is a peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:  # pragma: no cover
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _SparseRender:
    """Wraps a Pipeline: the real renderer on every n-th call, a blank frame on the others."""

    def __init__(self, pipe, every: int, size):
        self._pipe, self._every, self._n = pipe, every, 0
        self._blank = np.zeros((size[1], size[0], 3), np.uint8)

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def render(self, mo):
        self._n += 1
        if self._every <= 1 or self._n % self._every == 0:
            return self._pipe.render(mo)
        return self._blank


class _StubPipeline:
    """Stands in for the networks (``--stub``): motion frames of the real shapes from a cheap
    function of the audio, released in the real generator's hops, and blank images. Everything
    else (the Session's threads, timeline, resampler, interrupt path) is the real code."""

    lookahead_samples = 3200 + 10 * 640
    idle_samples = 10 * 640

    def __init__(self, size):
        self._blank = np.zeros((size[1], size[0], 3), np.uint8)
        self.reset()

    def reset(self):
        self._audio = np.zeros(0, np.float32)
        self._done = 0
        self._base = 0  # samples dropped from the front of _audio

    def motion(self, audio, final):
        self._audio = np.concatenate([self._audio, audio])
        n_have = (self._base + self._audio.size) // 640
        if final:
            n_have = -(-(self._base + self._audio.size) // 640)
            ready = n_have
        else:
            ready = self._done + max(0, ((self._base + self._audio.size - 3200) // 640 - self._done) // 10 * 10)
        out = []
        for k in range(self._done, ready):
            seg = self._audio[k * 640 - self._base:(k + 1) * 640 - self._base]
            e = float(np.sqrt(np.mean(seg ** 2))) if seg.size else 0.0
            out.append({"head": np.full(6, 0.01 * k, np.float32), "exp": np.full(64, e, np.float32),
                        "eye": np.zeros(4, np.float32), "body": np.zeros((8, 2), np.float32),
                        "hands": np.zeros((2, 21, 2), np.float32), "hands_ok": np.ones(2, np.float32)})
        self._done = max(self._done, ready)
        drop = min(self._done * 640 - self._base, self._audio.size)
        if drop > 0:
            self._audio = self._audio[drop:]
            self._base += drop
        return out

    def render(self, mo):
        return self._blank

    def timings(self):
        return {}


def soak(minutes: float = 60.0, render_every: int = 1, preset: str = "fast", seed: int = 0,
         checkpoints=(1, 10, 30, 60), log=print, stub: bool = False, max_wall_s: float | None = None) -> dict:
    from chatanyone import Avatar, Session, SessionConfig
    from chatanyone.assets import demo_speech
    from chatanyone.assets import default_avatar_image
    from chatanyone.pipeline import Pipeline

    pcm, rate = demo_speech()
    cfg = SessionConfig(preset=preset, max_ahead_frames=25)
    if stub:
        side = cfg.long_side - cfg.long_side % 2
        avatar, pipe = None, _StubPipeline((side * 2 // 3 // 2 * 2, side))
    else:
        avatar = Avatar.prepare(default_avatar_image())
        pipe = Pipeline(avatar, cfg)
        if render_every > 1:
            pipe = _SparseRender(pipe, render_every, pipe.frame_size)
    rng = np.random.default_rng(seed)
    chunk = rate // 10
    total_frames = int(minutes * 60 * cfg.fps)
    marks = sorted(set([m for m in checkpoints if m <= minutes] + [minutes]))
    rss = {"start": rss_mb()}
    per_minute = []
    t0 = time.perf_counter()
    n_out, n_utt, pos = 0, 0, 0
    next_minute = 1
    with Session(avatar, cfg, _pipeline=pipe) as s:  # avatar None only with the stub pipeline
        def pull_until(limit, timeout=120.0):
            """Pull frames up to ``limit``; False at the end of an utterance or (with a short
            timeout) when no frame is ready."""
            nonlocal n_out, next_minute, total_frames
            while n_out < limit:
                if max_wall_s is not None and time.perf_counter() - t0 > max_wall_s:
                    total_frames = n_out  # out of wall time: stop here and report what ran
                    return True
                try:
                    f = s.next_frame(timeout=timeout)
                except TimeoutError:
                    if timeout > 1:
                        raise
                    return False
                if f is None:
                    return False
                n_out += 1
                if n_out >= next_minute * 60 * cfg.fps:
                    gc.collect()
                    r = rss_mb()
                    per_minute.append(r)
                    if next_minute in marks:
                        rss[f"{next_minute}min"] = r
                    log(f"soak: {next_minute:5.1f} min simulated, RSS {r:7.1f} MB, "
                        f"wall {time.perf_counter() - t0:7.1f} s, {len(s._motion)} motion, "
                        f"{s._audio.size} samples, {len(s._frames)} frames held")
                    next_minute += 1
            return True

        while n_out < total_frames:
            n_utt += 1
            length = int(rng.uniform(4, 12) * rate)
            interrupt = n_utt % 5 == 0
            fed = 0
            while fed < length:
                piece = pcm[pos:pos + min(chunk, length - fed)]
                if piece.size == 0:
                    pos = 0
                    continue
                s.feed_audio(piece, rate)
                pos += piece.size
                fed += piece.size
                # keep up like a player: pull what this audio has made ready (lookahead aside)
                pull_until(total_frames, timeout=0)
                if interrupt and fed > length // 2:
                    s.interrupt()
                    break
            if not interrupt:
                s.flush()
            while pull_until(total_frames):  # to the end of the utterance
                if n_out >= total_frames:
                    break
            if n_out >= total_frames:
                break
            s.feed_audio(np.zeros(int(rng.uniform(0.5, 2.0) * rate), np.float32), rate)  # a pause
            s.flush()
            pull_until(total_frames)
    wall = time.perf_counter() - t0
    warm = rss.get("1min", per_minute[0] if per_minute else rss["start"])
    end = per_minute[-1] if per_minute else rss_mb()
    return {"minutes_simulated": n_out / cfg.fps / 60, "frames": n_out, "utterances": n_utt,
            "render_every": render_every, "preset": preset, "stub_networks": stub,
            "minutes_requested": minutes, "wall_s": wall, "rss_mb": rss,
            "rss_per_minute_mb": per_minute, "growth_after_warmup_mb": end - warm,
            "cpu_count": os.cpu_count()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    ap.add_argument("--render-every", type=int, default=1,
                    help="run the real renderer on every N-th frame (default 1: all)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--stub", action="store_true",
                    help="cheap stand-ins for the networks: the Session layer alone over the full time")
    ap.add_argument("--max-wall", type=float, default=None,
                    help="stop after this many wall-clock seconds and report the minutes reached")
    ap.add_argument("--json", default=None, help="also write the summary here")
    a = ap.parse_args(argv)
    if not 0 < a.minutes <= 24 * 60 or a.render_every < 1:
        ap.error("--minutes must be in (0, 1440] and --render-every >= 1")
    r = soak(a.minutes, a.render_every, a.preset, log=lambda m: print(m, flush=True), stub=a.stub,
             max_wall_s=a.max_wall)
    print(json.dumps(r, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
