"""The chain a Session runs: motion generator -> driving keypoints -> renderer.

Kept apart from :mod:`chatanyone.session` so that the Session's streaming logic (threads, timeline,
flush, interrupt) does not depend on the networks, and so that tests can check either alone.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

log = logging.getLogger("chatanyone")

SAMPLES_PER_MOTION = 640  # 16 kHz samples per motion frame (25 fps)


class Pipeline:
    """Motion and rendering for one Session.

    Args:
        avatar: a prepared :class:`~chatanyone.Avatar`; its renderer cache for the preset is
            computed here once (and kept in ``avatar.features``) if it is not there yet.
        config: the Session's :class:`~chatanyone.SessionConfig`.

    The Session calls :meth:`motion` from its motion thread and :meth:`render` from its render
    thread; each is called from one thread only.
    """

    def __init__(self, avatar, config):
        from .data.compose import driving_keypoints
        from .motion import MotionGenerator
        from .render import Renderer

        self._compose = driving_keypoints
        threads = config.intra_op_threads
        # intensity 0 is allowed (a neutral face); the generator's scale must stay positive
        self.gen = MotionGenerator(style=config.style, intensity=max(config.intensity, 1e-6),
                                   seed=config.seed, steps=config.ddim_steps,
                                   providers=config.providers)
        try:
            self.renderer = Renderer(config.preset, providers=config.providers, threads=threads)
        except FileNotFoundError as exc:
            raise ValueError(f"preset {config.preset!r} has no trained weights in this installation "
                             f"({exc}); use preset='fast'") from None
        self.source = avatar.source
        key = f"{config.preset}:"
        cache = {k[len(key):]: v for k, v in avatar.features.items() if k.startswith(key)}
        if not cache or "kp" not in cache:   # none yet, or saved by a version without the keypoints
            crop = avatar.crop if config.preset == "fast" else avatar.crop_hq
            cache = self.renderer.prepare_source(crop, avatar.kp, avatar.vis)
            avatar.features.update({key + k: v for k, v in cache.items()})
        self._cache = cache
        self._intensity_zero = config.intensity == 0
        # audio a motion frame may wait for: the rest of its window's hop and the model's lookahead
        self.lookahead_samples = int(self.gen.lookahead_samples)
        self.idle_samples = int(self.gen.hop) * SAMPLES_PER_MOTION
        self._compose_s = [0.0, 0]  # seconds, calls
        self._lock = threading.Lock()

    def motion(self, audio: np.ndarray, final: bool) -> list[dict]:
        """Push 16 kHz samples that continue the timeline (``final``: an utterance ends after them)
        and return the motion frames released by this (zero or more dicts, in order)."""
        if audio.size:
            self.gen.push_audio(audio)
        if final:
            self.gen.flush()
        out = []
        while (fr := self.gen.pop_frames()) is not None:
            d = fr.as_dict()
            n = len(fr)
            for i in range(n):
                f = {k: v[i] for k, v in d.items() if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n}
                if self._intensity_zero:
                    f["exp"] = np.zeros_like(f["exp"])
                out.append(f)
        return out

    def reset(self) -> None:
        """Forget the audio and motion so far: the next :meth:`motion` call starts a new stream
        (Session.interrupt; called from the motion thread)."""
        self.gen.reset()

    def render(self, motion_frame: dict) -> np.ndarray:
        """One motion frame to one image (uint8 ``[H, W, 3]``)."""
        t = time.perf_counter()
        kp, vis = self._compose(self.source, motion_frame)
        with self._lock:
            self._compose_s[0] += time.perf_counter() - t
            self._compose_s[1] += 1
        return self.renderer.render(self._cache, kp, vis)

    def timings(self) -> dict[str, float]:
        """Mean seconds per call of each stage: a motion window, keypoint composition, and each
        renderer stage per frame."""
        out = {}
        ms = list(self.gen.window_ms)
        if ms:
            out["motion_window"] = sum(ms) / len(ms) / 1000
        with self._lock:
            if self._compose_s[1]:
                out["compose"] = self._compose_s[0] / self._compose_s[1]
        out.update({f"render.{k}": v / 1000 for k, v in self.renderer.times.per_frame_ms().items()})
        return out
