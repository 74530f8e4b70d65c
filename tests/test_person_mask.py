"""The person mask travels with the avatar: rendering a saved avatar runs no segmentation model
(a LiveKit worker or `serve` session needs no landmark runtime), and avatars without one still
render."""
import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import default_avatar_image
from chatanyone.render.geometry import GeomRenderer, person_probability


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


def test_prepare_stores_the_person_mask_and_save_keeps_it(avatar, tmp_path):
    p = avatar.features["person"]
    assert p.ndim == 2 and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    # the built-in portrait is a head-and-shoulders photo: the person fills its centre, not its corner
    h, w = p.shape
    assert p[h // 2, w // 2] > 0.5 and p[:h // 10, :w // 10].mean() < 0.5
    f = tmp_path / "a.npz"
    avatar.save(f)
    np.testing.assert_array_equal(ca.Avatar.load(f).features["person"], p)


def test_stored_mask_matches_segmenting_the_frame(avatar):
    """The stored mask resized to the output size is what segmenting the resized photo gives."""
    from chatanyone.vision.landmarks import SelfieSegmentation
    r = GeomRenderer(avatar, 384)
    oh, ow = r.background.shape[:2]
    stored = person_probability(avatar, (ow, oh))
    fresh = SelfieSegmentation()(np.ascontiguousarray(r.background))
    assert stored.shape == fresh.shape == (oh, ow)
    assert np.mean((stored > 0.5) != (fresh > 0.5)) < 0.01


def test_a_saved_avatar_renders_without_the_landmark_runtime(avatar, tmp_path):
    f = tmp_path / "a.npz"
    avatar.save(f)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["chatanyone.vision.landmarks"] = None   # importing it now raises ImportError
        sys.modules["ai_edge_litert"] = None
        import numpy as np, chatanyone as ca
        from chatanyone.render.geometry import GeomRenderer
        a = ca.Avatar.load({str(f)!r})
        r = GeomRenderer(a, 256)
        img = r.render({{}})
        assert r.layered and img.shape[2] == 3, (r.layered, img.shape)
        print("ok")
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_an_avatar_without_a_mask_is_segmented_or_warped_as_one_sheet(avatar, monkeypatch, caplog):
    bare = dataclasses.replace(avatar, features={})
    assert GeomRenderer(bare, 256).layered                    # segmented now, the runtime is here
    monkeypatch.setitem(sys.modules, "chatanyone.vision.landmarks", None)
    with caplog.at_level("WARNING", logger="chatanyone"):
        r = GeomRenderer(bare, 256)
    assert not r.layered and "no person mask" in caplog.text
    assert r.render({}).shape == GeomRenderer(avatar, 256).render({}).shape


def test_a_malformed_stored_mask_is_refused(avatar):
    bad = dataclasses.replace(avatar, features={"person": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match="person"):
        GeomRenderer(bad, 256)
