"""Motion model: layout, streaming features, sampler, generator (tiny model trained here), ONNX
parity. The tests of the tiny model need torch and skip without it (the others run anyway); the
shipped-model checks are in test_motion_shipped.py. DDIM is checked against the one oracle in
tests/reference/ddim.py."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from chatanyone.audio.features import log_mel
from chatanyone.motion.sampler import (cosine_alphas_cumprod, ddim_sample, ddim_step_reference, ddim_timesteps,
                                       native_ops)
from chatanyone.spec import motion_layout as layout
from reference.ddim import ddim_sample_ref, ddim_step_ref


# ------------------------------------------------------------------------------ no torch needed

def test_layout_roundtrip():
    rng = np.random.default_rng(0)
    head, exp, eye = rng.normal(size=(7, 6)), rng.normal(size=(7, 12)), rng.normal(size=(7, 4))
    h, e, y = layout.unpack_face(layout.pack_face(head, exp, eye), 12)
    np.testing.assert_allclose(h, head, rtol=1e-6)
    np.testing.assert_allclose(e, exp, rtol=1e-6)
    np.testing.assert_allclose(y, eye, rtol=1e-6)
    body, hands, ok = rng.normal(size=(7, 8, 2)), rng.normal(size=(7, 2, 21, 2)), np.array([[1, 0]] * 7)
    b, hh, o = layout.unpack_body(layout.pack_body(body, hands, ok))
    np.testing.assert_allclose(b, body, rtol=1e-6)
    np.testing.assert_allclose(hh, hands, rtol=1e-6)
    np.testing.assert_array_equal(o, ok)


def test_timesteps_and_schedule():
    ac = cosine_alphas_cumprod(1000)
    assert ac.shape == (1000,) and np.all(np.diff(ac) < 0) and 0 < ac[-1] < 1e-6 and ac[0] < 1
    for k in (1, 2, 4, 8, 16, 1000):
        ts = ddim_timesteps(1000, k)
        assert ts.shape == (k,) and ts[0] == 999 and np.all(np.diff(ts) < 0) and ts[-1] >= 0


@pytest.mark.parametrize("pred", ["v", "eps", "x0"])
@pytest.mark.parametrize("clip", [None, 0.8])
def test_ddim_step_numpy_matches_oracle(pred, clip):
    """The run-time numpy step (the fallback loop's) against the formula (tests/reference)."""
    rng = np.random.default_rng(1)
    x, out, unc = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    for kw in ({}, {"uncond": unc, "guidance": 2.5}):
        got = ddim_step_reference(x, out, 0.3, 0.7, prediction=pred, clip_x0=clip, **kw)
        want = ddim_step_ref(x, out, 0.3, 0.7, prediction=pred, clip_x0=clip, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _toy_denoiser(x, t):
    # a fixed smooth function of x and t, returning (cond, uncond)
    c = np.tanh(x * 0.7 + t / 1000.0).astype(np.float32)
    return np.ascontiguousarray(c), np.ascontiguousarray((0.5 * c).astype(np.float32))


@pytest.mark.parametrize("backend", [
    "numpy", pytest.param("native", marks=pytest.mark.skipif(native_ops() is None,
                                                             reason="native extension (chatanyone.ops) not built"))])
@pytest.mark.parametrize("clip", [None, 1.5])
def test_ddim_sample_matches_oracle(backend, clip):
    """Both sampling loops (native, and the numpy fallback) against the oracle loop."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 25, 17)).astype(np.float32)
    ac = cosine_alphas_cumprod(1000)
    ts = ddim_timesteps(1000, 6)
    ref = ddim_sample_ref(_toy_denoiser, x, ts, ac, prediction="v", guidance=2.0, clip_x0=clip)
    got = ddim_sample(_toy_denoiser, x, ts, ac, prediction="v", guidance=2.0, clip_x0=clip, backend=backend)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", [
    "numpy", pytest.param("native", marks=pytest.mark.skipif(native_ops() is None,
                                                             reason="native extension (chatanyone.ops) not built"))])
@pytest.mark.parametrize("prediction", ["v", "eps", "x0"])
@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_led_window_starts_at_its_lead(backend, prediction, guidance, monkeypatch):
    """A window sampled with a lead (the join, scheduler.lead) gives the lead exactly where its
    weight is 1 and, with a denoiser that treats frames apart, is untouched past the lead."""
    from chatanyone.motion import window as W
    monkeypatch.setattr(W, "ddim_sample", lambda *a, **k: ddim_sample(*a, **k, backend=backend))
    T, D, K = 25, 6, 4

    def net(x, t, **feeds):  # every row the same function of x: cond and uncond differ by scale
        c = np.tanh(x * 0.7 + np.asarray(t).reshape(-1, 1, 1) / 1000.0).astype(np.float32)
        return c * np.linspace(1.0, 0.5, x.shape[0], dtype=np.float32).reshape(-1, 1, 1)

    settings = W.SamplingSettings(ddim_timesteps(1000, 4), cosine_alphas_cumprod(1000), prediction, guidance,
                                  5.0, np.full(D, 1.0, np.float32), 1.0)
    rng = np.random.default_rng(1)
    lead = rng.normal(size=(1, K, D)).astype(np.float32)
    weight = (0.5 * (1 + np.cos(np.pi * np.arange(K) / K))).astype(np.float32)
    base = dict(audio=np.zeros((1, 38, 4), np.float32), known=0, prefix_face=np.zeros((1, 8, D), np.float32),
                prefix_face_keep=0.0, prefix_body=np.zeros((1, 8, 3), np.float32), prefix_body_keep=0.0,
                style=np.zeros((1, 4), np.float32), style_keep=0.0, style_log_intensity=0.0, hands_rate=1.0)
    free, _ = W.sample_window(net, None, W.WindowConditions(**base), settings, window=T, seed=[0, 10])
    led, _ = W.sample_window(net, None, W.WindowConditions(**base, lead_face=lead, lead_weight=weight),
                             settings, window=T, seed=[0, 10])
    np.testing.assert_allclose(led[0, 0], lead[0, 0], atol=1e-5)         # weight 1: the lead itself
    np.testing.assert_allclose(led[0, K:], free[0, K:], atol=1e-5)       # past the lead: the window's own
    assert np.abs(led[0, 1:K] - free[0, 1:K]).max() > 1e-3                # in between: pulled


def _logmel_frontend():
    from chatanyone.motion.frontend import AudioFrontEnd
    from chatanyone.spec.motion_layout import AudioFrontEndSpec, MotionSpec
    stats = {"mel_floor": np.full(80, -11.0, np.float32), "mel_mean": np.zeros(80, np.float32),
             "mel_std": np.ones(80, np.float32)}
    return AudioFrontEnd(MotionSpec(audio=AudioFrontEndSpec(kind="logmel")), stats, hop=10)


def test_streaming_mel_matches_whole_clip():
    """The log-mel front end computes the stream's features as the whole clip's (to BLAS rounding:
    tests/test_audio_io.py states the guarantee)."""
    a = _audio(2.0)
    fe = _logmel_frontend()
    rng = np.random.default_rng(5)
    i = 0
    while i < a.size:
        n = int(rng.integers(1, 2000))
        fe.push_audio(a[i:i + n])
        i += n
    n_frames = fe.flush()
    assert n_frames == -(-a.size // 640) and fe.frames_ready == n_frames
    ref = log_mel(np.concatenate([a, np.zeros((-a.size) % 640, np.float32)]))
    np.testing.assert_allclose(fe._mel, ref[fe._mel0:], rtol=1e-5, atol=1e-5)


def test_frontend_memory_flat_over_long_stream():
    fe = _logmel_frontend()
    for k in range(12):
        fe.push_audio(_audio(1.0))
        fe.trim(fe.frames_ready - 20)
    assert fe._mel.shape[0] <= 4 * (fe.P + 20) + 8
    assert fe._pcm.size < 640 * 2


# --------------------------------------------------------------- a tiny model trained right here

TINY = {
    "face": {"d_model": 32, "n_layers": 1, "n_heads": 2, "mlp_ratio": 2, "d_cond": 16, "d_style": 16, "dropout": 0.0},
    "style": {"d": 32, "layers": 1},
    "body": {"d_model": 32, "n_layers": 1, "n_heads": 2, "mlp_ratio": 2, "d_cond": 16, "dropout": 0.0},
    "sampling": {"steps": 4, "guidance": 2.0, "clip_x0": 5.0, "hop": 10},
}


def _need_training():
    pytest.importorskip("torch", reason="training/export tests need torch (extra [train])")
    pytest.importorskip("onnx", reason="export needs onnx")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    _need_training()
    from chatanyone.train.motion import DEFAULT_CONFIG, make_synthetic_corpus, train
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_export"))
    import motion as export_motion  # onnx_export/motion.py

    root = tmp_path_factory.mktemp("motion")
    make_synthetic_corpus(root / "corpus", n_clips=3, seconds=6, n_exp=8)
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    cfg.update(copy.deepcopy(TINY))
    for part in ("face", "body"):
        train(part, root / "corpus", root / "run", minutes=5, max_steps=12, batch=8, threads=1, config=cfg,
              log_every_s=1e9)
    report = export_motion.export(root / "run", root / "run", root / "weights")
    return {"root": root, "weights": root / "weights", "report": report, "export": export_motion}


def _audio(seconds=3.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    return (0.3 * env * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def test_onnx_parity(tiny):
    rep = tiny["report"]
    for k in ("face_max_abs_diff", "style_max_abs_diff", "body_max_abs_diff"):
        assert rep[k] <= 1e-4, rep
    cfg = json.loads((tiny["weights"] / "motion_config.json").read_text())
    assert cfg["n_exp"] == 8 and cfg["window"] == 25


def test_generator_shapes_and_frame_count(tiny):
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(weights_dir=tiny["weights"], seed=0)
    a = _audio(3.3)
    g.push_audio(a)
    # before flush: only whole windows with their lookahead
    out = g.generate_all()
    assert out is not None and len(out) % g.hop == 0
    assert len(out) + g.L <= a.size // 640
    g.flush()
    rest = g.generate_all()
    total = len(out) + len(rest)
    assert total == -(-a.size // 640)  # every sample covered, one frame per 640 samples
    f = MotionFrames_concat = layout.MotionFrames.concat([out, rest])
    assert f.start == 0 and rest.start == len(out)
    assert f.head.shape == (total, 6) and f.exp.shape == (total, 8) and f.eye.shape == (total, 4)
    assert f.body.shape == (total, 8, 2) and f.hands.shape == (total, 2, 21, 2) and f.hands_ok.shape == (total, 2)
    assert all(np.all(np.isfinite(getattr(f, k))) for k in ("head", "exp", "eye", "body", "hands"))
    assert set(np.unique(f.hands_ok)) <= {0.0, 1.0}
    del MotionFrames_concat


def test_pop_frames_one_at_a_time(tiny):
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(weights_dir=tiny["weights"], seed=0)
    a = _audio(2.2)
    got = []
    for i in range(0, a.size, 640):
        g.push_audio(a[i:i + 640])
        while (f := g.pop_frames(1)) is not None:
            assert len(f) == 1
            got.append(f)
    g.flush()
    while (f := g.pop_frames(1)) is not None:
        got.append(f)
    assert [f.start for f in got] == list(range(-(-a.size // 640)))


def test_the_flushed_end_has_one_record_in_the_front_end(tiny):
    """flush() sets AudioFrontEnd.eos (frames, the audio padded to whole frames); only new audio
    lifts it; the scheduler keeps no copy and releases exactly the frames up to it."""
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(weights_dir=tiny["weights"], seed=0, body=False)
    assert not hasattr(g.scheduler, "eos")
    a = _audio(1.0)
    g.push_audio(a[:1000])
    assert g.frontend.eos is None
    g.flush()
    assert g.frontend.eos == 2
    g.push_audio(a[:0])
    g.push_silence(0)
    assert g.frontend.eos == 2           # nothing pushed: the end stays
    assert len(g.generate_all()) == 2
    g.push_audio(a[1000:1001])
    assert g.frontend.eos is None        # more audio: it continues the timeline
    assert g.generate_all() is None      # and now waits for its lookahead
    g.flush()
    assert g.frontend.eos == 3 and len(g.generate_all()) == 1
    g.reset()
    assert g.frontend.eos is None


def test_determinism_and_chunking(tiny):
    from chatanyone.motion import MotionGenerator
    a = _audio(2.5)

    def run(seed, chunks):
        g = MotionGenerator(weights_dir=tiny["weights"], seed=seed)
        for c in np.array_split(a, chunks):
            g.push_audio(c)
        g.flush()
        return g.generate_all()

    x, y, z = run(3, 1), run(3, 17), run(4, 1)
    for k in ("head", "exp", "eye", "body", "hands", "hands_ok"):
        np.testing.assert_array_equal(getattr(x, k), getattr(y, k))
    assert not np.allclose(x.exp, z.exp)


def test_style_and_intensity_inputs(tiny):
    from chatanyone.motion import MotionGenerator
    ref = tiny["root"] / "corpus" / "synth_01"
    g = MotionGenerator(weights_dir=tiny["weights"], style=ref, intensity=1.5)
    assert g.style_keep == 1.0 and g.style_vec.shape == (1, 16)
    with pytest.raises(ValueError):
        MotionGenerator(weights_dir=tiny["weights"], intensity=-1.0)
    g.push_audio(_audio(1.5))
    g.flush()
    assert len(g.generate_all()) == -(-int(1.5 * 16000) // 640)


def test_memory_flat_over_long_stream(tiny):
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(weights_dir=tiny["weights"], body=False)
    for _ in range(12):
        g.push_audio(_audio(1.0))
        while g.pop_frames() is not None:
            pass
    assert g.frontend._wav.size <= 640 * (g.C + g.P + 2 * g.T + g.L)  # raw samples kept for Whisper segments
    assert g.frontend._mel.shape[0] == 0  # a Whisper model computes no log-mel


def test_runtime_whisper_features_equal_training_features(tiny):
    """The generator encodes, for each window, the very segment training precomputed for that start."""
    from chatanyone.motion import MotionGenerator
    from chatanyone.train.motion import load_clip, whisper_window_features
    clip_dir = tiny["root"] / "corpus" / "synth_00"
    cfg = json.loads((tiny["weights"] / "motion_config.json").read_text())
    assert cfg["audio"]["kind"] == "whisper"
    c = load_clip(clip_dir)
    whisper_window_features([c], cfg, threads=1, cache=False)
    g = MotionGenerator(weights_dir=tiny["weights"], body=False)
    audio = np.load(clip_dir / "audio.npy")[: c.n * 640]
    rng = np.random.default_rng(2)
    i = 0
    while i < audio.size:  # ragged chunks
        n = int(rng.integers(100, 5000))
        g.push_audio(audio[i:i + n])
        i += n
    st = g.stats
    for w0 in (0, 10, 40):
        assert g.hop == cfg["audio"]["hop"]
        got = g.frontend.tokens(w0, g.hop)[0]  # no window generated: nothing trimmed
        n_tok = g.P + g.hop + g.L
        raw = got[:n_tok] * st["wfeat_std"] + st["wfeat_mean"]
        # training stores float16: equal to its rounding
        np.testing.assert_allclose(raw, c.wfeat[w0].astype(np.float32), rtol=2e-3, atol=2e-3)
        assert np.all(got[n_tok:] == 0)  # not heard yet


def test_whisper_model_rejects_precomputed_mel(tiny):
    from chatanyone.motion import MotionGenerator
    g = MotionGenerator(weights_dir=tiny["weights"], body=False)
    with pytest.raises(ValueError, match="Whisper"):
        g.push_audio_features(np.zeros((8, 80), np.float32))


def test_logmel_model_still_trains_and_streams(tmp_path):
    """The log-mel variant (``--audio logmel``, the baseline of the feature comparison)."""
    _need_training()
    from chatanyone.motion import MotionGenerator
    from chatanyone.train.motion import DEFAULT_CONFIG, make_synthetic_corpus, train
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_export"))
    import motion as export_motion

    make_synthetic_corpus(tmp_path / "corpus", n_clips=2, seconds=4, n_exp=8)
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    cfg.update(copy.deepcopy(TINY))
    cfg.pop("audio")
    train("face", tmp_path / "corpus", tmp_path / "run", max_steps=3, batch=4, threads=1, config=cfg,
          log_every_s=1e9)
    export_motion.export(tmp_path / "run", None, tmp_path / "w")
    g = MotionGenerator(weights_dir=tmp_path / "w", body=False)
    assert g.audio_kind == "logmel"
    g.push_audio(_audio(1.2))
    g.flush()
    assert len(g.generate_all()) == -(-int(1.2 * 16000) // 640)


@pytest.mark.parametrize("hop", [4, 25])
def test_hop_latency_contract(tiny, hop):
    """Frame m is released once (m+1)*640 + lookahead_samples samples are in, not earlier than needed."""
    from chatanyone.motion import MotionGenerator
    a = _audio(3.0)
    g = MotionGenerator(weights_dir=tiny["weights"], hop=hop, body=False)
    # Whisper segments read nothing past their end: no log-mel right context
    assert g.frontend.right_context == 0
    assert g.lookahead_samples == (hop - 1 + g.L) * 640
    for m in (0, 7, 30):
        g.reset()
        need = (m + 1) * 640 + g.lookahead_samples
        g.push_audio(a[:need])
        out = g.generate_all()
        assert out is not None and len(out) >= m + 1
        g.reset()
        g.push_audio(a[:(m + 1) * 640])  # no lookahead: frame m is not out yet (windows start at multiples of hop)
        out = g.generate_all()
        assert out is None or len(out) <= m
    # the worst case (a window's first frame) is exact: frame 0 waits for every one of those samples
    g.reset()
    g.push_audio(a[:640 + g.lookahead_samples - 1])
    assert g.generate_all() is None


def test_hop_determinism_under_chunking(tiny):
    from chatanyone.motion import MotionGenerator
    a = _audio(2.5)

    def run(chunks):
        g = MotionGenerator(weights_dir=tiny["weights"], hop=4, seed=1)
        parts = []
        for c in np.array_split(a, chunks):
            g.push_audio(c)
            while (f := g.pop_frames()) is not None:
                parts.append(f)
        g.flush()
        while (f := g.pop_frames()) is not None:
            parts.append(f)
        return layout.MotionFrames.concat(parts)

    x, y = run(1), run(29)
    assert len(x) == len(y) == -(-a.size // 640)
    np.testing.assert_array_equal(x.exp, y.exp)
    np.testing.assert_array_equal(x.hands, y.hands)


def _toy_lips(n_exp):
    from chatanyone.eval.motion import LipModel
    comp = np.zeros((n_exp, 468, 3))
    comp[0, 14, 1] = 1.0  # coefficient 0 opens the mouth
    return LipModel(comp.reshape(n_exp, -1))


def test_eval_metrics_basics():
    from chatanyone.eval.motion import lmd, pearson, ssim_1d
    lm = _toy_lips(4)
    rng = np.random.default_rng(0)
    e = rng.normal(size=(50, 4))
    assert lmd(lm, e, e) == 0.0
    assert lmd(lm, e, 0 * e) > 0
    np.testing.assert_allclose(lm.gap(e), e[:, 0])
    assert pearson(e[:, 0], 2 * e[:, 0] + 1) == pytest.approx(1.0)
    assert ssim_1d(e, e) == pytest.approx(1.0)
    assert ssim_1d(e, rng.normal(size=e.shape)) < 0.5


def test_eval_motion_runs_on_a_corpus_clip(tiny, tmp_path):
    from chatanyone.eval.motion import evaluate
    res = evaluate([tiny["root"] / "corpus" / "synth_00"], seeds=2, steps_list=(2,), hops=(5,),
                   weights_dir=tiny["weights"], plot=tmp_path / "mouth.png", lip_model=_toy_lips(8))
    m = res["mean"]
    for k in ("lmd", "lmd_no_motion", "lmd_loudness", "mouth_corr", "mouth_corr_loudness", "diversity_head_rad",
              "style_mae_with_ref", "style_ssim_without_ref", "join_ratio", "ms_per_window"):
        assert np.isfinite(m[k]), k
    assert m["intensity_rms_ratio_2"] == pytest.approx(2.0, rel=1e-4)
    assert (tmp_path / "mouth.png").stat().st_size > 1000
    assert "style_following" in res
    json.dumps(res)  # one JSON object


def test_shipped_motion_config_is_the_contract():
    """motion_config.json (written by training) loads as the run-time MotionSpec, round trip, and a
    model at another frame rate or prediction type is refused."""
    from chatanyone.runners.base import weights_path
    from chatanyone.spec.motion_layout import MotionSpec
    spec, cfg = MotionSpec.load(weights_path("motion_config.json").parent)
    assert (spec.fps, spec.window, spec.prefix, spec.lookahead, spec.prediction) == (25, 25, 8, 5, "v")
    assert spec.audio.kind == "whisper" and spec.sampling.hop == 10
    again = MotionSpec.from_config({**spec.to_config(), "face": {"d_style": spec.d_style}})
    assert again == spec
    for bad in ({"fps": 30}, {"prediction": "noise"}, {"mel_per_frame": 2}):
        with pytest.raises(ValueError):
            MotionSpec.from_config({**cfg, **bad})
