"""Argument checking of chatanyone.ops: every wrong input raises TypeError/ValueError that names the
argument (hypothesis generates the wrong inputs); no input reaches a kernel with bad memory."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatanyone import ops
from chatanyone._native import core
from chatanyone.ops import _arrays

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD_DTYPES = [np.float64, np.int32, np.int64, np.uint8, np.bool_, np.float16]
small = st.integers(min_value=1, max_value=4)


def _raises(exc, name, fn, *a, **kw):
    with pytest.raises(exc) as e:
        fn(*a, **kw)
    assert name in str(e.value), f"{name!r} not named in: {e.value}"
    return str(e.value)


@SETTINGS
@given(dtype=st.sampled_from(BAD_DTYPES), n=small, c=small, torch_input=st.booleans())
def test_warp_wrong_dtype_names_features(dtype, n, c, torch_input):
    x = np.zeros((n, c, 3, 3), dtype)
    g = np.zeros((n, 2, 2, 2), np.float32)
    if torch_input:
        x, g = torch.from_numpy(x), torch.from_numpy(g)
    msg = _raises(TypeError, "features", ops.warp, x, g)
    assert "float32" in msg and str(np.dtype(dtype).name) in msg


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=0, max_size=7).filter(lambda s: len(s) not in (4, 5)))
def test_warp_wrong_rank_names_features(shape):
    x = np.zeros(shape, np.float32)
    msg = _raises(ValueError, "features", ops.warp, x, np.zeros((1, 1, 1, 2), np.float32))
    assert "4 or 5" in msg


@SETTINGS
@given(n=small, c=small, dn=st.integers(-1, 2), last=st.integers(1, 4), nd=st.sampled_from([2, 3]))
def test_warp_grid_shape_mismatch_names_grid(n, c, dn, last, nd):
    x = np.zeros((n, c) + (3,) * nd, np.float32)
    gn = max(1, n + dn)
    g = np.zeros((gn,) + (2,) * nd + (last,), np.float32)
    if gn == n and last == nd:
        assert ops.warp(x, g).shape == (n, c) + (2,) * nd
    else:
        _raises(ValueError, "grid", ops.warp, x, g)


@SETTINGS
@given(padding=st.text(max_size=8).filter(lambda s: s not in ("zeros", "border")))
def test_warp_bad_padding(padding):
    _raises(ValueError, "padding", ops.warp, np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 1, 2), np.float32),
            padding=padding)


@SETTINGS
@given(extra=st.lists(st.integers(1, 3), min_size=1, max_size=2))
def test_warp_bad_mask_shape(extra):
    x = np.zeros((2, 3, 4, 4), np.float32)
    g = np.zeros((2, 5, 6, 2), np.float32)
    mask = np.ones([2] + extra + [6], np.float32)
    _raises(ValueError, "mask", ops.warp, x, g, mask=mask)


def test_warp_layout_device_and_type_errors():
    x = np.zeros((1, 2, 4, 4), np.float32)
    g = np.zeros((1, 3, 3, 2), np.float32)
    _raises(ValueError, "features", ops.warp, np.zeros((1, 2, 4, 8), np.float32)[..., ::2], g)  # strided view
    _raises(ValueError, "grid", ops.warp, x, np.zeros((1, 3, 6, 2), np.float32)[:, :, ::2])
    _raises(ValueError, "grid", ops.warp, x, torch.zeros(1, 3, 3, 2))  # numpy + torch mixed
    _raises(TypeError, "features", ops.warp, x.tolist(), g)
    _raises(TypeError, "align_corners", ops.warp, x, g, align_corners="yes")
    _raises(TypeError, "grid", ops.warp, x, g.astype(np.float64))
    msg = _raises(TypeError, "features", ops.warp, x.astype(np.float16), g.astype(np.float16))
    assert "CUDA" in msg  # float16 is CUDA-only


def test_cuda_array_on_cpu_only_build_points_to_build_info(monkeypatch):
    fake = _arrays.ArrayInfo("torch", (1, 1, 2, 2), "float32", True, "cuda:0", True)
    monkeypatch.setattr(_arrays, "info", lambda a, name: fake)
    monkeypatch.setattr(_arrays, "_backends", ["cpu"])
    msg = _raises(ValueError, "features", ops.warp, object(), object())
    assert "build_info()" in msg and "CUDA" in msg


@SETTINGS
@given(h=st.one_of(st.integers(-3, 0), st.floats(1, 3), st.just(True), st.none()),
       sigma=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not (v > 0 and v < 1e308)),
                       st.just("0.1")))
def test_heatmaps_bad_scalars(h, sigma):
    kp = np.zeros((1, 2, 2), np.float32)
    _raises((TypeError, ValueError), "height", ops.heatmaps, kp, h, 4, 0.1)
    _raises((TypeError, ValueError), "width", ops.heatmaps, kp, 4, h, 0.1)
    _raises((TypeError, ValueError), "sigma", ops.heatmaps, kp, 4, 4, sigma)


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4).filter(lambda s: len(s) != 3 or s[2] != 2))
def test_heatmaps_bad_kp_shape(shape):
    _raises(ValueError, "kp", ops.heatmaps, np.zeros(shape, np.float32), 4, 4, 0.1)


def test_heatmaps_and_sparse_motion_bad_arrays():
    kp = np.zeros((2, 3, 2), np.float32)
    _raises(ValueError, "weights", ops.heatmaps, kp, 4, 4, 0.1, weights=np.ones((2, 4), np.float32))
    _raises(TypeError, "weights", ops.heatmaps, kp, 4, 4, 0.1, weights=np.ones((2, 3), np.float64))
    _raises(ValueError, "kp_driving", ops.sparse_motion, kp, np.zeros((2, 4, 2), np.float32), 4, 4, 0.1)
    _raises(ValueError, "kp_driving", ops.sparse_motion, kp, torch.zeros(2, 3, 2), 4, 4, 0.1)
    _raises(TypeError, "kp_source", ops.sparse_motion, kp.astype(np.int32), kp, 4, 4, 0.1)


@SETTINGS
@given(a=st.floats(allow_nan=True, allow_infinity=True), ap=st.floats(allow_nan=True, allow_infinity=True))
def test_ddim_step_alpha_ranges(a, ap):
    x = np.zeros((2, 2), np.float32)
    ok = 0 < a < 1 and 0 < ap <= 1
    if ok:
        assert ops.ddim_step(x, x, a, ap).shape == (2, 2)
    else:
        with pytest.raises(ValueError) as e:
            ops.ddim_step(x, x, a, ap)
        assert "alpha_t" in str(e.value) or "alpha_prev" in str(e.value)


@SETTINGS
@given(pred=st.text(max_size=5).filter(lambda s: s not in ("eps", "v", "x0")))
def test_ddim_bad_prediction(pred):
    x = np.zeros(3, np.float32)
    _raises(ValueError, "prediction", ops.ddim_step, x, x, 0.5, 0.6, prediction=pred)


def test_ddim_argument_errors():
    x = np.zeros((2, 3), np.float32)
    ac = np.linspace(0.99, 0.01, 50)
    _raises(ValueError, "noise", ops.ddim_step, x, x, 0.5, 0.6, eta=0.5)
    _raises(ValueError, "model_out", ops.ddim_step, x, np.zeros((3, 2), np.float32), 0.5, 0.6)
    _raises(ValueError, "eta", ops.ddim_step, x, x, 0.5, 0.6, eta=-1.0)
    _raises(ValueError, "clip_x0", ops.ddim_step, x, x, 0.5, 0.6, clip_x0=0.0)
    _raises(TypeError, "denoiser", ops.ddim_sample, None, x, [3, 2], ac)
    _raises(ValueError, "timesteps", ops.ddim_sample, lambda x, t: x, x, [2, 3], ac)  # not decreasing
    _raises(ValueError, "timesteps", ops.ddim_sample, lambda x, t: x, x, [60, 3], ac)  # out of range
    _raises(TypeError, "timesteps", ops.ddim_sample, lambda x, t: x, x, [], ac)
    _raises(TypeError, "timesteps", ops.ddim_sample, lambda x, t: x, x, [3.5, 1], ac)
    _raises(ValueError, "alphas_cumprod", ops.ddim_sample, lambda x, t: x, x, [3, 1], np.ones(10))
    _raises(ValueError, "noise", ops.ddim_sample, lambda x, t: x, x, [3, 1], ac, eta=1.0)
    _raises(ValueError, "noise", ops.ddim_sample, lambda x, t: x, x, [3, 1], ac, eta=1.0,
            noise=np.zeros((3, 2, 3), np.float32))


def test_native_boundary_rejects_bad_memory_without_crashing():
    """The extension checks again, so a direct call with wrong arrays raises instead of crashing."""
    c = core()
    x = np.zeros((1, 2, 4, 4), np.float32)
    g = np.zeros((1, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match="out"):
        c.warp(x, g, None, np.zeros((1, 2, 3, 2), np.float32), 0, False)
    with pytest.raises(TypeError):
        c.warp(x, g, None, np.zeros((1, 2, 3, 6), np.float32)[..., ::2], 0, False)  # strided: refused
    with pytest.raises(ValueError, match="mask"):
        c.warp(x, g, np.zeros(5, np.float32), np.zeros((1, 2, 3, 3), np.float32), 0, False)
    with pytest.raises(ValueError, match="padding"):
        c.warp(x, g, None, np.zeros((1, 2, 3, 3), np.float32), 7, False)
    with pytest.raises(ValueError, match="out"):
        c.heatmaps(np.zeros((1, 2, 2), np.float32), None, np.zeros((1, 3, 4, 4), np.float32), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        c.heatmaps(np.zeros((1, 2, 2), np.float32), None, np.zeros((1, 2, 4, 4), np.float32), -1.0)
    with pytest.raises(ValueError, match="noise"):
        c.ddim_step(x, x, None, None, x.copy(), 0.5, 0.6, 0, 1.0, 1.0, 0.0)


def test_num_threads_roundtrip():
    n = ops.get_num_threads()
    ops.set_num_threads(1)
    assert ops.get_num_threads() == 1
    ops.set_num_threads(n)
    assert ops.get_num_threads() == n
    with pytest.raises(ValueError, match="n"):
        ops.set_num_threads(0)


def test_autograd_tensor_is_refused_with_advice():
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)
    msg = _raises(TypeError, "features", ops.warp, x, torch.zeros(1, 1, 1, 2))
    assert "detach" in msg


def test_native_zero_sized_maps_do_not_crash():
    c = core()
    c.heatmaps(np.zeros((1, 2, 2), np.float32), None, np.zeros((1, 2, 0, 3), np.float32), 0.1)
    c.sparse_motion(np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2), np.float32), None,
                    np.zeros((1, 3, 4, 0), np.float32), np.zeros((1, 3, 4, 0, 2), np.float32), 0.1)
