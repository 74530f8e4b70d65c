"""The learned region refiner (render/region_refine.py, train/region_refine.py): its input
features, the ONNX graph against the PyTorch network, and a renderer with it on: pixels outside the
region bit-identical to the photo, the region's border unchanged, clear errors for bad files."""
from __future__ import annotations

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import default_avatar_image
from chatanyone.render import region_refine as RR
from chatanyone.render.geometry import GeomRenderer


@pytest.fixture(scope="module")
def avatar():
    return ca.Avatar.prepare(default_avatar_image())


def _export_random(tmp_path, seed=0):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from chatanyone.train import region_refine as T
    RegionNet, _ = T._nets()
    torch.manual_seed(seed)
    net = RegionNet()
    with torch.no_grad():          # a head that is not the identity: the change is not zero
        net.head.weight.normal_(0, 0.05)
        net.head.bias.fill_(0.2)
    path = tmp_path / "region.onnx"
    T.export(None, path, net=net)
    return net, path


def _weights(tmp_path):
    """The shipped weights, or (without them) a random network exported here."""
    if RR.available():
        return RR.default_path()
    return _export_random(tmp_path)[1]


def test_features_identity_warp_and_shapes():
    h, w = 101, 67
    img = np.full((h, w, 3), 128.0, np.float32)
    x = RR.features(img, RR.identity_grid(h, w), None)
    assert x.shape == RR.net_size(h, w) + (RR.N_IN,)
    np.testing.assert_allclose(x[..., :3], 128 / 255, atol=1e-5)
    assert np.abs(x[..., 3:5]).max() < 0.05          # no displacement
    assert np.all(x[..., 5] == 1.0)                   # no layers: all person
    g = RR.identity_grid(h, w)
    g[..., 0] += 0.05                                 # every pixel sampled 0.05 to the right
    x = RR.features(img, g, np.zeros((h, w), np.float32))
    np.testing.assert_allclose(x[..., 3], 0.05 * RR.FLOW_GAIN, atol=0.05)
    assert np.all(x[..., 5] == 0.0)
    with pytest.raises(ValueError, match="share their height and width"):
        RR.features(img, RR.identity_grid(h, w + 1), None)
    assert RR.pad_to(x).shape[0] % RR.MULTIPLE == 0 and RR.pad_to(x).shape[1] % RR.MULTIPLE == 0


def test_onnx_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    net, path = _export_random(tmp_path)
    import onnxruntime as ort
    x = np.random.default_rng(1).random((1, RR.N_IN, 48, 40)).astype(np.float32)   # any multiple of 8
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.shape == (1, 3, 48, 40) and np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


def test_refiner_changes_the_region_but_not_its_border(tmp_path):
    r = RR.RegionRefiner(_weights(tmp_path))
    h, w = 160, 120
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.float32)
    before = img.copy()
    r(img, RR.identity_grid(h, w), np.ones((h, w), np.float32))
    d = np.abs(img - before)
    assert d.max() > 0.5                                  # it does something
    for edge in (d[0], d[-1], d[:, 0], d[:, -1]):          # the outermost pixels stay
        assert edge.max() == 0.0


def test_renderer_with_the_refiner_keeps_the_photo_outside_the_region(avatar, tmp_path, monkeypatch):
    import cv2
    path = _weights(tmp_path)
    monkeypatch.setattr(RR, "default_path", lambda: path)
    plain = GeomRenderer(avatar, 384)
    refined = GeomRenderer(avatar, 384, refine_region=True)
    assert refined.region_refiner is not None and plain.region_refiner is None
    W, H = refined.size
    resized = cv2.resize(avatar.photo, (W, H), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = refined.rect
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    m = {"head": np.array([0.12, -0.06, 0.05, 0.01, -0.01, 0.02])}
    a, b = plain.render(m), refined.render(m)
    np.testing.assert_array_equal(b[outside], resized[outside])
    np.testing.assert_array_equal(b[y0, x0:x1], a[y0, x0:x1])        # the region's border: as without it
    np.testing.assert_array_equal(b[y0:y1, x0], a[y0:y1, x0])
    assert np.abs(b.astype(int) - a).max() > 0                       # and inside it refines
    assert "refine_region" in refined.per_frame_ms()


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="region refiner not found"):
        RR.RegionRefiner(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(ValueError, match="not a region refiner"):
        RR.RegionRefiner(junk)
    from chatanyone.render import refine as MR
    if MR.available():          # a graph of another kind: the mouth refiner's
        with pytest.raises(ValueError, match="region refiner takes one input"):
            RR.RegionRefiner(MR.default_path())


def test_session_config_checks_refine_region():
    cfg = ca.SessionConfig()
    assert cfg.refine_region is None           # by default: on in reenactment, off in a Session
    assert cfg.region_refiner_on(True) is True and cfg.region_refiner_on(False) is False
    on = ca.SessionConfig(refine_region=True)
    assert on.region_refiner_on(False) is True and on.region_refiner_on(True) is True
    assert ca.SessionConfig(refine_region=False).region_refiner_on(True) is False
    with pytest.raises(TypeError, match="refine_region"):
        ca.SessionConfig(refine_region="yes")


def test_reenactment_runs_the_refiner_and_a_session_does_not(avatar):
    from chatanyone.pipeline import Pipeline
    if not RR.available():
        pytest.skip("region_refine.onnx not installed")
    cfg = ca.SessionConfig(output_size=256)
    assert Pipeline(avatar, cfg, video_driven=True).renderer.region_refiner is not None
    assert Pipeline(avatar, cfg).renderer.region_refiner is None
    assert Pipeline(avatar, ca.SessionConfig(output_size=256, refine_region=True)).renderer.region_refiner is not None
