"""DDIM: the fused update of one step, and the whole step loop around a denoiser callback."""
from __future__ import annotations

import numpy as np

from .._native import core
from ._arrays import check, check_float, empty, fmt_shape

_PREDICTION = {"eps": 0, "v": 1, "x0": 2}

_FORMULAS = """
    With ``a = alpha_t`` and ``ap = alpha_prev`` (cumulative products, alpha-bar), elementwise:

    1. guidance (only when `uncond` is given): ``m = uncond + guidance * (model_out - uncond)``;
    2. prediction ``"eps"``: ``eps = m``, ``x0 = (x - sqrt(1-a) eps) / sqrt(a)``;
       ``"v"``: ``x0 = sqrt(a) x - sqrt(1-a) m``, ``eps = sqrt(1-a) x + sqrt(a) m``;
       ``"x0"``: ``x0 = m``, ``eps = (x - sqrt(a) x0) / sqrt(1-a)``;
    3. clipping (when ``clip_x0=c`` is given): ``x0 = clip(x0, -c, c)``, then
       ``eps = (x - sqrt(a) x0) / sqrt(1-a)`` so that eps agrees with the clipped x0;
    4. ``sigma = eta * sqrt((1-ap) / (1-a)) * sqrt(1 - a/ap)``,
       ``x_prev = sqrt(ap) x0 + sqrt(max(0, 1 - ap - sigma**2)) eps + sigma * noise``.
"""


def _check_alphas(alpha_t, alpha_prev):
    a = check_float(alpha_t, "alpha_t")
    ap = check_float(alpha_prev, "alpha_prev")
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha_t: expected 0 < alpha_t < 1, got {a}")
    if not 0.0 < ap <= 1.0:
        raise ValueError(f"alpha_prev: expected 0 < alpha_prev <= 1, got {ap}")
    return a, ap


def _check_common(prediction, guidance, eta, clip_x0):
    if prediction not in _PREDICTION:
        raise ValueError(f"prediction: expected 'eps', 'v' or 'x0', got {prediction!r}")
    guidance = check_float(guidance, "guidance")
    eta = check_float(eta, "eta", nonneg=True)
    if clip_x0 is None:
        clip = 0.0
    else:
        clip = check_float(clip_x0, "clip_x0", positive=True)
    return _PREDICTION[prediction], guidance, eta, clip


def _like(a, name, xi, ref_name="x"):
    i = check(a, name, ref=xi, ref_name=ref_name)
    if i.shape != xi.shape:
        raise ValueError(f"{name}: expected the shape of {ref_name} {fmt_shape(xi.shape)}, got {fmt_shape(i.shape)}")


def ddim_step(x, model_out, alpha_t: float, alpha_prev: float, *, prediction: str = "eps", uncond=None,
              guidance: float = 1.0, eta: float = 0.0, noise=None, clip_x0: float | None = None):
    """One DDIM update from step t to the previous step, fused into one pass over the latents.
    {formulas}
    Args:
        x: ``[B, ...]`` float32 latents at step t (numpy, torch or cupy; C-contiguous).
        model_out: network output for `x` (conditional output under guidance), shape of `x`.
        alpha_t: alpha-bar at t, in (0, 1).
        alpha_prev: alpha-bar at the previous step, in (0, 1] (1 for the last step).
        prediction: what the network predicts: ``"eps"``, ``"v"`` or ``"x0"``.
        uncond: optional unconditional output, shape of `x`; turns on classifier-free guidance.
        guidance: guidance scale (used only with `uncond`).
        eta: 0 is deterministic DDIM; 1 is DDPM-like. `noise` is required when sigma > 0.
        noise: standard normal noise, shape of `x`.
        clip_x0: clip the predicted x0 to ``[-clip_x0, clip_x0]``; None: no clipping.

    Returns:
        ``x_prev``, a new array like `x`. Blocks until ready.
    """
    xi = check(x, "x")
    _like(model_out, "model_out", xi)
    if uncond is not None:
        _like(uncond, "uncond", xi)
    if noise is not None:
        _like(noise, "noise", xi)
    a, ap = _check_alphas(alpha_t, alpha_prev)
    pred, guidance, eta, clip = _check_common(prediction, guidance, eta, clip_x0)
    if eta > 0 and ap < 1 and noise is None:
        raise ValueError("noise: expected an array of the shape of x when eta > 0, got None")
    out = empty(x, xi, xi.shape)
    core().ddim_step(x, model_out, uncond, noise, out, a, ap, pred, guidance, eta, clip)
    return out


