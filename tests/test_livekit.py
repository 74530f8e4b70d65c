"""chatanyone.integrations.livekit against the real ``livekit`` and ``livekit-agents`` classes (no
LiveKit server runs here): the VideoGenerator driven with ``rtc.AudioFrame``s, frame timing and
pairing, ``clear_buffer``, and ``AvatarRunner``'s interrupt notification through
``QueueAudioOutput``.

Skips where the [livekit] extra is absent. The real-Session test needs an avatar file: it prepares
one where photo preparation is installed, else reads ``$CHATANYONE_TEST_AVATAR`` (CI makes one in
its main environment: the LiveKit environment has no landmark detector, by design).
"""
from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest

pytest.importorskip("livekit.agents")
from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarRunner, QueueAudioOutput  # noqa: E402

from chatanyone.integrations.livekit import AUDIO_RATE, ChatAnyoneVideoGenerator, avatar_options  # noqa: E402
from serve_util import TimelineSession  # noqa: E402


def audio_frames(pcm16k: np.ndarray, rate: int = 24000, ms: int = 20):
    """``rtc.AudioFrame``s (int16 mono at ``rate``) of a 16 kHz signal, as a TTS would send them."""
    from scipy.signal import resample_poly
    from math import gcd
    g = gcd(rate, 16000)
    x = resample_poly(pcm16k, rate // g, 16000 // g)
    x = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    n = rate * ms // 1000
    return [rtc.AudioFrame(x[i:i + n].tobytes(), rate, 1, len(x[i:i + n])) for i in range(0, len(x), n)]


async def collect(gen, until, limit=2000):
    """Items from the generator until ``until(items)`` (bounded by ``limit`` items)."""
    items = []
    async for it in gen:
        items.append(it)
        if until(items) or len(items) >= limit:
            break
    return items


class SpeechSession(TimelineSession):
    """The Session contract with speech bookkeeping: fed audio becomes frames (1 per 640 samples at
    25 fps), idle frames otherwise; ``flush`` ends the utterance after the fed frames."""

    def __init__(self):
        super().__init__(25.0, 10 ** 9, lag=2)
        self.fed_samples = 0
        self.ends = []

    def feed_audio(self, pcm, rate):
        pcm = np.asarray(pcm)
        self.fed_samples += pcm.shape[0] * 16000 // rate

    def flush(self):
        self.ends.append(self.k + -(-self.fed_samples // 640))

    def next_frame(self, timeout=None):
        if self.ends and self.k >= self.ends[0]:
            self.ends.pop(0)
            return None
        return super().next_frame(timeout)


def test_generator_pairs_audio_and_video_and_ends_segments():
    async def main():
        sess = SpeechSession()
        gen = ChatAnyoneVideoGenerator(sess)
        frames = audio_frames(np.zeros(8000, np.float32) + 0.1)   # 0.5 s of "speech" at 24 kHz
        for f in frames:
            await gen.push_audio(f)
        await gen.push_audio(AudioSegmentEnd())
        items = await collect(gen, lambda it: isinstance(it[-1], AudioSegmentEnd))
        await gen.aclose()
        return items, sess

    items, sess = asyncio.run(main())
    assert isinstance(items[-1], AudioSegmentEnd)
    kinds = [type(i).__name__ for i in items[:-1]]
    # every video frame of the utterance is followed by its own audio frame: V A V A ...
    assert kinds == ["VideoFrame", "AudioFrame"] * (len(kinds) // 2)
    assert sess.fed_samples == 8000
    audio = [i for i in items if isinstance(i, rtc.AudioFrame)]
    assert all(a.sample_rate == AUDIO_RATE and a.num_channels == 1 and a.samples_per_channel == 640
               for a in audio)
    assert len(audio) == 8000 // 640 + (8000 % 640 > 0)   # ceil: the last frame padded
    v = items[0]
    assert v.type == rtc.VideoBufferType.RGBA and (v.width, v.height) == (6, 8)


def test_idle_frames_carry_no_audio():
    async def main():
        gen = ChatAnyoneVideoGenerator(SpeechSession())
        items = await collect(gen, lambda it: len(it) >= 20)
        await gen.aclose()
        return items

    items = asyncio.run(main())
    assert all(isinstance(i, rtc.VideoFrame) for i in items)


async def _cleared_after_5_frames(sess):
    """A generator of ``sess`` with 2 s of speech queued, 5 frames played (10 items: video and
    audio), then ``clear_buffer()``: ``(gen, its iterator, the 10 items before)``."""
    gen = ChatAnyoneVideoGenerator(sess)
    for f in audio_frames(np.zeros(32000, np.float32) + 0.1):   # 2 s queued
        await gen.push_audio(f)
    it = gen.__aiter__()
    before = [await it.__anext__() for _ in range(10)]
    gen.clear_buffer()
    return gen, it, before


def test_clear_buffer_stops_audio_at_once_and_ends_the_segment():
    async def main():
        sess = SpeechSession()
        gen, it, before = await _cleared_after_5_frames(sess)
        after = []
        while len(after) < 30:
            after.append(await it.__anext__())
        await gen.aclose()
        return before, after

    before, after = asyncio.run(main())
    assert sum(isinstance(i, rtc.AudioFrame) for i in before) == 5
    # the very next item is the segment end; no audio of the interrupted speech follows
    assert isinstance(after[0], AudioSegmentEnd)
    assert not any(isinstance(i, rtc.AudioFrame) for i in after)
    assert sum(isinstance(i, rtc.VideoFrame) for i in after) >= 25   # video goes on (idle)


def test_push_audio_rejects_other_types():
    async def main():
        gen = ChatAnyoneVideoGenerator(SpeechSession())
        try:
            with pytest.raises(TypeError):
                await gen.push_audio(np.zeros(10))
        finally:
            await gen.aclose()
    asyncio.run(main())


def test_avatar_runner_clear_buffer_notifies_the_agent():
    """AvatarRunner (real class) over our generator, audio from QueueAudioOutput (the agent side's
    in-process AudioOutput): an interrupt reaches the generator and the agent hears
    playback_finished(interrupted=True). No room is connected: the runner's publishing waits, its
    audio and interrupt paths run."""
    async def main():
        sess = SpeechSession()
        gen = ChatAnyoneVideoGenerator(sess)
        audio_out = QueueAudioOutput(sample_rate=24000)
        finished = []
        audio_out.on("playback_finished", lambda ev: finished.append(ev))
        room = rtc.Room()
        runner = AvatarRunner(room, audio_recv=audio_out, video_gen=gen,
                              options=avatar_options(_FakeCfgSession()))
        await runner.start()
        for f in audio_frames(np.zeros(16000, np.float32) + 0.1):
            await audio_out.capture_frame(f)
        for _ in range(100):
            if sess.fed_samples >= 16000:
                break
            await asyncio.sleep(0.02)
        audio_out.clear_buffer()
        for _ in range(100):
            if finished:
                break
            await asyncio.sleep(0.02)
        fed = sess.fed_samples
        cut = sess.cut
        await runner.aclose()
        await gen.aclose()
        return finished, fed, cut

    finished, fed, cut = asyncio.run(main())
    assert fed == 16000                       # the agent's speech reached the Session
    assert cut is not None                    # clear_buffer interrupted it
    assert finished and finished[0].interrupted is True


class _FakeCfgSession:
    fps = 25.0
    frame_size = (436, 512)


class SlowCutSession(SpeechSession):
    """Like the real Session's interrupt: frames not handed out are dropped and the next one (the
    first of ``ease`` silent frames easing to idle, then None) comes only when ``release`` is set,
    as if its motion window and render took that long."""

    def __init__(self, ease=10):
        super().__init__()
        import threading
        self.release = threading.Event()
        self.ease = ease
        self.silent_until = None

    def interrupt(self):
        self.release.clear()
        self.silent_until = self.k + self.ease
        self.cut = self.silent_until

    def next_frame(self, timeout=None):
        if self.silent_until is not None and not self.release.wait(timeout):
            raise TimeoutError
        f = super().next_frame(timeout)
        if f is not None and self.silent_until is not None and f.index < self.silent_until:
            f = self.Frame(image=f.image, index=f.index, timestamp=f.timestamp, audio=np.zeros_like(f.audio))
        return f


def test_clear_buffer_bridges_the_sessions_cut_with_held_frames():
    """After clear_buffer the Session needs time for its cut (here: until the test lets it). The
    generator does not wait: after the segment end it yields the last image again, without audio,
    up to BRIDGE_MAX_S of frames; the Session's silent frames whose slots they took are dropped,
    and its next frame follows in its own slot. By event order; the ms figure is measured in
    benchmarks/livekit_interrupt.py."""
    from chatanyone.integrations.livekit import BRIDGE_MAX_S

    async def main():
        sess = SlowCutSession()
        gen, it, before = await _cleared_after_5_frames(sess)
        after = [await it.__anext__()]                                  # the segment end
        n_bridge = int(round(BRIDGE_MAX_S * 25.0))
        while sum(isinstance(i, rtc.VideoFrame) for i in after) < n_bridge:
            after.append(await it.__anext__())
        sess.release.set()                                              # the cut is rendered
        rest = [await it.__anext__() for _ in range(8)]
        await gen.aclose()
        return before, after, rest, gen, n_bridge

    before, after, rest, gen, n_bridge = asyncio.run(main())
    last = [i for i in before if isinstance(i, rtc.VideoFrame)][-1]
    assert isinstance(after[0], AudioSegmentEnd)
    bridges = after[1:]
    assert len(bridges) == n_bridge and all(isinstance(b, rtc.VideoFrame) for b in bridges)
    assert all(bytes(b.data) == bytes(last.data) for b in bridges)    # the last image held
    assert gen.bridged == n_bridge and gen.interrupts[-1]["bridged"] == n_bridge
    assert gen.interrupts[-1]["first_at"] >= gen.interrupts[-1]["at"]
    # the Session's frames 5..9 (silent, their slots taken) were dropped; frame 10 comes next
    assert gen.discarded == n_bridge
    assert not any(isinstance(i, rtc.AudioFrame) for i in rest)
    first = rest[0]
    assert isinstance(first, rtc.VideoFrame)
    assert np.frombuffer(first.data, np.uint8)[0] == 5 + n_bridge      # TimelineSession: pixel = index


def test_clear_buffer_empties_the_av_synchronizer():
    """With ``attach`` (run_worker attaches AvatarRunner.av_sync), clear_buffer also drops the audio
    the real ``rtc.AudioSource`` has queued but not played (AvatarRunner keeps 100 ms there) and the
    video frames the real ``rtc.AVSynchronizer`` has not shown yet."""
    async def main():
        sess = SpeechSession()
        gen = ChatAnyoneVideoGenerator(sess)
        audio = rtc.AudioSource(AUDIO_RATE, 1, queue_size_ms=200)
        video = rtc.VideoSource(6, 8)
        sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=25.0,
                                  video_queue_size_ms=200)
        gen.attach(sync)
        v = rtc.VideoFrame(6, 8, rtc.VideoBufferType.RGBA, bytes(6 * 8 * 4))
        for _ in range(5):
            await sync.push(v)
        for f in audio_frames(np.zeros(1600, np.float32) + 0.1, rate=AUDIO_RATE, ms=20):   # 100 ms
            await sync.push(f)
        queued = (audio.queued_duration, sync._video_queue.qsize())
        gen.clear_buffer()
        for _ in range(3):
            await asyncio.sleep(0)          # the clear task runs at the loop's next turn
        cleared = (audio.queued_duration, sync._video_queue.qsize())
        await sync.aclose()
        await audio.aclose()
        await video.aclose()
        await gen.aclose()
        return queued, cleared

    queued, cleared = asyncio.run(main())
    assert queued[0] > 0.05 and queued[1] >= 3, queued
    assert cleared == (0.0, 0), cleared


# ---------------------------------------------------------------------- a real Session
@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    path = os.environ.get("CHATANYONE_TEST_AVATAR")
    if path and os.path.exists(path):
        return path, False
    from chatanyone import Avatar   # photo preparation is in every install (LiteRT, no mediapipe)
    from chatanyone.assets import default_avatar_image
    p = tmp_path_factory.mktemp("lk") / "builtin.avatar.npz"
    Avatar.prepare(default_avatar_image()).save(p)
    return str(p), True


def test_real_session_from_an_avatar_file_without_the_detector(avatar_file):
    """The worker's path: Avatar.load + a real-time Session; speech in as rtc.AudioFrames, paired
    frames out, then clear_buffer. With an avatar file from elsewhere this also shows the running
    side never loads a landmark detector."""
    from chatanyone.integrations.livekit import make_session
    from chatanyone.assets import demo_speech

    pcm, rate = demo_speech()
    pcm = pcm[: int(1.2 * rate)]

    async def main():
        sess = make_session(avatar_file[0])
        gen = ChatAnyoneVideoGenerator(sess)
        for f in audio_frames(pcm / max(1e-6, np.abs(pcm).max()) * 0.5):
            await gen.push_audio(f)
        await gen.push_audio(AudioSegmentEnd())
        items = await collect(gen, lambda it: isinstance(it[-1], AudioSegmentEnd), limit=400)
        await gen.aclose()
        return items

    items = asyncio.run(main())
    assert isinstance(items[-1], AudioSegmentEnd)
    video = [i for i in items if isinstance(i, rtc.VideoFrame)]
    audio = [i for i in items if isinstance(i, rtc.AudioFrame)]
    assert len(audio) >= 30 and len(video) >= len(audio)
    speechy = max(np.abs(np.frombuffer(a.data, np.int16)).max() for a in audio)
    assert speechy > 3000
    # every audio frame directly follows a video frame (pairing)
    for i, it in enumerate(items):
        if isinstance(it, rtc.AudioFrame):
            assert isinstance(items[i - 1], rtc.VideoFrame)
    if avatar_file[1] is False:               # the file came from elsewhere: no detector loaded
        assert "mediapipe" not in sys.modules and "chatanyone.vision.landmarks" not in sys.modules


def test_dispatch_worker_options(tmp_path, monkeypatch):
    """Agent dispatch: the worker registers under its agent name, runs the module-level entrypoint
    (found by name in the job process), and reports load so the server sends it at most
    ``capacity`` rooms."""
    from livekit.agents import WorkerOptions

    from chatanyone.integrations import livekit as lk

    monkeypatch.delenv(lk._ENV_AVATAR, raising=False)
    opts = lk.worker_options(tmp_path / "me.avatar.npz", capacity=2, agent_name="my-avatar")
    assert isinstance(opts, WorkerOptions)
    assert opts.agent_name == "my-avatar" and opts.entrypoint_fnc is lk.dispatch_entrypoint
    assert os.environ[lk._ENV_AVATAR] == str(tmp_path / "me.avatar.npz")

    class Server:
        active_jobs: list = []
    srv = Server()
    for jobs, takes_more in ((0, True), (1, True), (2, False), (3, False)):
        srv.active_jobs = [object()] * jobs
        assert (opts.load_fnc(srv) < opts.load_threshold) is takes_more, jobs
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            lk.worker_options("x.npz", capacity=bad)
    with pytest.raises(ValueError):
        lk.worker_options("x.npz", capacity=1, preset="nope")


def test_dispatch_metadata():
    from chatanyone.integrations.livekit import job_metadata

    assert job_metadata('{"sender": "agent-1"}') == {"sender": "agent-1"}
    for raw in ("", None, "not json", "[1, 2]", "3"):
        assert job_metadata(raw) == {}
