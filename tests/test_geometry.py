"""Framing (vision), keypoint selection, rigid fits and driving-keypoint composition (spec), and the
corpus's smoothing (data); no detector."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone.data import smoothing as S
from chatanyone.spec import driving as compose, head as M, keypoint_layout as L
from chatanyone.vision import framing
from chatanyone.vision.detect import plausible_hands


@pytest.fixture(scope="module")
def basis():
    return M.load_basis()


def test_basis_file(basis):
    assert basis.canonical.shape == (478, 3)
    assert basis.components.shape == (basis.n_exp, 468 * 3)
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(basis.n_exp), atol=1e-4)
    c = basis.canonical
    # frontal, face height 1, x from the right eye to the left eye, nose nearer the camera
    assert np.linalg.norm(c[152] - c[10]) == pytest.approx(1.0, abs=1e-4)
    assert c[263, 0] > c[33, 0]
    assert c[1, 2] < c[10, 2]
    assert abs(c[1, 0]) < 0.03  # nose tip on the symmetry plane


def test_keypoint_layout():
    assert 40 <= L.N_FACE_KP <= 60
    assert L.N_KP == L.N_FACE_KP + 8 + 42
    assert L.KP_BODY_IDX == [11, 12, 13, 14, 15, 16, 23, 24]
    assert all(0 <= i < 478 for i in L.KP_FACE_IDX) and len(set(L.KP_FACE_IDX)) == L.N_FACE_KP
    assert set(L.IRIS_CENTERS) <= set(L.KP_FACE_IDX)


def test_renderer_keypoints_visibility():
    rng = np.random.default_rng(0)
    face = rng.uniform(-1, 1, (478, 3))
    pose = np.concatenate([rng.uniform(-1, 1, (33, 3)), np.full((33, 1), 0.9)], 1)
    pose[23, 3] = 0.1  # a hip the detector is unsure of
    hands = rng.uniform(-1, 1, (2, 21, 3))
    kp, vis = L.renderer_keypoints(face, pose, hands, hands_ok=np.array([True, False]))
    assert kp.shape == (L.N_KP, 2) and vis.shape == (L.N_KP,) and kp.dtype == np.float32
    np.testing.assert_allclose(kp[L.FACE_SLICE], face[L.KP_FACE_IDX, :2], rtol=1e-6)
    assert vis[L.FACE_SLICE].all() and vis[L.LEFT_HAND_SLICE].all() and not vis[L.RIGHT_HAND_SLICE].any()
    assert vis[L.BODY_SLICE].tolist() == [1, 1, 1, 1, 1, 1, 0, 1]
    kp, vis = L.renderer_keypoints(None, None, None)
    assert not vis.any() and not kp.any()


def test_upper_body_box_and_crop():
    face = np.zeros((478, 2))
    face[10] = [100, 50]
    face[152] = [100, 150]   # face height 100 px
    face[168] = [100, 80]
    box = framing.upper_body_box(face)
    assert box.w / box.h == pytest.approx(2 / 3)
    assert box.h == pytest.approx(framing.FACE_UNITS_H * 100)
    # fixed per clip: the median over frames, frames without a face ignored
    clip = np.stack([face, face + 10, np.full_like(face, np.nan)])
    b2 = framing.upper_body_box(clip)
    assert b2.x0 == pytest.approx(box.x0 + 5) and b2.h == pytest.approx(box.h)
    with pytest.raises(ValueError):
        framing.upper_body_box(np.full((2, 478, 2), np.nan))
    with pytest.raises(ValueError):
        framing.upper_body_box(np.zeros((10, 2)))
    # crop of a box reaching outside the image: padded, right size, the inside kept
    img = np.zeros((200, 300, 3), np.uint8)
    img[:, :150] = 200
    c = framing.crop(img, box, (256, 384))
    assert c.shape == (384, 256, 3) and c.dtype == np.uint8
    x0, y0, x1, y1 = framing.valid_rect(box, (300, 200), (256, 384))
    assert 0 < x0 < x1 <= 256 and 0 < y0 < y1 < 384


def test_crop_coordinates_roundtrip_and_pixel_centres():
    box = framing.Box(10.0, 20.0, 64.0, 96.0)
    xy = np.random.default_rng(1).uniform(0, 200, (50, 2))
    np.testing.assert_allclose(framing.from_crop_coords(framing.to_crop_coords(xy, box), box), xy)
    # a crop at scale 1 of an image equals the image region (pixel centres line up)
    img = np.random.default_rng(2).integers(0, 255, (200, 200, 3)).astype(np.uint8)
    c = framing.crop(img, framing.Box(10, 20, 64, 96), (64, 96))
    np.testing.assert_array_equal(c, img[20:116, 10:74])
    corners = framing.to_crop_coords(np.array([[10.0, 20.0], [74.0, 116.0]]), box)
    np.testing.assert_allclose(corners, [[-1, -1], [1, 1]])


def test_umeyama_and_euler():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(40, 3))
    r = M.euler_to_matrix(0.3, -0.2, 0.1)
    dst = 1.7 * src @ r.T + [0.1, -0.4, 2.0]
    s, r2, t = M.umeyama(src, dst)
    assert s == pytest.approx(1.7) and np.allclose(r2, r) and np.allclose(t, [0.1, -0.4, 2.0])
    assert np.allclose(M.matrix_to_euler(r), (0.3, -0.2, 0.1))


def test_fit_head_recovers_pose(basis):
    head = np.array([0.2, -0.15, 0.05, 0.1, -0.3, np.log(0.4)])
    pts = M.pose_points(basis.canonical, head)
    fit = M.fit_head(pts[None], np.ones(1, bool), basis.canonical)
    np.testing.assert_allclose(fit.head[0], head, atol=1e-5)
    np.testing.assert_allclose(fit.canon[0], basis.canonical, atol=1e-5)


def test_one_euro_removes_jitter_keeps_motion():
    rng = np.random.default_rng(4)
    T, fps = 200, 25.0
    t = np.arange(T) / fps
    still = 0.3 + 0.004 * rng.normal(size=T)
    sm = S.one_euro_zero_phase(still, fps, min_cutoff=1.0, beta=4.0)
    assert S.jitter(sm) < 0.3 * S.jitter(still)
    # a fast oscillation (4 Hz, like syllables) keeps its phase and most of its amplitude
    mouth = 0.05 * np.maximum(0, np.sin(2 * np.pi * 4 * t))
    sm = S.one_euro_zero_phase(mouth, fps, min_cutoff=S.MOUTH_MIN_CUTOFF, beta=S.MOUTH_BETA)
    assert np.corrcoef(sm, mouth)[0, 1] > 0.98
    lags = [np.dot(np.roll(sm, k), mouth) for k in range(-3, 4)]
    assert int(np.argmax(lags)) - 3 == 0
    # the causal filter lags; the zero-phase one does not
    causal = S.one_euro(mouth, fps, min_cutoff=1.0, beta=0.0)
    lags = [np.dot(np.roll(causal, -k), mouth) for k in range(0, 5)]
    assert int(np.argmax(lags)) > 0


def test_fill_gaps_and_runs():
    x = np.arange(10, dtype=float)[:, None]
    ok = np.ones(10, bool)
    ok[[3, 4]] = False
    ok[7:] = False
    xf, okf = S.fill_gaps(np.where(ok[:, None], x, np.nan), ok, max_gap=2)
    np.testing.assert_allclose(xf[3:5, 0], [3, 4])
    assert okf[:7].all() and not okf[7:].any()
    assert S.runs(okf) == [(0, 7)]
    sm, oks = S.smooth_track(np.where(ok[:, None], x, np.nan), ok, 25.0, max_gap=1)
    assert np.isnan(sm[3:5]).all() and not oks[3:5].any() and np.isfinite(sm[:3]).all()


def test_smooth_face_keeps_mouth(basis):
    rng = np.random.default_rng(5)
    T = 100
    canon = np.repeat(basis.canonical[None].astype(np.float64), T, 0)
    open_ = 0.08 * np.maximum(0, np.sin(2 * np.pi * 3.5 * np.arange(T) / 25))
    canon[:, 14, 1] += open_  # the lower inner lip goes down
    blink = np.zeros(T)
    blink[[40, 41, 42]] = [0.5, 1.0, 0.5]  # a 3-frame blink: the upper lid comes down
    lid = canon[0, 145, 1] - canon[0, 159, 1]
    canon[:, 159, 1] += 0.9 * lid * blink
    heads = np.tile([0.0, 0.1, 0.0, 0.0, -0.5, np.log(0.35)], (T, 1))
    raw = np.stack([M.pose_points(canon[t], heads[t]) for t in range(T)])
    raw += 0.002 * rng.normal(size=(T, 1, 3))  # rigid shake
    raw += 0.001 * rng.normal(size=raw.shape)  # per-point noise
    sm, ok = S.smooth_face(raw, np.ones(T, bool), 25.0, basis.canonical)
    assert ok.all()
    still = [6, 168, 10, 151]
    assert S.jitter(sm[:, still, :2]) < 0.5 * S.jitter(raw[:, still, :2])
    mouth_raw = raw[:, 14, 1] - raw[:, 13, 1]
    mouth_sm = sm[:, 14, 1] - sm[:, 13, 1]
    assert np.corrcoef(mouth_raw, mouth_sm)[0, 1] > 0.98
    lid_raw = raw[:, 145, 1] - raw[:, 159, 1]
    lid_sm = sm[:, 145, 1] - sm[:, 159, 1]
    depth_raw = np.median(lid_raw) - lid_raw[41]
    assert np.median(lid_sm) - lid_sm[41] > 0.8 * depth_raw  # the blink keeps its depth


def _source(basis) -> compose.SourceState:
    rng = np.random.default_rng(6)
    return compose.SourceState(
        canon_face=basis.canonical.copy(), head=np.array([0.1, 0.05, -0.02, 0.0, -0.45, np.log(0.33)]),
        body=rng.uniform(-0.8, 0.8, (8, 2)).astype(np.float32), body_vis=np.array([1, 1, 1, 1, 1, 1, 0, 0], np.float32),
        hands=rng.uniform(-0.5, 0.5, (2, 21, 2)).astype(np.float32), hands_ok=np.array([True, False]))


def test_driving_keypoints_zero_motion_is_source(basis):
    src = _source(basis)
    zero = dict(head=np.zeros(6), exp=np.zeros(basis.n_exp), eye=np.zeros(4), body=np.zeros((8, 2)))
    kp, vis = compose.driving_keypoints(src, zero, basis=basis)
    face = M.pose_points(src.canon_face, src.head)
    pose = np.full((33, 4), np.nan)
    pose[L.KP_BODY_IDX, :2] = src.body
    pose[L.KP_BODY_IDX, 3] = src.body_vis
    kp0, vis0 = L.renderer_keypoints(face, pose, np.concatenate([src.hands, np.zeros((2, 21, 1))], -1),
                                     hands_ok=src.hands_ok)
    np.testing.assert_allclose(kp, kp0, atol=1e-5)
    np.testing.assert_array_equal(vis, vis0)
    assert kp.shape == (L.N_KP, 2)


def test_driving_keypoints_apply_motion(basis):
    src = _source(basis)
    base, _ = compose.driving_keypoints(src, {}, basis=basis)
    # head: a translation moves every face point by it
    kp, _ = compose.driving_keypoints(src, dict(head=np.array([0, 0, 0, 0.1, -0.05, 0])), basis=basis)
    np.testing.assert_allclose(kp[L.FACE_SLICE] - base[L.FACE_SLICE], np.tile([0.1, -0.05], (L.N_FACE_KP, 1)),
                               atol=1e-5)
    # expression: the first component changes the face only
    e = np.zeros(basis.n_exp)
    e[0] = 3 * basis.std[0]
    kp, _ = compose.driving_keypoints(src, dict(exp=e), basis=basis)
    assert np.abs(kp[L.FACE_SLICE] - base[L.FACE_SLICE]).max() > 1e-3
    np.testing.assert_allclose(kp[L.BODY_SLICE], base[L.BODY_SLICE])
    # gaze: only the iris centres move
    kp, _ = compose.driving_keypoints(src, dict(eye=np.array([1, 1, 0.1, 0.0])), basis=basis)
    moved = np.flatnonzero(np.abs(kp - base).max(1) > 1e-6)
    assert sorted(np.array(L.KP_FACE_IDX)[moved].tolist()) == [468, 473]
    # hands: placed at the driven wrists
    rel = np.zeros((2, 21, 2))
    rel[:, 1:] = 0.05
    kp, vis = compose.driving_keypoints(src, dict(body=np.full((8, 2), 0.1), hands=rel,
                                                  hands_ok=np.array([1, 1])), basis=basis)
    np.testing.assert_allclose(kp[L.LEFT_HAND_SLICE][0], src.body[4] + 0.1, atol=1e-6)
    np.testing.assert_allclose(kp[L.RIGHT_HAND_SLICE][0], src.body[5] + 0.1, atol=1e-6)
    assert vis[L.LEFT_HAND_SLICE].all() and vis[L.RIGHT_HAND_SLICE].all()
    # an avatar whose wrists are outside its photo gets no hands
    src.body_vis[[4, 5]] = 0
    _, vis = compose.driving_keypoints(src, dict(hands=rel, hands_ok=np.array([1, 1])), basis=basis)
    assert not vis[L.LEFT_HAND_SLICE].any() and not vis[L.RIGHT_HAND_SLICE].any()
    with pytest.raises(ValueError, match="coefficients"):
        compose.driving_keypoints(src, dict(exp=np.zeros(3)), basis=basis)


def test_plausible_hands_needs_an_arm():
    T = 3
    face = np.zeros((T, 478, 2))
    face[:, 10] = [0, -0.6]
    face[:, 152] = [0, -0.3]  # face height 0.45 isotropic units
    pose = np.zeros((T, 33, 4))
    pose[:, :, 3] = 0.9
    pose[:, 15, :2] = [0.5, 0.2]   # left wrist
    pose[:, 16, :2] = [-0.5, 0.2]  # right wrist
    hands = np.zeros((T, 2, 21, 2))
    hands[:, 0] = [0.52, 0.21]
    hands[:, 1] = [-0.5, 0.2]
    ok = np.ones((T, 2), bool)
    pose[1, 14, 3] = 0.1       # frame 1: the right elbow is not seen -> the right "hand" is dropped
    hands[2, 0] = [0.0, -0.45]  # frame 2: the left "hand" sits on the face, far from its wrist
    out = plausible_hands(face, np.ones(T, bool), pose, hands, ok)
    assert out.tolist() == [[True, True], [True, False], [False, True]]
