"""The whole chain with the shipped models: avatar -> Session -> frames -> MP4, and the CLI."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import demo_speech
from chatanyone.assets import default_avatar_image


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


@pytest.fixture(scope="module")
def speech():
    pcm, rate = demo_speech()
    return pcm[: int(1.6 * rate)], rate


def _run(avatar, pcm, rate, **kw):
    with ca.Session(avatar, ca.SessionConfig(**kw)) as s:
        for i in range(0, len(pcm), 1000):
            s.feed_audio(pcm[i:i + 1000], rate)
        s.flush()
        return list(s.frames())


def test_session_end_to_end(avatar, speech):
    pcm, rate = speech
    frames = _run(avatar, pcm, rate)
    assert len(frames) == int(np.ceil(len(pcm) / rate * 25))
    imgs = np.stack([f.image for f in frames])
    # the frame is the photo (512x600) at the fast preset's long side, 512, its aspect ratio kept
    assert imgs.shape[1:] == (512, 436, 3) and imgs.dtype == np.uint8
    # a talking face is not a still: the mouth region changes from frame to frame while the
    # photo outside the animated region stays put; and the frames stay a picture of the avatar
    from chatanyone.vision.framing import Box, from_crop_coords
    s = 512 / 600
    lips = from_crop_coords(avatar.face[[13, 14, 61, 291], :2], Box.from_array(avatar.box)) * s
    x, y = lips[:, 0].astype(int), lips[:, 1].astype(int)
    steps = np.abs(np.diff(imgs.astype(np.int16), axis=0))
    assert steps[:, y.min() - 6:y.max() + 6, x.min() - 6:x.max() + 6].mean() > 1.0
    x0 = int(np.floor(avatar.region[0] * s))
    assert x0 > 5 and steps[:, :, :x0].max() == 0
    photo = cv2.resize(avatar.photo, (436, 512), interpolation=cv2.INTER_AREA).astype(np.float32)
    err = np.abs(imgs.astype(np.float32).mean(0) - photo).mean()
    assert err < 30   # the head and the background around it move; the picture stays the photo
    # the audio slices are the speech
    got = np.concatenate([f.audio for f in frames])[: len(pcm)]
    np.testing.assert_allclose(got, pcm, atol=1e-6)


def test_same_seed_same_frames_other_seed_other_motion(avatar, speech):
    pcm, rate = speech
    pcm = pcm[: rate]  # 1 s
    a = np.stack([f.image for f in _run(avatar, pcm, rate, seed=3)])
    b = np.stack([f.image for f in _run(avatar, pcm, rate, seed=3)])
    c = np.stack([f.image for f in _run(avatar, pcm, rate, seed=4)])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(np.int16) - c).mean() > 0.05


def test_fps_30_frame_count(avatar, speech):
    pcm, rate = speech
    pcm = pcm[: rate]
    frames = _run(avatar, pcm, rate, fps=30)
    assert len(frames) == 30


def test_cli_render_writes_h264_aac(tmp_path, speech):
    import soundfile as sf
    import av

    pcm, rate = speech
    wav = tmp_path / "speech.mp3"  # WAV content behind an .mp3 name: judged by content
    sf.write(wav, pcm[: rate], rate, format="WAV")
    from chatanyone.assets import default_avatar_path

    portrait = default_avatar_path()
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "chatanyone", "render", str(portrait), str(wav), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        kinds = {s.type: s.codec_context.name for s in c.streams}
        n = sum(1 for _ in c.decode(video=0))
    assert kinds == {"video": "h264", "audio": "aac"}
    assert n == 25


@pytest.mark.parametrize("args, words", [
    (["render", "/no/such.png", "x.wav", "-o", "o.mp4"], "not found"),
    (["render", "{portrait}", "/no/such.wav", "-o", "o.mp4"], "not found"),
    (["render", "{portrait}", "{junk}", "-o", "{tmp}/o.mp4"], "FFmpeg"),
    (["render", "{portrait}", "{wav}", "-o", "{tmp}/missing_dir/o.mp4"], "folder"),
    (["render", "{portrait}", "{wav}", "-o", "{tmp}/o.avi"], "mp4"),
    (["render", "{portrait}", "{wav}", "-o", "{tmp}/o.mp4", "--fps", "0"], "fps"),
    (["render", "{portrait}", "{wav}", "-o", "{tmp}/o.mp4", "--intensity", "9"], "intensity"),
    (["render", "{wav}", "{wav}", "-o", "{tmp}/o.mp4"], "image"),
])
def test_cli_errors_are_one_clear_line(tmp_path, args, words):
    import soundfile as sf
    from PIL import Image

    portrait = tmp_path / "p.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(portrait)
    wav = tmp_path / "s.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio" * 50)
    args = [a.format(portrait=portrait, wav=wav, junk=junk, tmp=tmp_path) for a in args]
    r = subprocess.run([sys.executable, "-m", "chatanyone", *args], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert words.lower() in r.stderr.lower(), r.stderr


def test_session_needs_an_avatar():
    with pytest.raises(TypeError, match="Avatar"):
        ca.Session("portrait.jpg")


def test_quality_preset_session(avatar, speech):
    pcm, rate = speech
    pcm = pcm[: rate // 2]
    frames = _run(avatar, pcm, rate, preset="quality")
    assert len(frames) == int(np.ceil(len(pcm) / rate * 25))
    imgs = np.stack([f.image for f in frames])
    assert imgs.shape[1:] == (1024, 874, 3) and imgs.dtype == np.uint8
    # a picture of the avatar at twice the fast size, and the same picture as the fast preset's
    photo = cv2.resize(avatar.photo, (874, 1024), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(imgs.astype(np.float32).mean(0) - photo).mean() < 30
    fast = np.stack([f.image for f in _run(avatar, pcm, rate)]).astype(np.float32)
    small = np.stack([cv2.resize(i, (436, 512), interpolation=cv2.INTER_AREA) for i in imgs]).astype(np.float32)
    assert np.abs(small - fast).mean() < 3


def test_output_size_sets_the_frames_long_side(avatar, speech):
    pcm, rate = speech
    with ca.Session(avatar, ca.SessionConfig(output_size=300)) as s:
        assert s.frame_size == (256, 300)
        s.feed_audio(pcm[: rate // 5], rate)
        s.flush()
        assert {f.image.shape for f in s.frames()} == {(300, 256, 3)}


def test_an_avatar_without_its_photo_is_a_clear_error(avatar):
    import dataclasses
    old = dataclasses.replace(avatar, photo=None)
    with pytest.raises(ValueError, match="prepare it again"):
        ca.Session(old)


def _lip_gap(exp):
    """Inner-lip opening (canonical units) of the face an expression vector makes."""
    from chatanyone.spec.head import load_basis

    b = load_basis()
    n = b.components.shape[1] // 3
    mesh = b.canonical[:n] + (np.asarray(exp, np.float64) @ b.components).reshape(n, 3)
    return float(abs(mesh[14, 1] - mesh[13, 1]))


def test_interrupt_then_new_speech_with_real_models(avatar, speech):
    pcm, rate = speech
    with ca.Session(avatar, ca.SessionConfig(max_ahead_frames=5)) as s:
        rendered = []
        real_render = s._pipe.render
        s._pipe.render = lambda mo: (rendered.append(mo), real_render(mo))[1]
        s.feed_audio(np.tile(pcm, 4), rate)  # ~6 s queued
        first = [s.next_frame(timeout=30) for _ in range(8)]
        n_before = len(rendered)
        s.interrupt()
        rest = list(s.frames())
        # the mouth stops: 100 ms after the interrupt it is at idle, below its opening in speech
        talk = np.mean([_lip_gap(m["exp"]) for m in rendered[:n_before]])
        idle = [_lip_gap(m["exp"]) for m in rendered[len(rendered) - len(rest) + 3:]]  # >= 120 ms after
        assert len(rest) == 10 and max(idle) < talk, (talk, idle)
        # and it eases there: no jump at the interruption nor between the easing frames
        seq = [first[-1]] + rest
        steps = [np.abs(a.image.astype(np.int16) - b.image).mean() for a, b in zip(seq, seq[1:])]
        assert max(steps) < 12, steps
        assert len(first) + len(rest) < 100  # far fewer than the ~160 frames queued
        s.feed_audio(pcm[: rate // 2], rate)
        s.flush()
        after = list(s.frames())
        assert len(after) == 13
        assert after[0].index == first[-1].index + len(rest) + 1
        # smooth return: the first frame after the interruption is close to the last one before
        jump = np.abs(after[0].image.astype(np.int16) - (rest or first)[-1].image).mean()
        assert jump < 12


def test_style_from_a_video(avatar, speech, tmp_path):
    """A style reference given as a video: its motion is extracted offline (the data pipeline)
    into a motion clip, which conditions the model; the Session itself refuses a video."""
    from chatanyone.data.corpus import video_motion
    from chatanyone.media import VideoWriter

    # a short video of the avatar's own crop, slightly moving: enough for the data pipeline
    vid = tmp_path / "style.mp4"
    with VideoWriter(vid, 256, 384, 25, audio_rate=None) as w:
        for i in range(40):
            w.write(np.roll(avatar.crop, i % 5 - 2, axis=1))
    pcm, rate = speech
    video_motion(vid, tmp_path / "style.npz")
    frames = _run(avatar, pcm[: rate // 2], rate, style=str(tmp_path / "style.npz"))
    assert len(frames) == 13
    with pytest.raises(ValueError, match="video_motion"):
        _run(avatar, pcm[: rate // 2], rate, style=str(vid))
    with pytest.raises(ValueError, match="style"):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video" * 20)
        video_motion(bad)


def test_warm_up_and_primed_first_window_change_no_result(avatar, speech):
    """A Pipeline warms its networks up and samples the stream's first face window when it is made
    (issue 12's first-frame latency); its motion is still exactly a fresh generator's on the same
    audio, and its timings count no warm-up frame."""
    from chatanyone.motion import MotionGenerator
    from chatanyone.motion.gesture import GestureSmoother
    from chatanyone.pipeline import Pipeline

    pcm, rate = speech
    assert rate == 16000
    p = Pipeline(avatar, ca.SessionConfig(seed=5))
    assert p.renderer.frames == 0 and not p.timings()
    got = p.motion(np.asarray(pcm, np.float32), final=True)
    g = MotionGenerator(seed=5)
    g.push_audio(np.asarray(pcm, np.float32))
    g.flush()
    want = GestureSmoother()(g.generate_all())
    assert len(got) == len(want) == -(-len(pcm) // 640)
    for k in ("head", "exp", "eye", "body"):
        np.testing.assert_array_equal(got[k], want[k])
    p.reset()  # a new stream: its first window is primed again, with the same result
    again = p.motion(np.asarray(pcm, np.float32), final=True)
    np.testing.assert_array_equal(again.head, got.head)


def test_session_first_frame_with_200_ms_of_audio(avatar, speech):
    """Issue 12's latency path, on audio time, through the public Session: with only 200 ms of
    speech fed (frame 0's 40 ms and the mouth predictor's 160 ms lookahead: the second chunk of a
    100 ms feed), no flush, frame 0 comes; its audio is the speech's first 40 ms. (The timeout
    only bounds a failure.)"""
    pcm, rate = speech
    assert rate == 16000
    fed = 3200
    assert fed / 16.0 <= 200.0
    with ca.Session(avatar, ca.SessionConfig()) as s:
        s.feed_audio(pcm[:fed], rate)
        f = s.next_frame(timeout=120)
        assert f is not None and f.index == 0
        np.testing.assert_allclose(f.audio, np.asarray(pcm[:640], np.float32), atol=1e-6)
