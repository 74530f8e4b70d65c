"""The articulated hand of the geometry renderer: the hand mesh follows the driving hand bone by
bone, falls back where the driving points are implausible, and the rendered flow carries the
photo's fingertip to the driven fingertip."""
import os

import numpy as np
import pytest

from chatanyone.render import handmesh as HM

PORTRAITS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "portraits")


def _hand(scale=40.0, at=(200.0, 300.0)):
    """A plausible open right hand: wrist at the bottom, fingers up, ``[21, 2]`` pixels."""
    p = np.zeros((21, 2))
    base_x = {1: -0.35, 5: -0.2, 9: 0.0, 13: 0.18, 17: 0.34}
    lengths = {1: 0.35, 5: 0.35, 9: 0.38, 13: 0.35, 17: 0.28}
    for f in HM.FINGERS:
        b = f[0]
        p[b] = [base_x[b], -0.9 if b != 1 else -0.35]
        d = np.array([-0.6, -0.8]) if b == 1 else np.array([0.05 * (base_x[b] * 5), -1.0])
        d = d / np.linalg.norm(d)
        for k, j in enumerate(f[1:], 1):
            p[j] = p[b] + d * lengths[b] * k
    return p * scale + at


def _rot(th):
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


def test_identity_and_rigid_motion():
    h = _hand()
    m = HM.HandMesh(h)
    assert m.vertices.shape[0] == m.part.shape[0] > 21 + 2 * 15 + 5
    np.testing.assert_array_equal(m.vertices[:21], h)
    np.testing.assert_allclose(m.drive(h), m.vertices, atol=1e-9)
    # the whole hand turned by 25 degrees about its wrist and shifted: every vertex follows
    r = _rot(np.radians(25))
    drv = (h - h[0]) @ r.T + h[0] + [12.0, -7.0]
    assert m.plausible(drv)
    want = (m.vertices - h[0]) @ r.T + h[0] + [12.0, -7.0]
    np.testing.assert_allclose(m.drive(drv), want, atol=1e-6)


def test_a_bent_finger_moves_its_own_vertices_only():
    h = _hand()
    m = HM.HandMesh(h)
    drv = h.copy()
    r = _rot(np.radians(-25))           # the index finger spreads away from the others, at 5
    drv[[6, 7, 8]] = (h[[6, 7, 8]] - h[5]) @ r.T + h[5]
    out = m.drive(drv)
    np.testing.assert_allclose(out[[6, 7, 8]], drv[[6, 7, 8]], atol=1e-6)
    moved = np.linalg.norm(out - m.vertices, axis=1) > 1e-6
    index = np.isin(m.part, [6, 7, 8])
    assert moved[index].all()
    # the palm, the other fingers and their margins stay where they were
    assert not moved[~index].any()


def test_bones_are_clamped_and_chained():
    h = _hand()
    m = HM.HandMesh(h)
    drv = h.copy()
    drv[12] = h[11] + 1.8 * (h[12] - h[11])      # a middle fingertip 1.8x too long: clamped to 1.5
    out = m.drive(drv)
    ratio = np.linalg.norm(out[12] - out[11]) / np.linalg.norm(h[12] - h[11])
    assert ratio == pytest.approx(HM.BONE_LENGTH[1])
    assert m.plausible(drv)
    # a palm 3x the photo's, a bone 4x its length, NaN: implausible
    big = (h - h[0]) * 3 + h[0]
    assert not m.plausible(big)
    far = h.copy()
    far[8] = h[7] + 4 * (h[8] - h[7])
    assert not m.plausible(far)
    nan = h.copy()
    nan[3] = np.nan
    assert not m.plausible(nan)
    with pytest.raises(ValueError, match="finite"):
        HM.HandMesh(nan)


def test_the_palm_turn_is_clamped():
    h = _hand()
    m = HM.HandMesh(h)
    drv = (h - h[0]) @ _rot(np.pi / 2).T + h[0]          # 90 degrees: beyond PALM_MAX_TURN
    tr = m.transforms(drv)
    ang = np.arctan2(tr[0][1, 0], tr[0][0, 0])
    assert ang == pytest.approx(HM.PALM_MAX_TURN)


