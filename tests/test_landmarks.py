"""The landmark detector without the mediapipe package (LiteRT + the shipped MediaPipe models):
geometry on the default avatar photo, bad input, tracking mode over a sequence, the custom
operators of the attention face model, and parity with mediapipe 0.10.21 where it is installed."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from chatanyone.assets import default_avatar_image
from chatanyone.vision import landmarks as LM
from chatanyone.vision.detect import Detector, detector_version
from chatanyone.vision.litert import (_landmarks_to_transform_matrix, _transform_landmarks,
                                      _transform_tensor_bilinear)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def photo():
    return default_avatar_image()


@pytest.fixture(scope="module")
def found(photo):
    with Detector(video=False) as det:
        return det(photo)


def _px(p, shape):
    return np.array([p[0] * shape[1], p[1] * shape[0]])


def test_default_photo_face_geometry(photo, found):
    """Grace Hopper's portrait: one face, 478 finite points, the parts where a face has them."""
    assert found.face_ok and found.n_faces == 1
    f = found.face
    assert f.shape == (478, 3) and f.dtype == np.float32 and np.isfinite(f).all()
    assert (f[:, :2] > 0).all() and (f[:, :2] < 1).all()       # the whole face is in the photo
    y = lambda i: f[i, 1]  # noqa: E731
    brow, eye_l, eye_r, nose, upper_lip, lower_lip, chin = 105, 159, 386, 1, 0, 17, 152
    assert y(10) < y(brow) < y(eye_l) < y(nose) < y(upper_lip) < y(lower_lip) < y(chin)
    assert abs(y(13) - y(14)) < 0.01                               # her mouth is closed
    assert abs(y(eye_l) - y(eye_r)) < 0.03                        # an upright face
    # the image-left eye (person's right, 33/133) is left of the other eye (263/362)
    assert f[133, 0] < f[362, 0] and f[33, 0] < f[263, 0]
    # each iris centre (468, 473) lies between its eye's corners
    for iris, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        lo, hi = sorted((f[a, 0], f[b, 0]))
        assert lo < f[iris, 0] < hi
    # mouth corners 61/291 straddle the nose tip; the face is about as wide as it is tall (pixels)
    assert f[61, 0] < f[1, 0] < f[291, 0]
    h = np.linalg.norm(_px(f[152], photo.shape) - _px(f[10], photo.shape))
    w = np.linalg.norm(_px(f[454], photo.shape) - _px(f[234], photo.shape))
    assert 0.6 < w / h < 1.2


def test_default_photo_pose(photo, found):
    """The body under the face: shoulders below the chin and wider than the eyes."""
    assert found.pose_ok
    p, f = found.pose, found.face
    assert p.shape == (33, 4) and np.isfinite(p).all()
    assert ((p[:, 3] >= 0) & (p[:, 3] <= 1)).all()
    assert p[0, 3] > 0.9 and p[11, 3] > 0.5 and p[12, 3] > 0.5     # nose and shoulders seen
    assert abs(p[0, 0] - f[1, 0]) < 0.05 and abs(p[0, 1] - f[1, 1]) < 0.05  # pose nose = mesh nose
    assert min(p[11, 1], p[12, 1]) > f[152, 1]
    assert abs(p[11, 0] - p[12, 0]) > abs(f[263, 0] - f[33, 0])
    assert p[12, 0] < p[11, 0]          # the person's right shoulder (12) on the image's left


