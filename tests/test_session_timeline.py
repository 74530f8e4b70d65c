"""The Session's streaming contract, with a small deterministic pipeline in place of the networks.

The pipeline double records what the Session asks of it, so these tests check the timeline
(exact frame counts, audio slices, flush/interrupt, real-time idle, threads, memory) on their own;
tests/test_session_e2e.py runs the same Session with the real models.
"""
import threading
import time

import numpy as np
import pytest

from chatanyone.audio.resample import StreamResampler
from chatanyone.config import SessionConfig
from chatanyone.session import Session
from chatanyone.spec.motion_layout import MotionFrames


class RecordingPipeline:
    """Releases motion frames like the real generator: in hops, once their audio and lookahead are
    in, or all at once at the end of an utterance. A frame's motion is its index and loudness
    (``head[:, 0]`` and ``exp[:, 0]`` of typed MotionFrames)."""

    lookahead_samples = 3200 + 10 * 640  # the rest of a 10-frame hop plus 200 ms
    idle_samples = 10 * 640
    hop = 10

    def __init__(self, delay=0.0):
        self.delay = delay
        self.resets = 0
        self.reset()

    def reset(self):
        self.audio = np.zeros(0, np.float32)
        self.done = 0  # frames released
        self.resets += 1

    def motion(self, audio, final):
        self.audio = np.concatenate([self.audio, audio])
        n_have = self.audio.size // 640
        if final:
            n_have = -(-self.audio.size // 640)
            self.audio = np.concatenate([self.audio, np.zeros(n_have * 640 - self.audio.size, np.float32)])
            ready = n_have
        else:
            ready = self.done + ((self.audio.size - 3200) // 640 - self.done) // self.hop * self.hop
        start, head, exp = self.done, [], []
        while self.done < ready:
            if self.delay:
                time.sleep(self.delay)
            seg = self.audio[self.done * 640:(self.done + 1) * 640]
            head.append([float(self.done), 0, 0, 0, 0, 0])
            exp.append([float(np.sqrt(np.mean(seg ** 2)))] + [0.0] * 7)
            self.done += 1
        if not head:
            return None
        n = len(head)
        z = lambda *shape: np.zeros((n,) + shape, np.float32)  # noqa: E731
        return MotionFrames(start, np.array(head, np.float32), np.array(exp, np.float32), z(4), z(8, 2),
                            z(2, 21, 2), z(2))

    def render(self, mo):
        assert len(mo) == 1
        img = np.zeros((6, 4, 3), np.uint8)
        img[..., 0] = min(255, int(mo.head[0, 0]))
        img[..., 1] = min(255, int(mo.exp[0, 0] * 400))
        return img

    def timings(self):
        return {}


def _session(**kw):
    return Session(None, SessionConfig(**kw), _pipeline=RecordingPipeline())


def _feed_random_chunks(s, x, rate, seed=0, max_chunk=5000):
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, max_chunk))
        s.feed_audio(x[i:i + n], rate)
        i += n


@pytest.mark.parametrize("fps", [25, 30, 24, 29.97])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_frame_count_is_duration_times_fps(fps, rate):
    seconds = 2.5
    x = (0.3 * np.sin(np.arange(int(rate * seconds)) * 0.05)).astype(np.float32)
    with _session(fps=fps) as s:
        _feed_random_chunks(s, x, rate)
        s.flush()
        frames = list(s.frames())
    assert len(frames) == int(np.ceil(seconds * fps - 1e-9))
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[-1].timestamp == pytest.approx((len(frames) - 1) / fps)
    # the slices tile the timeline: their total is the frames' span of the resampled audio
    total = sum(f.audio.size for f in frames)
    assert total == int(round(len(frames) * 16000 / fps))
    assert all(f.image.dtype == np.uint8 and f.image.shape == (6, 4, 3) for f in frames)


def test_audio_slices_are_the_resampled_input():
    rate = 22050
    x = (0.2 * np.random.default_rng(1).standard_normal(rate * 2)).astype(np.float32)
    r = StreamResampler(rate)
    ref = np.concatenate([r.push(x), r.flush()])
    with _session() as s:
        _feed_random_chunks(s, x, rate, seed=3)
        s.flush()
        got = np.concatenate([f.audio for f in s.frames()])
    np.testing.assert_array_equal(got[:ref.size], ref)
    assert not got[ref.size:].any()  # the last slice is padded with silence


def test_int16_stereo_and_chunk_of_one_sample():
    x = (np.random.default_rng(2).standard_normal((1600, 2)) * 3000).astype(np.int16)
    with _session() as s:
        for i in range(len(x)):
            s.feed_audio(x[i:i + 1], 16000)
        s.flush()
        frames = list(s.frames())
    assert len(frames) == 3  # 0.1 s at 25 fps = 2.5 -> 3 frames
    np.testing.assert_allclose(frames[0].audio, x[:640].astype(np.float32).mean(1) / 32768, atol=1e-6)