def ddim_sample(denoiser, x_T, timesteps, alphas_cumprod, *, prediction: str = "eps", guidance: float = 1.0,
                eta: float = 0.0, noise=None, clip_x0: float | None = None):
    """Run the whole DDIM loop in C++ around `denoiser`; only the network call returns to Python.

    For step ``s`` with ``t = timesteps[s]``: ``out = denoiser(x, t)``, then the update of
    :func:`ddim_step` with ``alpha_t = alphas_cumprod[t]`` and ``alpha_prev =
    alphas_cumprod[timesteps[s + 1]]`` (1.0 after the last step, i.e. diffusers'
    ``set_alpha_to_one``), ``noise[s]`` as noise.
    {formulas}
    Args:
        denoiser: ``denoiser(x, t) -> model_out`` or ``-> (cond, uncond)`` for guidance; `x` is the
            working array (framework and device of `x_T`, updated in place after the call returns:
            copy it if you keep it), `t` a Python int. Outputs: float32, C-contiguous, shape of `x`,
            same device. Exceptions it raises propagate.
        x_T: ``[B, ...]`` float32 starting noise (not modified).
        timesteps: strictly decreasing ints, each in ``[0, len(alphas_cumprod))``, e.g. ``[999, 899, ..., 0]``.
        alphas_cumprod: 1-D alpha-bar of the training schedule (list, numpy or torch), each in (0, 1).
        prediction, guidance, eta, clip_x0: as in :func:`ddim_step`; guidance != 1 needs ``(cond, uncond)``.
        noise: ``[S, *x_T.shape]`` float32, one standard normal draw per step; required when eta > 0.

    Returns:
        ``x_0``, a new array like `x_T`. Blocks until done; the GIL is released between denoiser calls.
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser: expected a callable denoiser(x, t), got {type(denoiser).__name__}")
    xi = check(x_T, "x_T")
    ts = _as_list(timesteps, "timesteps")
    if not ts or not all(isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)) for t in ts):
        raise TypeError(f"timesteps: expected a non-empty sequence of ints, got {timesteps!r}")
    ts = [int(t) for t in ts]
    ac = np.asarray(_as_list(alphas_cumprod, "alphas_cumprod"), dtype=np.float64)
    if ac.ndim != 1 or ac.size == 0:
        raise ValueError(f"alphas_cumprod: expected a non-empty 1-D sequence, got shape {fmt_shape(ac.shape)}")
    if not np.all((ac > 0) & (ac < 1)):
        raise ValueError("alphas_cumprod: expected every value in (0, 1)")
    if any(t < 0 or t >= ac.size for t in ts):
        raise ValueError(f"timesteps: expected ints in [0, {ac.size}), got {ts}")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps: expected a strictly decreasing sequence, got {ts}")
    pred, guidance, eta, clip = _check_common(prediction, guidance, eta, clip_x0)
    alpha_t = [float(ac[t]) for t in ts]
    alpha_prev = [float(ac[t]) for t in ts[1:]] + [1.0]
    if noise is not None:
        ni = check(noise, "noise", ref=xi, ref_name="x_T")
        if ni.shape != (len(ts),) + xi.shape:
            raise ValueError(f"noise: expected {fmt_shape((len(ts),) + xi.shape)} ([S, *x_T.shape]), "
                             f"got {fmt_shape(ni.shape)}")
    elif eta > 0 and any(ap < 1 for ap in alpha_prev):
        raise ValueError(f"noise: expected [S, *x_T.shape] = {fmt_shape((len(ts),) + xi.shape)} when eta > 0, "
                         "got None")
    x = empty(x_T, xi, xi.shape)
    x[...] = x_T  # the working copy the loop updates in place
    core().ddim_sample(denoiser, x, ts, alpha_t, alpha_prev, noise, pred, guidance, eta, clip)
    return x


def _as_list(v, name):
    if hasattr(v, "tolist"):  # numpy, torch, cupy
        v = v.tolist()
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"{name}: expected a sequence, got {type(v).__name__}")
    return list(v)


if ddim_step.__doc__:  # None under python -OO
    ddim_step.__doc__ = ddim_step.__doc__.format(formulas=_FORMULAS)
    ddim_sample.__doc__ = ddim_sample.__doc__.format(formulas=_FORMULAS)
