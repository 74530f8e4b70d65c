"""The live stream's timing core (chatanyone.serve.live) and its aiortc tracks: pairing, drift over a
10-minute simulated run, interrupt muting, feeding on the microphone's clock; then the same over a
real Session."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from chatanyone.serve.live import LiveStream, Upsampler3, level_db
from serve_util import TimelineSession, timeline


class SimClock:
    """A simulated monotonic clock: sleeping advances it, nobody waits."""

    def __init__(self):
        self.t = 1000.0
        self.lock = threading.Lock()

    def now(self):
        with self.lock:
            return self.t

    def sleep(self, s):
        with self.lock:
            self.t += max(0.0, s)


def run_stream(sess, n_frames, interrupt_at=None):
    clock = SimClock()
    got = []
    done = threading.Event()

    def deliver(k, img, a48):
        got.append((k, clock.now(), img, a48))
        if len(got) == interrupt_at:
            stream.interrupt()
        if len(got) >= n_frames:
            done.set()

    stream = LiveStream(sess, deliver, clock=clock.now, sleep=clock.sleep)
    assert done.wait(120), f"only {len(got)} frames"
    stream.close()
    return stream, got


def test_upsampler_is_chunk_invariant():
    x = timeline(0, 16000)
    whole = Upsampler3()(x)
    up = Upsampler3()
    parts = np.concatenate([up(x[a:b]) for a, b in [(0, 1), (1, 641), (641, 5000), (5000, 16000)]])
    np.testing.assert_array_equal(parts, whole)
    assert whole.size == 3 * x.size
    # a 220 Hz tone keeps its level through 16 -> 48 kHz (no images, no loss)
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    y = Upsampler3()(tone).astype(np.float64) / 32767
    assert abs(level_db(y[3000:]) - level_db(tone[1000:])) < 0.1


def _worker_timeline_session(fps, monkeypatch):
    """A TimelineSession inside a session worker process, behind ProcessSession."""
    import os

    from chatanyone import SessionConfig
    from chatanyone.serve.worker import ProcessSession, WorkerPool

    here = os.path.dirname(os.path.abspath(__file__))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    pool = WorkerPool(threads=1, spare=0)
    try:
        w = pool.take()
    finally:
        pool.close()
    return ProcessSession(w, "-", SessionConfig(fps=fps, realtime=True), _factory="serve_util:timeline_session")


@pytest.mark.time_limit(120)
@pytest.mark.parametrize("fps,where", [(25.0, "here"), (30.0, "here"), (25.0, "worker")])
def test_ten_minutes_stay_aligned(fps, where, monkeypatch):
    """10 simulated minutes: frame k is released at anchor + k/fps with exactly its own audio, so the
    audio position of every frame equals its video time (within one 48 kHz sample: no drift). Also
    with the session in a worker process, as ``serve`` runs it: the frames and their audio cross
    the process boundary unchanged."""
    n = int(600 * fps)
    sess = TimelineSession(fps, n) if where == "here" else _worker_timeline_session(fps, monkeypatch)
    stream, got = run_stream(sess, n)
    got = got[:n]      # a worker's simulated session may have released one more before the stop
    assert [g[0] for g in got] == list(range(n))
    t = np.array([g[1] for g in got])
    np.testing.assert_allclose(t - t[0], np.arange(n) / fps, atol=1e-6)
    sizes = np.array([g[3].size for g in got])
    pos = np.concatenate([[0], np.cumsum(sizes)])          # 48 kHz samples before frame k
    video_t = np.arange(n + 1) / fps
    audio_t = pos / 48000
    assert np.abs(audio_t - video_t).max() < 1.5 / 48000 + 1e-9
    # and the audio is the frames' own audio, continuous across frame boundaries
    a = np.concatenate([g[3] for g in got[:200]]).astype(np.float64) / 32767
    ref = Upsampler3()(timeline(0, int(round(200 * 16000 / fps)))).astype(np.float64) / 32767
    np.testing.assert_allclose(a, ref, atol=2 / 32767)


def test_interrupt_mutes_the_very_next_frame_and_reports():
    sess = TimelineSession(25.0, 200, lag=5)
    events = []
    clock = SimClock()
    got = []
    done, built = threading.Event(), threading.Event()

    def deliver(k, img, a48):
        got.append((k, a48))
        if len(got) == 50:
            assert built.wait(30)      # the stream's thread may reach frame 50 before its constructor returns
            stream.interrupt()
        if len(got) >= 120:
            done.set()

    stream = LiveStream(sess, deliver, events.append, clock=clock.now, sleep=clock.sleep)
    built.set()
    assert done.wait(60)
    stream.close()
    levels = [np.abs(a).max() for _, a in got]
    assert all(v > 1000 for v in levels[:50])          # speech before
    assert all(v == 0 for v in levels[50:55])          # the 5 leftover frames: muted
    assert all(v > 1000 for v in levels[55:])          # speech again after the cut
    ev = [e for e in events if e["type"] == "interrupted"]
    assert len(ev) == 1 and ev[0]["voiced_frames_after"] == 0
    # simulated time: the first muted frame left one frame period after the interrupt
    assert ev[0]["audio_stopped_ms"] == pytest.approx(40.0, abs=0.01)
    assert ev[0]["idle_after_ms"] == pytest.approx(5 * 40.0, abs=0.01)


def test_feeding_follows_the_microphone_clock():
    sess = TimelineSession(25.0, 10 ** 6)
    stream = LiveStream(sess, lambda *a: None)
    try:
        mic = np.zeros(441, np.float32)                 # 10 ms at 44.1 kHz
        for _ in range(100):
            stream.feed_mic(mic, 44100)
        assert sum(n for n, _ in sess.fed) == 100 * 441   # the microphone itself
        sess.fed.clear()
        stream.play(np.ones(16000, np.float32) * 0.1)     # a 1 s file replaces it ...
        for _ in range(50):
            stream.feed_mic(mic, 44100)
        fed16 = [(n, r) for n, r in sess.fed]
        assert all(r == 16000 for _, r in fed16) and sum(n for n, _ in fed16) in (7999, 8000)  # 0.5 s
        assert stream.playing_file
        # barge-in: speech on the microphone interrupts the file
        loud = (0.3 * np.sin(np.arange(441) / 3)).astype(np.float32)
        stream.feed_mic(loud, 44100)
        stream.feed_mic(loud, 44100)
        assert not stream.playing_file
        assert stream.interrupts and stream.interrupts[-1]["reason"] == "speech"
    finally:
        stream.close()


def test_a_failing_session_is_reported_not_raised():
    class Broken(TimelineSession):
        def next_frame(self, timeout=None):
            if self.k >= 5:
                raise RuntimeError("chatanyone session failed: boom")
            return super().next_frame(timeout)

    events = []
    got = []
    clock = SimClock()
    stream = LiveStream(Broken(25.0, 100), lambda *a: got.append(a), events.append,
                        clock=clock.now, sleep=clock.sleep)
    stream._thread.join(10)
    assert len(got) == 5
    assert stream.failed is not None and events[-1]["type"] == "failed"
    stream.close()


# ---------------------------------------------------------------------- aiortc tracks
def test_tracks_pair_video_and_audio_pts_over_ten_minutes():
    pytest.importorskip("aiortc")
    from chatanyone.serve.rtc import AUDIO_CHUNK, AvatarOutput

    fps = 30.0
    n = int(600 * fps)

    async def main():
        out = AvatarOutput(asyncio.get_running_loop(), fps)
        up = Upsampler3()
        worst = 0.0
        apos = 0
        for k in range(n):
            a = up(timeline(int(round(k * 16000 / fps)), int(round((k + 1) * 16000 / fps))))
            out._push(k, np.zeros((4, 4, 3), np.uint8), a)
            v = await out.video.recv()
            vt = float(v.pts * v.time_base)
            while out._aq:
                f = await out.audio.recv()
                apos = f.pts + f.samples
            # audio sent so far ends within one chunk (20 ms) of the end of frame k
            worst = max(worst, abs(apos / 48000 - (vt + 1 / fps)))
        out.end()
        return worst, out.video_sent, out.audio_sent

    worst, nv, na = asyncio.run(main())
    assert nv == n and na == int(600 * 48000 / AUDIO_CHUNK)
    assert worst <= AUDIO_CHUNK / 48000 + 1e-9 < 1 / fps


def test_bounded_queues_when_nobody_reads():
    pytest.importorskip("aiortc")
    from chatanyone.serve.rtc import MAX_AUDIO_QUEUE, MAX_VIDEO_QUEUE, AvatarOutput

    async def main():
        out = AvatarOutput(asyncio.get_running_loop(), 25.0)
        for k in range(5000):                          # 200 s of frames, never read
            out._push(k, np.zeros((384, 256, 3), np.uint8), np.ones(1920, np.int16))
        return len(out._vq), len(out._aq), out._vq[-1][0]

    nv, na, last = asyncio.run(main())
    assert nv == MAX_VIDEO_QUEUE and na == MAX_AUDIO_QUEUE and last == 4999


# ---------------------------------------------------------------------- a real Session
@pytest.fixture(scope="module")
def avatar():
    from chatanyone.serve.server import builtin_avatar
    return builtin_avatar()


def test_real_session_live_speech_then_interrupt(avatar):
    """A real-time Session behind LiveStream: frames paired with their audio, the mouth moves with
    speech and rests in silence (judged per frame by stream time, so the machine's speed does not
    matter), then an interrupt mutes at once."""
    import time

    from chatanyone import Session, SessionConfig
    from chatanyone.serve.server import _mouth_box
    from serve_util import speech_with_pauses

    pcm = speech_with_pauses(seconds_speech=1.2, seconds_silence=0.0, lead=1.6)
    rate = 16000
    sess = Session(avatar, SessionConfig(realtime=True, max_ahead_frames=8, intra_op_threads=1))
    got = []
    events = []
    enough = threading.Event()

    def deliver(k, img, a48):
        got.append((k, img, a48))
        if len(got) >= 68:
            enough.set()

    stream = LiveStream(sess, deliver, events.append, cushion_s=0.0)
    try:
        for i in range(0, pcm.size, 320):                # as 20 ms microphone chunks
            stream.feed_mic(pcm[i:i + 320], rate)
        assert enough.wait(60), len(got)
        n_before = len(got)
        stream.interrupt()
        for _ in range(50):                              # the microphone goes on (quiet)
            stream.feed_mic(np.zeros(320, np.float32), rate)
        deadline = time.monotonic() + 30
        while not any(e["type"] == "interrupted" for e in events) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stream.close()
    ks = [g[0] for g in got]
    assert ks == list(range(ks[0], ks[0] + len(ks)))     # no frame lost or repeated
    assert all(g[2].size == 1920 for g in got)          # 40 ms of 48 kHz audio with each frame
    h, w = got[0][1].shape[:2]
    assert all(g[1].shape == (h, w, 3) for g in got)     # one frame size throughout
    # mouth-region change per frame against the frame's own audio
    x0, y0, x1, y1 = _mouth_box(avatar)
    box = (slice(int(y0 * h), int(np.ceil(y1 * h))), slice(int(x0 * w), int(np.ceil(x1 * w))))
    diffs, levels = [], []
    for (_, a, _), (_, b, au) in zip(got[:n_before], got[1:n_before]):
        diffs.append(np.abs(b[box].astype(np.int16) - a[box].astype(np.int16)).mean())
        levels.append(level_db(au.astype(np.float32) / 32767))
    diffs, levels = np.array(diffs), np.array(levels)
    loud = levels > -30
    # silence that is not about to end: the motion model works on windows and looks ahead (the
    # lips anticipate speech), so frames within 1 s before speech are left out, and so is the
    # start transient
    ahead = np.array([loud[i:i + 26].any() for i in range(len(loud))])
    quiet_ok = (levels < -60) & ~ahead & (np.arange(len(levels)) >= 2)
    speech, quiet = diffs[loud], diffs[quiet_ok]
    assert len(speech) >= 10 and len(quiet) >= 5, (len(speech), len(quiet))
    # medians (robust to the start transient); at full resolution the idle head sway also moves
    # the mouth box's pixels, so the margin is 1.3x (measured 1.6-1.8x with the lip-sync model,
    # 2.7x with the earlier one), not the rest of a still image
    assert np.median(speech) > 1.3 * np.median(quiet), (np.median(speech), np.median(quiet))
    ev = [e for e in events if e["type"] == "interrupted"]
    assert ev and ev[0]["voiced_frames_after"] == 0


class SlowCutSession(TimelineSession):
    """A Session-like source on a simulated clock whose interrupt behaves like the real Session's:
    frames not yet handed out are dropped, and the next one (the first of ``ease`` silent frames
    easing to idle) takes ``cut_s`` of simulated time (its motion window and render); then None,
    then the timeline's speech again. ``next_frame(timeout)`` spends the simulated time it waits."""

    def __init__(self, fps, frames, clock, cut_s=0.2, ease=10):
        super().__init__(fps, frames)
        self.clock, self.cut_s, self.ease = clock, cut_s, ease
        self.ready_at = None
        self.silent_until = None

    def interrupt(self):
        self.ready_at = self.clock.now() + self.cut_s
        self.silent_until = self.k + self.ease
        self.cut = self.silent_until      # None once there, then speech again

    def next_frame(self, timeout=None):
        if self.ready_at is not None:
            now = self.clock.now()
            if timeout is not None and now + timeout < self.ready_at:
                self.clock.sleep(timeout)
                raise TimeoutError
            self.clock.sleep(self.ready_at - now)
            self.ready_at = None
        f = super().next_frame(timeout)
        if f is not None and self.silent_until is not None and f.index < self.silent_until:
            f = self.Frame(image=f.image, index=f.index, timestamp=f.timestamp, audio=np.zeros_like(f.audio))
        return f


