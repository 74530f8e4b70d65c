"""Image registration (render/register.py) and the body's registered motion in reenactment: a known
affine map of an image is recovered, bad inputs are refused clearly, the renderer moves the body by a
frame's map and renders frames without one exactly as before (a Session's motion has none)."""
import dataclasses
import os

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import default_avatar_image
from chatanyone.render import register as R
from chatanyone.render.geometry import GeomRenderer

VIDEOS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "videos")


def _texture(h=160, w=200, seed=0):
    """A smooth random texture (blobs of several sizes), grey uint8."""
    import cv2
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for k in (4, 8, 16):
        n = rng.standard_normal((h // k + 2, w // k + 2)).astype(np.float32)
        img += cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC) * k
    img = (img - img.min()) / (img.max() - img.min()) * 220 + 15
    return img.astype(np.uint8)


def _warp(img, a):
    """``img`` moved by the map ``a`` (a point x of img lands at a @ [x, 1])."""
    import cv2
    return cv2.warpAffine(img, a.astype(np.float64), (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _similarity(angle_deg, scale, tx, ty, centre):
    c, s = np.cos(np.radians(angle_deg)) * scale, np.sin(np.radians(angle_deg)) * scale
    lin = np.array([[c, -s], [s, c]])
    return np.concatenate([lin, (np.asarray(centre) - lin @ centre + [tx, ty])[:, None]], 1)


@pytest.mark.parametrize("motion,truth", [
    ("translation", (0.0, 1.0, 3.4, -2.2)),
    ("euclidean", (4.0, 1.0, -2.0, 1.5)),
    ("similarity", (3.0, 1.04, 2.5, 2.0)),
    ("affine", (-2.0, 0.97, -1.5, -3.0)),
])
def test_register_recovers_a_known_map(motion, truth):
    img = _texture()
    h, w = img.shape
    a = _similarity(*truth, centre=np.array([w / 2, h / 2]))
    moved = _warp(img, a)
    mask = np.zeros((h, w), bool)
    mask[30:130, 40:160] = True
    got = R.register(img, moved, mask, motion=motion)
    assert got is not None
    # where the mask's corners land: within 0.3 px
    corners = np.array([[40, 30], [160, 30], [40, 130], [160, 130]], np.float64)
    np.testing.assert_allclose(R.apply(got, corners), R.apply(a, corners), atol=0.3)
    # and a different image is not mistaken for it
    assert np.abs(R.apply(got, corners) - corners).max() > 1.0


def test_register_bad_inputs_are_clear_errors():
    img = _texture()
    mask = np.ones(img.shape, bool)
    with pytest.raises(ValueError, match="same size"):
        R.register(img, img[:, :-4], mask)
    with pytest.raises(ValueError, match="pixels"):
        R.register(img, img, np.zeros(img.shape, bool))
    with pytest.raises(ValueError, match="mask must be"):
        R.register(img, img, mask[:-1])
    with pytest.raises(ValueError, match="motion must be"):
        R.register(img, img, mask, motion="homography")
    with pytest.raises(ValueError, match="image"):
        R.register(np.zeros((4, 4, 4, 4)), img, mask)
    with pytest.raises(ValueError, match="init"):
        R.register(img, img, mask, init=np.eye(3))


def test_register_a_flat_patch_does_not_converge():
    flat = np.full((64, 64), 120, np.uint8)
    assert R.register(flat, flat, np.ones((64, 64), bool)) is None


def test_smooth_fills_failed_frames_and_keeps_constants():
    maps = np.repeat(R.identity()[None], 9, 0)
    maps[:, 0, 2] = 2.0
    ok = np.ones(9, bool)
    ok[[0, 4]] = False
    maps[4, 0, 2] = 99.0          # a failed frame's value is not used
    out = R.smooth(maps, ok, 1.5)
    np.testing.assert_allclose(out[:, 0, 2], 2.0)
    np.testing.assert_allclose(R.smooth(maps, np.zeros(9, bool), 1.0), np.repeat(R.identity()[None], 9, 0))
    with pytest.raises(ValueError):
        R.smooth(maps[:, :1], ok, 1.0)


def test_compose_crop_maps_a_pixel_shift_to_crop_units():
    a = R.identity()
    a[:, 2] = (10.0, -6.0)                                       # pixels
    c = R.compose_crop(a, (100.0, 50.0, 200.0, 300.0))
    np.testing.assert_allclose(c[:, :2], np.eye(2))
    np.testing.assert_allclose(c[:, 2], (10 / 200 * 2, -6 / 300 * 2))


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


def test_frames_without_a_map_render_as_before(avatar):
    """A motion frame without torso/hair maps (a Session's) gives the same pixels as the renderer
    with registration switched off; a map of the identity leaves the chest where the photo has it."""
    rng = np.random.default_rng(1)
    frame = {"head": np.array([0.05, -0.03, 0.02, 0.01, 0.0, 0.01]), "exp": 0.5 * rng.standard_normal(
        GeomRenderer(avatar, 256, register=False).basis.components.shape[0]).astype(np.float32),
        "body": np.full((8, 2), 0.01, np.float32)}
    a = GeomRenderer(avatar, 256)
    b = GeomRenderer(avatar, 256, register=False)
    np.testing.assert_array_equal(a.render(frame), b.render(frame))
    assert a._reg is None                      # the registered mesh was never built
    # with maps: register=False ignores them
    mapped = dict(frame, torso=R.identity().astype(np.float32), hair=R.identity().astype(np.float32))
    np.testing.assert_array_equal(b.render(mapped), b.render(frame))


def test_a_torso_map_moves_the_body_below_the_chin(avatar):
    """A torso map of a downward shift moves the chest and the body grid by it (region pixels),
    leaves the face and the top border where the motion puts them; the border keeps its sides."""
    from chatanyone.render import mesh as M
    r = GeomRenderer(avatar, 256)
    still, _ = r.driving_vertices({})
    shift = np.array([0.0, 0.02])                              # crop units
    m = R.identity()
    m[:, 2] = shift
    moved, depth = r.driving_vertices({"torso": m})
    reg = r._reg
    assert reg is not None and len(moved) == len(reg["src"]) == len(depth)
    np.testing.assert_array_equal(moved[:M.N_FACE], still[:M.N_FACE])
    n_border = len(r._border)
    b0 = len(r.src_vertices) - n_border - M.N_FACE               # the border's first coarse vertex
    full = reg["w"] == 1.0
    full[b0: b0 + n_border] = False                            # the border: held (below)
    assert full.sum() >= 3                                     # the chest vertices at least
    d = (moved[M.N_FACE:] - reg["src"][M.N_FACE:]).astype(np.float64)
    np.testing.assert_allclose(d[full], np.broadcast_to(shift * r._ax, d[full].shape), atol=1e-5)
    top = reg["src"][M.N_FACE:, 1] < -0.99                     # the top border stays pinned
    assert top.any()
    np.testing.assert_allclose(d[top], 0.0, atol=1e-7)
    bs = reg["src"][M.N_FACE + b0: M.N_FACE + b0 + n_border].astype(np.float64)
    on_side = np.abs(bs) == 1.0                                # a border point never moves inward
    assert np.all((d[b0: b0 + n_border] * np.sign(bs))[on_side] >= 0.0)
    img = r.render({"torso": m})
    assert img.shape[:2] == (r.size[1], r.size[0])
    with pytest.raises(ValueError, match="map"):
        r.driving_vertices({"torso": np.eye(3)})


def test_a_hair_map_moves_the_rings_and_the_upper_border(avatar):
    """A hair map of a sideways shift moves the inner ring round the face by it (from where the
    photo has it), the region's top border with it (along its side; the corners stay put); the
    face mesh stays the motion's."""
    from chatanyone.render import mesh as M
    r = GeomRenderer(avatar, 256)
    still, _ = r.driving_vertices({})
    m = R.identity()
    m[0, 2] = 0.03                                             # crop units
    moved, _ = r.driving_vertices({"hair": m})
    assert len(moved) == len(still)                            # no body grid without a torso map
    np.testing.assert_array_equal(moved[:M.N_FACE], still[:M.N_FACE])
    n1 = int(r._ring_keep[0].sum())
    ring1 = slice(M.N_FACE, M.N_FACE + n1)
    src1 = r._rings_src[0][r._ring_keep[0]]
    np.testing.assert_allclose(moved[ring1] - src1, np.broadcast_to([0.03 * r._ax[0], 0.0], src1.shape), atol=1e-5)
    # a head-and-shoulders region has no arms: the outer ring rides fully with the hair's map too
    assert avatar.region_kind == "head_shoulders" and r._outer_follow == 1.0
    n2 = int(r._ring_keep[1].sum())
    src2 = r._rings_src[1][r._ring_keep[1]]
    np.testing.assert_allclose(moved[M.N_FACE + n1: M.N_FACE + n1 + n2] - src2,
                               np.broadcast_to([0.03 * r._ax[0], 0.0], src2.shape), atol=1e-5)
    r._outer_follow = None                  # as in an upper-body region: the outer ring's own weights
    part, _ = r.driving_vertices({"hair": m})
    shift = (part[M.N_FACE + n1: M.N_FACE + n1 + n2] - src2)[:, 0] / (0.03 * r._ax[0])
    np.testing.assert_allclose(shift, r._ring_w[1][r._ring_keep[1]], atol=1e-5)
    assert shift.max() < 0.7
    top = np.flatnonzero(r.src_vertices[:, 1] < -0.99)
    assert len(top) and np.all(top >= len(r.src_vertices) - len(r._border))
    inner = top[np.abs(r.src_vertices[top, 0]) < 0.99]         # the corners stay put
    np.testing.assert_allclose(moved[inner, 0] - still[inner, 0], 0.03 * r._ax[0], atol=1e-5)
    np.testing.assert_array_equal(moved[top, 1], still[top, 1])


def test_the_person_outline_moves_whole_with_the_hair_and_torso_maps(avatar):
    """Frames with registered maps (a region without arms): vertices along the person's outline,
    on the background just outside the person layer's alpha, move by the hair's map above the chin
    and the torso's below it (cross-faded over the ramp round the chin), so the stretch towards the
    pinned border falls on the background; an upper-body region (arms) has none."""
    import chatanyone.render.geometry as G
    from chatanyone.render import mesh as M
    assert avatar.region_kind in G.SIL_KINDS
    r = GeomRenderer(avatar, 256)
    hair, torso = R.identity(), R.identity()
    hair[:, 2] = (0.03, -0.02)                                 # crop units
    torso[:, 2] = (-0.01, 0.015)
    moved, depth = r.driving_vertices({"hair": hair, "torso": torso})
    reg = r._reg
    n = reg["n_sil"]
    assert n >= 8 and len(moved) == len(reg["src"]) == len(depth)
    src = reg["src"][-n:].astype(np.float64)
    px = (src + 1) * r._px - 0.5                               # pixel indices of the region
    ij = np.round(px).astype(int)
    assert np.all(r._src[0, 3][ij[:, 1], ij[:, 0]] == 0.0)     # on the background, beyond the layer
    y = (src[:, 1] + 1) * r._px[1]
    above, below = y < r._chin_y - G.BODY_RAMP * r._fh_px, y > r._chin_y + G.BODY_RAMP * r._fh_px
    assert above.sum() >= 3 and below.sum() >= 2
    d = moved[-n:].astype(np.float64) - src
    np.testing.assert_allclose(d[above], np.broadcast_to(hair[:, 2] * r._ax, d[above].shape), atol=1e-5)
    np.testing.assert_allclose(d[below], np.broadcast_to(torso[:, 2] * r._ax, d[below].shape), atol=1e-5)
    assert np.all(np.isfinite(r.render({"hair": hair, "torso": torso})))
    r._region_kind, r._reg = "upper_body", None                # arms move by their own: no outline vertices
    r.driving_vertices({"hair": hair, "torso": torso})
    assert r._reg["n_sil"] == 0


def test_a_face_map_moves_the_face_part_way_to_where_it_was_registered(avatar):
    """A face map of a shift moves the driving face mesh (and the rings posed with it) by
    FACE_REG of that shift from where the head pose puts it; a turn turns it by FACE_REG of the
    turn; a map of the identity on the photo's own pose leaves it where it is."""
    import chatanyone.render.geometry as G
    from chatanyone.render import mesh as M
    assert 0 < G.FACE_REG <= 1
    r = GeomRenderer(avatar, 256)
    still, _ = r.driving_vertices({})
    same, _ = r.driving_vertices({"face": R.identity()})
    np.testing.assert_allclose(same, still, atol=1e-4)         # (the neutral face's rigid points: the photo's)
    m = R.identity()
    m[:, 2] = (0.02, -0.01)                                    # crop units
    moved, _ = r.driving_vertices({"face": m})
    want = G.FACE_REG * np.array([0.02, -0.01]) * r._ax        # region-normalized
    np.testing.assert_allclose(moved[:M.N_FACE] - still[:M.N_FACE], np.broadcast_to(want, (M.N_FACE, 2)), atol=1e-5)
    # a turn about the face's middle (region px) turns the face by FACE_REG of it
    c = (r._face_src[M.FACE_OVAL] + 1) * r._px
    cen = c.mean(0)
    th = 0.1
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    px = np.concatenate([rot, (cen - rot @ cen)[:, None]], 1)  # region px -> region px
    # expressed in crop units: crop -> region px is x * ax * px_ + (bx + 1) * px_
    k = r._ax * r._px
    o = (r._bx + 1) * r._px
    lin = px[:, :2] * k[None, :] / k[:, None]
    t = (px[:, :2] @ o + px[:, 2] - o) / k
    turned, _ = r.driving_vertices({"face": np.concatenate([lin, t[:, None]], 1)})
    f0 = (still[:M.N_FACE] + 1) * r._px
    f1 = (turned[:M.N_FACE] + 1) * r._px
    a0, a1 = f0[263] - f0[33], f1[263] - f1[33]               # the eye corners' line
    got = np.arctan2(a1[1], a1[0]) - np.arctan2(a0[1], a0[0])
    assert abs(got - G.FACE_REG * th) < 0.01
    img = r.render({"face": m})
    assert img.shape[:2] == (r.size[1], r.size[0])
    with pytest.raises(ValueError, match="map"):
        r.driving_vertices({"face": np.eye(3)})


def test_resting_arms_ride_with_the_torso_a_gesture_follows_the_pose(avatar):
    """With a torso map, the body points' offsets are the map's where the pose barely moves the
    arm beyond it, and the pose's where it moves an elbow or wrist far beyond it (GeomRenderer
    BODY_ARMS="gated")."""
    import chatanyone.render.geometry as G
    assert G.BODY_ARMS == "gated"
    r = GeomRenderer(avatar, 256)
    m = R.identity()
    m[:, 2] = (0.01, 0.02)
    small = np.full((8, 2), 0.004, np.float32) + m[:, 2]       # the pose: the body's move, hardly more
    out = r._arms_by_torso({"body": small}, m)["body"]
    np.testing.assert_allclose(out, np.broadcast_to([0.01, 0.02], (8, 2)), atol=1e-6)
    big = small.copy()
    big[4] = (0.0, -3 * r._fh_crop[1])                          # one wrist raised 3 face heights
    out = r._arms_by_torso({"body": big}, m)["body"]
    np.testing.assert_allclose(out[[2, 4]], big[[2, 4]], atol=1e-6)        # that arm: the pose's
    np.testing.assert_allclose(out[[0, 1, 3, 5]], np.broadcast_to([0.01, 0.02], (4, 2)), atol=1e-6)


def test_a_resting_wrist_stays_while_the_torso_leans(avatar, monkeypatch):
    """Below the gate a wrist rides the torso's map only as far as the driving pose's wrist has
    ridden it: a pose whose wrists stay put while the chest sways (hands resting on the lap) soon
    leaves the rendered wrists nearly still, the shoulders and elbows riding the map; before
    session 15 (WRIST_RIDE_PRIOR None) the wrists rode the whole map."""
    import chatanyone.render.geometry as G

    def sway(renderer, n):
        fh = renderer._fh_crop
        outs = []
        for k in range(n):
            m = R.identity()
            m[:, 2] = 0.1 * fh * np.array([np.sin(0.7 * k + 1), np.cos(0.5 * k)])   # 0.1 face heights at most
            body = np.broadcast_to(m[:, 2], (8, 2)).astype(np.float32).copy()
            body[4:6] = 0.0                                     # the pose's wrists stay where they were
            outs.append((m[:, 2].copy(), renderer._arms_by_torso({"body": body}, m)["body"]))
        return outs

    outs = sway(GeomRenderer(avatar, 256), 30)
    shift, first = outs[0]
    np.testing.assert_allclose(first[:4], np.broadcast_to(shift, (4, 2)), atol=1e-6)   # shoulders, elbows
    assert 0.5 < first[4, 0] / shift[0] < 1.0                   # the prior: a full ride, worth 10 frames
    shift, last = outs[-1]
    np.testing.assert_allclose(last[:4], np.broadcast_to(shift, (4, 2)), atol=1e-6)
    assert np.all(np.abs(last[4:6]) <= 0.15 * np.abs(shift) + 1e-9)     # the wrists nearly still
    monkeypatch.setattr(G, "WRIST_RIDE_PRIOR", None)
    shift, old = sway(GeomRenderer(avatar, 256), 30)[-1]
    np.testing.assert_allclose(old, np.broadcast_to(shift, (8, 2)), atol=1e-6)


def test_driving_frames_slice_and_frame_carry_the_maps():
    from chatanyone.reenact import DrivingFrames
    from chatanyone.spec.motion_layout import MotionFrames
    n = 5
    base = MotionFrames(0, np.zeros((n, 6), np.float32), np.zeros((n, 4), np.float32), np.zeros((n, 4), np.float32),
                        np.zeros((n, 8, 2), np.float32), np.zeros((n, 2, 21, 2), np.float32),
                        np.zeros((n, 2), np.float32))
    torso = np.repeat(R.identity()[None], n, 0).astype(np.float32)
    torso[:, 0, 2] = np.arange(n)
    d = DrivingFrames(*(getattr(base, f.name) for f in dataclasses.fields(MotionFrames)), torso=torso)
    part = d[2:4]
    assert isinstance(part, DrivingFrames) and len(part) == 2 and part.start == 2
    assert part.frame(1)["torso"][0, 2] == 3 and "hair" not in part.frame(0) and "face" not in part.frame(0)
    both = DrivingFrames.of(base, torso=torso, face=torso + 1)
    assert both[1:3].frame(0)["face"][0, 2] == 2 and both.frame(4)["torso"][0, 2] == 4
    assert set(base.frame(0)) == set(d.frame(0)) - {"torso"}


def test_body_motion_on_a_dev_clip_is_small_and_steady():
    """On a seated upper-body DEV clip the registered torso moves by a few pixels at most and
    its map is smooth (skips without ../shared/data)."""
    path = os.path.join(VIDEOS, "tango_hbr_1wrQ6Msp7wM_39.69-45.68.mp4")
    if not os.path.exists(path):
        pytest.skip("../shared/data/videos not available")
    from chatanyone.eval.prepare import prepare
    from chatanyone.reenact import body_motion
    pv = prepare(path, max_seconds=1)
    torso, ok = body_motion(pv, cache=False)
    assert torso.shape == (pv.n, 2, 3) and ok.mean() > 0.9
    assert np.abs(torso[:, :, 2]).max() < 0.05                 # crop units: under ~ 0.1 face heights
    assert np.abs(np.diff(torso[:, :, 2], axis=0)).max() < 0.01
    # the torso's map is affine (REGISTER_PARTS): a seated speaker's chest barely scales or shears
    assert np.abs(torso[:, :, :2] - np.eye(2)).max() < 0.05
    with pytest.raises(ValueError, match="part"):
        body_motion(pv, part="legs", cache=False)


def test_session_frames_are_unchanged_by_registration(avatar, monkeypatch):
    """The speech-driven Session's motion carries no torso/hair map: for a seed its frames are the
    same with the renderer's registration on (the default) and off, and the registered mesh is
    never built."""
    import chatanyone.render.geometry as G
    from chatanyone.assets import demo_speech
    pcm, rate = demo_speech()
    pcm = pcm[: int(0.8 * rate)]

    def run():
        with ca.Session(avatar, ca.SessionConfig(seed=5)) as s:
            s.feed_audio(pcm, rate)
            s.flush()
            frames = [f.image for f in s.frames()]
            assert s._pipe.renderer._reg is None
        return np.stack(frames)

    on = run()
    init = G.GeomRenderer.__init__
    monkeypatch.setattr(G.GeomRenderer, "__init__", lambda self, *a, **k: init(self, *a, **{**k, "register": False}))
    off = run()
    assert len(on) >= 15
    np.testing.assert_array_equal(on, off)


def _assert_border_in_order(src, out):
    """The border points of each side keep their order along it (none passes a neighbour)."""
    for axis in (0, 1):
        for v in (-1.0, 1.0):
            on = src[:, axis] == v
            along = 1 - axis
            order = np.argsort(src[on, along])
            assert np.all(np.diff(out[on, along][order]) > 0)


@pytest.mark.parametrize("scale, shift", [(1.0, (0.0, -0.04)), (0.95, (0.0, 0.0)), (1.0, (0.04, 0.03)),
                                          (1.05, (-0.03, 0.02))])
def test_a_moving_body_leaves_no_seam_at_the_region_edge(avatar, scale, shift):
    """Issue #11: a torso map that moves the body towards or away from the frame's edge leaves no
    pixel of the region uncovered (before, the border moved with the map: the still photo showed in
    the band it left, a hard step beside the moved body), no border point moves into the region or
    past a neighbour, and a smooth photo stays smooth up to the region's edge."""
    from chatanyone.render import mesh as M
    from chatanyone.render.geometry import _mesh_flow
    r = GeomRenderer(avatar, 256, layered=False, arms="mesh")
    m = R.identity()
    m[:, :2] *= scale
    m[:, 2] = shift
    dst, depth = r.driving_vertices({"torso": m})
    rx0, ry0, rx1, ry1 = r.rect
    rh, rw = ry1 - ry0, rx1 - rx0
    _, mask = _mesh_flow()(dst, r._reg["src"], r._reg["tris"], (rh, rw), depth=depth)
    assert mask.all()                                          # every pixel warped, none left still
    n_border = len(r._border)
    b0 = len(r.src_vertices) - n_border
    src, out = r._border.astype(np.float64), dst[b0: b0 + n_border].astype(np.float64)
    on_side = np.abs(src) == 1.0
    assert np.all(((out - src) * np.sign(src))[on_side] >= 0.0)  # on or outside its side
    _assert_border_in_order(src, out)                          # neighbours never cross
    # a smooth photo (a vertical ramp, 3 levels a row): rows below the face stay a ramp to the edge
    y = np.arange(rh, dtype=np.float32)[:, None] * 3.0 / (rh / 64)
    r._src = np.ascontiguousarray(np.broadcast_to(y, (1, 3, rh, rw)), np.float32)
    r._base = np.ascontiguousarray(np.broadcast_to(y[..., None], (rh, rw, 3)), np.float32)
    img = r.render({"torso": m}).astype(np.float64)[ry0:ry1, rx0:rx1, 0]
    below = int(np.ceil(r._chin_y + 0.5 * r._fh_px))
    step = np.abs(np.diff(img[below:], axis=0))
    ramp = 3.0 / (rh / 64)                                     # the photo's step, levels a row
    assert step.max() < 2.5 * ramp + 1.0, (step.max(), ramp)
    side = np.abs(np.diff(img[below:], axis=1))                # a ramp has no step across a row
    assert side.max() < 0.5 * ramp + 1.0, (side.max(), ramp)


def test_letterbox_finds_bars_and_nothing_else():
    """Dark, uniform bars with a picture starting sharply beside them are found (thickness per side);
    a photo without bars, a dark picture fading to black at its edge, and a bar that would reach
    the face are not bars; a bad image is a clear error."""
    from chatanyone.render.region import letterbox
    rng = np.random.default_rng(3)
    pic = (60 + 120 * rng.random((120, 160, 3))).astype(np.uint8)
    assert letterbox(pic) == (0, 0, 0, 0)
    boxed = pic.copy()
    boxed[:14] = 2
    boxed[-13:] = 9
    boxed[:, :6] = 0
    assert letterbox(boxed) == (14, 13, 6, 0)
    assert letterbox(boxed[..., 0]) == (14, 13, 6, 0)               # grey levels too
    face = np.array([[80.0, 10.0], [90.0, 12.0], [85.0, 60.0]])       # a face whose middle is in the top bar
    assert letterbox(boxed, face)[0] == 0
    fade = pic.astype(np.float32) * np.clip(np.arange(120) / 80.0, 0, 1)[:, None, None]
    assert letterbox(fade.astype(np.uint8))[0] == 0                  # a dark edge, no sharp step
    with pytest.raises(ValueError, match="image"):
        letterbox(np.zeros((4, 4, 4, 4), np.uint8))


def test_a_letterboxed_photos_bars_never_move(avatar):
    """Issue #11: a letterboxed photo's bars are no part of the scene (a zooming camera moves the
    picture inside them, not them). The animated region stops at the bars, so maps that scale and
    shift the body and hair leave every bar pixel the photo's."""
    import cv2
    photo = avatar.photo
    h, w = photo.shape[:2]
    bar = int(0.1 * h)
    boxed = np.concatenate([np.zeros((bar, w, 3), np.uint8), photo, np.zeros((bar, w, 3), np.uint8)])
    av = ca.Avatar.prepare(boxed)
    r = GeomRenderer(av, 256)
    W, H = r.size
    x0, y0, x1, y1 = r.picture
    from chatanyone.render.geometry import BAR_EDGE
    assert (x0, x1) == (0, W) and abs(y0 - (bar + BAR_EDGE) * H / boxed.shape[0]) <= 1 and abs(H - y1 - y0) <= 1
    assert r.rect[1] >= y0 and r.rect[3] <= y1
    resized = cv2.resize(boxed, (W, H), interpolation=cv2.INTER_AREA)
    bars = np.zeros((H, W), bool)
    bars[:y0] = bars[y1:] = True
    for scale, shift in ((1.06, (0.0, 0.03)), (0.94, (0.02, -0.03))):
        m = R.identity()
        m[:, :2] *= scale
        m[:, 2] = shift
        img = r.render({"torso": m, "hair": m, "head": np.array([0.05, 0.02, 0.0, 0.02, 0.03, 0.02])})
        np.testing.assert_array_equal(img[bars], resized[bars])
        assert np.abs(img[~bars].astype(int) - resized[~bars]).mean() > 0.2          # the picture moved


def test_a_frame_s_own_arms_and_hands_are_left_out_of_the_torso_mask():
    """``reenact._occluded``: the template's mask less the frame's arms (pose capsules) and hands
    (hulls, grown), taken back to the template by the previous frame's map; a frame with neither
    keeps the whole mask."""
    from types import SimpleNamespace
    from chatanyone import reenact as RE
    h, w = 120, 100
    m = np.ones((h, w), np.uint8)
    pose = np.full((1, 33, 4), np.nan)
    pose[0, 13] = (0.3, 0.3, 0, 1.0)       # left elbow -> wrist: a forearm across the middle
    pose[0, 15] = (0.7, 0.5, 0, 1.0)

    def to_pixels(p):                   # as PreparedVideo.to_pixels: x, y (and z) scaled
        p = np.array(p, np.float64)
        p[..., 0] *= w
        p[..., 1] *= h
        return p

    pv = SimpleNamespace(pose=pose, pose_ok=np.array([True]), hands=np.full((1, 2, 21, 3), np.nan),
                         hands_ok=np.zeros((1, 2), bool), to_pixels=to_pixels)
    out = RE._occluded(m, pv, 0, 1.0, np.s_[:, :], np.zeros(2), None, 20.0)
    assert out.dtype == bool and out.shape == (h, w)
    assert not out[45, 50] and not out[36, 30]                 # on the forearm: left out
    assert out[100, 50] and out[5, 90]                          # far from it: kept
    assert 0.02 < 1 - out.mean() < 0.2
    # the previous map shifts the frame's arm back into the template's place
    prev = R.identity()
    prev[0, 2] = 10.0                                           # template x lands at x + 10
    shifted = RE._occluded(m, pv, 0, 1.0, np.s_[:, :], np.zeros(2), prev, 20.0)
    assert not shifted[45, 40] and shifted[45, 40] == out[45, 50] and shifted[60, 20] == out[60, 30]
    none = SimpleNamespace(pose_ok=np.array([False]), hands_ok=np.zeros((1, 2), bool))
    assert RE._occluded(m, none, 0, 1.0, np.s_[:, :], np.zeros(2), None, 20.0).all()


def test_hands_moving_over_the_chest_do_not_drag_the_torso_map():
    """On a training clip whose speaker gestures in front of a dark dress (tango_hbr_speaker8), the
    torso's map stays a small, steady move: each frame's own arms and hands are left out of what
    is registered (issue #11). Without that, ECC locked onto the moving hands and ran to its limits
    (a 30 % scale, shifts of a quarter of the crop). Skips without ../shared/data."""
    path = os.path.join(VIDEOS, "tango_hbr_speaker8_jjRWaMCWs44_30.16-33.32.mp4")
    if not os.path.exists(path):
        pytest.skip("../shared/data/videos not available")
    from chatanyone import reenact as RE
    from chatanyone.eval.prepare import prepare
    pv = prepare(path, max_seconds=1.5)
    torso, ok = RE.body_motion(pv, cache=False)
    assert ok.mean() > 0.9
    assert np.abs(torso[:, :, 2]).max() < 0.12
    assert np.abs(np.diff(torso[:, :, 2], axis=0)).max() < 0.02
    assert np.abs(torso[:, :, :2] - np.eye(2)).max() < 0.2


def _first_frame_moved(path, clip, n, matrix):
    """Write ``path``: ``n`` frames at 25 fps, each the first frame of the data clip ``clip`` moved
    by the 2×3 affine ``matrix(i, w, h)`` (a synthetic camera move); skips without ../shared/data."""
    import cv2
    src = os.path.join(VIDEOS, clip)
    if not os.path.exists(src):
        pytest.skip("../shared/data/videos not available")
    cap = cv2.VideoCapture(src)
    ok, first = cap.read()
    assert ok
    h, w = first.shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for i in range(n):
        m = np.asarray(matrix(i, w, h), np.float32)
        out.write(cv2.warpAffine(first, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    out.release()
    return str(path)


def test_the_hairs_map_follows_a_camera_zoom(tmp_path):
    """The hair's map is affine (REGISTER_PARTS): a driving clip whose camera zooms in by 10 % over
    a second (made from a training clip) gives a hair map that grows by about that much, where a
    turn and shift could not follow the outline moving outward (skips without ../shared/data)."""
    from chatanyone.eval.prepare import prepare
    from chatanyone.reenact import REGISTER_PARTS, body_motion
    assert REGISTER_PARTS["hair"] == "affine"
    path = _first_frame_moved(tmp_path / "zoom.mp4", "pcavs_vox2_00015.mp4", 25,   # zoom about the middle
                              lambda i, w, h: [[1 + 0.1 * i / 24, 0, -0.05 * i / 24 * w],
                                               [0, 1 + 0.1 * i / 24, -0.05 * i / 24 * h]])
    pv = prepare(path, cache=False)
    hair, ok = body_motion(pv, part="hair", cache=False)
    assert ok.mean() > 0.9
    growth = np.sqrt(abs(np.linalg.det(hair[-1, :, :2].astype(np.float64))))
    assert 1.06 < growth < 1.14, growth


def test_a_background_map_moves_the_plate_not_the_person(avatar, monkeypatch):
    """Session 11: a frame's ``background`` map (a driving camera's pan or zoom) moves the plate the
    person is drawn over: the scene beside the person shifts by it, the person's own pixels do not;
    with ``BACKGROUND_MOVES`` off (or register=False) the map changes nothing."""
    from chatanyone.render import geometry as G
    r = GeomRenderer(avatar, 256)
    assert r.layered
    base = r.render({})
    m = R.identity()
    m[0, 2] = 0.06                       # crop units: a pan to the right
    moved = r.render({"background": m})
    x0, y0, x1, y1 = r.rect
    alpha = r._src[0, 3]
    scene = alpha == 0
    person = alpha == 1
    reg_b, reg_m = base[y0:y1, x0:x1].astype(int), moved[y0:y1, x0:x1].astype(int)
    assert np.abs(reg_m[person] - reg_b[person]).mean() < 0.05    # (but where a part warped off the person)
    assert np.abs(reg_m[scene] - reg_b[scene]).mean() > 1.0
    # the scene moved right by the map's shift in region pixels: the moved plate matches the
    # still one shifted by that many pixels (better than unshifted)
    dx = int(round(0.06 * r._ax[0] * r._px[0]))
    assert dx >= 2
    sh = np.zeros_like(reg_b)
    sh[:, dx:] = reg_b[:, :-dx]
    inner = scene.copy()
    inner[:, :dx + 2] = False
    inner &= np.roll(scene, dx, axis=1)
    assert np.abs(reg_m[inner] - sh[inner]).mean() < 0.3 * np.abs(reg_m[inner] - reg_b[inner]).mean()
    # off: the map is ignored
    monkeypatch.setattr(G, "BACKGROUND_MOVES", False)
    np.testing.assert_array_equal(r.render({"background": m}), base)
    np.testing.assert_array_equal(GeomRenderer(avatar, 256, register=False).render({"background": m}), base)


def test_the_backgrounds_map_follows_a_camera_pan_and_not_a_still_one(tmp_path):
    """The background's registration (reenact.body_motion part="background") on a driving clip
    made from a training clip's first frame: 8 still frames, then a camera pan of 12 px to the
    right over 16 frames. The still frames give the identity (a still camera moves nothing), the
    last frame's map shifts by the pan, in crop units, within 15 % (skips without ../shared/data)."""
    from chatanyone.eval.prepare import prepare
    from chatanyone.reenact import body_motion
    pan = [0.0] * 8 + [12.0 * (i + 1) / 16 for i in range(16)]
    path = _first_frame_moved(tmp_path / "pan.mp4", "sadtalker_hdtf_RD_Radio2_000.mp4", len(pan),
                              lambda i, w, h: [[1, 0, pan[i]], [0, 1, 0]])
    pv = prepare(path, cache=False)
    bg, ok = body_motion(pv, part="background", cache=False)
    assert ok.mean() > 0.8
    assert np.abs(bg[1:6] - R.identity()).max() < 2e-3
    from chatanyone.vision import framing
    box = framing.upper_body_box(pv.face_px()[..., :2], face_ok=np.asarray(pv.face_ok, bool))
    want = 2 * 12.0 / box.w
    assert abs(bg[-1, 0, 2] - want) < 0.15 * want, (bg[:, 0, 2], want)
    assert abs(bg[-1, 1, 2]) < 0.2 * want


def test_a_panning_body_slides_the_border_along_with_it(avatar):
    """Session 11: a torso map of a camera pan (a quarter of the crop's width) slides the region's
    bottom border points along the bottom side with the body, by up to BORDER_SLIDE (0.9) of their
    spacing: before (0.45) the border held the bottom of the body back while the map moved the rest
    (a panning interview clip's jacket stayed near the photo's place). Every pixel stays covered,
    no point moves into the region or past a neighbour."""
    from chatanyone.render.geometry import BORDER_SLIDE, _mesh_flow
    assert BORDER_SLIDE > 0.5
    r = GeomRenderer(avatar, 256, layered=False, arms="mesh")
    m = R.identity()
    m[0, 2] = 0.25
    dst, depth = r.driving_vertices({"torso": m})
    rx0, ry0, rx1, ry1 = r.rect
    _, mask = _mesh_flow()(dst, r._reg["src"], r._reg["tris"], (ry1 - ry0, rx1 - rx0), depth=depth)
    assert mask.all()
    n_border = len(r._border)
    b0 = len(r.src_vertices) - n_border
    src, out = r._border.astype(np.float64), dst[b0: b0 + n_border].astype(np.float64)
    spacing = 2.0 / r._border_sides
    moved = src[:, 0] + np.clip(0.25 * r._ax[0], -BORDER_SLIDE * spacing, BORDER_SLIDE * spacing)
    bottom = (src[:, 1] == 1.0) & (np.abs(src[:, 0]) < 1.0)
    np.testing.assert_allclose(out[bottom, 0], np.maximum(moved[bottom], -1.0), atol=1e-6)
    assert (out[bottom, 0] - src[bottom, 0]).min() > 0.5 * spacing     # beyond the old limit
    on_side = np.abs(src) == 1.0
    assert np.all(((out - src) * np.sign(src))[on_side] >= 0.0)
    _assert_border_in_order(src, out)


def test_the_face_map_is_sub_pixel_at_the_frames_scale(tmp_path):
    """The maps are registered at an analysis size fine enough (REGISTER_FACE_PX) that a known
    camera shake of a fraction of a percent (a training clip's first frame moved by a few pixels
    along two sines) is recovered by the upper face's map within 0.5 of the frame's pixels (at the
    former 96 px face height: 0.69); session 12, render/design.md (skips without ../shared/data)."""
    from chatanyone.eval.prepare import prepare
    from chatanyone.reenact import body_motion
    from chatanyone.vision import framing

    def shake(i, w, h):
        return [[1, 0, 0.004 * w * np.sin(i / 4)], [0, 1, 0.003 * h * np.sin(i / 5)]]
    path = _first_frame_moved(tmp_path / "shake.mp4", "sadtalker_hdtf_RD_Radio34_000.mp4", 25, shake)
    pv = prepare(path, cache=False)
    box = framing.upper_body_box(pv.face_px()[..., :2], face_ok=np.asarray(pv.face_ok, bool))
    face, ok = body_motion(pv, part="face", cache=False)
    assert ok.all()
    truth = np.array([np.asarray(shake(i, pv.width, pv.height))[:, 2] for i in range(pv.n)])
    got = face[:, :, 2] * np.array([box.w, box.h]) / 2        # crop units -> frame pixels
    err = np.linalg.norm(got - truth, axis=1)
    assert err.max() < 0.5, err.max()
    assert np.abs(face[:, :, :2] - np.eye(2)).max() < 0.002
