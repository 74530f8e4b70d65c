"""DDIM written from the formula, step by step, in float64 numpy (Song et al. 2021, eq. 12)."""
import math

import numpy as np


def ddim_step_ref(x, model_out, alpha_t, alpha_prev, *, prediction="eps", uncond=None, guidance=1.0,
                  eta=0.0, noise=None, clip_x0=None):
    x = np.asarray(x, np.float64)
    m = np.asarray(model_out, np.float64)
    if uncond is not None:
        u = np.asarray(uncond, np.float64)
        m = u + guidance * (m - u)
    a, ap = float(alpha_t), float(alpha_prev)
    if prediction == "eps":
        eps = m
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    elif prediction == "v":
        x0 = math.sqrt(a) * x - math.sqrt(1 - a) * m
        eps = math.sqrt(1 - a) * x + math.sqrt(a) * m
    elif prediction == "x0":
        x0 = m
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
    else:
        raise ValueError(prediction)
    if clip_x0 is not None:
        x0 = np.clip(x0, -clip_x0, clip_x0)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
    sigma = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
    x_prev = math.sqrt(ap) * x0 + math.sqrt(max(0.0, 1 - ap - sigma**2)) * eps
    if sigma > 0:
        x_prev = x_prev + sigma * np.asarray(noise, np.float64)
    return x_prev


def ddim_sample_ref(denoiser, x_T, timesteps, alphas_cumprod, *, prediction="eps", guidance=1.0, eta=0.0,
                    noise=None, clip_x0=None, trace=None):
    """The plain loop; `trace`, if a list, receives x after every step."""
    x = np.asarray(x_T, np.float64)
    for s, t in enumerate(timesteps):
        out = denoiser(x.astype(np.float32), int(t))
        cond, unc = out if isinstance(out, tuple) else (out, None)
        ap = alphas_cumprod[timesteps[s + 1]] if s + 1 < len(timesteps) else 1.0
        x = ddim_step_ref(x, cond, alphas_cumprod[t], ap, prediction=prediction, uncond=unc, guidance=guidance,
                          eta=eta, noise=None if noise is None else noise[s], clip_x0=clip_x0)
        if trace is not None:
            trace.append(x.copy())
    return x