def _run_interrupted(sess, clock, record, *, at: int, until: int):
    """A LiveStream of ``sess`` on the simulated ``clock``, interrupted as the ``at``-th frame is
    delivered and closed once ``until`` frames were: ``(stream, events, got)``, ``got`` holding
    ``record(k, img, a48)`` of each delivered frame."""
    events, got = [], []
    done, built, box = threading.Event(), threading.Event(), []

    def deliver(k, img, a48):
        got.append(record(k, img, a48))
        if len(got) == at:
            built.wait(10)                # the pacing thread may get here before the constructor returns
            box[0].interrupt()
        if len(got) >= until:
            done.set()

    stream = LiveStream(sess, deliver, events.append, clock=clock.now, sleep=clock.sleep)
    box.append(stream)
    built.set()
    finished = done.wait(60)
    stream.close()
    assert finished, len(got)
    return stream, events, got


@pytest.mark.parametrize("cut_s", [0.17, 0.5])
def test_interrupt_bridges_a_slow_cut_with_silent_frames_on_time(cut_s):
    """After an interrupt the Session needs ``cut_s`` (simulated) to render its first frame after the
    cut. The stream does not wait: the next frame slot (due one period later) leaves on time with the
    last image held and silent audio, up to BRIDGE_MAX_S of them, and the Session's frames whose
    slots they filled are dropped (silent: counted). The timeline stays whole: indices consecutive,
    each frame with exactly its own 48 kHz audio; while bridges cover, releases stay one period
    apart."""
    from chatanyone.serve.live import BRIDGE_MAX_S

    fps = 25.0
    clock = SimClock()
    sess = SlowCutSession(fps, 400, clock, cut_s=cut_s)
    stream, events, got = _run_interrupted(sess, clock, lambda k, img, a48: (k, clock.now(), img.copy(), a48),
                                           at=50, until=120)
    ks = [g[0] for g in got]
    assert ks == list(range(len(got)))                     # no slot skipped or repeated
    sizes = np.array([g[3].size for g in got])
    assert (sizes == 1920).all()                          # 40 ms of 48 kHz audio, every slot
    levels = np.array([np.abs(g[3]).max() for g in got])
    assert (levels[:50] > 1000).all()                     # speech before
    # slots due before the Session's frame is ready get a bridge, at most BRIDGE_MAX_S of them
    n_bridge = min(int(round(BRIDGE_MAX_S * fps)), int(np.ceil(cut_s * fps)) - 1)
    t = np.array([g[1] for g in got])
    np.testing.assert_allclose(np.diff(t[:50 + n_bridge]), 1 / fps, atol=1e-6)   # paced: no wait
    # then the Session's frame: in its slot if it was ready by then, else as soon as it is
    assert t[50 + n_bridge] == pytest.approx(max(t[49] + cut_s, t[49] + (n_bridge + 1) / fps), abs=1e-6)
    # the interrupt came with frame 49's release: slot 50 is the first after it, one period later
    for g in got[50:50 + n_bridge]:                       # the last image held, in silence
        np.testing.assert_array_equal(g[2], got[49][2])
        assert not g[3].any()
    assert got[50 + n_bridge][2][0, 0, 0] == (50 + n_bridge) % 251   # the Session's own frame again
    ev = [e for e in events if e["type"] == "interrupted"]
    assert len(ev) == 1, events
    ev = ev[0]
    assert ev["audio_stopped_ms"] == pytest.approx(1000 / fps, abs=0.01)     # < 100 ms, simulated
    assert ev["first_index"] == 50
    assert ev["bridged"] == n_bridge and stream.bridged == n_bridge
    assert ev["voiced_frames_after"] == 0 and ev["discarded_voiced"] == 0
    # the Session's frames 50.. (silent easing) whose slots the bridges took were dropped; its
    # later frames follow in their own slots: silent to the end of the easing, then speech
    assert stream.discarded == n_bridge and stream.discarded_voiced == 0
    assert not levels[50:60].any() and (levels[60:] > 1000).all()


