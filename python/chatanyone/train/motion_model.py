"""The hierarchical motion diffusion networks (PyTorch): face DiT, style encoder, body+hands DiT.

Both denoisers are one class, :class:`MotionDiT`: a small transformer over the token sequence

    [ prefix (P frames) | window (T frames) | lookahead (L frames) ]

where every token is the sum of an audio token (4 log-mel frames of that video frame, through a
small conv encoder), a motion token (clean prefix motion / noisy window motion / a "future" marker)
and a learned position. Timestep, style embedding and scalar controls (log expression intensity,
hands rate) form one condition vector that modulates every block through AdaLN-Zero (DiT). The
body model also reads the face motion of the prefix and window positions (hierarchy).
Classifier-free guidance: ``audio_keep = 0`` swaps the audio tokens for a learned null token; per token,
the same marks audio not heard yet (a low-latency window that keeps only its first frames).
Every input is a tensor so that the graph exports to ONNX as is.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t [B]`` float -> ``[B, dim]`` sinusoidal embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]  # B x half
    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)  # 3 x B x H x N x dh
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-1, -2) * (self.dh ** -0.5), dim=-1)  # B x H x N x N
        att = self.drop(att)
        o = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(o)


class Block(nn.Module):
    """Pre-LN transformer block; with ``d_cond`` > 0, AdaLN-Zero modulation from the condition."""

    def __init__(self, d: int, heads: int, mlp_ratio: int, d_cond: int, dropout: float):
        super().__init__()
        self.n1 = nn.LayerNorm(d, elementwise_affine=d_cond == 0)
        self.n2 = nn.LayerNorm(d, elementwise_affine=d_cond == 0)
        self.attn = Attention(d, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_ratio * d, d))
        self.ada = None
        if d_cond:
            self.ada = nn.Linear(d_cond, 6 * d)
            nn.init.zeros_(self.ada.weight)
            nn.init.zeros_(self.ada.bias)

    def forward(self, x, c=None):
        if self.ada is None:
            x = x + self.attn(self.n1(x))
            return x + self.mlp(self.n2(x))
        s1, b1, g1, s2, b2, g2 = self.ada(F.silu(c))[:, None].chunk(6, dim=-1)  # each B x 1 x d
        x = x + (1 + g1) * self.attn(self.n1(x) * (1 + s1) + b1)
        return x + (1 + g2) * self.mlp(self.n2(x) * (1 + s2) + b2)


class AudioEncoder(nn.Module):
    """``[B, N, 4*80]`` normalized log-mel per video frame -> ``[B, N, d]`` tokens (±1 frame of
    context per conv layer, inside the window + lookahead only)."""

    def __init__(self, d_in: int, d: int, dropout: float):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.c1 = nn.Conv1d(d, d, 3, padding=1)
        self.c2 = nn.Conv1d(d, d, 3, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, a):
        h = F.gelu(self.inp(a)).transpose(1, 2)  # B x d x N
        h = h + F.gelu(self.c1(self.drop(h)))
        h = h + self.c2(self.drop(h))
        return h.transpose(1, 2)


class StyleEncoder(nn.Module):
    """Reference face motion ``[B, R, Df]`` (normalized) -> style embedding ``[B, S]``.

    Frame features and their velocities through a conv + transformer, mean-pooled over time, so any
    ``R`` works."""

    def __init__(self, d_x: int, d: int = 96, d_style: int = 64, layers: int = 1, heads: int = 4):
        super().__init__()
        self.inp = nn.Linear(2 * d_x, d)
        self.conv = nn.Conv1d(d, d, 5, padding=2)
        self.blocks = nn.ModuleList([Block(d, heads, 2, 0, 0.0) for _ in range(layers)])
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d_style))

    def forward(self, ref):
        vel = torch.cat([torch.zeros_like(ref[:, :1]), ref[:, 1:] - ref[:, :-1]], dim=1)
        h = self.inp(torch.cat([ref, vel * 4.0], dim=-1))
        h = h + F.gelu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        for b in self.blocks:
            h = b(h)
        return self.out(h.mean(dim=1))


class MotionDiT(nn.Module):
    """Denoiser for one level of the hierarchy.

    forward(x, t, audio, audio_keep, prefix, prefix_keep, style, style_keep, scalars, face) -> out

    Args (B batch, T window, P prefix, L lookahead, N = P+T+L):
        x: ``[B, T, Dx]`` noisy window motion (normalized).
        t: ``[B]`` float diffusion timestep in [0, n_train).
        audio: ``[B, N, 320]`` normalized log-mel, 4 frames per video frame.
        audio_keep: ``[B, N]`` per token 1 = use the audio, 0 = null audio (classifier-free
            guidance: all 0; audio not heard yet: 0 from some position on).
        prefix: ``[B, P, Dx]`` the motion just before the window (normalized).
        prefix_keep: ``[B]`` 0 = no previous motion (stream start).
        style: ``[B, S]`` style embedding (ignored when ``d_style`` is 0).
        style_keep: ``[B]`` 0 = no style reference (learned null style).
        scalars: ``[B, n_scalars]`` controls (face: log intensity; body: log intensity, hands rate).
        face: ``[B, P+T, Df]`` face motion of prefix and window (body model only; else ignored).
    Returns:
        ``[B, T, Dx]`` the prediction (v, eps or x0 per the training config).
    """

    def __init__(self, d_x: int, *, window: int, prefix: int, lookahead: int, d_audio: int = 320,
                 d_model: int = 128, n_layers: int = 3, n_heads: int = 4, mlp_ratio: int = 2,
                 d_cond: int = 64, d_style: int = 0, n_scalars: int = 1, d_face: int = 0,
                 dropout: float = 0.1):
        super().__init__()
        self.T, self.P, self.L = window, prefix, lookahead
        n = prefix + window + lookahead
        d = d_model
        self.d_style, self.d_face = d_style, d_face
        self.audio = AudioEncoder(d_audio, d, dropout)
        self.null_audio = nn.Parameter(torch.zeros(1, 1, d))
        self.x_in = nn.Linear(d_x, d)
        self.prefix_in = nn.Linear(d_x, d)
        self.null_prefix = nn.Parameter(torch.zeros(1, 1, d))
        self.future = nn.Parameter(torch.zeros(1, 1, d))
        self.face_in = nn.Linear(d_face, d) if d_face else None
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(d, d_cond), nn.SiLU(), nn.Linear(d_cond, d_cond))
        self.s_mlp = nn.Sequential(nn.Linear(n_scalars, d_cond), nn.SiLU(), nn.Linear(d_cond, d_cond))
        if d_style:
            self.style_in = nn.Linear(d_style, d_cond)
            self.null_style = nn.Parameter(torch.zeros(1, d_cond))
        self.d_model = d
        self.blocks = nn.ModuleList([Block(d, n_heads, mlp_ratio, d_cond, dropout) for _ in range(n_layers)])
        self.n_out = nn.LayerNorm(d, elementwise_affine=False)
        self.ada_out = nn.Linear(d_cond, 2 * d)
        self.out = nn.Linear(d, d_x)
        for m in (self.ada_out, self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x, t, audio, audio_keep, prefix, prefix_keep, style, style_keep, scalars, face):
        b = x.shape[0]
        ak = audio_keep.float().reshape(b, -1, 1)  # B x N x 1 (or B x 1 x 1)
        a = self.audio(audio) * ak + self.null_audio * (1 - ak)  # B x N x d
        pk = prefix_keep.float().reshape(-1, 1, 1)
        pre = self.prefix_in(prefix) * pk + self.null_prefix * (1 - pk)  # B x P x d
        fut = self.future.expand(b, self.L, self.d_model)
        m = torch.cat([pre, self.x_in(x), fut], dim=1)  # B x N x d
        if self.face_in is not None:
            fz = self.face_in(face)  # B x (P+T) x d
            m = m + torch.cat([fz, torch.zeros_like(fut)], dim=1)
        h = a + m + self.pos
        c = self.t_mlp(timestep_embedding(t, self.d_model)) + self.s_mlp(scalars)
        if self.d_style:
            sk = style_keep.float().reshape(-1, 1)
            c = c + self.style_in(style) * sk + self.null_style * (1 - sk)
        for blk in self.blocks:
            h = blk(h, c)
        sh, sc = self.ada_out(F.silu(c))[:, None].chunk(2, dim=-1)
        h = self.n_out(h) * (1 + sc) + sh
        return self.out(h[:, self.P:self.P + self.T])


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
