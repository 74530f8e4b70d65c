"""Avatar.prepare on the bundled photo: input formats, framing, keypoints, save/load, every error."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone import Avatar  # noqa: E402
from chatanyone.avatar import AvatarError, load_image  # noqa: E402
from chatanyone.assets import default_avatar_image, default_avatar_path  # noqa: E402
from chatanyone.spec import driving as compose, keypoint_layout as L  # noqa: E402


@pytest.fixture(scope="module")
def photo():
    return default_avatar_image()


@pytest.fixture(scope="module")
def avatar(photo):
    return Avatar.prepare(photo)


def test_default_image(photo):
    assert photo.shape == (600, 512, 3) and photo.dtype == np.uint8


def test_prepare(avatar):
    a = avatar
    assert a.crop.shape == (384, 256, 3) and a.crop_hq.shape == (768, 512, 3)
    assert a.box[2] / a.box[3] == pytest.approx(2 / 3)
    assert a.kp.shape == (L.N_KP, 2) and a.vis.shape == (L.N_KP,)
    assert a.vis[L.FACE_SLICE].all()
    assert a.vis[L.BODY_SLICE][:2].all()  # both shoulders
    assert a.face.shape == (478, 3) and a.pose.shape == (33, 4) and a.hands.shape == (2, 21, 3)
    # face in the upper part of the crop, centred
    nose = a.face[1, :2]
    assert abs(nose[0]) < 0.3 and -0.8 < nose[1] < -0.2
    assert abs(np.degrees(a.source.head[0])) < 20
    # the driving keypoints of "no motion" are the source keypoints
    kp, vis = compose.driving_keypoints(a.source, {})
    np.testing.assert_allclose(kp[L.FACE_SLICE], a.kp[L.FACE_SLICE], atol=1e-4)
    np.testing.assert_allclose(kp[L.BODY_SLICE][a.vis[L.BODY_SLICE] > 0],
                               a.kp[L.BODY_SLICE][a.vis[L.BODY_SLICE] > 0], atol=1e-5)


def test_input_formats(photo, avatar, tmp_path):
    gray = photo.mean(2).astype(np.uint8)
    assert load_image(gray).shape == (600, 512, 3)
    assert load_image(gray[..., None]).shape == (600, 512, 3)
    rgba = np.concatenate([photo, np.full((600, 512, 1), 255, np.uint8)], 2)
    np.testing.assert_array_equal(load_image(rgba), photo)
    np.testing.assert_array_equal(load_image(photo / 255.0), photo)
    a = Avatar.prepare(gray)
    assert a.vis[L.FACE_SLICE].all()
    # an odd size, larger than the detector's input: same framing relative to the photo
    big = np.repeat(np.repeat(photo, 3, 0), 3, 1)[:1799, :1535]
    b = Avatar.prepare(big)
    np.testing.assert_allclose(b.box / 3, avatar.box, rtol=0.03, atol=3)
    a = Avatar.prepare(default_avatar_path())
    assert a.name == "grace_hopper.jpg"
    with pytest.raises(TypeError):
        load_image(np.zeros((10, 10), bool))
    with pytest.raises(ValueError):
        load_image(np.zeros((40, 40, 2), np.uint8))


def test_save_load(avatar, tmp_path):
    avatar.features["appearance"] = np.arange(12, dtype=np.float32).reshape(3, 4)
    try:
        p = tmp_path / "a.npz"
        avatar.save(p)
        with np.load(p, allow_pickle=False) as z:  # plain arrays only
            assert "crop" in z.files
        b = Avatar.load(p)
    finally:
        avatar.features.clear()
    np.testing.assert_array_equal(b.crop, avatar.crop)
    np.testing.assert_array_equal(b.kp, avatar.kp)
    np.testing.assert_array_equal(b.source.canon_face, avatar.source.canon_face)
    assert b.source.hands_ok.dtype == bool and b.image_size == avatar.image_size
    np.testing.assert_array_equal(b.features["appearance"], np.arange(12, dtype=np.float32).reshape(3, 4))
    kp1, _ = compose.driving_keypoints(b.source, {})
    kp0, _ = compose.driving_keypoints(avatar.source, {})
    np.testing.assert_allclose(kp1, kp0)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(AvatarError, match="not an avatar"):
        Avatar.load(bad)


def test_errors(photo, tmp_path):
    with pytest.raises(FileNotFoundError):
        Avatar.prepare(tmp_path / "missing.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(AvatarError, match="cannot read"):
        Avatar.prepare(tmp_path / "junk.jpg")
    with pytest.raises(AvatarError, match="no face"):
        Avatar.prepare(np.full((400, 300, 3), 128, np.uint8))
    with pytest.raises(AvatarError, match="2 faces"):
        Avatar.prepare(np.concatenate([photo, photo[:, ::-1]], 1))
    # the same photo shrunk to a tiny face on a large canvas
    import cv2
    small = cv2.resize(photo, (64, 75), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 300, 3), 120, np.uint8)
    canvas[100:175, 100:164] = small
    with pytest.raises(AvatarError, match="too small|no face"):
        Avatar.prepare(canvas)
    with pytest.raises(AvatarError, match="px tall"):
        Avatar.prepare(photo, min_face_px=400)
    # a quarter of the face cut off by the photo's border, on each side
    a = Avatar.prepare(photo)
    fp = (a.face[:, :2] + 1) / 2 * a.box[2:] + a.box[:2]
    top, chin, left, right = fp[10, 1], fp[152, 1], fp[:, 0].min(), fp[:, 0].max()
    q = 0.3
    for cut in (photo[int(top + q * (chin - top)):], photo[:int(chin - q * (chin - top))],
                photo[:, int(left + q * (right - left)):], photo[:, :int(right - q * (right - left))]):
        with pytest.raises(AvatarError, match="cut off"):
            Avatar.prepare(cut)
    with pytest.raises(AvatarError, match="too small"):
        Avatar.prepare(np.zeros((8, 8, 3), np.uint8))


def test_inspect_photo(tmp_path, capsys):
    from chatanyone.cli import main
    out = tmp_path / "look.png"
    assert main(["inspect", default_avatar_path(), "-o", str(out)]) == 0
    import cv2
    img = cv2.imread(str(out))
    assert img.shape == (768, 512, 3)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    assert main(["inspect", str(blank), "-o", str(tmp_path / "x.png")]) == 2
    assert "no face" in capsys.readouterr().err


_PREPARE = ("import logging, sys\n"
            "if sys.argv[1] == 'debug': logging.basicConfig(level=logging.DEBUG)\n"
            "import chatanyone as ca\n"
            "from chatanyone.assets import default_avatar_image\n"
            "ca.Avatar.prepare(default_avatar_image())\n")


def test_native_log_lines_hidden_unless_debug():
    """LiteRT writes its XNNPACK INFO line to stderr from C++: hidden by default, shown when the
    chatanyone logger is at DEBUG (the CLI's -v)."""
    import subprocess
    import sys

    def stderr(mode):
        r = subprocess.run([sys.executable, "-c", _PREPARE, mode], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stderr

    noisy = ("W0000", "XNNPACK", "absl::InitializeLog")
    quiet = stderr("quiet")
    assert not any(n in quiet for n in noisy), quiet[-2000:]
    assert any(n in stderr("debug") for n in noisy)  # the lines exist: hiding them is what passed