def test_utterances_follow_each_other():
    with _session() as s:
        for n in (16000, 8000):
            s.feed_audio(np.zeros(n, np.float32), 16000)
            s.flush()
        first = list(s.frames())
        second = list(s.frames())
    assert len(first) == 25 and len(second) == 13
    assert second[0].index == 25


def test_flush_twice_and_empty_flush():
    with _session() as s:
        s.flush()
        assert s.next_frame(timeout=5) is None
        s.feed_audio(np.zeros(640, np.float32), 16000)
        s.flush()
        s.flush()  # nothing new: no second end marker
        assert s.next_frame(timeout=5) is not None
        assert s.next_frame(timeout=5) is None
        with pytest.raises(TimeoutError):
            s.next_frame(timeout=0.2)


def test_the_motion_model_is_told_each_final_mark_once():
    """The Session owns the ends: the model gets ``final=True`` once per flush that adds audio,
    on the call whose audio reaches the flushed end, and never again without new audio."""
    calls = []

    class Pipe(RecordingPipeline):
        def motion(self, audio, final):
            calls.append((audio.size, final))
            return super().motion(audio, final)

    with Session(None, SessionConfig(), _pipeline=Pipe()) as s:
        s.feed_audio(np.full(16000, 0.1, np.float32), 16000)
        s.flush()
        assert len(list(s.frames())) == 25
        s.flush()  # nothing new: the end marker consumed above gives an empty utterance
        assert s.next_frame(timeout=5) is None
        s.feed_audio(np.full(1000, 0.1, np.float32), 16000)
        s.flush()
        assert len(list(s.frames())) == 2   # 1000 samples: frames 25 and 26
        time.sleep(0.3)                     # the motion worker idles: no repeated final
    pushed = np.cumsum([n for n, _ in calls])
    finals = [int(p) for p, (_, f) in zip(pushed, calls) if f]
    # the second utterance is padded to its last frame (27 * 640)
    assert finals == [16000, 16000 + 1280]


def test_a_final_mark_reaches_the_model_even_when_the_next_utterance_follows_at_once():
    """flush() then feed_audio() at once: the model still ends the first utterance where it ends
    (its last frames do not wait for, or hear, the next one), then gets the second."""
    calls = []

    class Pipe(RecordingPipeline):
        def motion(self, audio, final):
            calls.append((audio.size, final))
            return super().motion(audio, final)

    with Session(None, SessionConfig(), _pipeline=Pipe(delay=0.002)) as s:
        for n in (8000, 4000, 6400):
            s.feed_audio(np.full(n, 0.1, np.float32), 16000)
            s.flush()
        got = [len(list(s.frames())) for _ in range(3)]
    pushed = np.cumsum([n for n, _ in calls])
    assert got == [13, 7, 10]
    assert [int(p) for p, (_, f) in zip(pushed, calls) if f] == [13 * 640, 20 * 640, 30 * 640]


def test_frames_hold_motion_only_past_the_end_when_motion_lags_rendering():
    """At 30 fps a frame lies between two motion frames; when the motion model is slower than the
    renderer after a flush, frames wait for their motion (interpolated), and only frames past the
    last motion frame of the utterance hold it."""
    shown, started = [], threading.Event()

    class Pipe(RecordingPipeline):
        def motion(self, audio, final):
            if audio.size:
                started.set()
            return super().motion(audio, final)

        def render(self, mo):
            shown.append(float(mo.head[0, 0]))
            return super().render(mo)

    with Session(None, SessionConfig(fps=30), _pipeline=Pipe(delay=0.01)) as s:
        s.feed_audio(np.full(16000, 0.1, np.float32), 16000)   # 25 motion frames, 30 frames
        assert started.wait(5)   # the model works on frames 0-19 (0.2 s) while the flush comes
        s.flush()
        assert len(list(s.frames())) == 30
    tm = np.maximum(0.0, (np.arange(30) + 0.5) * 25 / 30 - 0.5)
    np.testing.assert_allclose(shown, np.minimum(tm, 24.0), atol=1e-5)