def test_interrupt_with_a_fast_cut_needs_no_bridge():
    """A Session that has its next frame ready at once: no bridge frame, nothing dropped."""
    clock = SimClock()
    sess = SlowCutSession(25.0, 300, clock, cut_s=0.0)
    stream, events, got = _run_interrupted(sess, clock, lambda k, img, a48: k, at=30, until=60)
    assert got[:60] == list(range(60))
    assert stream.bridged == 0 and stream.discarded == 0


def test_track_interrupt_drops_queued_video_and_times_the_send():
    """Interrupt at the tracks: audio queued is silenced, video frames still waiting for the encoder
    are dropped, so the next frame the sender takes is the first one after the interrupt; its send
    time is known once the sender comes back for the next frame."""
    pytest.importorskip("aiortc")
    from chatanyone.serve.rtc import AvatarOutput

    async def main():
        out = AvatarOutput(asyncio.get_running_loop(), 25.0)
        img = np.zeros((4, 4, 3), np.uint8)
        for k in range(5):
            out._push(k, img, np.full(1920, 1000, np.int16))
        f0 = await out.video.recv()                      # frame 0 goes to the encoder
        assert out.sent_at(0) is None
        out.interrupt()
        assert not out._vq and out.video_dropped == 4
        assert all(not c.any() for _, c in out._aq)      # queued audio silenced, positions kept
        out._push(5, img, np.zeros(1920, np.int16))
        f5 = await out.video.recv()                      # the sender is back: frame 0 was sent
        out._push(6, img, np.zeros(1920, np.int16))
        f6 = await out.video.recv()
        out.end()
        return f0, f5, f6, out

    f0, f5, f6, out = asyncio.run(main())
    assert [f.pts for f in (f0, f5, f6)] == [0, 5 * 3600, 6 * 3600]
    assert out.sent_at(0) is not None and out.sent_at(5) is not None and out.sent_at(0) <= out.sent_at(5)
    assert out.sent_at(6) is None and out.sent_at(3) is None


def test_speech_barge_in_reports_its_detection_time():
    """Speech barge-in: the interrupt fires on the second loud 20 ms chunk; its ``detect_ms`` counts
    from the first loud chunk's start (its 20 ms, then the wait for the second one, at least that
    chunk's 20 ms), on the stream's clock (simulated here)."""
    clock = SimClock()
    sess = TimelineSession(25.0, 10 ** 6)
    stream = LiveStream(sess, lambda *a: None, clock=clock.now, sleep=lambda s: None)
    try:
        quiet = np.zeros(320, np.float32)
        loud = (0.3 * np.sin(np.arange(320) / 3)).astype(np.float32)
        stream.play(np.ones(32000, np.float32) * 0.1)
        for _ in range(5):
            stream.feed_mic(quiet, 16000)
            clock.sleep(0.02)
        stream.feed_mic(loud, 16000)          # the first loud chunk ...
        clock.sleep(0.02)
        assert stream.playing_file and not stream.interrupts
        stream.feed_mic(loud, 16000)          # ... confirmed by the second, 20 ms later
        rec = stream.interrupts[-1]
        assert rec["reason"] == "speech" and not stream.playing_file
        assert rec["detect_ms"] == pytest.approx(40.0, abs=0.01)
    finally:
        stream.close()
