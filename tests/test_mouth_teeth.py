"""The geometry renderer's mouth: the photo's own teeth kept rigid (upper with the head, lower with
the jaw, a dark gap between), the painted teeth's texture, and the mouth modes."""
import os

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import default_avatar_image
from chatanyone.render import geometry as G
from chatanyone.render.geometry import GeomRenderer
from chatanyone.spec.head import load_basis

PORTRAITS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "portraits")
LUM = np.array([0.299, 0.587, 0.114])


def _opening(amount: float) -> dict:
    """A motion frame whose expression opens the mouth by ``amount`` spreads of the component that
    opens it most (0: the neutral face, lips ``NEUTRAL_GAP`` apart)."""
    b = load_basis()
    comp = b.components.reshape(b.n_exp, 468, 3)
    k = int(np.argmax(np.abs(comp[:, 14, 1] - comp[:, 13, 1])))
    e = np.zeros(b.n_exp, np.float32)
    e[k] = np.sign(comp[k, 14, 1] - comp[k, 13, 1]) * amount * b.std[k]
    return {"exp": e}


def _middle_column(r: GeomRenderer, img: np.ndarray) -> np.ndarray:
    """Luminance down the middle of the driven opening, from the upper inner lip (13) to the lower (14)."""
    x0, y0 = r.rect[:2]
    f = r.face_px
    lum = img[y0:, x0:].astype(np.float64) @ LUM
    xm = int(round(0.5 * (f[13, 0] + f[14, 0])))
    return lum[int(np.ceil(f[13, 1])):int(np.floor(f[14, 1])) + 1, xm]


def _top_run(col: np.ndarray, thr: float = 150.0) -> int:
    """Bright pixels from the top of the opening down, allowing the first (the lip's edge) to be dim."""
    n = 0
    for v in col[1:]:
        if v < thr:
            break
        n += 1
    return n


@pytest.fixture(scope="module")
def toothy():
    p = os.path.join(PORTRAITS, "fr_biden_official_headshoulders.jpg")
    if not os.path.exists(p):
        pytest.skip("../shared/data/portraits/fr_biden_official_headshoulders.jpg not available")
    return ca.Avatar.prepare(p)


def test_the_photos_teeth_stay_rigid_and_the_gap_is_dark(toothy):
    """A smiling photo showing its teeth, driven to open wide: the upper teeth keep their height
    (the previous renderer stretched them down the whole opening) and a dark gap opens below them."""
    new = GeomRenderer(toothy, 512)
    old = GeomRenderer(toothy, 512, mouth="previous")
    assert new.rigid_teeth and not new.paints_mouth and not old.rigid_teeth
    runs = {}
    for amount in (2.0, 4.0):
        m = _opening(amount)
        c_new = _middle_column(new, new.render(m))
        c_old = _middle_column(old, old.render(m))
        runs[amount] = (_top_run(c_new), _top_run(c_old))
        if amount == 4.0:
            assert len(c_new) >= 12                            # a wide opening, in pixels
            assert c_new.min() < 70                            # a dark gap between the teeth
            assert c_old.min() > 100                           # (the stretched teeth had none)
    # the photo's upper teeth: about ``teeth_split`` of its opening, whatever the driven opening
    src = new.src_face_px
    teeth_px = new.teeth_split * float(src[14, 1] - src[13, 1])
    assert runs[4.0][0] <= 1.3 * teeth_px + 1
    assert abs(runs[4.0][0] - runs[2.0][0]) <= 2               # rigid: the same height
    assert runs[4.0][1] - runs[2.0][1] >= 4                    # stretched: taller as it opens


def test_a_barely_open_mouth_keeps_its_teeth_in_shadow(toothy):
    """At the neutral gap (lips just apart) the photo's teeth are shaded, not a bright line that
    face mesh would read as an open mouth."""
    new = GeomRenderer(toothy, 512)
    old = GeomRenderer(toothy, 512, mouth="previous")
    c_new = _middle_column(new, new.render({}))
    c_old = _middle_column(old, old.render({}))
    assert len(c_new) >= 2
    assert c_new.mean() < c_old.mean() - 30


