"""The chain a Session runs: motion generator -> geometry renderer (the photo, moved and pasted back).

Kept apart from :mod:`chatanyone.session` so that the Session's streaming logic (threads, timeline,
flush, interrupt) does not depend on the networks, and so that tests can check either alone.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

log = logging.getLogger("chatanyone")

SAMPLES_PER_MOTION = 640  # 16 kHz samples per motion frame (25 fps)


class Pipeline:
    """Motion and rendering for one Session.

    Args:
        avatar: a prepared :class:`~chatanyone.Avatar` (it carries its photo and animated region).
        config: the Session's :class:`~chatanyone.SessionConfig`; ``config.long_side`` sets the
            frames' long side (:attr:`frame_size`).

    The Session calls :meth:`motion` from its motion thread and :meth:`render` from its render
    thread; each is called from one thread only.
    """

    def __init__(self, avatar, config):
        from .motion import MotionGenerator
        from .render.geometry import GeomRenderer

        if getattr(avatar, "photo", None) is None:
            raise ValueError("the avatar carries no photo (prepared by an older chatanyone): "
                             "prepare it again with Avatar.prepare")
        # intensity 0 is allowed (a neutral face); the generator's scale must stay positive
        self.gen = MotionGenerator(style=config.style, intensity=max(config.intensity, 1e-6),
                                   seed=config.seed, steps=config.ddim_steps,
                                   providers=config.providers)
        self.renderer = GeomRenderer(avatar, config.long_side)
        self.frame_size: tuple[int, int] = self.renderer.size   # (width, height)
        self._intensity_zero = config.intensity == 0
        # audio a motion frame may wait for: the rest of its window's hop and the model's lookahead
        self.lookahead_samples = int(self.gen.lookahead_samples)
        self.idle_samples = int(self.gen.hop) * SAMPLES_PER_MOTION
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

    def render(self, motion_frame) -> np.ndarray:
        """One motion frame (a dict of ``head``, ``exp``, ``eye``, ``body``, ``hands``,
        ``hands_ok``) to one frame: uint8 ``[H, W, 3]``, ``(W, H) = frame_size``. Blocks a few ms."""
        with self._lock:
            return self.renderer.render(motion_frame)

    def timings(self) -> dict[str, float]:
        """Mean seconds per call of each stage: a motion window, and each renderer stage per frame."""
        out = {}
        ms = list(self.gen.window_ms)
        if ms:
            out["motion_window"] = sum(ms) / len(ms) / 1000
        with self._lock:
            out.update({f"render.{k}": v / 1000 for k, v in self.renderer.per_frame_ms().items()})
        return out
