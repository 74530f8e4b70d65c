"""The geometry renderer: mesh topology, the photo's expression neutralized, the animated region,
paste-back, and frames that are the user's photo (aspect ratio kept, no padding)."""
import itertools
import os

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import default_avatar_image
from chatanyone.spec.head import load_basis
from chatanyone.render import mesh as M
from chatanyone.render.geometry import (EXPRESSION_BANDS, NEUTRAL_GAP, GeomRenderer, close_lips, expression_features,
                                        expression_offsets, frame_size, neutral_face,
                                        person_layers)
from chatanyone.render.region import choose_region

PORTRAITS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "portraits")


def _portrait(name):
    p = os.path.join(PORTRAITS, name)
    if not os.path.exists(p):
        pytest.skip(f"../shared/data/portraits/{name} not available")
    return p


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


def _inner_gap(face):
    """Mean inner-lip gap over mouth width of a ``[478, >=2]`` face."""
    up, lo = M.LIP_UPPER_INNER[1:-1], M.LIP_LOWER_INNER[1:-1]
    return float(np.mean(face[lo, 1] - face[up, 1]) / np.linalg.norm(face[78, :2] - face[308, :2]))


# --- topology -------------------------------------------------------------------------------

def test_face_triangles_are_the_tesselation_faces():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    tri = M.face_triangles()
    np.testing.assert_array_equal(tri, M.triangles_from_tesselation(FACEMESH_TESSELATION))
    assert tri.shape == (852, 3) and tri.min() >= 0 and tri.max() < 468
    use = {}
    for t in tri:
        for e in itertools.combinations(sorted(t), 2):
            use[e] = use.get(e, 0) + 1
    assert max(use.values()) == 2
    # the open edges are exactly the face oval, the two eye contours and the inner lips
    holes = set()
    for ring in (M.FACE_OVAL + M.FACE_OVAL[:1], M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER, M.LEFT_EYE_UPPER,
                 M.LEFT_EYE_LOWER, M.LIP_UPPER_INNER, M.LIP_LOWER_INNER):
        holes.update(tuple(sorted(e)) for e in zip(ring[:-1], ring[1:]))
    assert {e for e, n in use.items() if n == 1} == holes


def test_eye_fill_closes_the_eye_holes():
    tri = np.concatenate([M.face_triangles(), M.eye_fill_triangles()])
    use = {}
    for t in tri:
        for e in itertools.combinations(sorted(t), 2):
            use[e] = use.get(e, 0) + 1
    eyes = set()
    for ring in (M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER, M.LEFT_EYE_UPPER, M.LEFT_EYE_LOWER):
        eyes.update(tuple(sorted(e)) for e in zip(ring[:-1], ring[1:]))
    assert all(use[e] == 2 for e in eyes)
    assert max(use.values()) == 2


# --- absolute expression --------------------------------------------------------------------

def test_neutral_face_sets_the_lips_to_the_neutral_gap():
    b = load_basis()
    comp = b.components.reshape(b.n_exp, 468, 3)
    k = int(np.argmax(np.abs(comp[:, 14, 1] - comp[:, 13, 1])))      # the component that opens most
    sign = np.sign(comp[k, 14, 1] - comp[k, 13, 1])
    base = b.canonical.astype(np.float64)
    for amount in (-1.0, 0.0, 2.0, 5.0):
        face = base.copy()
        face[:468] += sign * amount * b.std[k] * comp[k]
        n, e = neutral_face(face, b)
        assert abs(_inner_gap(n) - NEUTRAL_GAP) < 0.01, amount
        if _inner_gap(face) > 0.3:
            assert sign * e[k] > 1.0 * b.std[k]     # the photo's expression: its mouth was open
        # the eyes and the forehead stay where they were
        for i in (33, 133, 263, 362, 10, 159, 386):
            assert np.abs(n[i] - face[i]).max() < 0.02
    # a photo already at the neutral gap is left alone
    n2, e2 = neutral_face(n, b)
    np.testing.assert_array_equal(n2, n)
    assert not e2.any()