@pytest.mark.time_limit(120)
def test_rendered_flow_carries_the_fingertip():
    """An upper-body photo with a hand: a driving hand whose index finger is turned moves the
    photo's index fingertip to the driven tip (the renderer's flow there reads the photo's tip),
    while the similarity renderer (the older one) leaves it near the photo's."""
    import chatanyone as ca
    from chatanyone import ops
    from chatanyone.render.geometry import GeomRenderer
    p = os.path.join(PORTRAITS, "latentsync_demo2_frame0.png")
    if not os.path.exists(p):
        pytest.skip("../shared/data/portraits/latentsync_demo2_frame0.png not available")
    a = ca.Avatar.prepare(p)
    side = int(np.flatnonzero(a.hands_ok)[0])
    results = {}
    for mode in ("articulated", "similarity"):
        r = GeomRenderer(a, 512, hands=mode)
        parts = [q for q in r._limbs._parts if q[0] in ("hand", "hand_mesh") and q[1] == side]
        assert parts and parts[0][0] == ("hand_mesh" if mode == "articulated" else "hand")
        h = parts[0][2]                          # the photo's hand, region px
        lp = np.linalg.norm(h[9] - h[0])
        # motion hands: wrist-relative, in crop units; the index finger turned by 50 degrees at 5
        rel = (np.asarray(a.hands, np.float64)[:, :, :2] - np.asarray(a.hands, np.float64)[:, :1, :2])
        rel_px = rel[side] * r._ax * r._px
        tip = rel_px.copy()
        th = np.radians(50)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        tip[[6, 7, 8]] = (rel_px[[6, 7, 8]] - rel_px[5]) @ rot.T + rel_px[5]
        rel[side] = tip / (r._ax * r._px)
        ok = np.asarray(a.hands_ok, np.float32)
        frame = {"hands": rel.astype(np.float32), "hands_ok": ok}
        dst, depth = r.driving_vertices(frame)
        x0, y0, x1, y1 = r.rect
        grid, _ = ops.mesh_flow(dst, r.src_vertices, r.triangles, (y1 - y0, x1 - x0), depth=depth)
        want = h[0] + tip[8]                     # the driven tip (wrist unmoved), region px
        g = grid[int(want[1]), int(want[0])]     # where the output pixel there reads from
        read = (g + 1) * r._px
        results[mode] = np.linalg.norm(read - h[8]) / lp
    assert results["articulated"] < 0.15
    assert results["similarity"] > 2 * results["articulated"]


def test_a_folding_hand_falls_back():
    """Fingers turned back over the palm fold the mesh: drive() refuses it (the renderer then
    moves the hand by one similarity) rather than tearing the photo's hand into slivers."""
    h = _hand()
    m = HM.HandMesh(h)
    drv = h.copy()
    for f in HM.FINGERS[1:]:                 # every finger pointing down across the palm
        for j in f[1:]:
            drv[j] = h[f[0]] - (h[j] - h[f[0]])
    assert m.plausible(drv)                  # sizes and bone lengths are those of a hand
    assert m.folded(m.vertices) == 0.0
    assert m.drive(drv) is None
    assert m.drive(h) is not None


def test_the_palm_stays_on_its_wrist():
    """Issue #11 (session 12): the palm's similarity was fitted on the palm's centre, so a photo's
    palm seen end-on (short) driven by a palm seen face-on (long) was carried off the driving wrist,
    a gap between the drawn hand and its forearm (dev clip tango_hbr_1wrQ6Msp7wM, frame 72). The
    palm now turns and scales about the wrist: the driven wrist is the driving one."""
    h = _hand()
    m = HM.HandMesh(h)
    drv = h.copy()
    drv[1:] = h[0] + 1.8 * (h[1:] - h[0])       # a palm and fingers 1.8x as long: scale clamped to 1.25
    drv += [5.0, -3.0]
    out = m.drive(drv)
    assert out is not None
    np.testing.assert_allclose(out[0], drv[0], atol=1e-6)
    # the palm's turn and scale are those of the fit on the palm's points
    a = m.transforms(drv)[0][:, :2]
    assert np.sqrt(abs(np.linalg.det(a))) == pytest.approx(HM.PALM_SCALE[1])
