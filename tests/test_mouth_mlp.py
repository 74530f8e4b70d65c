"""The nonlinear mouth predictor: the MLP kind of ``motion_mouth.npz`` (motion/mouth.py), its
training (train/mouth.py: ``train_mlp``, k-fold by speaker) and the loader's errors on bad files."""
from __future__ import annotations

import numpy as np
import pytest

from chatanyone.motion.mouth import MouthPredictor, mlp_forward


def _toy_mlp(path, *, past=2, look=1, hop=1, d=4, e=3, hidden=(8,), skip=True, seed=0, **override):
    rng = np.random.default_rng(seed)
    k = (past + look + 1) * d + hop
    sizes = [k, *hidden, e]
    arrays = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"mlp_W{i}"] = (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        arrays[f"mlp_b{i}"] = rng.normal(size=b).astype(np.float32)
    if skip:
        arrays["skip_W"] = (0.1 * rng.normal(size=(k, e))).astype(np.float32)
        arrays["skip_b"] = rng.normal(size=e).astype(np.float32)
    arrays.update(kind="mlp", n_layers=np.int32(len(sizes) - 1), ymean=rng.normal(size=e).astype(np.float32),
                  mean=rng.normal(size=768).astype(np.float32), std=(1 + rng.random(768)).astype(np.float32),
                  pca=(rng.normal(size=(768, d)) / 30).astype(np.float32), look=np.int32(look),
                  past=np.int32(past), hop=np.int32(hop), seg=np.int32(24), ref_amp=np.float32(0.02),
                  open_vec=rng.normal(size=e).astype(np.float32), A=np.eye(e, dtype=np.float32),
                  gain=np.float32(1.4), rest=np.zeros(e, np.float32))
    arrays.update(override)
    np.savez(path, **arrays)
    return arrays


def test_mlp_predictor_is_the_documented_map(tmp_path):
    a = _toy_mlp(tmp_path / "m.npz")
    m = MouthPredictor(tmp_path / "m.npz")
    assert m.kind == "mlp" and m.n_exp == 3 and m.n_tokens == 4
    rng = np.random.default_rng(1)
    tok = rng.normal(size=(6, m.n_tokens, 768)).astype(np.float32)
    z = (((tok - a["mean"]) / a["std"]) @ a["pca"]).reshape(6, -1)
    h = np.concatenate([z, np.ones((6, 1), np.float32)], 1)
    layers = [(a["mlp_W0"], a["mlp_b0"]), (a["mlp_W1"], a["mlp_b1"])]
    y = mlp_forward(layers, h) + h @ a["skip_W"] + a["skip_b"]
    u = a["open_vec"] / (a["open_vec"] @ a["open_vec"])
    want = y + (a["gain"] - 1) * ((y - a["ymean"]) @ a["open_vec"])[:, None] * u[None]
    got = m.predict(tok, 0)
    assert got.shape == (6, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(m.predict(tok, 0), got)  # deterministic
    # the skip path is used: without it the output differs
    _toy_mlp(tmp_path / "n.npz", skip=False)
    assert not np.allclose(MouthPredictor(tmp_path / "n.npz").predict(tok, 0), got)
    # a segment's frames are the per-frame predictions of their token windows, whatever the chunk
    feats = rng.normal(size=(12, 768)).astype(np.float32)
    seg = m.predict_segment(feats, 1)
    assert seg.shape == (1, 3)
    j = 12 - m.look - 1
    np.testing.assert_allclose(seg[0], m.predict(feats[None, j - m.past:j + m.look + 1], 0)[0], rtol=1e-5, atol=1e-5)
    for n in range(m.n_tokens, 12):  # a stream fed frame by frame gives each frame once, the same
        one = m.predict_segment(feats[:n], 1)[0]
        jj = n - m.look - 1
        np.testing.assert_allclose(one, m.predict(feats[None, jj - m.past:jj + m.look + 1], 0)[0], rtol=1e-5, atol=1e-5)


def test_bad_weights_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no mouth predictor"):
        MouthPredictor(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="text.npz"):
        MouthPredictor(tmp_path / "text.npz")
    a = _toy_mlp(tmp_path / "ok.npz")
    del a["pca"]
    np.savez(tmp_path / "nopca.npz", **a)
    with pytest.raises(ValueError, match="pca"):
        MouthPredictor(tmp_path / "nopca.npz")
    _toy_mlp(tmp_path / "chain.npz", mlp_W1=np.zeros((9, 3), np.float32))
    with pytest.raises(ValueError, match="do not chain"):
        MouthPredictor(tmp_path / "chain.npz")
    _toy_mlp(tmp_path / "skip.npz", skip_W=np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="skip_W"):
        MouthPredictor(tmp_path / "skip.npz")
    _toy_mlp(tmp_path / "first.npz", mlp_W0=np.zeros((7, 8), np.float32))
    with pytest.raises(ValueError, match="first layer"):
        MouthPredictor(tmp_path / "first.npz")
    _toy_mlp(tmp_path / "kind.npz", kind="forest")
    with pytest.raises(ValueError, match="forest"):
        MouthPredictor(tmp_path / "kind.npz")
    _toy_mlp(tmp_path / "rest.npz", rest=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="rest"):
        MouthPredictor(tmp_path / "rest.npz")
    _toy_mlp(tmp_path / "nan.npz", open_vec=np.array([1.0, np.nan, 0.0], np.float32))
    with pytest.raises(ValueError, match="open_vec"):
        MouthPredictor(tmp_path / "nan.npz")


def _toy_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.stack([np.abs(x[:, 0]), x[:, 1] * x[:, 2], x[:, 3] - 0.5 * x[:, 4]], 1)
    return x, (y + 0.05 * rng.normal(size=y.shape)).astype(np.float32)


@pytest.fixture
def one_thread():
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_train_mlp_learns_what_a_ridge_cannot(one_thread):
    from chatanyone.train.mouth import mlp_predict, ridge, train_mlp
    x, y = _toy_data(3000, 0)
    xt, yt = _toy_data(1000, 1)
    w = np.ones(len(x), np.float32)
    open_vec = np.array([1.0, 0.0, 0.0], np.float32)
    model = train_mlp(x, y, w, open_vec, hidden=(64,), bottleneck=16, skip=True, steps=400, batch=256, lr=3e-3,
                      drop_in=0.0, drop=0.0, noise=0.0, wd=0.0, seed=0)
    # the exported numpy model (standardization, bottleneck and output scale folded in)
    assert len(model["layers"]) == 2 and model["layers"][0][0].shape == (7, 64)
    pred = mlp_predict(model, xt)
    W, b = ridge(x, y, w, 1e-3)
    lin = xt @ W + b
    r2 = lambda p: 1 - ((p - yt) ** 2).mean(0) / yt.var(0)  # noqa: E731
    assert r2(pred)[0] > 0.8 and r2(lin)[0] < 0.1      # |x0|: nonlinear
    assert r2(pred)[1] > 0.6 and r2(lin)[1] < 0.1      # x1 x2
    assert r2(pred)[2] > 0.95                          # the linear part through the skip path


def test_train_mlp_resumes_from_its_checkpoint(tmp_path, one_thread):
    from chatanyone.train.mouth import train_mlp
    x, y = _toy_data(800, 0)
    w = np.ones(len(x), np.float32)
    kw = dict(hidden=(16,), skip=True, steps=120, batch=64, seed=3)
    full = train_mlp(x, y, w, np.ones(3, np.float32), **kw)

    class Stop(Exception):
        pass

    def stop(step, model):
        raise Stop

    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        train_mlp(x, y, w, np.ones(3, np.float32), ckpt=ck, ckpt_every=40, evals=(80,), on_eval=stop, **kw)
    assert ck.is_file()
    resumed = train_mlp(x, y, w, np.ones(3, np.float32), ckpt=ck, ckpt_every=40, **kw)
    for (Wa, ba), (Wb, bb) in zip(full["layers"], resumed["layers"]):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ba, bb, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(full["skip"][0], resumed["skip"][0], rtol=1e-6, atol=1e-7)


def test_speaker_folds_keep_a_speaker_together():
    from chatanyone.train.mouth import speaker_folds, speaker_of
    assert speaker_of("styletalk_feifeili_clip2_short") == speaker_of("styletalk_feifeili_clip3")
    assert speaker_of("eamm_mead_M030_sad_3_001") == speaker_of("spectre_mead_M030_angry_016")
    assert speaker_of("spectre_mead_M003_disgusted_015") != speaker_of("spectre_mead_M030_angry_016")
    names = ["styletalk_feifeili_clip1", "styletalk_feifeili_clip3", "eamm_mead_M030_sad_3_001",
             "spectre_mead_M030_angry_016", "pcavs_vox2_00015", "pcavs_vox2_00067", "smirk_dafoe",
             "mimictalk_Trump_10s"]
    folds = speaker_folds(names, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(names)))
    fold_of = {i: f for f, idx in enumerate(folds) for i in idx}
    assert fold_of[0] == fold_of[1] and fold_of[2] == fold_of[3]
    assert all(len(f) for f in folds)
    assert [f.tolist() for f in speaker_folds(names, 3)] == [f.tolist() for f in folds]
    with pytest.raises(ValueError):
        speaker_folds(names[:2], 3)


def test_saved_mlp_predictor_matches_training(tmp_path):
    """``save_predictor`` writes what ``MouthPredictor`` reads: the run-time prediction equals the
    training code's for an MLP with a skip path (needs the face basis and the Whisper encoder)."""
    from chatanyone.train.mouth import apply, design, save_predictor
    try:
        from chatanyone.audio.whisper import model_dir
        from chatanyone.spec.head import load_basis
        model_dir()
        E = load_basis().components.shape[0]
    except Exception:
        pytest.skip("no Whisper encoder or face basis")
    rng = np.random.default_rng(0)
    past, look, d = 4, 1, 3
    k = (past + look + 1) * d + 1
    model = dict(kind="mlp", layers=[(rng.normal(size=(k, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)),
                                     (rng.normal(size=(5, E)).astype(np.float32), rng.normal(size=E).astype(np.float32))],
                 skip=(rng.normal(size=(k, E)).astype(np.float32), rng.normal(size=E).astype(np.float32)),
                 ymean=rng.normal(size=E).astype(np.float32), mean=np.zeros(768, np.float32),
                 std=np.ones(768, np.float32), pca=(rng.normal(size=(768, d)) / 30).astype(np.float32),
                 look=look, hop=1, past=past, seg=24, ref_amp=np.float32(0.02), gain=np.float32(1.3))
    open_vec = rng.normal(size=E).astype(np.float32)
    save_predictor(tmp_path / "m.npz", model, open_vec)
    m = MouthPredictor(tmp_path / "m.npz")
    tok = rng.normal(size=(4, m.n_tokens, 768)).astype(np.float32)
    want = apply(dict(model, open_vec=open_vec), design(tok, model["mean"], model["std"], model["pca"]), 0)
    np.testing.assert_allclose(m.predict(tok, 0), want, rtol=1e-4, atol=1e-4)
    # a model with its own opening direction: the file carries it, and its gain opens along it
    d = rng.normal(size=E).astype(np.float32)
    model["open_dir"] = d / float(d @ open_vec)
    save_predictor(tmp_path / "d.npz", model, open_vec)
    md = MouthPredictor(tmp_path / "d.npz")
    np.testing.assert_allclose(md.open_dir, model["open_dir"], rtol=1e-6)
    want_d = apply(dict(model, open_vec=open_vec), design(tok, model["mean"], model["std"], model["pca"]), 0)
    np.testing.assert_allclose(md.predict(tok, 0), want_d, rtol=1e-4, atol=1e-4)
    assert np.abs(want_d - want).max() > 1e-3


def test_mlp_averaged_with_a_ridge_is_one_mlp():
    from chatanyone.train.mouth import mlp_predict, with_ridge
    rng = np.random.default_rng(0)
    model = dict(kind="mlp", layers=[(rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)),
                                     (rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32))],
                 skip=(rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)),
                 ymean=np.zeros(3, np.float32))
    W, b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    z = rng.normal(size=(10, 4)).astype(np.float32)
    ens = with_ridge(model, W, b, 0.3)
    np.testing.assert_allclose(mlp_predict(ens, z), 0.7 * mlp_predict(model, z) + 0.3 * (z @ W + b), rtol=1e-4, atol=1e-4)
