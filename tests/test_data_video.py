"""Decoding at a fixed fps and 16 kHz mono: exact frame counts, frame choice, audio alignment, errors.

Synthetic clips are written with PyAV into tmp; one real variable-frame-rate clip is used where
../shared/data exists.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from chatanyone.data.video import VideoError, iter_frames, probe, read_clip_audio, video_timing  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def make_video(path, times, size=(64, 48), *, codec="ffv1", audio=None, audio_start=0.0):
    """Write a video whose frame i (shown at ``times[i]`` s) is filled with gray level ``8*i % 256``
    (lossless codec), optionally with audio ``(samples [C, S] float32, rate)`` starting at
    ``audio_start`` s. The last frame lasts as long as the interval before it."""
    w, h = size
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=1000)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
        vs.time_base = Fraction(1, 1000)
        as_ = None
        if audio is not None:
            pcm, rate = audio
            as_ = c.add_stream("pcm_s16le" if str(path).endswith(".mkv") else "aac", rate=rate)
            as_.layout = {1: "mono", 2: "stereo", 6: "5.1"}[pcm.shape[0]]
        for i, t in enumerate(times):
            img = np.full((h, w, 3), (8 * i) % 256, np.uint8)
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = int(round(t * 1000))
            fr.time_base = Fraction(1, 1000)
            if len(times) > 1:
                fr.duration = int(round((times[-1] - times[-2]) * 1000)) if i == len(times) - 1 else \
                    int(round((times[i + 1] - t) * 1000))
            for p in vs.encode(fr):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if as_ is not None:
            pcm, rate = audio
            n0 = int(round(audio_start * rate))
            step = 1024
            for k in range(0, pcm.shape[1], step):
                chunk = np.ascontiguousarray((pcm[:, k:k + step] * 32767).astype(np.int16))
                fr = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1),  # packed: interleaved
                                                format="s16", layout=as_.layout.name)
                fr.sample_rate = rate
                fr.pts = n0 + k
                fr.time_base = Fraction(1, rate)
                for p in as_.encode(fr):
                    c.mux(p)
            for p in as_.encode():
                c.mux(p)


def gray_levels(path, fps=25.0):
    return [int(round(img[..., 0].mean())) for _, img in iter_frames(path, fps)]


def assert_levels(levels, src_idx):
    """Decoded gray levels match the source frames ``src_idx`` (colour conversion: +-2)."""
    expected = np.array([(8 * i) % 256 for i in src_idx])
    assert len(levels) == len(expected)
    assert np.abs(np.array(levels) - expected).max() <= 2, (levels, list(expected))


def expected_source_index(times, duration, fps=25.0):
    n = math.floor(duration * fps + 1e-6)
    out = []
    for t in range(n):
        c = (t + 0.5) / fps
        out.append(max(i for i, s in enumerate(times) if s - times[0] <= c + 1e-9))
    return out


@pytest.mark.parametrize("src_fps", [25.0, 30.0, 24.0, 60.0, 12.5])
def test_constant_rate_frame_count_and_choice(tmp_path, src_fps):
    times = [i / src_fps for i in range(int(2.3 * src_fps))]
    p = tmp_path / "cfr.mkv"
    make_video(p, times)
    duration = times[-1] + 1 / src_fps
    start, dur, n = video_timing(p)
    assert dur == pytest.approx(duration, abs=2e-3)
    assert n == math.floor(duration * 25 + 1e-6)
    levels = gray_levels(p)
    assert len(levels) == n
    assert_levels(levels, expected_source_index(times, duration))


def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(0)
    iv = rng.uniform(1 / 50, 1 / 12, size=60)  # 12..50 fps, irregular
    times = list(np.round(np.concatenate([[0.0], np.cumsum(iv)[:-1]]), 3))
    p = tmp_path / "vfr.mkv"
    make_video(p, times)
    # this muxer stores no frame durations, so the last frame lasts the median interval
    duration = times[-1] + float(np.median(np.diff(times)))
    _, dur, n = video_timing(p)
    assert dur == pytest.approx(duration, abs=2e-3)
    assert n == math.floor(duration * 25 + 1e-6)
    assert_levels(gray_levels(p), expected_source_index(times, duration))


def test_odd_size_and_max_side(tmp_path):
    p = tmp_path / "odd.mkv"
    make_video(p, [i / 25 for i in range(10)], size=(143, 97))
    info = probe(p)
    assert (info.width, info.height) == (143, 97)
    frames = [img for _, img in iter_frames(p)]
    assert len(frames) == 10 and frames[0].shape == (97, 143, 3)
    small = next(iter_frames(p, max_side=50))[1]
    assert max(small.shape[:2]) == 50


def test_repeated_frames_are_the_same_object(tmp_path):
    p = tmp_path / "slow.mkv"
    make_video(p, [i / 10 for i in range(10)])  # 10 fps -> each source frame 2-3 times at 25 fps
    frames = [img for _, img in iter_frames(p)]
    assert len(frames) == 25
    assert frames[0] is frames[1]


@pytest.mark.parametrize("rate,channels", [(44100, 2), (16000, 1), (48000, 6), (8000, 1)])
def test_audio_resampled_and_aligned(tmp_path, rate, channels):
    # a click at 1.000 s in every channel
    dur = 2.0
    pcm = np.zeros((channels, int(dur * rate)), np.float32)
    pcm[:, int(1.0 * rate):int(1.0 * rate) + 8] = 0.9
    p = tmp_path / "a.mkv"
    make_video(p, [i / 25 for i in range(int(dur * 25))], audio=(pcm, rate))
    n = video_timing(p)[2]
    audio, has = read_clip_audio(p, n)
    assert has
    assert audio.dtype == np.float32 and audio.shape == (n * 640,)
    peak = int(np.argmax(np.abs(audio)))
    assert abs(peak - 16000) <= 16  # within 1 ms
    info = probe(p)
    assert info.audio_rate == rate and info.audio_channels == channels


def test_audio_starting_late_is_padded(tmp_path):
    rate = 16000
    pcm = np.zeros((1, rate), np.float32)
    pcm[0, 100:108] = 0.9  # click 100 samples after the audio starts
    p = tmp_path / "late.mkv"
    make_video(p, [i / 25 for i in range(50)], audio=(pcm, rate), audio_start=0.5)
    audio, has = read_clip_audio(p, 50)
    assert has and audio.shape == (32000,)
    assert abs(int(np.argmax(audio)) - (8000 + 100)) <= 2
    assert np.all(audio[:7900] == 0)


def test_no_audio(tmp_path):
    p = tmp_path / "silent.mkv"
    make_video(p, [i / 25 for i in range(25)])
    assert not probe(p).has_audio
    audio, has = read_clip_audio(p, 25)
    assert not has and audio.shape == (16000,) and not audio.any()


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError):
        probe(junk)
    with pytest.raises(VideoError):
        list(iter_frames(junk))
    # audio only: no video stream
    p = tmp_path / "audio_only.mkv"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=16000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        fr.sample_rate = 16000
        fr.pts = 0
        for pk in s.encode(fr):
            c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    with pytest.raises(VideoError, match="no video stream"):
        probe(p)
    with pytest.raises(ValueError):
        list(iter_frames(p, fps=0))


@pytest.mark.skipif(not (SHARED / "videoretalking_face1.mp4").exists(), reason="../shared/data not present")
def test_real_vfr_clip():
    p = SHARED / "videoretalking_face1.mp4"  # 22.13 fps, starts at a non-zero pts
    start, dur, n = video_timing(p)
    assert n == math.floor(dur * 25 + 1e-6)
    assert dur == pytest.approx(6.1, abs=0.05)
    count = 0
    for t, img in iter_frames(p, max_side=128):
        assert t == count
        count += 1
    assert count == n
    audio, has = read_clip_audio(p, n)
    assert has and audio.shape == (n * 640,) and np.abs(audio).max() > 0.05


def test_aac_in_mp4_aligned(tmp_path):
    # AAC adds encoder priming; the container's timing must cancel it
    rate = 44100
    pcm = np.zeros((2, 2 * rate), np.float32)
    pcm[:, rate:rate + 8] = 0.9
    p = tmp_path / "h264_aac.mp4"
    make_video(p, [i / 25 for i in range(50)], codec="libx264", audio=(pcm, rate))
    audio, has = read_clip_audio(p, video_timing(p)[2])
    assert has and abs(int(np.argmax(np.abs(audio))) - 16000) <= 16
