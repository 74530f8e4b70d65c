"""The learned mouth refiner (render/refine.py, train/mouth_refine.py): the ONNX graph computes what
the PyTorch network does, it changes pixels inside the mouth crop only, and the renderer's
paste-back stays bit-identical outside the region with it on."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone.render import refine as R


def _face(center=(120.0, 140.0), width=40.0, open_=12.0, angle=0.1):
    """A plausible face mesh [478, 2] in pixels: the packaged canonical face, scaled so the mouth is
    ``width`` px wide, turned by ``angle``, the inner lips ``open_`` px apart."""
    from chatanyone.spec.head import load_basis
    from chatanyone.render import mesh as M
    c = np.asarray(load_basis().canonical, np.float64)[:, :2].copy()
    c[M.LIP_LOWER_INNER[1:-1], 1] += open_ / width * abs(c[291, 0] - c[61, 0])
    s = width / abs(c[291, 0] - c[61, 0])
    m = c[M.LIP_UPPER_OUTER].mean(0)
    p = (c - m) * s
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return p @ rot.T + np.asarray(center)


def _export_random(tmp_path, seed=0, crop=None):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from chatanyone.train import mouth_refine as T
    RefineNet, _ = T._nets()
    torch.manual_seed(seed)
    net = RefineNet(crop=crop)
    with torch.no_grad():          # a head that is not the identity: the delta is non-zero
        net.head.weight.normal_(0, 0.05)
        net.head.bias.fill_(0.5)
    path = tmp_path / "refine.onnx"
    T.export(None, path, net=net)
    return net, path


def test_onnx_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    net, path = _export_random(tmp_path)
    import onnxruntime as ort
    rng = np.random.default_rng(1)
    x = rng.random((1, R.N_IN, R.CROP, R.CROP)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.shape == (1, 3, R.CROP, R.CROP)
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    assert path.stat().st_size < 2_000_000


def test_refiner_changes_only_the_mouth_crop(tmp_path):
    import cv2
    _, path = _export_random(tmp_path)
    rng = np.random.default_rng(2)
    h, w = 260, 240
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = R.MouthRefiner(src, _face(open_=0.5), path=path)
    face = _face(center=(110.0, 150.0), open_=14.0, angle=0.2)
    img = rng.random((h, w, 3)).astype(np.float32) * 255
    before = img.copy()
    ref(img, face)
    changed = np.any(img != before, axis=-1)
    assert changed.sum() > 200
    # every changed pixel lies inside the crop (its inverse image in the region)
    a = R.mouth_affine(face)
    inv = cv2.invertAffineTransform(a)
    yy, xx = np.nonzero(changed)
    cp = np.stack([xx, yy], 1).astype(np.float64) @ a[:, :2].T + a[:, 2]
    assert cp.min() > -1.0 and cp.max() < R.CROP
    # and the crop sits on the mouth: its centre maps to the lips' centre
    centre = inv @ np.array([(R.CROP - 1) / 2, (R.CROP - 1) / 2, 1.0])
    from chatanyone.render import mesh as M
    lips = face[M.LIP_UPPER_OUTER + M.LIP_LOWER_OUTER].mean(0)
    assert np.linalg.norm(centre - lips) < 3.0


def test_crop_size_comes_from_the_graph(tmp_path):
    """A refiner exported at another crop size (the quality preset's) runs at that size and still
    changes pixels inside its crop only."""
    import cv2
    _, path = _export_random(tmp_path, crop=32)
    rng = np.random.default_rng(4)
    h, w = 200, 200
    ref = R.MouthRefiner(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), _face(open_=0.5), path=path)
    assert ref.crop == 32
    face = _face(center=(100.0, 110.0), open_=10.0)
    img = rng.random((h, w, 3)).astype(np.float32) * 255
    before = img.copy()
    ref(img, face)
    changed = np.any(img != before, axis=-1)
    assert changed.sum() > 50
    a = R.mouth_affine(face, 32)
    yy, xx = np.nonzero(changed)
    cp = np.stack([xx, yy], 1).astype(np.float64) @ a[:, :2].T + a[:, 2]
    assert cp.min() > -1.0 and cp.max() < 32


def test_bad_weights_give_a_clear_error(tmp_path):
    """A missing file, a file that is no ONNX graph, and a graph of the wrong shape each raise an
    error naming the file."""
    src = np.zeros((120, 120, 3), np.uint8)
    face = _face(center=(60.0, 60.0), width=30.0)
    with pytest.raises(FileNotFoundError, match="nothere.onnx"):
        R.MouthRefiner(src, face, path=tmp_path / "nothere.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx graph at all")
    with pytest.raises(ValueError, match="junk.onnx.*not a mouth refiner"):
        R.MouthRefiner(src, face, path=junk)
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])])
    wrong = tmp_path / "wrong.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), wrong)
    with pytest.raises(ValueError, match="wrong.onnx.*one input"):
        R.MouthRefiner(src, face, path=wrong)


def test_mouth_affine_rejects_bad_points():
    with pytest.raises(ValueError, match="face_px"):
        R.mouth_affine(np.zeros((10, 2)))
    bad = _face()
    bad[61] = np.nan
    with pytest.raises(ValueError, match="face_px"):
        R.mouth_affine(bad)


def test_window_is_zero_on_the_border():
    win = R.window()
    assert win.shape == (R.CROP, R.CROP)
    assert win[0].max() == 0 and win[-1].max() == 0 and win[:, 0].max() == 0 and win[:, -1].max() == 0
    assert win[R.CROP // 2, R.CROP // 2] == 1


@pytest.fixture(scope="module")
def avatar():
    pytest.importorskip("mediapipe")
    from chatanyone.assets import default_avatar_image
    from chatanyone import Avatar
    return Avatar.prepare(default_avatar_image())


def test_renderer_with_refiner_keeps_paste_back_and_changes_only_the_mouth(avatar, tmp_path):
    import cv2
    from chatanyone.render.geometry import GeomRenderer
    _, path = _export_random(tmp_path)
    off = GeomRenderer(avatar, 384, refine_mouth=False)
    on = GeomRenderer(avatar, 384, refine_mouth=False)
    on.refiner = R.MouthRefiner(on._base, on.src_face_px, path=path)
    assert off.refiner is None
    W, H = on.size
    resized = cv2.resize(avatar.photo, (W, H), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = on.rect
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    rng = np.random.default_rng(0)
    for _ in range(3):
        m = {"exp": rng.standard_normal(off.basis.n_exp).astype(np.float32) * off.basis.std * 1.5}
        a, b = off.render(m), on.render(m)
        np.testing.assert_array_equal(b[outside], resized[outside])
        diff = np.any(a != b, axis=-1)
        assert diff.any()
        # the differences lie in the mouth crop of the driving face (frame pixels)
        aff = R.mouth_affine(on.face_px)
        yy, xx = np.nonzero(diff)
        cp = np.stack([xx - x0, yy - y0], 1).astype(np.float64) @ aff[:, :2].T + aff[:, 2]
        assert cp.min() > -1.0 and cp.max() < R.CROP


def test_shipped_refiner_through_the_config_keeps_paste_back(avatar):
    """The shipped weights load with SessionConfig(refine_mouth=True), run in the renderer, and leave
    every pixel outside the animated region the photo's; off by default."""
    import cv2
    from chatanyone import SessionConfig
    from chatanyone.pipeline import Pipeline
    if not R.available():
        pytest.skip("mouth_refine.onnx not installed")
    assert SessionConfig().refine_mouth is False
    with pytest.raises(TypeError, match="refine_mouth"):
        SessionConfig(refine_mouth="yes")
    pipe = Pipeline(avatar, SessionConfig(refine_mouth=True, output_size=384))
    r = pipe.renderer
    assert r.refiner is not None
    W, H = r.size
    resized = cv2.resize(avatar.photo, (W, H), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = r.rect
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    rng = np.random.default_rng(3)
    m = {"exp": rng.standard_normal(r.basis.n_exp).astype(np.float32) * r.basis.std * 1.5}
    img = r.render(m)
    np.testing.assert_array_equal(img[outside], resized[outside])
    assert "refine" in r.per_frame_ms()
    # the fast preset's refiner through the Session's path is the one GeomRenderer loads itself
    from chatanyone.render.geometry import GeomRenderer
    own = GeomRenderer(avatar, 384, refine_mouth=True, refine_region=SessionConfig().refine_region)
    assert own.refiner.crop == r.refiner.crop == R.CROP
    np.testing.assert_array_equal(own.render(m), img)


def test_presets_name_their_refiners():
    """fast: weights/mouth_refine.onnx on a 64 px crop; quality: its own file on a 128 px crop."""
    from chatanyone.render.presets import get_preset
    f, q = get_preset("fast"), get_preset("quality")
    assert (f.mouth_refiner, f.mouth_crop) == (R.MODEL_NAME, R.CROP)
    assert q.mouth_crop == 2 * R.CROP and q.mouth_refiner != f.mouth_refiner
    assert R.default_path("quality").name == q.mouth_refiner
    with pytest.raises(ValueError, match="preset"):
        R.default_path("huge")


def test_quality_session_runs_its_own_refiner_in_the_mouth_crop(avatar):
    """SessionConfig(preset="quality", refine_mouth=True) loads the quality preset's 128 px refiner;
    it changes pixels inside its mouth crop only (the same frame without it for comparison)."""
    from chatanyone import SessionConfig
    from chatanyone.pipeline import Pipeline
    if not R.available("quality"):
        pytest.skip("mouth_refine_quality.onnx not installed")
    # (the region refiner off: downstream of the mouth, it would carry the mouth's change further)
    pipe = Pipeline(avatar, SessionConfig(preset="quality", refine_mouth=True, refine_region=False, output_size=384))
    r = pipe.renderer
    assert r.refiner is not None and r.refiner.crop == 128
    W, H = r.size
    x0, y0, x1, y1 = r.rect
    rng = np.random.default_rng(5)
    m = {"exp": rng.standard_normal(r.basis.n_exp).astype(np.float32) * r.basis.std * 1.5}
    on = r.render(m)
    face = r.face_px.copy()
    ref, r.refiner = r.refiner, None
    off = r.render(m)
    r.refiner = ref
    diff = np.any(on != off, axis=-1)
    assert diff.sum() > 20
    aff = R.mouth_affine(face, 128)
    yy, xx = np.nonzero(diff)
    assert yy.min() >= y0 and yy.max() < y1 and xx.min() >= x0 and xx.max() < x1
    cp = np.stack([xx - x0, yy - y0], 1).astype(np.float64) @ aff[:, :2].T + aff[:, 2]
    assert cp.min() > -1.0 and cp.max() < 128


def test_wrong_or_missing_preset_refiner(tmp_path, monkeypatch):
    """The quality preset given a 64 px refiner file raises an error naming the file and both crop
    sizes; a preset whose file is not installed leaves the renderer without a refiner; an explicit
    path that does not exist raises FileNotFoundError."""
    from types import SimpleNamespace
    _, path64 = _export_random(tmp_path)
    face = _face(center=(60.0, 60.0), width=30.0)
    rend = SimpleNamespace(_base=np.zeros((120, 120, 3), np.float32), src_face_px=face, refiner="before")
    monkeypatch.setattr(R, "default_path", lambda preset="fast": path64)
    with pytest.raises(ValueError, match=r"refine\.onnx.*128 px crop.*takes 64 px"):
        R.attach(rend, "quality")
    assert R.attach(rend, "fast") is True and rend.refiner.crop == R.CROP
    monkeypatch.setattr(R, "default_path", lambda preset="fast": tmp_path / "absent.onnx")
    assert R.attach(rend, "quality") is False and rend.refiner is None
    with pytest.raises(FileNotFoundError, match="absent2.onnx"):
        R.attach(rend, "quality", tmp_path / "absent2.onnx")


def test_init_from_a_refiner_of_another_crop(tmp_path):
    """The network is fully convolutional: a 128 px run starts from a 64 px graph's weights (all but
    the window, which follows the crop)."""
    torch = pytest.importorskip("torch")
    from chatanyone.train import mouth_refine as T
    net64, path = _export_random(tmp_path)
    RefineNet, _ = T._nets()
    net128 = RefineNet(crop=128)
    net128.load_state_dict(T._onnx_state(path, net128, torch))
    assert net128.win.shape[-1] == 128
    for k, v in net64.state_dict().items():
        if k != "win":
            assert torch.equal(net128.state_dict()[k], v), k


def _fake_data(path, n=24, seed=0):
    """Smooth random crops (as photos are: JPEG keeps them within a few levels) and binary masks."""
    import cv2
    rng = np.random.default_rng(seed)
    c = R.CROP

    def smooth(k):
        return np.stack([cv2.resize(rng.uniform(0, 255, (8, 8, k)).astype(np.float32), (c, c),
                                    interpolation=cv2.INTER_CUBIC).reshape(c, c, k) for _ in range(n)]).clip(0, 255).astype(np.uint8)

    x = np.concatenate([smooth(3), (rng.random((n, c, c, 2)) > 0.5).astype(np.uint8) * 255, smooth(3)], -1)
    x[: n // 2, ..., 5:8] = x[0, ..., 5:8]               # two sources, each crop shared by its samples
    x[n // 2:, ..., 5:8] = x[n // 2, ..., 5:8]
    y = smooth(3)
    clip = np.array(["a"] * (n // 2) + ["b"] * (n - n // 2))
    np.savez(path, x=x, y=y, clip=clip)
    return x, y, clip


def test_packed_data_round_trips(tmp_path):
    """The packed copy (JPEG crops, masks and each source's crop once) reads back as the same
    samples: masks and source crops exactly, the crops within JPEG's error."""
    from chatanyone.train import mouth_refine as T
    x, y, clip = _fake_data(tmp_path / "d.npz")
    T.pack(tmp_path / "d.npz", tmp_path / "p.npz")
    x2, y2, clip2 = T.load_data(tmp_path / "p.npz")
    assert x2.shape == x.shape and y2.shape == y.shape and list(clip2) == list(clip)
    np.testing.assert_array_equal(x2[..., 3:], x[..., 3:])
    assert np.abs(x2[..., :3].astype(int) - x[..., :3]).mean() < 3
    assert np.abs(y2.astype(int) - y).mean() < 3
    x3, y3, _ = T.load_data(tmp_path / "d.npz")                         # the built format reads as it is
    np.testing.assert_array_equal(x3, x)


def test_training_stops_at_max_steps_and_resumes(tmp_path):
    pytest.importorskip("torch")
    from chatanyone.train import mouth_refine as T
    import torch
    _fake_data(tmp_path / "d.npz")
    T.train(tmp_path / "d.npz", tmp_path / "run", minutes=5, batch=2, max_steps=3)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["state"]["step"] == 3
    T.train(tmp_path / "d.npz", tmp_path / "run", minutes=5, batch=2, max_steps=5)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["state"]["step"] == 5


def test_bench_refiner_flag_defaults_to_the_config():
    """``chatanyone bench`` leaves the refiner to SessionConfig unless --refine-mouth or
    --no-refine-mouth says otherwise."""
    from chatanyone.cli import build_parser
    p = build_parser()
    assert p.parse_args(["bench"]).refine_mouth is None
    assert p.parse_args(["bench", "--refine-mouth"]).refine_mouth is True
    assert p.parse_args(["bench", "--no-refine-mouth"]).refine_mouth is False
