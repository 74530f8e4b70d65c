"""One live avatar stream: a real-time :class:`~chatanyone.Session`, fed by the client's microphone
clock, its frames released on one paced timeline as paired video and 48 kHz audio.

No WebRTC here (see :mod:`chatanyone.serve.rtc` for the aiortc tracks): this module is the timing
core, so that pairing, drift and interruption can be checked without a network.

Timeline: the Session's frame ``k`` owns the 16 kHz samples ``[round(k*16000/fps),
round((k+1)*16000/fps))`` (its ``Frame.audio``). The stream releases frame ``k`` at
``anchor + k / fps`` together with exactly those samples upsampled to 48 kHz, so video timestamp
``k / fps`` and audio position ``3 * round(k*16000/fps) / 48000`` never drift apart (a constant
0.6 ms filter delay aside).

Feeding: every 20 ms chunk of microphone audio that arrives feeds the Session exactly 20 ms: the
microphone itself, the next 20 ms of an uploaded speech file, or silence (after an interrupt).
The Session's timeline therefore runs on the client's clock, with no gap to fill and no growing
backlog; while a file plays, speech on the microphone interrupts it (barge-in).
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time

import numpy as np

# bridge frames after an interrupt (see chatanyone.session): the stream does not wait for the cut
from ..session import BRIDGE_MAX_S, BRIDGE_WAIT_S  # noqa: F401  (BRIDGE_MAX_S: re-exported)

log = logging.getLogger("chatanyone")

OUT_RATE = 48000
UP = 3                      # 16 kHz -> 48 kHz
_FIR_HALF = 10              # input samples each side the upsampling filter reaches
VAD_DB = -42.0              # a 20 ms chunk louder than this (dBFS RMS) counts as speech
BARGE_IN_CHUNKS = 2         # consecutive loud 20 ms chunks that interrupt a playing file (40 ms)
RESUME_SILENCE_S = 0.3      # after an interrupt the microphone is heard again after this much quiet
ONSET_QUIET_S = 0.2         # speech after this much quiet is an onset (latency measurement)
MUTE_MAX_FRAMES = 12        # after an interrupt, frames muted at most (the Session drops the rest)
REPORT_AFTER_S = 0.5        # an interrupt is reported at the utterance's end or this much media later
MAX_LATE_S = 0.5            # a frame this late re-anchors the release clock (after a stall)
POLL_S = 0.02               # the pacing thread's longest wait for a frame before it looks again


class Upsampler3:
    """Stateful 16 kHz -> 48 kHz float32 -> int16 upsampler with a fixed delay of ``_FIR_HALF``
    input samples (0.625 ms): chunk boundaries leave no trace."""

    def __init__(self):
        from scipy.signal import firwin

        self._h = (firwin(2 * _FIR_HALF * UP + 1, 1.0 / UP) * UP).astype(np.float64)
        self._hist = np.zeros(2 * _FIR_HALF, np.float64)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x [n]`` float32 16 kHz -> ``[3n]`` int16 48 kHz (delayed by the fixed filter delay)."""
        x = np.asarray(x, np.float64).reshape(-1)
        n = x.size
        if n == 0:
            return np.zeros(0, np.int16)
        buf = np.concatenate([self._hist, x])
        up = np.zeros(buf.size * UP)
        up[::UP] = buf
        y = np.convolve(up, self._h, mode="same")
        # outputs for input positions [_FIR_HALF, _FIR_HALF + n) of buf: fully inside the filter
        y = y[_FIR_HALF * UP:(_FIR_HALF + n) * UP]
        self._hist = buf[-2 * _FIR_HALF:]
        return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def release_memory() -> None:
    """Hand freed heap back to the OS (glibc ``malloc_trim``): a closed Session's models and
    buffers are freed by Python, but without this the server's resident size creeps up with every
    session that comes and goes (measured: +40 MB per 2 sessions without, flat with). No-op
    elsewhere."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def level_db(x: np.ndarray) -> float:
    """RMS level of float samples in dBFS (-120 for silence)."""
    if x.size == 0:
        return -120.0
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20.0 * math.log10(max(r, 1e-6))


class LiveStream:
    """A Session made live: feeding, pacing, interrupting, and the figures the page shows.

    Args:
        session: a :class:`~chatanyone.Session` made with ``SessionConfig(realtime=True)``; the
            stream owns it and closes it.
        deliver: ``deliver(index, image, audio48)`` called from the stream's pacing thread at each
            frame's release time, with ``image`` ``[H, W, 3]`` uint8 and ``audio48`` int16
            ``[n]`` (the frame's own audio at 48 kHz; zeros while muted). It must not block.
        on_event: ``on_event(dict)`` for notifications (interrupted, stats, failed); may be None.
        on_interrupt: ``on_interrupt()`` called by :meth:`interrupt` in the caller's thread (the
            button's, or :meth:`feed_mic`'s for speech barge-in), e.g. to drop audio queued
            downstream; may be None.
        cushion_s: release delay after the first frame, absorbing jitter.
        clock, sleep: injectable for simulated-clock tests.

    Thread safety: :meth:`feed_mic`, :meth:`play`, :meth:`interrupt` may be called from any one
    thread (the server's event loop); the pacing thread is internal.
    """

    def __init__(self, session, deliver, on_event=None, *, cushion_s: float = 0.06,
                 clock=time.monotonic, sleep=None, on_interrupt=None):
        self.session = session
        self._on_interrupt = on_interrupt or (lambda: None)
        self.fps = float(session.fps)
        self._deliver = deliver
        self._on_event = on_event or (lambda ev: None)
        self._cushion = float(cushion_s)
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or (lambda s: self._stop.wait(s))
        self._lock = threading.Lock()
        self._up = Upsampler3()
        # feeding state (event-loop side)
        self._file: np.ndarray | None = None       # 16 kHz samples left of an uploaded file
        self._file_pos = 0
        self._file_done = False                     # a file just ended: flush the utterance
        self._mic_frac = 0.0                        # fractional 16 kHz samples owed
        self._suppress = False                      # after an interrupt: microphone muted ...
        self._quiet_s = 0.0                         # ... until this much quiet
        self._loud_run = 0
        self._onsets: collections.deque[float] = collections.deque(maxlen=32)  # arrival times
        self._was_quiet_s = 1.0      # microphone side, seconds of quiet
        self._rel_quiet_s = 1.0      # release side, seconds of quiet
        # pacing state (thread side)
        self._mute = False
        self._mute_left = 0
        self._anchor: tuple[float, int] | None = None
        self._next_k: int | None = None              # next frame index to release
        self._last_image = None                      # image of the last frame released
        self._bridge: dict | None = None             # after an interrupt: {"at", "until"}
        self.bridged = 0                             # bridge frames released (all interrupts)
        self.discarded = 0                           # Session frames whose slot a bridge filled
        self.discarded_voiced = 0                    # ... of them with unmuted speech (never: checked)
        self._loud_since: tuple[float, float] | None = None   # (arrival, audio s) of a loud run's first chunk
        self._file_started = -math.inf
        self.frames_out = 0
        self.first_frame_at: float | None = None
        self.created_at = clock()
        self.last_activity = self.created_at
        self.latency_s: float | None = None         # last speech onset -> its frame released
        self.interrupts: list[dict] = []
        self.failed: BaseException | None = None
        self._since_interrupt = 0                   # frames released since an unreported interrupt
        self._late_s = 0.0
        self._win = collections.deque(maxlen=64)    # release times, for live fps
        self._thread = threading.Thread(target=self._pump, name="chatanyone-live", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ feeding (event loop)
    def feed_mic(self, pcm: np.ndarray, rate: int) -> None:
        """One chunk of microphone audio (float32 mono ``[n]`` at ``rate``), as it arrives.

        Feeds the Session the same duration: the microphone, the next part of a playing file, or
        silence. Non-blocking."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        now = self._clock()
        dur = pcm.size / rate
        db = level_db(pcm)
        loud = db > VAD_DB
        self._loud_run = self._loud_run + 1 if loud else 0
        if loud:
            self.last_activity = now
            if self._loud_run == 1:
                self._loud_since = (now, dur)
        with self._lock:
            playing = self._file is not None
        if playing and self._loud_run >= BARGE_IN_CHUNKS:
            log.info("live: speech on the microphone interrupts the file")
            rec = self.interrupt(reason="speech", keep_mic=True)
            if self._loud_since is not None:
                # detection, counted from the start of the first loud chunk's audio (it arrives
                # when it ends): that chunk's duration, plus the time to the chunk that confirmed
                # it, at least that chunk's own duration (chunks that arrive together were late);
                # speech that was already going when the file started: from the file's start
                t1, d1 = self._loud_since
                if t1 - d1 < self._file_started:
                    rec["detect_ms"] = round(1000 * (now - self._file_started), 1)
                else:
                    rec["detect_ms"] = round(1000 * (d1 + max(now - t1, dur)), 1)
            playing = False
        if self._suppress:
            self._quiet_s = 0.0 if loud else self._quiet_s + dur
            if self._quiet_s >= RESUME_SILENCE_S:
                self._suppress = False
        # 16 kHz samples this chunk is worth (fractions carried, so no drift)
        want = self._mic_frac + dur * 16000.0
        n16 = int(want)
        self._mic_frac = want - n16
        if n16 == 0:
            return
        if playing:
            part = np.zeros(0, np.float32)
            with self._lock:
                f = self._file
                if f is not None:
                    part = f[self._file_pos:self._file_pos + n16]
                    self._file_pos += part.size
                    if self._file_pos >= f.size:
                        self._file = None
                        self._file_done = True
            if part.size < n16:
                part = np.concatenate([part, np.zeros(n16 - part.size, np.float32)])
            self.session.feed_audio(part, 16000)
            if self._file_done:
                self._file_done = False
                self.session.flush()
            return
        if self._suppress:
            self.session.feed_audio(np.zeros(n16, np.float32), 16000)
            return
        # speech onset on the microphone (loud after >= 0.2 s of quiet): its frame's release time
        # gives the server's latency (onsets are matched in order on the release side)
        if loud and self._was_quiet_s >= ONSET_QUIET_S:
            with self._lock:
                self._onsets.append(now)
        self._was_quiet_s = 0.0 if loud else self._was_quiet_s + dur
        self.session.feed_audio(pcm, rate)

    def play(self, pcm16k: np.ndarray) -> float:
        """Speak an uploaded file (float32 mono 16 kHz) in place of the microphone, at the
        microphone's pace; replaces a file already playing. Returns its duration in seconds."""
        pcm16k = np.asarray(pcm16k, np.float32).reshape(-1)
        if pcm16k.size == 0:
            raise ValueError("pcm16k is empty")
        with self._lock:
            self._file = pcm16k
            self._file_pos = 0
        self._file_started = self._clock()
        self._suppress = False
        # the file's first speech (first loud 20 ms) reaches the Session that much after now
        loud = [i for i in range(0, pcm16k.size, 320) if level_db(pcm16k[i:i + 320]) > VAD_DB]
        with self._lock:
            self._onsets.clear()
            if loud:
                self._onsets.append(self._clock() + loud[0] / 16000.0)
        self._rel_quiet_s = max(self._rel_quiet_s, ONSET_QUIET_S)
        self.last_activity = self._clock()
        return pcm16k.size / 16000.0

    def interrupt(self, reason: str = "button", keep_mic: bool = False) -> dict:
        """Stop speaking now: queued speech is dropped, audio of frames already rendered is muted,
        the avatar returns to idle motion. Returns the record the pacing thread completes and sends
        as an ``interrupted`` event: ``audio_stopped_ms`` (the first frame released after it, with
        silent audio), ``first_index`` (that frame's index; ``next_index``: the slot due next when
        the interrupt came), ``bridged`` (frame slots filled with
        the held image because the Session's frame was not there yet), ``idle_after_ms`` (the
        Session's cut ended), ``voiced_frames_after`` and ``discarded_voiced`` (speech released or
        lost after it: 0, checked), and for speech barge-in ``detect_ms``. Non-blocking."""
        now = self._clock()
        self.last_activity = now
        rec = {"type": "interrupted", "reason": reason, "received_at": now,
               "audio_stopped_ms": None, "idle_after_ms": None, "voiced_frames_after": 0,
               "next_index": self._next_k, "first_index": None, "bridged": 0, "discarded_voiced": 0,
               "_sent": False}
        with self._lock:
            self._file = None
            self._mute = True
            self._mute_left = MUTE_MAX_FRAMES
            self._bridge = {"at": now, "until": None}
            self._onsets.clear()
            self.interrupts.append(rec)
        if not keep_mic:
            self._suppress = True
            self._quiet_s = 0.0
        try:
            self.session.interrupt()
        except RuntimeError:
            pass  # closed meanwhile
        self._on_interrupt()
        return rec

    @property
    def playing_file(self) -> bool:
        with self._lock:
            return self._file is not None

    # ------------------------------------------------------------------ figures
    def stats(self) -> dict:
        """Live figures (JSON-ready): fps released, lateness, last onset latency."""
        t = list(self._win)
        fps = (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else 0.0
        return {"type": "stats", "fps": round(fps, 2), "frames": self.frames_out,
                "late_ms": round(1000 * self._late_s, 1),
                "server_latency_ms": None if self.latency_s is None else round(1000 * self.latency_s, 1),
                "first_frame_ms": None if self.first_frame_at is None
                else round(1000 * (self.first_frame_at - self.created_at), 1),
                "realtime_ratio": round(fps / self.fps, 3) if fps else 0.0}

    # ------------------------------------------------------------------ pacing thread
    def _pump(self) -> None:
        try:
            while not self._stop.is_set():
                deadline = self._bridge_deadline()
                # short waits: an interrupt that comes while the Session has no frame for us is
                # seen within POLL_S (a poll of a pipe or a condition, cheap)
                timeout = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - self._clock()))
                try:
                    f = self.session.next_frame(timeout=timeout)
                except TimeoutError:
                    if deadline is not None and self._clock() >= deadline - 1e-6:
                        self._release_bridge()
                    continue
                if f is None:           # an utterance ended (flush, or the interrupt's cut)
                    with self._lock:
                        self._mute = False
                        self._bridge = None
                    self._mark_interrupt("idle_after_ms")
                    self._report_interrupts()
                    continue
                if self._next_k is not None and f.index < self._next_k:
                    self._discard(f)    # its slot was filled by a bridge frame
                    continue
                self._release(f)
        except BaseException as exc:  # noqa: BLE001 - reported, the server drops this stream only
            if self._stop.is_set():
                return
            self.failed = exc
            log.warning("live stream failed: %s", exc)
            self._on_event({"type": "failed", "error": str(exc)})

    def _due(self, k: int) -> float:
        return self._anchor[0] + (k - self._anchor[1]) / self.fps

    def _bridge_deadline(self) -> float | None:
        """After an interrupt: when the next frame slot gets a bridge frame if the Session has not
        filled it (its due time, and at least ``BRIDGE_WAIT_S`` after the interrupt); else None."""
        with self._lock:
            b = self._bridge
            if b is not None and self._next_k is not None and b["until"] is None:
                # the slots after the frame being released when the interrupt came
                b["until"] = self._next_k + max(1, int(round(BRIDGE_MAX_S * self.fps)))
            if b is not None and (self._next_k is None or self._next_k >= b["until"]):
                b = self._bridge = None
        if b is None or self._last_image is None or self._anchor is None:
            return None
        return max(self._due(self._next_k), b["at"] + BRIDGE_WAIT_S)

    def _take_mute(self, f) -> bool:
        """Whether Session frame ``f`` is muted (a frame rendered before the interrupt's cut)."""
        with self._lock:
            mute = self._mute
            if mute and (not np.any(np.abs(f.audio) > 1e-6) or self._mute_left <= 0):
                # the Session's own cut (its interrupt eases to idle over frames of silence), or
                # the most frames a Session can have had in flight: speech from here is new
                mute = self._mute = False
            self._mute_left -= 1
        return mute

    def _discard(self, f) -> None:
        """A Session frame that came after a bridge frame took its slot: dropped (the slot's audio
        was silence; a frame of unmuted speech here would be speech lost, and is counted)."""
        mute = self._take_mute(f)
        self.discarded += 1
        if not mute and level_db(f.audio) > VAD_DB:
            self.discarded_voiced += 1
            with self._lock:
                for r in self.interrupts:
                    if not r["_sent"]:
                        r["discarded_voiced"] += 1

    def _release_bridge(self) -> None:
        """Fill the next frame slot with the last image held and silence (see ``BRIDGE_WAIT_S``)."""
        import types

        k = self._next_k
        n = int(round((k + 1) * 16000 / self.fps)) - int(round(k * 16000 / self.fps))
        self.bridged += 1
        with self._lock:
            for r in self.interrupts:
                if not r["_sent"]:
                    r["bridged"] += 1
        self._release(types.SimpleNamespace(index=k, image=self._last_image, audio=np.zeros(n, np.float32)),
                      bridge=True)

    def _release(self, f, bridge: bool = False) -> None:
        now = self._clock()
        k = f.index
        if self._anchor is None or now - self._due(k) > MAX_LATE_S or (bridge and now - self._due(k) > 0.5 / self.fps):
            # first frame; a stall; or a bridge frame after late frames: paced from here, no burst
            self._anchor = (now + (self._cushion if self._anchor is None else 0.0), k)
        due = self._due(k)
        if due > now:
            self._sleep(due - now)
            if self._stop.is_set():
                return
        self._late_s = max(0.0, self._clock() - due)
        mute = False if bridge else self._take_mute(f)
        audio = self._up(f.audio)
        if mute or bridge or self._pending_report():
            if mute or bridge:      # (a bridge's silence also ends the filter's 0.6 ms tail)
                audio = np.zeros_like(audio)
            self._mark_interrupt("audio_stopped_ms", index=k)
            self._since_interrupt += 1
            if self._since_interrupt >= REPORT_AFTER_S * self.fps:
                self._report_interrupts()
        t = self._clock()
        if not mute and level_db(f.audio) > VAD_DB:
            with self._lock:   # speech released after an interrupt was received (should be none)
                for r in self.interrupts:
                    if not r["_sent"] and r["received_at"] <= t:
                        r["voiced_frames_after"] += 1
        self._deliver(k, f.image, audio)
        self._next_k = k + 1
        self._last_image = f.image
        self.frames_out += 1
        self._win.append(t)
        if self.first_frame_at is None:
            self.first_frame_at = t
        loud = level_db(f.audio) > VAD_DB
        if loud and not mute and self._rel_quiet_s >= ONSET_QUIET_S:
            with self._lock:
                t_on = self._onsets.popleft() if self._onsets else None
            if t_on is not None and t >= t_on:
                self.latency_s = t - t_on
        self._rel_quiet_s = 0.0 if loud else self._rel_quiet_s + 1.0 / self.fps

    def _pending_report(self) -> bool:
        with self._lock:
            return any(not r["_sent"] for r in self.interrupts)

    def _mark_interrupt(self, key: str, index: int | None = None) -> None:
        """Fill ``key`` (ms since the interrupt was received) in the records that lack it (and the
        index of the frame it was released with)."""
        t = self._clock()
        with self._lock:
            for r in self.interrupts:
                if r[key] is None and not r["_sent"]:
                    r[key] = round(1000 * (t - r["received_at"]), 1)
                    if key == "audio_stopped_ms":
                        r["first_index"] = index
                    if key == "idle_after_ms" and r["audio_stopped_ms"] is None:
                        r["audio_stopped_ms"] = r[key]

    def _report_interrupts(self) -> None:
        """Send the ``interrupted`` events: at the Session's end of the utterance, or
        ``REPORT_AFTER_S`` of media after the interrupt, whichever comes first."""
        with self._lock:
            todo = [r for r in self.interrupts if not r["_sent"]]
            for r in todo:
                r["_sent"] = True
            self._since_interrupt = 0
        for r in todo:
            self._on_event({k: v for k, v in r.items() if not k.startswith("_")})

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop the pacing thread and close the Session. Idempotent; blocks up to ~5 s."""
        self._stop.set()
        try:
            self.session.close()
        finally:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()