def _expression(b, targets: dict) -> np.ndarray:
    """The smallest expression (in coefficient spreads) that moves the named features by
    ``targets`` sigmas and holds the others."""
    comp = b.components.reshape(b.n_exp, 468, 3).astype(np.float64)
    feats = expression_features()
    j = np.array([np.einsum("eij,ij->e", comp, w) for _, _, w in feats])
    j = j / np.sqrt(((j * b.std) ** 2).sum(1))[:, None]
    t = np.array([targets.get(n, 0.0) for n, _, _ in feats])
    s2 = np.diag(b.std.astype(np.float64) ** 2)
    return s2 @ j.T @ np.linalg.solve(j @ s2 @ j.T, t)


def test_neutral_face_lowers_raised_brows_and_a_smile_by_the_basis_only():
    b = load_basis()
    comp = b.components.reshape(b.n_exp, 468, 3).astype(np.float64)
    base = b.canonical.astype(np.float64)
    e = _expression(b, {"brow_right": 10, "brow_left": 10, "lift_right": 5, "lift_left": 5})
    face = base.copy()
    face[:468] += (e @ comp.reshape(b.n_exp, -1)).reshape(468, 3)
    before = expression_offsets(face, b)
    assert before["brow_right"] == pytest.approx(10, abs=0.01) and before["lift_left"] == pytest.approx(5, abs=0.01)
    n, e_photo = neutral_face(face, b)
    after = expression_offsets(n, b)
    for name, kind, _ in expression_features():
        low, high, cap = EXPRESSION_BANDS[kind]
        want = np.clip(np.clip(before[name], low, high), before[name] - cap, before[name] + cap)
        assert after[name] == pytest.approx(want, abs=0.3), name     # to the band's edge, capped
    assert after["brow_right"] < before["brow_right"] - 5 and after["lift_right"] < 2.0
    # the change above the mouth is an expression-basis change (the face's own shape is kept)
    upper = [i for i in range(468) if base[i, 1] < base[2, 1]]
    d = (n[:468] - face[:468]).astype(np.float64)
    coef = comp.reshape(b.n_exp, -1) @ d.reshape(-1)
    resid = d - (coef @ comp.reshape(b.n_exp, -1)).reshape(468, 3)
    assert np.abs(resid[upper]).max() < 1e-4 < np.abs(d[upper]).max()
    assert (e_photo @ coef) < 0        # the photo's expression is minus the change
    # features already inside their bands are held: only the lips' gap is imposed then
    calm = base.copy()
    calm[:468] += (_expression(b, {"brow_right": 1.0, "lift_left": -1.0}) @ comp.reshape(b.n_exp, -1)).reshape(468, 3)
    n1, _ = neutral_face(calm, b)
    n0, _ = neutral_face(calm, b, expression=False)      # the lips only, as before
    off, off1, off0 = expression_offsets(calm, b), expression_offsets(n1, b), expression_offsets(n0, b)
    assert abs(_inner_gap(n1) - NEUTRAL_GAP) < 0.01
    assert all(abs(off1[k] - off[k]) < 0.25 for k in off)          # (closing the lips moved the
    assert abs(off0["lift_right"] - off["lift_right"]) > 0.5        # corners by 0.77 without them)


@pytest.mark.time_limit(120)
def test_a_raised_brow_smiling_photo_is_driven_from_neutral(avatar):
    """Face mesh on the output: a photo with raised brows and a smile (the default avatar rendered
    with that expression), driven by neutral motion, shows brows and lip corners near the neutral
    photo's; the neutral photo driven the same way keeps its own."""
    b = load_basis()
    e = _expression(b, {"brow_right": 20, "brow_left": 20, "lift_right": 8, "lift_left": 8})
    r0 = GeomRenderer(avatar, 512)
    expressive = ca.Avatar.prepare(r0.render({"exp": e.astype(np.float32)}))
    neutral_photo = expression_offsets(avatar.source.canon_face, b)
    photo = expression_offsets(expressive.source.canon_face, b)
    out = expression_offsets(ca.Avatar.prepare(GeomRenderer(expressive, 512).render({})).source.canon_face, b)
    out0 = expression_offsets(ca.Avatar.prepare(r0.render({})).source.canon_face, b)
    brow = lambda o: 0.5 * (o["brow_right"] + o["brow_left"])            # noqa: E731
    lift = lambda o: 0.5 * (o["lift_right"] + o["lift_left"])            # noqa: E731
    assert brow(photo) > brow(neutral_photo) + 5 and lift(photo) > lift(neutral_photo) + 2
    # most of the raise is undone: the driven brows and corners are near the neutral photo's
    assert brow(out) < brow(photo) - 2.5 and lift(out) < lift(photo) - 1.0
    assert abs(brow(out) - brow(neutral_photo)) < 0.6 * abs(brow(photo) - brow(neutral_photo))
    # the neutral photo keeps its brows and corners (face-mesh noise is about one sigma)
    assert abs(brow(out0) - brow(neutral_photo)) < 1.5 and abs(lift(out0) - lift(neutral_photo)) < 1.5


