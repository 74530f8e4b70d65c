"""Sampling one motion window: a pure function of its conditions, the networks and a seed.

:func:`sample_window` runs DDIM over the face denoiser, then over the body denoiser conditioned on
the face motion just sampled (the hierarchy); :func:`to_motion_frames` turns the normalized result
into :class:`~chatanyone.spec.motion_layout.MotionFrames`. Nothing here keeps state: the same
inputs give the same window.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..spec import motion_layout as layout
from ..spec.motion_layout import MotionFrames
from .sampler import ddim_sample


@dataclass(frozen=True)
class WindowConditions:
    """What one window is conditioned on (batch 1)."""

    audio: np.ndarray            # [1, P+T+L, D] float32 normalized audio tokens
    known: int                   # leading token positions whose audio the model may trust
    prefix_face: np.ndarray      # [1, P, Df] clean normalized face prefix
    prefix_face_keep: float      # 0: no prefix (stream start)
    prefix_body: np.ndarray      # [1, P, Db]
    prefix_body_keep: float
    style: np.ndarray            # [1, S] style embedding
    style_keep: float            # 0: the "no style" embedding
    style_log_intensity: float   # the model's intensity condition (log expression energy ratio)
    hands_rate: float            # how often hands are shown, 0..1
    # the join (scheduler.WindowScheduler.lead): what the window's first K frames are pulled to
    # while it is sampled, the previous window's frames there, and how hard ([K], 1 .. 0); None: free
    lead_face: np.ndarray | None = None   # [1, K, Df]
    lead_body: np.ndarray | None = None   # [1, K, Db]
    lead_weight: np.ndarray | None = None  # [K]


@dataclass(frozen=True)
class SamplingSettings:
    """How windows are sampled (fixed for a generator)."""

    timesteps: np.ndarray        # [steps] descending DDIM timesteps
    alphas_cumprod: np.ndarray   # [n_train]
    prediction: str              # "eps", "v" or "x0" (MotionSpec.prediction)
    guidance: float              # classifier-free guidance on the audio (1: off)
    clip_x0: float | None
    face_temperature: np.ndarray  # [Df] start-noise scale per face channel
    body_temperature: float      # start-noise scale of the body vector


def _led(den: Callable, lead: np.ndarray | None, weight: np.ndarray | None,
         settings: SamplingSettings) -> Callable:
    """``den`` with its prediction for the first ``K`` frames pulled to ``lead [1, K, D]``: at
    every DDIM step the clean estimate there becomes ``weight * lead + (1 - weight) * model``
    (conditional and unconditional rows alike, so the guided estimate blends the same way). The
    network sees the led frames at every step and shapes the rest of the window around them (soft
    inpainting); the last step's estimate is the sample, so a weight of 1 gives ``lead`` exactly."""
    if lead is None or weight is None or lead.shape[1] == 0:
        return den
    k = lead.shape[1]
    m = np.asarray(weight, np.float32).reshape(1, k, 1)
    lead = np.asarray(lead, np.float32)
    ac, pred = settings.alphas_cumprod, settings.prediction

    def target(x, t):  # the prediction whose clean estimate is lead, given x [1, K, D] at step t
        a = float(ac[t])
        sa, s1a = np.float32(np.sqrt(a)), np.float32(np.sqrt(max(1.0 - a, 1e-12)))
        if pred == "v":
            return (sa * x - lead) / s1a
        if pred == "eps":
            return (x - sa * lead) / s1a
        return lead

    def wrapped(x, t):
        res = den(x, t)
        tgt = target(np.asarray(x, np.float32)[:, :k], t)

        def pull(o):
            o = np.array(o, np.float32)
            o[:, :k] += m * (tgt - o[:, :k])
            return o
        return tuple(pull(o) for o in res) if isinstance(res, tuple) else pull(res)
    return wrapped


