"""DDIM sampling of the motion diffusion models: the noise schedule and the step loop.

At run time the loop is the native ``chatanyone.ops.ddim_sample`` around an ONNX Runtime denoiser
callback. While the native extension is not built, a numpy loop with the same arithmetic runs
instead (logged once); it exists for development and as the tests' reference.

Conventions (shared with training, ``chatanyone.train.motion``):
- ``alphas_cumprod``: cosine schedule over ``n_train`` = 1000 steps (Nichol & Dhariwal 2021).
- timesteps: "trailing" spacing, ``steps`` values from ``n_train - 1`` down, so that even 2 steps
  start from (almost) pure noise.
- the last step goes to ``alpha_prev = 1`` (the clean sample).
"""
from __future__ import annotations

import functools

import logging
import math
from typing import Callable

import numpy as np

log = logging.getLogger("chatanyone")

_fallback_logged = False


def cosine_alphas_cumprod(n_train: int = 1000, s: float = 0.008) -> np.ndarray:
    """``[n_train]`` float64 cumulative alphas of the cosine schedule, betas clipped at 0.999."""
    t = np.arange(n_train + 1, dtype=np.float64) / n_train
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def ddim_timesteps(n_train: int, steps: int) -> np.ndarray:
    """``[steps]`` int64 descending timesteps, trailing spacing (``n_train-1`` first)."""
    if not 1 <= steps <= n_train:
        raise ValueError(f"steps must be in [1, {n_train}], got {steps}")
    ts = np.round(np.arange(n_train, 0, -n_train / steps)).astype(np.int64) - 1
    return ts


def ddim_step_reference(x, model_out, alpha_t, alpha_prev, *, prediction="v", uncond=None,
                        guidance=1.0, eta=0.0, noise=None, clip_x0=None):
    """One DDIM update in numpy (float64 math, result in ``x``'s dtype).

    ``model_out``/``uncond`` are the conditional and unconditional predictions (``uncond`` None:
    no guidance); the guided prediction is ``uncond + guidance * (model_out - uncond)``.
    """
    xd = np.asarray(x, np.float64)
    out = np.asarray(model_out, np.float64)
    if uncond is not None:
        u = np.asarray(uncond, np.float64)
        out = u + guidance * (out - u)
    a, ap = float(alpha_t), float(alpha_prev)
    sa, s1a = math.sqrt(a), math.sqrt(max(1.0 - a, 0.0))
    if prediction == "eps":
        eps = out
        x0 = (xd - s1a * eps) / max(sa, 1e-12)
    elif prediction == "v":
        x0 = sa * xd - s1a * out
        eps = s1a * xd + sa * out
    elif prediction == "x0":
        x0 = out
        eps = (xd - sa * x0) / max(s1a, 1e-12)
    else:
        raise ValueError(f"prediction must be 'eps', 'v' or 'x0', got {prediction!r}")
    if clip_x0 is not None:
        x0 = np.clip(x0, -clip_x0, clip_x0)
        # eps consistent with the clipped x0 (as diffusers' DDIMScheduler does)
        eps = (xd - sa * x0) / max(s1a, 1e-12) if s1a > 1e-6 else eps
    sigma = eta * math.sqrt(max((1 - ap) / max(1 - a, 1e-12) * (1 - a / ap), 0.0)) if eta > 0 else 0.0
    dir_coef = math.sqrt(max(1.0 - ap - sigma * sigma, 0.0))
    xp = math.sqrt(ap) * x0 + dir_coef * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("noise is required when eta > 0")
        xp = xp + sigma * np.asarray(noise, np.float64)
    return xp.astype(np.asarray(x).dtype)


def ddim_sample_reference(denoiser: Callable, x_T, timesteps, alphas_cumprod, *, prediction="v",
                          guidance=1.0, eta=0.0, noise=None, clip_x0=None):
    """The DDIM loop in numpy. ``denoiser(x, t) -> out`` or ``(cond, uncond)``;
    ``noise``: ``[steps, *x.shape]`` when ``eta > 0``."""
    x = np.asarray(x_T, np.float32)
    ts = [int(t) for t in np.asarray(timesteps).reshape(-1)]
    ac = np.asarray(alphas_cumprod, np.float64)
    for i, t in enumerate(ts):
        res = denoiser(x, t)
        cond, unc = (res if isinstance(res, tuple) else (res, None))
        ap = ac[ts[i + 1]] if i + 1 < len(ts) else 1.0
        x = ddim_step_reference(x, cond, ac[t], ap, prediction=prediction, uncond=unc,
                                guidance=guidance, eta=eta,
                                noise=None if noise is None else noise[i], clip_x0=clip_x0)
    return x


@functools.lru_cache(maxsize=1)
def native_ops():
    """(Looked up once: it is asked for every window.) ``chatanyone.ops`` when the native extension is built and has the DDIM kernels, else None."""
    try:
        from .. import ops
        from .._native import build_info
        if not build_info().get("loaded"):
            return None
        if hasattr(ops, "ddim_sample") and hasattr(ops, "ddim_step"):
            return ops
    except ImportError:
        return None
    return None


def ddim_sample(denoiser: Callable, x_T, timesteps, alphas_cumprod, *, prediction="v",
                guidance=1.0, eta=0.0, noise=None, clip_x0=None, backend: str = "auto"):
    """Sample with DDIM: the native loop when available (``backend="auto"|"native"``), else numpy.

    Args:
        denoiser: ``denoiser(x [B,T,D] float32, t int) -> out`` or ``(cond, uncond)`` arrays of x's
            shape. Blocks while the network runs.
        x_T: ``[B, T, D]`` float32 start noise.
        timesteps: ``[steps]`` descending (see :func:`ddim_timesteps`).
        alphas_cumprod: ``[n_train]``.
    Returns:
        ``[B, T, D]`` float32 sample.
    """
    global _fallback_logged
    ops = native_ops() if backend in ("auto", "native") else None
    if ops is None:
        if backend == "native":
            raise ImportError("chatanyone.ops.ddim_sample is not available; see chatanyone.build_info()")
        if not _fallback_logged:
            _fallback_logged = True
            log.info("native DDIM loop not available; using the numpy fallback (development only)")
        return ddim_sample_reference(denoiser, x_T, timesteps, alphas_cumprod, prediction=prediction,
                                     guidance=guidance, eta=eta, noise=noise, clip_x0=clip_x0)
    return np.asarray(ops.ddim_sample(denoiser, np.ascontiguousarray(x_T, np.float32),
                                      np.asarray(timesteps, np.int64),
                                      np.asarray(alphas_cumprod, np.float64),
                                      prediction=prediction, guidance=guidance, eta=eta,
                                      noise=noise, clip_x0=clip_x0))