def test_pressed_lips_never_cross():
    face = load_basis().canonical.astype(np.float64).copy()
    up, lo = M.LIP_UPPER_INNER[1:-1], M.LIP_LOWER_INNER[1:-1]
    face[lo, 1] = face[up, 1] - 0.01
    close_lips(face)
    assert np.all(face[lo, 1] >= face[up, 1])


# --- region ---------------------------------------------------------------------------------

def _fake_face(cx, cy, fh):
    f = load_basis().canonical[:, :2].astype(np.float64)
    f = (f - f[[10, 152]].mean(0)) / np.linalg.norm(f[152] - f[10]) * fh
    return f + [cx, cy]


def test_region_kinds_and_bounds():
    face = _fake_face(300, 250, 200)
    r = choose_region(face, None, None, None, (600, 800))
    assert r.kind == "head" and 0 <= r.x0 < r.x1 <= 600 and 0 <= r.y0 < r.y1 <= 800
    pose = np.full((33, 4), np.nan)
    pose[11] = [420, 520, 0, 0.99]
    pose[12] = [180, 520, 0, 0.99]
    r = choose_region(face, pose, None, None, (600, 800))
    assert r.kind == "head_shoulders"
    assert 200 / r.height >= 0.3                      # the face is at least 30% of the region
    assert r.x0 <= 180 and r.x1 >= 420 and r.y1 <= 800
    pose[[13, 15]] = [[450, 700, 0, 0.9], [350, 640, 0, 0.9]]
    r = choose_region(face, pose, None, None, (600, 800))
    assert r.kind == "upper_body" and r.y1 > 640
    # shoulders below the photo's edge do not count; the region never leaves the photo
    r = choose_region(face, pose, None, None, (600, 500))
    assert r.kind == "head" and r.y1 <= 500
    with pytest.raises(ValueError, match="face_px"):
        choose_region(np.zeros((10, 2)), None, None, None, (600, 800))


# --- paste-back -----------------------------------------------------------------------------

def _motions():
    b = load_basis()
    rng = np.random.default_rng(0)
    out = []
    for i in range(4):
        out.append({"head": np.array([0.12, -0.06, 0.05, 0.01, -0.01, 0.02]) * (i - 1.5),
                    "exp": (rng.standard_normal(b.n_exp) * b.std).astype(np.float32),
                    "body": rng.standard_normal((8, 2)).astype(np.float32) * 0.02})
    return out


def test_paste_back_leaves_the_rest_of_the_photo_bit_identical(avatar):
    import cv2
    r = GeomRenderer(avatar, 384)
    assert r.paints_mouth            # closed lips in the photo: the opening is painted
    W, H = r.size
    ph, pw = avatar.photo.shape[:2]
    assert (W, H) == frame_size((pw, ph), 384) and max(W, H) == 384
    assert abs(W / H - pw / ph) < 2 / H
    resized = cv2.resize(avatar.photo, (W, H), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = r.rect
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any()
    for m in _motions():
        img = r.render(m)
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img[outside], resized[outside])
        assert np.abs(img[y0:y1, x0:x1].astype(int) - resized[y0:y1, x0:x1]).mean() > 0.2  # it moved
    # no motion: the frame is the photo (within resampling; the lips at the neutral gap)
    still = r.render({})
    assert np.abs(still.astype(int) - resized).mean() < 1.5