def test_painted_teeth_have_gaps_between_teeth_on_mouths_large_enough():
    xs = np.arange(0, 121, dtype=np.float64)
    big = G._tooth_gaps(xs, 60.0, 50.0, G.TOOTH_EDGES_UPPER, 100.0)
    small = G._tooth_gaps(xs, 60.0, 10.0, G.TOOTH_EDGES_UPPER, 20.0)
    np.testing.assert_array_equal(small, np.ones_like(xs))     # a 20 px mouth: plain teeth
    assert big[60] < 0.9 and big.max() == 1.0                  # the gap between the incisors
    np.testing.assert_allclose(big[60 - 30:60 + 31], big[60 - 30:60 + 31][::-1], atol=1e-9)  # symmetric
    dips = [i for i in range(1, len(xs) - 1) if big[i] < 0.95 and big[i] < big[i - 1] and big[i] <= big[i + 1]]
    assert len(dips) == 2 * len(G.TOOTH_EDGES_UPPER) - 1         # one line per gap, both sides


def test_mouth_modes_change_only_the_opening():
    """A closed-lips photo (painted inside): the modes differ inside the driven opening only."""
    a = ca.Avatar.prepare(default_avatar_image())
    new = GeomRenderer(a, 512)
    old = GeomRenderer(a, 512, mouth="previous")
    assert new.paints_mouth and not new.rigid_teeth
    m = _opening(4.0)
    i_new, i_old = new.render(m).astype(int), old.render(m).astype(int)
    f = new.face_px
    x0, y0 = new.rect[:2]
    lips = np.concatenate([f[G.M.LIP_UPPER_INNER], f[G.M.LIP_LOWER_INNER]])
    bx0, by0 = np.floor(lips.min(0)).astype(int) - 2 + [x0, y0]
    bx1, by1 = np.ceil(lips.max(0)).astype(int) + 3 + [x0, y0]
    outside = np.ones(i_new.shape[:2], bool)
    outside[by0:by1, bx0:bx1] = False
    np.testing.assert_array_equal(i_new[outside], i_old[outside])
    assert np.abs(i_new[~outside] - i_old[~outside]).mean() > 1.0     # the teeth did change
    with pytest.raises(ValueError, match="mouth"):
        GeomRenderer(a, 512, mouth="stretched")


def test_painted_teeth_of_a_narrow_opening_are_in_shadow(monkeypatch):
    """A closed-lips photo (painted inside): a mouth barely apart shows a dark slit, not a bright
    teeth band (the look held-out frames showed, and one face mesh read unsteadily); a wide-open one
    still shows its bright upper teeth. The painted interior is softened where it meets the lips: no
    step down the middle column is as steep as with crisp painting (``PAINT_SOFT`` 0)."""
    a = ca.Avatar.prepare(default_avatar_image())
    r = GeomRenderer(a, 512)
    assert r.paints_mouth
    narrow, wide = _opening(0.6), _opening(4.0)
    c_narrow = _middle_column(r, r.render(narrow))
    c_wide = _middle_column(r, r.render(wide))
    assert len(c_narrow) >= 2 and len(c_wide) >= 10
    monkeypatch.setattr(G, "PAINT_SHADOW", False)
    monkeypatch.setattr(G, "PAINT_SOFT", 0.0)
    old = GeomRenderer(a, 512)
    o_narrow = _middle_column(old, old.render(narrow))
    o_wide = _middle_column(old, old.render(wide))
    assert o_narrow.max() > 150                                # before: a bright teeth band
    assert c_narrow.max() < o_narrow.max() - 60                # now: in the lips' shadow
    assert _top_run(c_wide) >= 2 and c_wide.max() > 150        # a wide mouth shows its teeth
    assert np.abs(np.diff(c_wide)).max() < np.abs(np.diff(o_wide)).max()
