"""The streaming session: audio chunks in, video frames out, in real time.

Threads: the caller feeds audio (:meth:`Session.feed_audio`, never blocks on computation); a motion
worker turns 16 kHz audio into motion frames (25 fps) as soon as a window and its lookahead are
there; a render worker turns motion into images ahead of the consumer (at most
``config.max_ahead_frames``); the caller pulls frames (:meth:`Session.next_frame`). The motion of the
next window is computed while frames of this one render.

Timeline: every frame ``k`` owns the 16 kHz samples ``[round(k*16000/fps), round((k+1)*16000/fps))``.
An utterance of ``S`` samples ends, after :meth:`flush`, with ``ceil(S*fps/16000)`` frames (the last
slice padded with silence), then one ``None``.

Ends: the Session is the one owner of where audio ends, and keeps two different facts:

- ``_ends`` (frame counts at the session's fps): utterance ends, where :meth:`Session.next_frame`
  returns None once. Set by :meth:`Session.flush` and :meth:`Session.interrupt` only.
- ``_final_until`` (16 kHz samples): the timeline is final up to here, so no frame before it waits
  for more audio or for the model's lookahead. Set at every utterance end, and also where a
  real-time underrun fills in silence (final, but no utterance end: no None).

Each time ``_final_until`` moves on, its position is queued as a final mark (``_marks``), and the
motion model is told of it exactly once, at that position: ``Pipeline.motion(audio, final=True)``
on the call whose audio ends there, even when more audio was fed since (the next utterance then
follows in later calls). So the motion of an utterance's last frames never depends on how soon
the next one is fed. The model pads a final stretch with silence to a whole motion frame (640
samples); the audio it hears next starts after that padding, at the same place on the session's
timeline, so motion frame ``m`` always shows samples ``[640 m, 640 (m + 1))`` of the timeline
(at frame rates other than 25 the next utterance's first < 640 samples are heard as that silence). The generator keeps only the consequence, in its own units
(``AudioFrontEnd.eos``: motion frames, padded to 640 samples), until the next audio lifts it; it
never sees an utterance end, and the Session never reads its record. A rendered frame holds the
last motion frame of a final stretch only past it, never while the motion of that stretch is still
being computed. ``motion/design.md`` says the same from the other side.

Locking: one condition variable guards the timeline. Resampling (the only work a feeder does) runs
outside it, one second of input at a time, so a reader is never blocked by a feeder however large
its chunk. The workers hold only a weak reference to the Session between steps: a Session dropped
without :meth:`Session.close` is collected, its threads end and a ``ResourceWarning`` names the leak.
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from .audio.resample import StreamResampler
from .config import SessionConfig, parse_frame_device
from .inputs import pcm_mono_float32, sample_rate_hz, timeout_seconds
from .spec.motion_layout import MotionFrames
from .spec.timeline import MOTION_FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger("chatanyone")

_REALTIME_SLACK_S = 0.1  # real-time mode: how late audio may be before silence fills in
# interrupt(): the expression (mouth) is back at idle after this much audio time, and head, eyes,
# body and hands ease back over the longer span; both with a smoothstep, so nothing jumps
INTERRUPT_SPEECH_S = 0.1
INTERRUPT_EASE_S = 0.4
# for callers that pace the frames (serve's LiveStream, the LiveKit generator): after an interrupt,
# a frame slot this Session has not filled by its due time (and at least BRIDGE_WAIT_S after the
# interrupt) may be filled with the last image held and silence ("bridge" frames), while the
# Session renders its cut (a motion window and a render, ~0.1-0.2 s). At most BRIDGE_MAX_S of them:
# fewer than the silent easing frames (INTERRUPT_EASE_S), so a frame a bridge replaces is silent.
BRIDGE_WAIT_S = 0.02
BRIDGE_MAX_S = 0.2


@dataclass(frozen=True)
class Frame:
    """One rendered frame and the audio it belongs to."""

    image: np.ndarray       # uint8 [H, W, 3] RGB; an onnxruntime.OrtValue (DLPack) when
                            # SessionConfig.frame_device is not "host"
    index: int              # frame number since the session started
    timestamp: float        # seconds: start of the frame on the session's timeline (index / fps)
    audio: np.ndarray       # float32 [n] 16 kHz mono samples this frame shows (n ~ 16000 / fps)
    sample_rate: int = SAMPLE_RATE


class _Samples:
    """The 16 kHz timeline's samples ``[start, end)`` in one growable buffer: appends are amortized
    O(1) (no copy of what is queued), dropping the head is O(1), memory follows what is kept."""

    _MIN = 1 << 16

    def __init__(self):
        self._buf = np.zeros(self._MIN, np.float32)
        self._off = 0          # buffer index of sample `start`
        self.start = 0
        self.end = 0

    @property
    def size(self) -> int:
        return self.end - self.start

    def append(self, x: np.ndarray) -> None:
        n = x.size
        if not n:
            return
        live = self.size
        if self._off + live + n > self._buf.size:
            cap = max(self._MIN, 1 << int(math.ceil(math.log2(2 * (live + n)))))
            if cap > self._buf.size or cap * 4 <= self._buf.size:
                buf = np.zeros(cap, np.float32)   # grow, or shrink after a long backlog is gone
            else:
                buf = self._buf                   # compact in place (the copy below is overlap-safe)
            buf[:live] = self._buf[self._off:self._off + live]
            self._buf, self._off = buf, 0
        self._buf[self._off + live:self._off + live + n] = x
        self.end += n

    def slice(self, a: int, b: int) -> np.ndarray:
        """A copy of samples ``[a, b)``, zeros where the timeline holds none."""
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            out[lo - a:hi - a] = self._buf[self._off + lo - self.start:self._off + hi - self.start]
        return out

    def drop_before(self, s: int) -> None:
        s = min(max(s, self.start), self.end)
        self._off += s - self.start
        self.start = s

    def truncate(self, e: int) -> None:
        """Forget samples from ``e`` on (``e`` before ``start``: forget all, the timeline restarts at ``e``)."""
        if e <= self.start:
            self._off, self.start, self.end = 0, e, e
        elif e < self.end:
            self.end = e

    def zero(self, a: int, b: int) -> None:
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            self._buf[self._off + lo - self.start:self._off + hi - self.start] = 0.0


class Session:
    """A real-time talking-avatar stream.

    Args:
        avatar: a prepared :class:`~chatanyone.Avatar` (see ``Avatar.prepare``).
        config: a :class:`SessionConfig`; defaults if None.

    Use one thread to :meth:`feed_audio` and another (or the same) to :meth:`next_frame`. Close
    with :meth:`close` (or use ``with``); a Session dropped unclosed is cleaned up when it is
    collected, with a ``ResourceWarning``.
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
        self._closed = True  # until the threads run: __del__-time cleanup has nothing to stop
        self.config = config
        self.avatar = avatar
        from .runners.base import frame_uploader
        self._upload = frame_uploader(parse_frame_device(config.frame_device))   # before the pipeline: fails fast
        self._pipe = _pipeline if _pipeline is not None else _default_pipeline(avatar, config)
        self._fps = float(config.fps)
        # interrupt(): frames over which speech, then everything, eases back to idle
        self._n_fast = int(math.floor(INTERRUPT_SPEECH_S * self._fps + 1e-9)) + 1
        self._n_ease = max(self._n_fast, int(round(INTERRUPT_EASE_S * self._fps)))

        self._cv = threading.Condition()
        self._feed_lock = threading.Lock()    # serializes feeders: the resampler's state is theirs
        self._resampler: StreamResampler | None = None
        self._resampler_epoch = 0
        self._feed_epoch = 0                  # bumped by interrupt(): in-flight resampling is dropped
        self._epoch = 0                       # bumped by interrupt(): the timeline was cut
        self._gen_epoch = 0                   # the epoch the motion model was last reset for
        self._audio = _Samples()              # the 16 kHz timeline
        self._motion_done = 0        # motion frames computed
        self._motion: dict[int, MotionFrames] = {}  # one frame each, by index
        self._final_until = 0        # samples known to be final (flush, interrupt, underrun fill)
        self._marks: collections.deque[int] = collections.deque()  # final marks not yet told the motion model
        self._ends: collections.deque[int] = collections.deque()  # frame counts where utterances end
        self._frames: collections.deque[tuple[Frame, MotionFrames]] = collections.deque()
        self._next_render = 0        # next frame index to render
        self._next_out = 0           # next frame index to hand out
        self._shown: MotionFrames | None = None  # motion of the last frame handed out
        self._ease: tuple[int, MotionFrames] | None = None  # (first frame, motion it eases from) after interrupt()
        self._t0: float | None = None
        self._error: BaseException | None = None
        self._m_pushed = 0           # timeline samples handed to the motion model
        self._closed = False
        ref = weakref.ref(self)
        self._threads = [threading.Thread(target=_worker, args=(ref, self._cv, step), name=name, daemon=True)
                         for step, name in (("_motion_step", "chatanyone-motion"),
                                            ("_render_step", "chatanyone-render"))]
        self._finalizer = weakref.finalize(self, _unclosed, self._cv, repr(config))
        self._finalizer.atexit = False
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ public API
    def feed_audio(self, pcm, sample_rate: int) -> None:
        """Queue speech. Returns once it is resampled (~2 ms per second of 44.1 kHz input); no network
        runs in this call, and the lock readers need is only taken to append each resampled second.

        Args:
            pcm: ``[S]`` mono or ``[S, C]`` multi-channel samples (channels last): uint8, int8,
                int16, int32 (24-bit left-aligned), float16, float32 or float64 (floats in
                [-1, 1]; see :mod:`chatanyone.inputs`); any length, one sample to minutes.
            sample_rate: rate of ``pcm`` in Hz (an int in [8000, 384000]); it may change between
                utterances.
        Raises:
            ValueError/TypeError naming the bad argument; the session stays usable.
            RuntimeError: the session is closed.
        """
        rate = sample_rate_hz(sample_rate)
        mono = pcm_mono_float32(pcm)
        with self._feed_lock:
            with self._cv:
                self._check_open()
                epoch = self._feed_epoch
            r = self._resampler
            if r is not None and (self._resampler_epoch != epoch or r.rate != rate):
                if self._resampler_epoch == epoch:      # a new rate: finish the old stream first
                    self._commit(r.flush(), epoch)
                r = self._resampler = None
            if r is None:
                r = self._resampler = StreamResampler(rate)
                self._resampler_epoch = epoch
            step = max(rate, 1)  # one second of input per piece: readers wait for no more
            for i in range(0, mono.size, step):
                if not self._commit(r.push(mono[i:i + step]), epoch):
                    self._resampler = None  # interrupted meanwhile: the rest is dropped
                    return

    def flush(self) -> None:
        """End the utterance: the remaining audio is rendered, then :meth:`next_frame` returns None once.
        Waits for a feed in progress in another thread."""
        with self._feed_lock:
            with self._cv:
                self._check_open()
                epoch = self._feed_epoch
            tail = None
            if self._resampler is not None and self._resampler_epoch == epoch:
                tail = self._resampler.flush()
            self._resampler = None
            with self._cv:
                self._check_open()
                if tail is not None and self._feed_epoch == epoch:
                    self._append(tail)
                n_frames = self._frames_covering(self._a_end)
                if self._ends and self._ends[-1] >= n_frames:
                    return  # nothing new since the last flush
                self._pad_to(self._frame_start(n_frames))
                self._mark_final()
                self._ends.append(n_frames)
                self._cv.notify_all()

    def interrupt(self) -> None:
        """Barge-in: stop the speech now and ease back to idle. Never blocks on computation.

        Everything not yet handed out by :meth:`next_frame` is dropped: queued audio, the motion
        computed for it and frames rendered ahead. The utterance then ends with
        ``round(0.4 * fps)`` frames that ease from the last frame handed out to idle motion: the
        expression (mouth) reaches idle within 0.1 s of audio time, head and body within 0.4 s;
        then :meth:`next_frame` returns None once. Their audio is silence. With nothing queued
        beyond the frames already handed out, it does nothing.
        """
        with self._cv:
            self._check_open()
            self._feed_epoch += 1      # a feeder resampling right now drops what it has not appended
            kc = self._next_out        # first frame the consumer has not seen
            cut = self._frame_start(kc)
            if self._a_end <= cut:
                return                 # nothing queued past what was shown: nothing to stop
            k_end = kc + self._n_ease
            self._frames.clear()
            self._next_render = kc
            # motion: everything from the motion frame under frame kc on is recomputed by a reset
            # model from silence, starting on the motion grid
            mb = int(math.floor(max(0.0, (kc + 0.5) * MOTION_FPS / self._fps - 0.5)))
            for m in [m for m in self._motion if m >= mb]:
                del self._motion[m]
            self._motion_done = mb
            self._m_pushed = mb * SAMPLES_PER_FRAME
            self._epoch += 1           # the motion worker resets the model before its next step
            # audio: cut at frame kc, silence to the end of the easing frames
            self._audio.truncate(cut)
            self._audio.zero(self._m_pushed, cut)
            self._pad_to(self._frame_start(k_end))
            self._marks.clear()        # marks in the dropped audio go; the reset model gets this one
            self._marks.append(self._a_end)
            self._final_until = self._a_end
            while self._ends and self._ends[-1] > kc:
                self._ends.pop()
            self._ends.append(k_end)
            self._ease = (kc, self._shown) if self._shown is not None else None
            self._cv.notify_all()

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """Return the next frame, blocking until it is rendered.

        Args:
            timeout: seconds to wait at most (a number >= 0; 0 polls); None or ``inf`` waits as
                long as needed. NaN, negative and non-numbers raise ValueError/TypeError.
        Returns:
            the next :class:`Frame`, or None once at the end of each utterance (after :meth:`flush`
            or :meth:`interrupt`).
        Raises:
            TimeoutError: no frame within ``timeout`` (offline mode with no audio queued).
            RuntimeError: a worker failed (the cause is chained) or the session is closed.

        In real-time mode (``config.realtime``) a frame whose audio has not arrived by its due
        time is rendered from silence (idle motion) instead of waiting.
        """
        timeout = timeout_seconds(timeout)
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
                    f, mo = self._frames.popleft()
                    self._next_out = f.index + 1
                    self._shown = mo
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
                        self._mark_final()
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
        """Stop the workers and free the session (its networks and buffers). Idempotent. Blocks
        until the workers finish their current step (at most a few seconds)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._finalizer.detach()
        alive = False
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
                alive |= t.is_alive()
        if not alive:  # release the networks and the queued data now, not when the object goes
            with self._cv:
                self._pipe = None
                self._frames.clear()
                self._motion.clear()
                self._audio = _Samples()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the frames: the avatar's photo at ``config.long_side``."""
        return getattr(self._pipe, "frame_size", None)

    def timings(self) -> dict[str, float]:
        """Mean seconds per call of each stage so far: a motion window (``motion_window``), keypoint
        composition (``compose``), each renderer stage (``render.<stage>``). Does not block."""
        return self._pipe.timings()

    # ------------------------------------------------------------------ timeline helpers (lock held)
    @property
    def _a_end(self) -> int:
        return self._audio.end

    @property
    def _a_start(self) -> int:
        return self._audio.start

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
        self._audio.append(np.asarray(x, np.float32))

    def _commit(self, x: np.ndarray, epoch: int) -> bool:
        """Append resampled audio unless an interrupt() came since ``epoch`` (then False)."""
        with self._cv:
            self._check_open()
            if self._feed_epoch != epoch:
                return False
            if x.size:
                self._append(x)
                self._cv.notify_all()
            return True

    def _mark_final(self) -> None:
        """The timeline is final up to its end: move ``_final_until`` there and queue the mark for
        the motion model (once: a mark where the last one was is not queued again)."""
        if self._a_end > self._final_until:
            self._marks.append(self._a_end)
        self._final_until = self._a_end

    def _pad_to(self, samples: int) -> None:
        if samples > self._a_end:
            self._append(np.zeros(samples - self._a_end, np.float32))

    def _slice(self, a: int, b: int) -> np.ndarray:
        return self._audio.slice(a, b)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the session is closed")

    # ------------------------------------------------------------------ workers
    def _fail(self, exc: BaseException) -> None:
        log.error("chatanyone worker failed", exc_info=exc)
        with self._cv:
            self._error = exc
            self._cv.notify_all()

    def _motion_step(self) -> bool:
        """Hand new timeline audio to the motion model and store the frames it releases.
        Returns False when there is nothing to do."""
        with self._cv:
            epoch = self._epoch
            reset = self._gen_epoch != epoch
        if reset:  # interrupt(): the model starts afresh from silence
            self._pipe.reset()
            with self._cv:
                self._gen_epoch = epoch
            return True
        with self._cv:
            if self._epoch != epoch:
                return True
            if self._next_out == 0 and self._render_plan(0) is not None:
                # the caller waits for the session's first frame and its motion is there: it renders
                # and reaches the caller alone (on 2 cores, the next motion step beside it slowed
                # the render 2-4x: issue 12's first-frame latency); next_frame's notify wakes this
                return False
            start, end = self._m_pushed, self._a_end
            # backpressure: push no further than the consumer needs, plus the model's lookahead
            need_until = self._frame_start(self._next_out + self.config.max_ahead_frames)
            end = min(end, max(need_until, self._motion_done * SAMPLES_PER_FRAME)
                      + self._pipe.lookahead_samples)
            # the next final mark goes, once, with the call whose audio ends there
            if self._marks:
                end = min(end, self._marks[0])
            final = bool(self._marks) and end == self._marks[0]
            if end <= start and not final:
                # the model may still hold frames it can release without more audio (motion_step
                # returns one step's frames per call, so that they render while the next compute)
                pending = getattr(self._pipe, "pending", None)
                if pending is None or not pending():
                    return False
                end = start
            audio = self._slice(start, max(start, end))
            self._m_pushed = max(start, end)
            if final:
                self._marks.popleft()
                # the model pads a final stretch with silence to its next motion frame; the motion
                # timeline stays the session's: the model next hears the audio from that frame on
                self._m_pushed = max(self._m_pushed, -(-end // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME)
        # outside the lock: the networks run here (one step at a time where the pipeline can)
        frames = getattr(self._pipe, "motion_step", self._pipe.motion)(audio, final)
        n = 0 if frames is None else len(frames)
        with self._cv:
            if self._epoch != epoch:
                return True  # interrupted meanwhile: these frames belong to the dropped speech
            m0 = self._motion_done
            for i in range(n):
                self._motion[m0 + i] = frames[i:i + 1]
            self._motion_done = m0 + n
            self._cv.notify_all()
        return True

    def _render_plan(self, k: int) -> tuple[int, int, float] | None:
        """``(m_lo, m_hi, w)``: the motion frames frame ``k`` interpolates (``w`` towards
        ``m_hi``), or None while they (or its audio) are not all there. Lock held."""
        # motion time of frame k's centre, in motion frames (= k at 25 fps)
        tm = max(0.0, (k + 0.5) * MOTION_FPS / self._fps - 0.5)
        m_lo = int(math.floor(tm))
        w = tm - m_lo if tm - m_lo > 1e-9 else 0.0
        if m_lo >= self._motion_done or self._frame_start(k + 1) > self._a_end:
            return None
        m_hi = m_lo + 1 if w else m_lo
        if m_hi >= self._motion_done:
            # motion frame m_hi comes unless it starts past the end of a final stretch
            if (self._final_until < self._frame_start(k + 1)
                    or m_hi * SAMPLES_PER_FRAME < self._final_until):
                return None
            m_hi, w = m_lo, 0.0  # past the end of a final stretch: hold its last motion frame
        return m_lo, m_hi, w

    def _render_step(self) -> bool:
        with self._cv:
            epoch = self._epoch
            k = self._next_render
            if k - self._next_out >= self.config.max_ahead_frames:
                return False
            plan = self._render_plan(k)
            if plan is None:
                return False
            m_lo, m_hi, w = plan
            mo = self._motion[m_lo].lerp(self._motion[m_hi], w)
            if self._ease is not None:
                k0, base = self._ease
                if k - k0 >= self._n_ease:
                    self._ease = None
                else:
                    mo = _ease(base, mo, k - k0, self._n_fast, self._n_ease)
            audio = self._slice(self._frame_start(k), self._frame_start(k + 1))
        image = self._pipe.render(mo)  # outside the lock
        if self._upload is not None:
            image = self._upload(image)
        with self._cv:
            if self._epoch != epoch:
                return True  # interrupted meanwhile: this frame is dropped
            self._frames.append((Frame(image=image, index=k, timestamp=k / self._fps, audio=audio), mo))
            self._next_render = k + 1
            # forget motion and audio no later frame needs
            tm_next = (k + 1.5) * MOTION_FPS / self._fps - 0.5
            for m in [m for m in self._motion if m < int(math.floor(tm_next)) - 1]:
                del self._motion[m]
            keep_from = min(self._frame_start(k + 1), self._m_pushed)
            if keep_from - self._a_start > SAMPLE_RATE:
                self._audio.drop_before(keep_from)
            self._cv.notify_all()
        return True


def _worker(ref, cv: threading.Condition, step: str) -> None:
    """A worker thread's loop. It holds the Session only while a step runs, so that a dropped
    Session is collected (and its finalizer stops this loop)."""
    while True:
        s = ref()
        if s is None or s._closed:
            return
        try:
            busy = getattr(s, step)()
        except BaseException as exc:  # reported to the consumer by next_frame
            s._fail(exc)
            return
        if not busy:
            with cv:
                if s._closed:
                    return
                s = None
                cv.wait(0.1)
        s = None


def _unclosed(cv: threading.Condition, what: str) -> None:
    """Finalizer of a Session collected without close(): wake its workers (they see it is gone)."""
    warnings.warn(f"unclosed chatanyone Session ({what}): call close() or use `with Session(...)`; "
                  "its threads were stopped when it was collected", ResourceWarning, stacklevel=2)
    with cv:
        cv.notify_all()


def _ease(base: MotionFrames, mo: MotionFrames, i: int, n_fast: int, n_slow: int) -> MotionFrames:
    """Frame ``i`` (0 = the first) of the easing after interrupt(): from ``base`` (the motion last
    shown) to ``mo`` (idle motion) with a smoothstep, over ``n_fast`` frames for the fields that
    carry speech and ``n_slow`` for the rest (:meth:`MotionFrames.ease_from`)."""
    return mo.ease_from(base, min(1.0, (i + 1) / n_fast), min(1.0, (i + 1) / n_slow))


def _default_pipeline(avatar, config):
    from .pipeline import Pipeline

    return Pipeline(avatar, config)