@pytest.mark.parametrize("fps", [25, 30])
def test_motion_frames_stay_on_the_timeline_across_utterances(fps):
    """Motion frame m shows samples [640 m, 640 (m + 1)) of the session's timeline after any number
    of utterance ends, also where an utterance ends inside a motion frame (30 fps): the model's
    padding of a final stretch takes the place of the timeline's next samples, never adds to it."""
    pipe = RecordingPipeline()
    rng = np.random.default_rng(0)
    with Session(None, SessionConfig(fps=fps), _pipeline=pipe) as s:
        frames = []
        for n in (8000, 5000, 7100, 3000):
            s.feed_audio(rng.uniform(-0.5, 0.5, n).astype(np.float32), 16000)
            s.flush()
            frames += list(s.frames())
    timeline = np.concatenate([f.audio for f in frames])
    heard = pipe.audio[: timeline.size]
    same = heard == timeline
    # every sample the model heard is the timeline's, or the silence that ends a final stretch
    assert np.all(same | (heard == 0))
    assert np.count_nonzero(~same) < 640 * 4   # less than a motion frame per utterance end


def test_interrupt_drops_queued_audio_and_session_goes_on():
    pipe = RecordingPipeline(delay=0.02)
    with Session(None, SessionConfig(max_ahead_frames=5), _pipeline=pipe) as s:
        s.feed_audio(np.full(16000 * 20, 0.1, np.float32), 16000)  # 20 s queued
        got = [s.next_frame(timeout=10) for _ in range(3)]
        s.interrupt()
        rest = []
        while (f := s.next_frame(timeout=10)) is not None:
            rest.append(f)
        assert len(got) + len(rest) < 100  # far fewer than the 500 frames queued
        # new speech after the interruption continues the timeline
        s.feed_audio(np.zeros(3200, np.float32), 16000)
        s.flush()
        after = list(s.frames())
        assert len(after) == 5
        assert after[0].index == got[-1].index + len(rest) + 1


def test_realtime_mode_gives_idle_frames_without_audio():
    with _session(realtime=True) as s:
        t0 = time.monotonic()
        frames = [s.next_frame(timeout=5) for _ in range(10)]
        elapsed = time.monotonic() - t0
    assert [f.index for f in frames] == list(range(10))
    assert all(not f.audio.any() for f in frames)
    assert elapsed >= 9 / 25  # paced at the frame rate, not faster


@pytest.mark.parametrize("pcm, rate, exc, words", [
    (np.zeros(10, np.uint16), 16000, TypeError, "dtype"),
    (np.zeros(10, np.int64), 16000, TypeError, "dtype"),
    (np.full(10, 300.0, np.float32), 16000, ValueError, r"\[-1, 1\]"),
    (np.zeros((2, 2, 2), np.float32), 16000, ValueError, "shape"),
    (np.array([0.0, np.nan], np.float32), 16000, ValueError, "NaN"),
    (np.zeros(10, np.float32), 0, ValueError, "sample_rate"),
    (np.zeros(10, np.float32), 44100.5, ValueError, "sample_rate"),
    (np.zeros(10, np.float32), 100, ValueError, "sample_rate"),
    ("hello", 16000, TypeError, "pcm"),
    (np.zeros((2, 1000), np.float32), 16000, ValueError, "channels"),
])
def test_bad_audio_gets_a_clear_error_and_session_stays_usable(pcm, rate, exc, words):
    with _session() as s:
        with pytest.raises(exc, match=words):
            s.feed_audio(pcm, rate)
        s.feed_audio(np.zeros(640, np.float32), 16000)
        s.flush()
        assert len(list(s.frames())) == 1


@pytest.mark.parametrize("kw, exc", [
    ({"fps": 0}, ValueError), ({"fps": "25"}, TypeError), ({"preset": "huge"}, ValueError),
    ({"intensity": 3.0}, ValueError), ({"seed": -1}, ValueError), ({"seed": 1.5}, TypeError),
    ({"style": "/no/such/file.npz"}, ValueError), ({"providers": "CPUExecutionProvider"}, TypeError),
    ({"frame_device": "gpu"}, ValueError), ({"frame_device": "cuda:x"}, ValueError),
    ({"frame_device": 0}, TypeError),
])
def test_bad_config_names_the_field(kw, exc):
    with pytest.raises(exc, match=next(iter(kw))):
        SessionConfig(**kw)


def test_closed_session_raises():
    s = _session()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.feed_audio(np.zeros(10, np.float32), 16000)
    with pytest.raises(RuntimeError, match="closed"):
        s.next_frame(timeout=1)


def test_threads_feed_and_pull_concurrently():
    rate, seconds = 48000, 4
    x = (0.1 * np.random.default_rng(5).standard_normal(rate * seconds)).astype(np.float32)
    out = []
    with _session(max_ahead_frames=3) as s:
        def consume():
            while (f := s.next_frame(timeout=20)) is not None:
                out.append(f.index)

        t = threading.Thread(target=consume)
        t.start()
        _feed_random_chunks(s, x, rate, seed=7, max_chunk=2000)
        s.flush()
        t.join(timeout=60)
        assert not t.is_alive()
    assert out == list(range(seconds * 25))


