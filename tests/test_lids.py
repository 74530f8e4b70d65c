"""Closed eyes in the geometry renderer: lid skin over the eye, not a squeezed eye (render/geometry.py
``GeomRenderer._lid_mesh``). Open frames stay bit-identical to the mesh before; a blink changes only
the eyes; face mesh reads a closed rendered eye as closed."""
from __future__ import annotations

import os

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import default_avatar_image
from chatanyone.motion.blink import lid_basis
from chatanyone.motion.generator import MotionGenerator
from chatanyone.render import geometry as G
from chatanyone.render import mesh as M
from chatanyone.spec.head import load_basis

PORTRAITS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "portraits")


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


def _blink(closing: float) -> np.ndarray:
    """The expression of a blink ``closing`` of the way down, as MotionGenerator._eyes adds it."""
    vecs, _rows, gap0 = lid_basis()
    return (-(MotionGenerator.BLINK_DEPTH * gap0 * closing) * vecs.sum(0)).astype(np.float32)


def test_lid_closing_and_full_closing():
    b = load_basis()
    can = np.array(b.canonical, np.float64)
    np.testing.assert_allclose(G.lid_closing(can, can), [0.0, 0.0])
    half = can.copy()
    for upper, lower in G.EYES:                 # the upper lid half way down
        half[upper[1:-1], 1] += 0.5 * (can[lower[1:-1], 1] - can[upper[1:-1], 1])
    np.testing.assert_allclose(G.lid_closing(half, can), [0.5, 0.5], atol=1e-9)
    wide = can.copy()
    for upper, _lower in G.EYES:
        wide[upper[1:-1], 1] -= 0.01
    np.testing.assert_allclose(G.lid_closing(wide, can), [0.0, 0.0])
    lo, hi = G.CLOSING_FULL
    assert G.full_closing(0.3) == pytest.approx(0.3) and G.full_closing(hi) == pytest.approx(1.0)
    c = np.linspace(0, 1, 101)
    assert np.all(np.diff(G.full_closing(c)) >= 0) and G.full_closing(1.0) == 1.0


def _eye_box(face_px: np.ndarray, rect, margin: float):
    """Output-pixel box around both eyes and the brows of a driven face (region px), grown by
    ``margin`` px."""
    ids = M.RIGHT_EYE_UPPER + M.RIGHT_EYE_LOWER + M.LEFT_EYE_UPPER + M.LEFT_EYE_LOWER + \
        list(G.BROW_RIGHT) + list(G.BROW_LEFT)
    p = face_px[ids] + np.array([rect[0], rect[1]])
    (x0, y0), (x1, y1) = p.min(0) - margin, p.max(0) + margin
    return int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))


def test_open_frames_bit_identical_and_a_blink_changes_only_the_eyes(avatar):
    new = G.GeomRenderer(avatar, 384, lids="skin")
    old = G.GeomRenderer(avatar, 384, lids="strip")
    vecs, rows, _ = lid_basis()
    rng = np.random.default_rng(3)
    e = rng.normal(0, 0.5, (4, vecs.shape[1])) * load_basis().std
    e = e - (e @ rows.T) @ vecs                 # expressions that leave the lids where they are
    frames = [{"exp": np.zeros(vecs.shape[1], np.float32)}] + \
        [{"exp": x.astype(np.float32), "head": np.array([0.03 * i, -0.02, 0.01, 0, 0, 0], np.float32)}
         for i, x in enumerate(e)]
    for mf in frames:
        a, b = new.render(mf), old.render(mf)
        assert new.lid_closing.max() <= G.CLOSING_MIN
        np.testing.assert_array_equal(a, b)
    for c in (0.5, 1.0):
        mf = {"exp": _blink(c)}
        a, b = new.render(mf), old.render(mf)
        assert new.lid_closing.min() > 0.4
        diff = np.abs(a.astype(int) - b.astype(int)).max(-1) > 0
        assert diff.sum() > 20, "a blink must draw the closing eye differently"
        x0, y0, x1, y1 = _eye_box(new.face_px, new.rect, margin=2.0)
        inside = np.zeros_like(diff)
        inside[max(y0, 0):y1, max(x0, 0):x1] = True
        assert not (diff & ~inside).any(), "pixels beyond the eyes changed"


def _closed_over_open(avatar, lids: str, fm) -> float:
    from chatanyone.eval import mouth as EM
    r = G.GeomRenderer(avatar, 512, lids=lids)
    eo = []
    for c in (0.0, 1.0, 0.5):
        p = fm(r.render({"exp": _blink(c)}))
        assert p is not None, "face mesh found no face"
        eo.append(float(EM.eye_openness(EM.canonical_faces(p[None])[0])[0]))
    if lids == "skin":      # half way down the lid covers part of the eye: it reads half open
        assert eo[1] + 0.15 * (eo[0] - eo[1]) < eo[2] < eo[0] - 0.15 * (eo[0] - eo[1]), eo
    return eo[1] / eo[0]


@pytest.mark.parametrize("portrait", [None, "liveportrait_s20_frame0.png"])
def test_a_closed_eye_reads_closed_by_face_mesh(avatar, portrait):
    """Face mesh's eye openness (lid gap over eye width) of a full blink over the open frame: real
    closed eyes read 0.2-0.4 of open; the squeezed strip read 0.73 (demo) and 0.51 (portrait)."""
    pytest.importorskip("mediapipe")
    from chatanyone.eval import mouth as EM
    if portrait is not None:
        path = os.path.join(PORTRAITS, portrait)
        if not os.path.exists(path):
            pytest.skip(f"../shared/data/portraits/{portrait} not available")
        from PIL import Image
        avatar = ca.Avatar.prepare(np.asarray(Image.open(path).convert("RGB")))
    with EM.FaceMeshTrack(video=False) as fm:
        new = _closed_over_open(avatar, "skin", fm)
        old = _closed_over_open(avatar, "strip", fm)
    assert new < 0.5, f"closed eye reads {new:.2f} of open"
    assert new < old - 0.1, f"lid skin {new:.2f} against the squeezed strip {old:.2f}"