def test_person_layers_give_the_region_back_unmoved(avatar):
    """The person layer over its plate, unmoved, is the region itself; the plate differs from the
    region only under the (grown) person mask."""
    r = GeomRenderer(avatar, 384)
    x0, y0, x1, y1 = r.rect
    reg = r.background[y0:y1, x0:x1].astype(np.float32)
    alpha, plate = person_layers(r.background, r.rect)
    assert alpha.shape == reg.shape[:2] and plate.shape == reg.shape
    assert 0.05 < float((alpha == 1).mean()) < 0.95        # a person, and background beside it
    np.testing.assert_allclose(plate + alpha[..., None] * (reg - plate), reg, atol=1e-3)
    np.testing.assert_array_equal(plate[alpha < 1], reg[alpha < 1])


def test_background_stays_still_behind_a_moving_head(avatar):
    """A head turn moves the person, not the background: far from the person the frame is the
    photo bit for bit (the single-sheet warp stretched it)."""
    import cv2
    r = GeomRenderer(avatar, 384)
    x0, y0, x1, y1 = r.rect
    alpha, _ = person_layers(r.background, r.rect)
    far = cv2.distanceTransform((alpha == 0).astype(np.uint8), cv2.DIST_L2, 3) > 0.12 * min(alpha.shape)
    assert far.sum() > 500
    turn = {"head": np.array([0.25, 0.1, 0.08, 0.04, 0.02, 0.04])}
    bg = r.background[y0:y1, x0:x1]
    np.testing.assert_array_equal(r.render(turn)[y0:y1, x0:x1][far], bg[far])
    sheet = GeomRenderer(avatar, 384, layered=False).render(turn)[y0:y1, x0:x1]
    assert np.abs(sheet[far].astype(int) - bg[far]).mean() > 0.5


def test_chest_follows_the_shoulders(avatar):
    """The chest vertices move by the shoulders' mean offset, clamped like the shoulders."""
    r = GeomRenderer(avatar, 384)
    n = len(r._torso_src)
    assert n > 0                                     # a head-and-shoulders photo
    part = slice(-len(r._border) - n, -len(r._border))
    rest, _ = r.driving_vertices({})
    body = np.zeros((8, 2), np.float32)
    body[0] = (0.01, 0.0)
    body[1] = (0.03, -0.02)
    moved, _ = r.driving_vertices({"body": body})
    shift = (moved[part] - rest[part]).astype(np.float64) * r._px            # region pixels
    want = body[:2].mean(0) * r._ax * r._px
    np.testing.assert_allclose(shift, np.broadcast_to(want, shift.shape), atol=1e-3)
    body[:2] = (5.0, 0.0)                            # far beyond the shoulders' reach
    far, _ = r.driving_vertices({"body": body})
    np.testing.assert_allclose((far[part] - rest[part])[:, 0] * r._px[0], r._torso_lim, rtol=1e-4)


def test_region_border_is_seamless(avatar):
    """Along the region's border the frame continues the photo: no step at the seam."""
    r = GeomRenderer(avatar, 384)
    x0, y0, x1, y1 = r.rect
    bg = r.background.astype(int)
    for m in _motions():
        img = r.render(m).astype(int)
        rows = [y for y in (y0, y1 - 1) if 0 < y < img.shape[0] - 1]
        cols = [x for x in (x0, x1 - 1) if 0 < x < img.shape[1] - 1]
        for y in rows:
            assert np.abs(img[y, x0:x1] - bg[y, x0:x1]).max() <= 2
        for x in cols:
            assert np.abs(img[y0:y1, x] - bg[y0:y1, x]).max() <= 2


# --- framing on real photos -----------------------------------------------------------------