def test_memory_stays_flat_over_a_long_stream():
    """A consumer that keeps up: what the session holds stays bounded over 60 s of audio."""
    with _session(max_ahead_frames=10) as s:
        sizes, n_out = [], 0
        chunk = np.zeros(1600, np.float32)  # 100 ms
        for i in range(600):
            s.feed_audio(chunk, 16000)
            # pull the frames whose audio, hop and lookahead are in (2.5 frames per chunk)
            while n_out < int((i + 1) * 2.5) - 20:
                assert s.next_frame(timeout=10).index == n_out
                n_out += 1
            sizes.append((s._audio.size, len(s._motion), len(s._frames)))
        s.flush()
        assert len(list(s.frames())) == 1500 - n_out
    late = sizes[-300:]
    assert max(a for a, _, _ in late) <= 6 * 16000  # a few seconds of audio, not all 60
    assert max(m for _, m, _ in late) <= 60
    assert max(f for _, _, f in late) <= 10


def test_frames_on_a_device_are_dlpack_arrays_with_the_same_pixels():
    """frame_device='cpu' goes through the same upload path as 'cuda' (an ORT OrtValue, DLPack)."""
    x = np.random.default_rng(5).normal(0, 0.1, 16000).astype(np.float32)
    got = {}
    for dev in ("host", "cpu"):
        s = _session(frame_device=dev)
        s.feed_audio(x, 16000)
        s.flush()
        got[dev] = list(s.frames())
        s.close()
    assert len(got["host"]) == len(got["cpu"]) == 25
    for a, b in zip(got["host"], got["cpu"]):
        assert not isinstance(b.image, np.ndarray) and hasattr(b.image, "__dlpack__")
        assert b.image.__dlpack_device__()[0] == 1          # kDLCPU
        np.testing.assert_array_equal(np.from_dlpack(b.image), a.image)


def test_cuda_frames_without_cuda_are_a_clear_error():
    from chatanyone.runners.base import available_providers
    if "CUDAExecutionProvider" in available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ValueError, match="frame_device.*onnxruntime-gpu"):
        _session(frame_device="cuda")


@pytest.mark.parametrize("fps", [25, 30])
def test_interrupt_stops_speech_within_100ms_of_audio_time_and_eases_to_idle(fps):
    """Barge-in: after interrupt() the frames show no speech (the 'exp' motion, here the loudness
    of each frame's audio) from 100 ms of audio time on, their audio is silence, the motion eases
    there without a jump, and the motion computed ahead for the dropped speech is never shown."""
    pipe = RecordingPipeline(delay=0.002)
    with Session(None, SessionConfig(fps=fps, max_ahead_frames=20), _pipeline=pipe) as s:
        s.feed_audio(np.full(16000 * 4, 0.25, np.float32), 16000)  # 4 s of speech queued
        shown = [s.next_frame(timeout=10) for _ in range(6)]
        assert all(f.image[0, 0, 1] == 100 for f in shown)       # speaking: loudness 0.25 -> 100
        while len(s._frames) < 15:                                # frames computed ahead of the consumer
            time.sleep(0.01)
        s.interrupt()
        rest = list(s.frames())
        assert pipe.resets == 2                                   # the motion model started afresh
    t_cut = (shown[-1].index + 1) / fps                           # audio time of the interrupt
    assert rest[0].index == shown[-1].index + 1
    assert len(rest) == round(0.4 * fps)                          # the easing frames, then None
    speech = [int(f.image[0, 0, 1]) for f in rest]
    for f, v in zip(rest, speech):
        assert not f.audio.any()
        if f.timestamp - t_cut >= 0.1 - 1e-9:
            assert v == 0, (f.timestamp - t_cut, speech)
    assert speech[0] > 0 and all(a >= b for a, b in zip(speech, speech[1:]))  # eased, not cut
    head = [int(f.image[0, 0, 0]) for f in shown + rest]
    assert max(abs(a - b) for a, b in zip(head, head[1:])) <= 3   # no jump in the slow motion


def test_interrupt_with_nothing_queued_changes_nothing():
    with _session() as s:
        s.feed_audio(np.zeros(3200, np.float32), 16000)
        s.flush()
        assert len(list(s.frames())) == 5
        for _ in range(3):
            s.interrupt()
        s.feed_audio(np.zeros(6400, np.float32), 16000)
        s.flush()
        frames = list(s.frames())
        assert [f.index for f in frames] == list(range(5, 15))
        s.feed_audio(np.zeros(640, np.float32), 16000)
        s.flush()
        assert [f.index for f in s.frames()] == [15]
