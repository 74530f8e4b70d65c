"""chatanyone.ops.ddim_step / ddim_sample against DDIM written from the formula in float64
(tests/reference/ddim.py). Tolerance: atol 1e-5, rtol 1e-5 per step; the sampler is compared after
every step through the trace the denoiser sees."""
import numpy as np
import pytest
import torch

from chatanyone import ops
from reference import ddim_sample_ref, ddim_step_ref
from reference.devices import DEVICES

TOL = dict(atol=2e-5, rtol=2e-5)


def _schedule(T=1000):
    betas = np.linspace(1e-4, 0.02, T)
    return np.cumprod(1 - betas)  # alpha-bar


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_ddim_step_matches_formula(device, prediction, guided, eta, clip):
    rng = np.random.default_rng(1)
    shape = (3, 5, 7)
    x, m, u, z = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    a, ap = 0.3, 0.55
    tx = lambda v: torch.from_numpy(v).to(device)  # noqa: E731
    out = ops.ddim_step(tx(x), tx(m), a, ap, prediction=prediction, uncond=tx(u) if guided else None,
                        guidance=3.0, eta=eta, noise=tx(z) if eta else None, clip_x0=clip)
    ref = ddim_step_ref(x, m, a, ap, prediction=prediction, uncond=u if guided else None, guidance=3.0,
                        eta=eta, noise=z, clip_x0=clip)
    torch.testing.assert_close(out.cpu().double(), torch.from_numpy(ref), **TOL)


def test_ddim_step_numpy_and_final_step():
    rng = np.random.default_rng(2)
    x, m = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((4, 6)).astype(np.float32)
    out = ops.ddim_step(x, m, 0.9, 1.0, prediction="eps")  # alpha_prev = 1: returns x0
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, (x - np.sqrt(0.1) * m) / np.sqrt(0.9), atol=1e-5, rtol=1e-5)


def test_ddim_step_in_shape_1_element():
    out = ops.ddim_step(np.ones(1, np.float32), np.zeros(1, np.float32), 0.25, 0.5, prediction="x0")
    np.testing.assert_allclose(out, ddim_step_ref(np.ones(1), np.zeros(1), 0.25, 0.5, prediction="x0"), atol=1e-6)


class LinearDenoiser:
    """A deterministic stand-in for a network: out = W x + b(t); records every x it sees."""

    def __init__(self, shape, guided):
        rng = np.random.default_rng(7)
        self.w = rng.uniform(0.1, 0.3)
        self.b = rng.standard_normal(shape).astype(np.float32) * 0.1
        self.guided = guided
        self.seen = []

    def __call__(self, x, t):
        xn = x.cpu().numpy() if isinstance(x, torch.Tensor) else x
        self.seen.append(np.array(xn, copy=True))
        cond = (self.w * xn + self.b * (t / 1000)).astype(np.float32)
        out = cond if not isinstance(x, torch.Tensor) else torch.from_numpy(cond).to(x.device)
        if not self.guided:
            return out
        unc = (0.5 * cond).astype(np.float32) if not isinstance(x, torch.Tensor) else out * 0.5
        return out, unc


@pytest.mark.parametrize("device", ["numpy"] + DEVICES)
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sample_matches_plain_loop_step_by_step(device, prediction, guided, eta):
    shape = (2, 4, 3)
    ac = _schedule()
    ts = list(range(999, -1, -111))  # 10 steps, ends at 0
    rng = np.random.default_rng(3)
    x_T = rng.standard_normal(shape).astype(np.float32)
    noise = rng.standard_normal((len(ts),) + shape).astype(np.float32)
    guidance = 2.5 if guided else 1.0
    clip = 3.0 if prediction == "x0" else None

    den = LinearDenoiser(shape, guided)
    if device == "numpy":
        xin, nin = x_T, noise
    else:
        xin, nin = torch.from_numpy(x_T).to(device), torch.from_numpy(noise).to(device)
    out = ops.ddim_sample(den, xin, ts, ac, prediction=prediction, guidance=guidance, eta=eta,
                          noise=nin if eta else None, clip_x0=clip)
    assert type(out) is type(xin)
    # x_T is left untouched
    np.testing.assert_array_equal(x_T, xin if device == "numpy" else xin.cpu().numpy())

    trace = []
    ref = ddim_sample_ref(LinearDenoiser(shape, guided), x_T, ts, ac, prediction=prediction, guidance=guidance,
                          eta=eta, noise=noise, clip_x0=clip, trace=trace)
    assert len(den.seen) == len(ts)
    np.testing.assert_array_equal(den.seen[0], x_T)
    for s in range(1, len(ts)):  # the x the denoiser saw at step s is the sampler's x after step s-1
        np.testing.assert_allclose(den.seen[s], trace[s - 1], atol=1e-4, rtol=1e-4, err_msg=f"step {s}")
    outn = out if device == "numpy" else out.cpu().numpy()
    np.testing.assert_allclose(outn, ref, atol=1e-4, rtol=1e-4)


def test_ddim_sample_propagates_denoiser_exception():
    def boom(x, t):
        raise RuntimeError("network failed")

    with pytest.raises(RuntimeError, match="network failed"):
        ops.ddim_sample(boom, np.zeros((2, 2), np.float32), [10, 5], _schedule(20))


def test_ddim_sample_rejects_bad_denoiser_output():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="denoiser output"):
        ops.ddim_sample(lambda x, t: np.zeros((3, 2), np.float32), x, [10, 5], _schedule(20))
    with pytest.raises(TypeError, match="denoiser"):
        ops.ddim_sample(lambda x, t: np.zeros((2, 3), np.float64), x, [10, 5], _schedule(20))
    with pytest.raises(TypeError, match="denoiser"):
        ops.ddim_sample(lambda x, t: "not an array", x, [10, 5], _schedule(20))
    with pytest.raises(ValueError, match="guidance"):
        ops.ddim_sample(lambda x, t: x * 0, x, [10, 5], _schedule(20), guidance=2.0)
