"""Evaluation preparation and face-mesh measures: the cached prepared video, its errors, mouth
opening / head pose invariance, valid regions. Synthetic clips are written with PyAV into tmp; the
real-clip tests skip when ../shared/data is absent."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

av = pytest.importorskip("av")

from chatanyone.eval import mouth as M  # noqa: E402
from chatanyone.eval.frames import real_view, valid_region  # noqa: E402
from chatanyone.eval.prepare import prepare  # noqa: E402

import media_util  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
REAL = VIDEOS / "pcavs_vox2_00473.mp4"   # 224x224 head clip, 25 fps, speech


def write_clip(path, n_frames, *, fps=25, size=(64, 48), audio=True, tone_hz=440.0):
    """An H.264 clip of ``n_frames`` gray frames at ``fps`` with (optionally) a mono AAC tone."""
    w, h = size
    frames = [np.full((h, w, 3), (9 * i) % 256, np.uint8) for i in range(n_frames)]
    media_util.write_clip(path, frames, fps=fps, audio=audio, tone_hz=tone_hz)


def test_prepare_synthetic_clip_timeline_audio_and_cache(tmp_path):
    clip = tmp_path / "tone.mp4"
    write_clip(clip, 20)
    cache = tmp_path / "cache"
    pv = prepare(clip, cache=cache)
    assert pv.n == 20 and (pv.width, pv.height) == (64, 48) and pv.has_audio
    assert pv.audio.shape == (20 * 640,) and pv.audio.dtype == np.float32
    assert np.sqrt(np.mean(pv.audio[3200:11000] ** 2)) > 0.1   # the tone is there
    assert pv.face.shape == (20, 478, 3) and not pv.face_ok.any()   # gray frames: no face
    assert pv.hands.shape == (20, 2, 21, 3) and pv.pose.shape == (20, 33, 4)
    assert len(list(pv.frames())) == 20
    entries = list(cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "prepared.npz").is_file()
    again = prepare(clip, cache=cache)
    assert again.key == pv.key and again.detect_s == 0.0      # from the cache, not detected again
    np.testing.assert_array_equal(again.audio, pv.audio)
    short = prepare(clip, cache=cache, max_seconds=0.2)       # the first 0.2 s: cut from the entry
    assert short.n == 5 and short.detect_s == 0.0 and len(list(cache.iterdir())) == 1
    assert short.audio.shape == (5 * 640,) and short.face.shape[0] == 5
    np.testing.assert_array_equal(short.audio, pv.audio[:3200])
    assert prepare(clip, cache=cache, max_seconds=1).key == prepare(clip, cache=cache, max_seconds=1.0).key
    with pytest.raises(ValueError, match="no face"):
        pv.first_face_frame()


def test_prepare_silent_clip_and_env_cache_dir(tmp_path, monkeypatch):
    clip = tmp_path / "silent.mp4"
    write_clip(clip, 10, audio=False)
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path / "c"))
    pv = prepare(clip)
    assert not pv.has_audio and pv.audio.shape == (10 * 640,) and not pv.audio.any()
    assert (tmp_path / "c" / "eval" / pv.key / "prepared.npz").is_file()


def test_prepare_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        prepare(tmp_path / "missing.mp4", cache=False)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError):
        prepare(text, cache=False)
    audio_only = tmp_path / "speech.m4a"
    media_util.write_audio_only(audio_only)
    with pytest.raises(ValueError, match="no video stream"):
        prepare(audio_only, cache=False)
    blip = tmp_path / "blip.mp4"                    # two frames 1 ms apart: under one 25 fps frame
    write_clip(blip, 2, fps=1000, audio=False)
    with pytest.raises(ValueError, match="shorter than one frame"):
        prepare(blip, cache=False)
    with pytest.raises(ValueError, match="max_seconds"):
        prepare(blip, cache=False, max_seconds=0)


def _posed(canon, yaw, pitch, roll, scale, shift, y_stretch=1.0):
    from chatanyone.spec.head import euler_to_matrix
    p = scale * canon @ euler_to_matrix(yaw, pitch, roll).T
    p[:, :2] += shift
    p[:, 1] *= y_stretch
    return p


def test_mouth_opening_invariant_to_pose_scale_and_position():
    from chatanyone.spec.head import load_basis
    canon = load_basis().canonical.astype(np.float64)
    opened = canon.copy()
    low = [M.LIPS.index(i) for i in M.LOWER_LIP]
    opened[np.array(M.LIPS)[low], 1] += 0.05          # jaw 5% of the face height further down
    faces = np.stack([_posed(canon, 0.2, -0.1, 0.05, 180.0, (300, 200)),
                      _posed(opened, -0.3, 0.15, -0.1, 60.0, (50, 500)),
                      np.full((478, 3), np.nan)])
    can, head = M.canonical_faces(faces)
    o = M.opening(can)
    base = canon[M.LOWER_INNER, 1] - canon[M.UPPER_INNER, 1]
    assert o[0] == pytest.approx(base, abs=1e-3)
    assert o[1] - o[0] == pytest.approx(0.05, abs=2e-3)
    assert np.isnan(o[2]) and np.isnan(head[2]).all()
    np.testing.assert_allclose(head[0], [0.2, -0.1, 0.05], atol=5e-3)
    lp = M.lips(can)
    assert M.lmd(lp[:1], lp[:1]) == pytest.approx(0.0, abs=1e-6)
    assert M.lmd(lp[1:2], lp[:1]) == pytest.approx(100 * 0.05 * len(low) / 16, rel=0.05)
    moved = M.lips_with_opening(lp[0], o[0], np.array([o[0], o[0] + 0.05]))
    assert M.opening_of_lips(moved)[1] - M.opening_of_lips(moved)[0] == pytest.approx(0.05)


def test_series_statistics_and_speech_frames():
    t = np.arange(100)
    a = np.sin(t / 5.0)
    assert M.pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert M.pearson(a, np.ones(100)) is None                         # constant: undefined
    assert M.amplitude_ratio(0.5 * a, a) == pytest.approx(0.5)
    b = a.copy()
    b[:50] = np.nan
    assert M.pearson(a, b) == pytest.approx(1.0)                      # NaN frames are skipped
    assert M.amplitude_ratio(a, a, sel=np.zeros(100, bool)) is None
    audio = np.zeros(100 * 640, np.float32)
    audio[20 * 640:60 * 640] = 0.2 * np.sin(np.arange(40 * 640) / 3.0)
    sp = M.speech_frames(audio, 100)
    assert sp[20:60].all() and not sp[:17].any() and not sp[63:].any()
    env = M.rms_envelope(audio, 100)
    assert env[30] == pytest.approx(0.2 / np.sqrt(2), rel=0.01) and env[5] == 0


def test_valid_region_and_real_view_for_crop_and_photo_frames():
    from chatanyone.vision import framing
    # a 400x300 photo whose 2:3 box pokes out above and left of it: padded there
    box = framing.Box(-50.0, -60.0, 200.0, 300.0)
    av_ = SimpleNamespace(crop=np.zeros((384, 256, 3), np.uint8), crop_hq=np.zeros((768, 512, 3), np.uint8),
                          box=box.as_array(), image_size=(400, 300))
    x0, y0, x1, y1 = valid_region(av_, (384, 256))
    assert (x0, y0) == (64, 77) and (x1, y1) == (256, 384)
    assert valid_region(av_, (768, 512))[:2] == (128, 154)
    assert valid_region(av_, (240, 320)) == (0, 0, 320, 240)   # the photo's 4:3 aspect: all real
    with pytest.raises(ValueError, match="neither"):
        valid_region(av_, (100, 100))
    photo = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    v = real_view(av_, photo, (384, 256))
    assert v.shape == (384, 256, 3)
    np.testing.assert_array_equal(v, framing.crop(photo, box, (256, 384)))
    assert real_view(av_, photo, (240, 320)).shape == (240, 320, 3)
    assert real_view(av_, photo, (300, 400)) is photo


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data not present")
def test_prepare_real_clip_measures_a_moving_mouth(tmp_path):
    pv = prepare(REAL, cache=tmp_path, max_seconds=1.6)
    assert pv.n == 40 and pv.face_ok.mean() > 0.9 and pv.has_audio
    can, head = M.canonical_faces(pv.face_px(), pv.face_ok)
    o = M.opening(can)
    ok = np.isfinite(o)
    assert ok.mean() > 0.9
    assert -0.01 <= np.nanmin(o) and np.nanmax(o) < 0.3          # face heights (closed lips: ~0)
    assert np.nanstd(o) > 0.005                                  # a speaker's mouth moves
    assert np.all(np.abs(head[ok]) < 1.0)                        # a roughly frontal head
    # face mesh again on the decoded frames (tracking mode) agrees with the cached landmarks
    again = M.measure_frames(img for _, img in pv.frames(stop=10))
    can2, _ = M.canonical_faces(again)
    assert np.nanmax(np.abs(M.opening(can2) - o[:10])) < 0.02
