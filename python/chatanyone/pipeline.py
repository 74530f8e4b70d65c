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
        video_driven: the motion comes from a driving video (:func:`chatanyone.reenact.reenact`),
            not speech: the region refiner then runs unless ``config.refine_region`` is False
            (:meth:`~chatanyone.SessionConfig.region_refiner_on`).

    The Session calls :meth:`motion` from its motion thread and :meth:`render` from its render
    thread; each is called from one thread only.
    """

    def __init__(self, avatar, config, *, video_driven: bool = False):
        from .motion import MotionGenerator
        from .motion.gesture import GestureSmoother
        from .render.geometry import GeomRenderer

        if getattr(avatar, "photo", None) is None:
            raise ValueError("the avatar carries no photo (prepared by an older chatanyone): "
                             "prepare it again with Avatar.prepare")
        self.gen = MotionGenerator(style=config.style, intensity=config.intensity,
                                   seed=config.seed, steps=config.ddim_steps,
                                   providers=config.providers)
        # with the preset's own mouth refiner (fast: 64 px crop, quality: 128 px) when asked for
        self.renderer = GeomRenderer(avatar, config.long_side, refine_mouth=config.refine_mouth,
                                     refine_preset=config.preset,
                                     refine_region=config.region_refiner_on(video_driven))
        # the model's arm offsets smoothed into gestures, its noisy finger points dropped
        self.gestures = GestureSmoother()
        self.frame_size: tuple[int, int] = self.renderer.size   # (width, height)
        # audio a motion frame may wait for: the rest of its window's hop and the model's lookahead
        self.lookahead_samples = int(self.gen.lookahead_samples)
        self.idle_samples = int(self.gen.hop) * SAMPLES_PER_FRAME
        self._lock = threading.Lock()
        self.warm_up()

    def motion(self, audio: np.ndarray, final: bool) -> MotionFrames | None:
        """Push 16 kHz samples that continue the timeline (``final``: an utterance ends after them)
        and return the motion frames released by this, in order (None when none is). Blocks for
        the windows' compute."""
        parts = []
        fr = self.motion_step(audio, final)
        while fr is not None:
            parts.append(fr)
            fr = self.motion_step(np.zeros(0, np.float32), False)
        return MotionFrames.concat(parts) if parts else None

    def motion_step(self, audio: np.ndarray, final: bool) -> MotionFrames | None:
        """:meth:`motion`, but only the frames of one generator step (a batch of chunks, or a
        window); None when none is ready. More may be ready (:meth:`pending`): the Session calls
        again with empty audio, so that it renders these frames while the next are computed."""
        if audio.size:
            self.gen.push_audio(audio)
        if final:
            self.gen.flush()
        fr = self.gen.pop_frames()
        return self.gestures(fr) if fr is not None else None

    def pending(self) -> bool:
        """Whether :meth:`motion` would release frames without more audio (motion thread only)."""
        return bool(self.gen.scheduler.queue) or self.gen.window_ready()

    def warm_up(self) -> None:
        """Pay the first-call costs (allocations, caches, lazy imports of the Whisper encoder, the
        face and body denoisers, the mouth predictor and viseme head, the renderer) here, at Session
        creation, instead of on the first frame a listener waits for: the stream's first face
        window is sampled now (:meth:`MotionGenerator.prime`: it hears no audio), the predictor runs
        once on silence and one frame is rendered and dropped. Without the mouth predictor a window
        of silence is generated and forgotten. Blocks ~40-60 ms on a quiet core; the results and
        the timings (:meth:`timings`) are as without it."""
        g = self.gen
        fr = g.prime()
        if fr is not None:
            m = g.mouth
            m.predict_segment(np.zeros((max(g.P, m.past) + m.look + 1, m.mean.shape[0]), np.float32), 1)
        else:
            n = g.hop + g.lookahead_samples // SAMPLES_PER_FRAME + 1
            g.push_audio(np.zeros(n * SAMPLES_PER_FRAME, np.float32))
            fr = g.pop_frames(1)
            g.reset()
        if fr is not None:
            self.renderer.render(fr.frame(0))
        g.window_ms.clear()
        self.renderer.times.clear()
        self.renderer.frames = 0

    def reset(self) -> None:
        """Forget the audio and motion so far: the next :meth:`motion` call starts a new stream
        (Session.interrupt; called from the motion thread)."""
        self.gen.reset()
        self.gestures.reset()
        self.gen.prime()  # the new stream's first face window, before its audio comes

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