@pytest.mark.parametrize("name, kind", [
    ("sadtalker_happy.png", "head"),
    ("liveportrait_d8_face.jpg", "head_shoulders"),
    ("musetalk_video1_waving.png", "upper_body"),
    (None, "head_shoulders"),                     # the built-in avatar
])
def test_frames_are_the_photo_with_its_aspect_and_no_padding(name, kind):
    import cv2
    photo = default_avatar_image() if name is None else _portrait(name)
    a = ca.Avatar.prepare(photo)
    assert a.region_kind == kind
    ph, pw = a.photo.shape[:2]
    x0, y0, x1, y1 = a.region
    assert 0 <= x0 < x1 <= pw and 0 <= y0 < y1 <= ph          # the region lies inside the photo
    r = GeomRenderer(a, 512)
    W, H = r.size
    assert max(W, H) == 512 and abs(W / H - pw / ph) < 2 / min(W, H)
    img = r.render(_motions()[0])
    assert img.shape == (H, W, 3)
    # every pixel is the photo's (outside the region exactly; inside, moved photo pixels): the
    # frame's border rows and columns match the resized photo, no padding colour anywhere
    resized = cv2.resize(a.photo, (W, H), interpolation=cv2.INTER_AREA if W < pw else cv2.INTER_LINEAR)
    for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
        assert np.abs(img[edge].astype(int) - resized[edge]).mean() < 3
    if kind == "head_shoulders":
        from chatanyone.vision.framing import Box, from_crop_coords
        f = from_crop_coords(a.face[:, :2], Box.from_array(a.box))
        assert np.linalg.norm(f[152] - f[10]) >= 0.3 * (y1 - y0)
        assert np.linalg.norm(f[61] - f[291]) * W / pw >= 40   # mouth width at the fast preset


def test_avatar_round_trip_keeps_photo_and_region(avatar, tmp_path):
    p = tmp_path / "a.npz"
    avatar.save(p)
    b = ca.Avatar.load(p)
    np.testing.assert_array_equal(b.photo, avatar.photo)
    np.testing.assert_array_equal(b.region, avatar.region)
    assert b.region_kind == avatar.region_kind
    np.testing.assert_array_equal(GeomRenderer(b, 256).render(_motions()[1]),
                                  GeomRenderer(avatar, 256).render(_motions()[1]))
    # a file from the previous format (no photo) is refused with a clear message
    z = dict(np.load(p))
    z["format_version"] = np.int32(1)
    del z["photo"]
    np.savez(tmp_path / "old.npz", **z)
    with pytest.raises(ValueError, match="prepare it again"):
        ca.Avatar.load(tmp_path / "old.npz")


def test_output_size_is_validated():
    with pytest.raises(ValueError, match="output_size"):
        ca.SessionConfig(output_size=10)
    with pytest.raises(TypeError, match="output_size"):
        ca.SessionConfig(output_size=512.0)
    assert ca.SessionConfig().long_side == 512
    assert ca.SessionConfig(preset="quality").long_side == 1024
    assert ca.SessionConfig(output_size=300).long_side == 300


@pytest.mark.time_limit(180)
def test_arms_and_hands_follow_the_body_motion_within_bounds():
    """An upper-body photo with a hand: the wrist's body offset moves the hand's pixels, by at most
    the clamp, and the rest of the photo outside the region stays put."""
    a = ca.Avatar.prepare(_portrait("latentsync_demo2_frame0.png"))
    assert a.region_kind == "upper_body" and a.hands_ok.any()
    r = GeomRenderer(a, 384)
    limbs = r._limbs
    assert any(p[0] in ("hand", "hand_mesh") for p in limbs._parts)
    side = next(p[1] for p in limbs._parts if p[0] in ("hand", "hand_mesh"))
    still = r.render({})
    body = np.zeros((8, 2), np.float32)
    body[4 + side] = [0.0, -0.2]            # the wrist lifted by 0.2 crop units: far beyond the clamp
    moved = r.render({"body": body})
    src = (limbs.src + 1) * r._px
    dst = (limbs.driving({"body": body}) + 1) * r._px
    start = next(p[4] for p in limbs._parts if p[0] == "joint" and p[1] == side and p[2] == 2)
    wrist = int(limbs._keep[:start].sum())
    lift = src[wrist, 1] - dst[wrist, 1]
    assert abs(lift - limbs.MAX_MOVE[2] * limbs._fh) < 0.5       # the wrist moved up, by the clamp
    assert abs(dst[wrist, 0] - src[wrist, 0]) < 0.5
    x0, y0, x1, y1 = r.rect
    diff = np.abs(moved.astype(int) - still).sum(2)
    assert diff[y0:y1, x0:x1].max() > 30
    outside = np.ones(diff.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert not diff[outside].any()