def sample_window(face_net: Callable, body_net: Callable | None, cond: WindowConditions,
                  settings: SamplingSettings, *, window: int, seed) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample one window of normalized motion.

    Args:
        face_net, body_net: the denoisers (``runners.motion_graphs``); ``body_net`` None: no body.
        cond: the window's :class:`WindowConditions`.
        settings: :class:`SamplingSettings`.
        window: ``T`` frames.
        seed: seeds ``numpy.random.default_rng`` for the start noise (the generator passes
            ``[seed, first frame]``, so a window does not depend on how the audio was chunked).
    Returns:
        ``(face [1, T, Df], body [1, T, Db] | None)`` float32. Blocks for ``2 * steps`` network
        evaluations (batch 2 with guidance).
    """
    rng = np.random.default_rng(seed)
    df = settings.face_temperature.shape[0]
    xf = (settings.face_temperature * rng.standard_normal((1, window, df))).astype(np.float32)
    cfg_on = settings.guidance != 1.0
    b = 2 if cfg_on else 1
    n_tok = cond.audio.shape[1]
    ak = np.zeros((b, n_tok), np.float32)
    ak[0, :cond.known] = 1.0  # row 1 (guidance): no audio at all
    ones = np.ones(b, np.float32)
    aud_b = np.repeat(cond.audio, b, 0)
    scal = cond.style_log_intensity
    face_feeds = dict(audio=aud_b, audio_keep=ak, prefix=np.repeat(cond.prefix_face, b, 0),
                      prefix_keep=ones * cond.prefix_face_keep, style=np.repeat(cond.style, b, 0),
                      style_keep=ones * cond.style_keep, scalars=np.full((b, 1), scal, np.float32))

    def face_den(x, t):
        out = face_net(np.repeat(x, b, 0), np.full(b, t, np.float32), **face_feeds)
        return (out[:1], out[1:]) if cfg_on else out

    face_n = ddim_sample(_led(face_den, cond.lead_face, cond.lead_weight, settings), xf, settings.timesteps, settings.alphas_cumprod,
                         prediction=settings.prediction, guidance=settings.guidance,
                         clip_x0=settings.clip_x0)  # [1, T, Df]
    if body_net is None:
        return face_n, None
    pf = cond.prefix_face if cond.prefix_face_keep else np.zeros_like(cond.prefix_face)
    fcond = np.concatenate([pf, face_n], 1)  # [1, P+T, Df]
    xb = (settings.body_temperature
          * rng.standard_normal((1, window, cond.prefix_body.shape[2]))).astype(np.float32)
    body_feeds = dict(audio=aud_b, audio_keep=ak, prefix=np.repeat(cond.prefix_body, b, 0),
                      prefix_keep=ones * cond.prefix_body_keep, face=np.repeat(fcond, b, 0),
                      scalars=np.repeat(np.array([[scal, 2 * cond.hands_rate - 1]], np.float32), b, 0))

    def body_den(x, t):
        out = body_net(np.repeat(x, b, 0), np.full(b, t, np.float32), **body_feeds)
        return (out[:1], out[1:]) if cfg_on else out

    body_n = ddim_sample(_led(body_den, cond.lead_body, cond.lead_weight, settings), xb, settings.timesteps, settings.alphas_cumprod,
                         prediction=settings.prediction, guidance=settings.guidance,
                         clip_x0=settings.clip_x0)
    return face_n, body_n


def to_motion_frames(start: int, face_n: np.ndarray, body_n: np.ndarray | None, stats: dict,
                     n_exp: int, intensity: float) -> MotionFrames:
    """Normalized ``face_n [n, Df]`` and ``body_n [n, Db] | None`` -> :class:`MotionFrames` starting
    at frame ``start``: de-normalized with the corpus ``stats``, the expression scaled by
    ``intensity`` (relative to the neutral face, so exact), hands zeroed where not shown."""
    face = face_n * stats["face_std"] + stats["face_mean"]
    head, exp, eye = layout.unpack_face(face, n_exp)
    exp = exp * intensity
    n = face.shape[0]
    if body_n is None:
        body, hands, ok = (np.zeros((n,) + layout.BODY_SHAPE, np.float32),
                           np.zeros((n,) + layout.HANDS_SHAPE, np.float32),
                           np.zeros((n, layout.HANDS_OK_DIM), np.float32))
    else:
        raw = body_n * stats["body_std"] + stats["body_mean"]
        raw[:, -layout.HANDS_OK_DIM:] = body_n[:, -layout.HANDS_OK_DIM:] * 0.5 + 0.5
        body, hands, ok = layout.unpack_body(raw)
        hands = hands * ok[:, :, None, None]
    f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    return MotionFrames(start, f32(head), f32(exp), f32(eye), f32(body), f32(hands), f32(ok))
