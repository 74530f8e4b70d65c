"""The streaming session: audio chunks in, video frames out, in real time.

Threads: the caller feeds audio (:meth:`Session.feed_audio`, never blocks on computation); a motion
worker turns 16 kHz audio into motion frames (25 fps) as soon as a window and its lookahead are
there; a render worker turns motion into images ahead of the consumer (at most
``config.max_ahead_frames``); the caller pulls frames (:meth:`Session.next_frame`). The motion of the
next window is computed while frames of this one render.

Timeline: every frame ``k`` owns the 16 kHz samples ``[round(k*16000/fps), round((k+1)*16000/fps))``.
An utterance of ``S`` samples ends, after :meth:`flush`, with ``ceil(S*fps/16000)`` frames (the last
slice padded with silence), then one ``None``.
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from .audio.features import SAMPLE_RATE, as_mono_float32
from .audio.resample import StreamResampler
from .config import SessionConfig

log = logging.getLogger("chatanyone")

_REALTIME_SLACK_S = 0.1  # real-time mode: how late audio may be before silence fills in
MOTION_FPS = 25  # the motion model's frame rate; 640 samples per motion frame
SAMPLES_PER_MOTION = SAMPLE_RATE // MOTION_FPS


@dataclass(frozen=True)
class Frame:
    """One rendered frame and the audio it belongs to."""

    image: np.ndarray       # uint8 [H, W, 3] RGB; an onnxruntime.OrtValue (DLPack) when
                            # SessionConfig.frame_device is not "host"
    index: int              # frame number since the session started
    timestamp: float        # seconds: start of the frame on the session's timeline (index / fps)
    audio: np.ndarray       # float32 [n] 16 kHz mono samples this frame shows (n ~ 16000 / fps)
    sample_rate: int = SAMPLE_RATE


class Session:
    """A real-time talking-avatar stream.

    Args:
        avatar: a prepared :class:`~chatanyone.Avatar` (see ``Avatar.prepare``).
        config: a :class:`SessionConfig`; defaults if None.

    Use one thread to :meth:`feed_audio` and another (or the same) to :meth:`next_frame`. Close
    with :meth:`close` (or use ``with``).
    """

    def __init__(self, avatar, config: SessionConfig | None = None, *, _pipeline=None):
        if config is None:
            config = SessionConfig()
        if not isinstance(config, SessionConfig):
            raise TypeError(f"config must be a SessionConfig, got {type(config).__name__}")
        if _pipeline is None:
            from .avatar import Avatar

            if not isinstance(avatar, Avatar):
                raise TypeError(f"avatar must be a chatanyone.Avatar (see Avatar.prepare), "
                                f"got {type(avatar).__name__}")
        self.config = config
        self.avatar = avatar
        from .runners.base import frame_uploader
        self._upload = frame_uploader(config.frame_device)   # before the pipeline: fails fast
        self._pipe = _pipeline if _pipeline is not None else _default_pipeline(avatar, config)
        self._fps = float(config.fps)

        self._cv = threading.Condition()
        self._resampler: StreamResampler | None = None
        # 16 kHz timeline: samples [_a_start, _a_start + len) are kept in _audio
        self._audio = np.zeros(0, np.float32)
        self._a_start = 0
        self._a_end = 0              # samples on the timeline
        self._motion_done = 0        # motion frames computed
        self._motion: dict[int, dict] = {}
        self._final_until = 0        # samples known to be final (flushed); motion may pad past it
        self._ends: collections.deque[int] = collections.deque()  # frame counts where utterances end
        self._frames: collections.deque[Frame] = collections.deque()
        self._next_render = 0        # next frame index to render
        self._next_out = 0           # next frame index to hand out
        self._t0: float | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._m_pushed = 0           # timeline samples handed to the motion model
        self._gen_final_at = -1      # where the motion model was last told an utterance ends
        self._threads = [threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
                         for fn, name in ((self._motion_step, "chatanyone-motion"),
                                          (self._render_step, "chatanyone-render"))]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ public API
    def feed_audio(self, pcm, sample_rate: int) -> None:
        """Queue speech. Returns at once (it only resamples; no network runs in this call).

        Args:
            pcm: ``[S]`` mono or ``[S, C]`` multi-channel samples, int16, int32, float32 or
                float64 (floats in [-1, 1]); any length, one sample to minutes.
            sample_rate: rate of ``pcm`` in Hz; it may change between utterances.
        Raises:
            ValueError/TypeError naming the bad argument; the session stays usable.
            RuntimeError: the session is closed.
        """
        mono = _as_mono(pcm, sample_rate)
        with self._cv:
            self._check_open()
            if self._resampler is None or self._resampler.rate != sample_rate:
                if self._resampler is not None:
                    self._append(self._resampler.flush())
                self._resampler = StreamResampler(sample_rate)
            self._append(self._resampler.push(mono))
            self._cv.notify_all()

    def flush(self) -> None:
        """End the utterance: the remaining audio is rendered, then :meth:`next_frame` returns None once."""
        with self._cv:
            self._check_open()
            if self._resampler is not None:
                self._append(self._resampler.flush())
                self._resampler = None
            n_frames = self._frames_covering(self._a_end)
            if self._ends and self._ends[-1] >= n_frames:
                return  # nothing new since the last flush
            self._pad_to(self._frame_start(n_frames))
            self._final_until = self._a_end
            self._ends.append(n_frames)
            self._cv.notify_all()

    def interrupt(self) -> None:
        """Drop all queued audio that has not been turned into motion yet, and end the utterance
        there; motion continues from where it is, so the avatar returns smoothly to idle."""
        with self._cv:
            self._check_open()
            self._resampler = None
            keep = self._m_pushed  # what the motion model has: it becomes motion, the rest goes
            keep_frames = self._frames_covering(keep)
            keep = self._frame_start(keep_frames)
            if keep < self._a_end:
                self._audio = self._audio[: max(0, keep - self._a_start)]
                self._a_end = max(keep, self._a_start)
            self._pad_to(self._frame_start(keep_frames))
            self._final_until = self._a_end
            while self._ends and self._ends[-1] > keep_frames:
                self._ends.pop()
            if not self._ends or self._ends[-1] < keep_frames:
                self._ends.append(keep_frames)
            self._cv.notify_all()

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """Return the next frame, blocking until it is rendered.

        Args:
            timeout: seconds to wait at most; None waits as long as needed.
        Returns:
            the next :class:`Frame`, or None once at the end of each utterance (after :meth:`flush`
            or :meth:`interrupt`).
        Raises:
            TimeoutError: no frame within ``timeout`` (offline mode with no audio queued).
            RuntimeError: a worker failed (the cause is chained) or the session is closed.

        In real-time mode (``config.realtime``) a frame whose audio has not arrived by its due
        time is rendered from silence (idle motion) instead of waiting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            if self._t0 is None:
                self._t0 = time.monotonic()
            while True:
                self._check_open()
                if self._error is not None:
                    raise RuntimeError(f"chatanyone session failed: {self._error}") from self._error
                if self._ends and self._ends[0] <= self._next_out:
                    self._ends.popleft()
                    return None
                if self._frames:
                    f = self._frames.popleft()
                    self._next_out = f.index + 1
                    self._cv.notify_all()
                    return f
                now = time.monotonic()
                if self.config.realtime:
                    k = self._next_out
                    # frame k's audio (and the model's lookahead) may arrive this late: a producer
                    # feeding in real time is never cut off
                    la = self._pipe.lookahead_samples
                    due = self._t0 + (k + 1) / self._fps + la / SAMPLE_RATE + _REALTIME_SLACK_S
                    if (now >= due and self._final_until < self._frame_start(k + 1)
                            and self._a_end < self._frame_start(k + 1) + la):
                        # underrun: the audio is late, so silence fills in (idle motion)
                        self._pad_to(self._frame_start(k + 1) + self._pipe.idle_samples)
                        self._final_until = self._a_end
                        self._cv.notify_all()
                    wait = due - now if now < due else 0.05
                else:
                    wait = None
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        raise TimeoutError(f"no frame within {timeout} s: feed audio, or call flush()")
                    wait = left if wait is None else min(wait, left)
                self._cv.wait(wait)

    def frames(self):
        """Iterate over frames until the end of the current utterance (explicit: call it yourself)."""
        while (f := self.next_frame()) is not None:
            yield f

    def close(self) -> None:
        """Stop the workers and free the session. Idempotent."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def fps(self) -> float:
        return self._fps

    # ------------------------------------------------------------------ timeline helpers (lock held)
    def _frame_start(self, k: int) -> int:
        return int(round(k * SAMPLE_RATE / self._fps))

    def _frames_covering(self, samples: int) -> int:
        """Number of frames whose slice starts before ``samples``."""
        k = int(math.ceil(samples * self._fps / SAMPLE_RATE))
        while k > 0 and self._frame_start(k - 1) >= samples:
            k -= 1
        while self._frame_start(k) < samples:
            k += 1
        return k

    def _append(self, x: np.ndarray) -> None:
        if x.size:
            self._audio = np.concatenate([self._audio, x.astype(np.float32, copy=False)])
            self._a_end += x.size

    def _pad_to(self, samples: int) -> None:
        if samples > self._a_end:
            self._append(np.zeros(samples - self._a_end, np.float32))

    def _slice(self, a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, self._a_start), min(b, self._a_end)
        if hi > lo:
            out[lo - a: hi - a] = self._audio[lo - self._a_start: hi - self._a_start]
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the session is closed")

    # ------------------------------------------------------------------ workers
    def _run(self, step) -> None:
        try:
            while True:
                with self._cv:
                    if self._closed:
                        return
                if not step():
                    with self._cv:
                        if self._closed:
                            return
                        self._cv.wait(0.1)
        except BaseException as exc:  # reported to the consumer by next_frame
            log.exception("chatanyone worker failed")
            with self._cv:
                self._error = exc
                self._cv.notify_all()

    def _motion_step(self) -> bool:
        """Hand new timeline audio to the motion model and store the frames it releases.
        Returns False when there is nothing to do."""
        with self._cv:
            start, end = self._m_pushed, self._a_end
            # backpressure: push no further than the consumer needs, plus the model's lookahead
            need_until = self._frame_start(self._next_out + self.config.max_ahead_frames)
            end = min(end, max(need_until, self._motion_done * SAMPLES_PER_MOTION)
                      + self._pipe.lookahead_samples)
            final = end == self._a_end == self._final_until and self._gen_final_at != end
            if end <= start and not final:
                return False
            audio = self._slice(start, max(start, end))
            self._m_pushed = max(start, end)
            if final:
                self._gen_final_at = end
        frames = self._pipe.motion(audio, final)  # outside the lock: the networks run here
        with self._cv:
            m0 = self._motion_done
            for i, fr in enumerate(frames):
                self._motion[m0 + i] = fr
            self._motion_done = m0 + len(frames)
            self._cv.notify_all()
        return True

    def _render_step(self) -> bool:
        with self._cv:
            k = self._next_render
            if k - self._next_out >= self.config.max_ahead_frames:
                return False
            # motion time of frame k's centre, in motion frames (= k at 25 fps)
            tm = max(0.0, (k + 0.5) * MOTION_FPS / self._fps - 0.5)
            m_lo = int(math.floor(tm))
            w = tm - m_lo if tm - m_lo > 1e-9 else 0.0
            if m_lo >= self._motion_done or self._frame_start(k + 1) > self._a_end:
                return False
            m_hi = m_lo + 1 if w else m_lo
            if m_hi >= self._motion_done:
                if self._final_until < self._frame_start(k + 1):
                    return False
                m_hi, w = m_lo, 0.0  # end of a final stretch: hold the last motion frame
            mo = _lerp(self._motion[m_lo], self._motion[m_hi], w)
            audio = self._slice(self._frame_start(k), self._frame_start(k + 1))
        image = self._pipe.render(mo)  # outside the lock
        if self._upload is not None:
            image = self._upload(image)
        with self._cv:
            self._frames.append(Frame(image=image, index=k, timestamp=k / self._fps, audio=audio))
            self._next_render = k + 1
            # forget motion and audio no later frame needs
            tm_next = (k + 1.5) * MOTION_FPS / self._fps - 0.5
            for m in [m for m in self._motion if m < int(math.floor(tm_next)) - 1]:
                del self._motion[m]
            keep_from = min(self._frame_start(k + 1), self._m_pushed)
            if keep_from - self._a_start > 4 * SAMPLE_RATE:
                drop = keep_from - self._a_start
                self._audio = self._audio[drop:]
                self._a_start += drop
            self._cv.notify_all()
        return True


def _lerp(a: dict, b: dict, w: float) -> dict:
    if w == 0.0 or a is b:
        return a
    return {key: (1 - w) * a[key] + w * b[key] if np.issubdtype(np.asarray(a[key]).dtype, np.floating)
            else a[key] for key in a}


def _as_mono(pcm, sample_rate) -> np.ndarray:
    """Validate and convert ``pcm`` to float32 mono at its own rate."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if not (8000 <= sample_rate <= 384000):
        raise ValueError(f"sample_rate must be between 8000 and 384000 Hz, got {sample_rate}")
    if not hasattr(pcm, "__array__") and not isinstance(pcm, (list, tuple)):
        raise TypeError(f"pcm must be an array of samples, got {type(pcm).__name__}")
    a = np.asarray(pcm)
    if a.ndim == 2 and a.shape[1] > 8 and a.shape[0] <= 8:
        raise ValueError(f"pcm must be [samples] or [samples, channels] (channels last), got shape {a.shape}")
    return as_mono_float32(a)


def _default_pipeline(avatar, config):
    from .pipeline import Pipeline

    return Pipeline(avatar, config)