def test_bad_input():
    det = Detector(video=False, pose=False, hands=False)
    with pytest.raises(TypeError, match="numpy array"):
        det([[0, 0, 0]])
    with pytest.raises(ValueError, match="uint8"):
        det(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        det(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="2x2"):
        det(np.zeros((1, 64, 3), np.uint8))
    blank = det(np.zeros((64, 48, 3), np.uint8))     # nothing to find is not an error
    assert not blank.face_ok and np.isnan(blank.face).all()
    det.close()
    with pytest.raises(ValueError, match="closed"):
        det(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="max_faces"):
        Detector(max_faces=0)
    with pytest.raises(ValueError, match="min_confidence"):
        Detector(min_confidence=1.5)


def test_tracking_follows_and_redetects(photo, monkeypatch):
    """Video mode: the face detector runs on the first frame only while the face stays; the mesh
    follows a moving face; an empty frame loses it and the detector finds it again after."""
    H, W = photo.shape[:2]
    canvas = np.zeros((H, W + 40, 3), np.uint8)

    def frame(dx):
        c = canvas.copy()
        c[:, dx:dx + W] = photo
        return c

    calls = []
    with Detector(video=True, pose=False, hands=False) as det:
        orig = det._face.det.__call__
        monkeypatch.setattr(type(det._face.det), "__call__",
                            lambda self, rgb, th=0.5: calls.append(1) or orig(rgb, th))
        seq = [det(frame(dx)) for dx in (0, 8, 16, 24, 32)]
        assert all(s.face_ok for s in seq)
        assert len(calls) == 1                                   # tracked, not re-detected
        nose_px = [s.face[1, 0] * (W + 40) for s in seq]
        steps = np.diff(nose_px)
        assert np.all(np.abs(steps - 8) < 1.5), steps            # moves with the picture
        assert not det(np.zeros_like(canvas)).face_ok            # lost (the tracked region is empty)
        assert len(calls) == 1                                   # that frame still tried the track
        again = det(frame(0))
        assert again.face_ok and len(calls) == 2                 # re-detected on the next frame
        assert abs(again.face[1, 0] - seq[0].face[1, 0]) * (W + 40) < 1.0


def test_transform_matrix_and_landmarks_roundtrip():
    """Landmarks2TransformMatrix maps the crop's centre to the subset's centre, rotated like the
    rotation points; TransformLandmarks applies it; TransformTensorBilinear samples through it."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(10, 40, (1, 468, 3)).astype(np.float32)
    sub = [3, 7, 11, 20]
    pts[0, sub, :2] = [[20, 20], [30, 20], [30, 26], [20, 26]]   # a 10 x 6 box, centre (25, 23)
    ang = math.radians(30)
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    pts[0, sub, :2] = (pts[0, sub, :2] - [25, 23]) @ rot.T + [25, 23]
    opts = {"left_rotation_idx": 3, "right_rotation_idx": 7, "subset_idxs": sub, "output_width": 16,
            "output_height": 16, "scale_x": 1.0, "scale_y": 1.0, "target_rotation_radians": 0.0}
    m = _landmarks_to_transform_matrix(pts, opts)
    assert m.shape == (1, 4, 4)
    centre = _transform_landmarks(np.array([[[8.0, 8.0]]], np.float32), m)[0, 0]
    assert np.allclose(centre, [25, 23], atol=1e-4)
    corner = _transform_landmarks(np.array([[[0.0, 0.0]]], np.float32), m)[0, 0]
    assert np.allclose(corner, pts[0, 3, :2], atol=1e-3)         # the crop's corner is the box's
    # bilinear sampling through an integer shift reproduces the shifted feature map
    x = rng.normal(size=(1, 12, 12, 4)).astype(np.float32)
    shift = np.eye(4, dtype=np.float32)[None]
    shift[0, 0, 3], shift[0, 1, 3] = 2.0, 3.0
    y = _transform_tensor_bilinear(x, shift, {"output_height": 6, "output_width": 6})
    assert np.allclose(y[0], x[0, 3:9, 2:8], atol=1e-5)


def test_models_ship_with_notice():
    files = {p.name for p in LM.WEIGHTS.iterdir()}
    assert set(LM.model_files()) <= files
    assert "NOTICE" in files and "LICENSE" in files
    assert sum((LM.WEIGHTS / f).stat().st_size for f in LM.model_files()) < 22e6
    assert detector_version() == LM.VERSION


# ------------------------------------------------------------------ parity with mediapipe 0.10.21
def _need_reference():
    pytest.importorskip("mediapipe")
    from chatanyone.vision.detect import MediapipeDetector
    if not (SHARED / "portraits").is_dir():
        pytest.skip("../shared/data is absent")
    return MediapipeDetector


def test_parity_photos_static():
    """Static mode on real portraits: the same points as mediapipe (same models, same kernels;
    only the pre/post-processing here is ours)."""
    ref_cls = _need_reference()
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from landmark_parity import Stats, read_photo
    names = ["hamer_test5_hands_on_face.jpg", "liveportrait_s20_frame0.png", "fr_biden_official_fullbody.jpg"]
    st = Stats()
    with Detector(video=False) as ours, ref_cls(video=False) as ref:
        for n in names:
            rgb = read_photo(SHARED / "portraits" / n)
            if rgb is None:
                pytest.skip(f"{n} missing")
            st.add(ours(rgb), ref(rgb), rgb.shape[1], rgb.shape[0])
    r = st.report("parity, photos")
    assert all(v == f"{len(names)}/{len(names)}" for k, v in r.items() if k.startswith("agree_"))
    assert r["face_mean_pct"] < 0.05 and r["face_max_pct"] < 0.5      # % of face height
    assert r["pose_mean_pct"] < 0.1 and r["pose_max_pct"] < 1.0
    assert r["hand_mean_pct"] < 0.1 and r["hand_max_pct"] < 1.0        # % of hand size
    assert len(st.hand) >= 21 * 3                                        # hands were compared


def test_parity_video_face_tracking():
    """Tracking mode over 24 frames of a clip: the face stays within a small fraction of a
    percent of face height of mediapipe's."""
    ref_cls = _need_reference()
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from landmark_parity import Stats, read_frames
    clip = SHARED / "videos" / "latentsync_demo2_upperbody.mp4"
    if not clip.exists():
        pytest.skip("clip missing")
    st = Stats()
    with Detector(video=True, hands=False) as ours, ref_cls(video=True, hands=False) as ref:
        for rgb in read_frames(clip, 24):
            st.add(ours(rgb), ref(rgb), rgb.shape[1], rgb.shape[0])
    r = st.report("parity, video")
    assert r["agree_face"] == "24/24" and r["agree_pose"] == "24/24"
    assert r["face_mean_pct"] < 0.2 and r["face_max_pct"] < 1.0
    assert r["pose_p50_pct"] < 0.5
