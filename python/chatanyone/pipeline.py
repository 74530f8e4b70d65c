"""The chain a Session runs: motion generator -> geometry renderer (the photo, moved and pasted back).

Kept apart from :mod:`chatanyone.session` so that the Session's streaming logic (threads, timeline,
flush, interrupt) does not depend on the networks, and so that tests can check either alone.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from .spec.motion_layout import MotionFrames
from .spec.timeline import SAMPLES_PER_FRAME

log = logging.getLogger("chatanyone")


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
        from .motion.gesture import GestureSmoother
        from .render.geometry import GeomRenderer

        if getattr(avatar, "photo", None) is None:
            raise ValueError("the avatar carries no photo (prepared by an older chatanyone): "
                             "prepare it again with Avatar.prepare")
        self.gen = MotionGenerator(style=config.style, intensity=config.intensity,
                                   seed=config.seed, steps=config.ddim_steps,
                                   providers=config.providers)
        self.renderer = GeomRenderer(avatar, config.long_side, refine_mouth=config.refine_mouth)
        # the model's arm offsets smoothed into gestures, its noisy finger points dropped
        self.gestures = GestureSmoother()
        self.frame_size: tuple[int, int] = self.renderer.size   # (width, height)
        # audio a motion frame may wait for: the rest of its window's hop and the model's lookahead
        self.lookahead_samples = int(self.gen.lookahead_samples)
        self.idle_samples = int(self.gen.hop) * SAMPLES_PER_FRAME
        self._lock = threading.Lock()

    def motion(self, audio: np.ndarray, final: bool) -> MotionFrames | None:
        """Push 16 kHz samples that continue the timeline (``final``: an utterance ends after them)
        and return the motion frames released by this, in order (None when none is). Blocks for
        the windows' compute."""
        if audio.size:
            self.gen.push_audio(audio)
        if final:
            self.gen.flush()
        parts = []
        while (fr := self.gen.pop_frames()) is not None:
            parts.append(fr)
        return self.gestures(MotionFrames.concat(parts)) if parts else None

    def reset(self) -> None:
        """Forget the audio and motion so far: the next :meth:`motion` call starts a new stream
        (Session.interrupt; called from the motion thread)."""
        self.gen.reset()
        self.gestures.reset()

    def render(self, motion: MotionFrames) -> np.ndarray:
        """One frame of motion (a :class:`MotionFrames` of length 1) to one frame: uint8
        ``[H, W, 3]``, ``(W, H) = frame_size``. Blocks a few ms."""
        with self._lock:
            return self.renderer.render(motion.frame(0))

    def timings(self) -> dict[str, float]:
        """Mean seconds per call of each stage: a motion window, and each renderer stage per frame."""
        out = {}
        ms = list(self.gen.window_ms)
        if ms:
            out["motion_window"] = sum(ms) / len(ms) / 1000
        with self._lock:
            out.update({f"render.{k}": v / 1000 for k, v in self.renderer.per_frame_ms().items()})
        return out
