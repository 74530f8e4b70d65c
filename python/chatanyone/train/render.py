"""Training of the hybrid-control warping renderer (PyTorch, extra ``[train]``).

Networks (ChatAnyone Sec. 3.3, sized for 2 CPU cores in the fast preset):

- ``AppearanceEncoder``: source crop -> features at 1/2 and 1/4 resolution; run once per avatar.
- ``ControlRefine``: the face refine network (learned offsets for the explicit facial control
  points of the driving frame, from source and driving points) plus a per-frame body offset head:
  the paper's implicit body keypoints approximated as explicit pose points + a learned offset.
- ``DenseMotion``: heatmap difference + source image deformed by each sparse motion -> K+1 masks
  (softmax) and occlusion maps; the flow is the mask-weighted sum of the sparse grids.
- ``Decoder``: warped features (1/4 and 1/2) + the rasterized driving-hand image, injected at both
  scales -> RGB and a gate that blends it with the warped source image.

Gaussian heatmaps, sparse motion and warping use the PyTorch references below, which the native
kernels (``chatanyone.ops``) match; at run time those kernels run between the ONNX graphs.

Training: self-reenactment, source and driving frames of one clip. Loss: weighted L1 (mouth x4,
hands x2) + multi-scale L1 + image-gradient L1. No perceptual (VGG) loss: no pretrained backbone
is available offline. Run: ``python -m chatanyone.train.render --corpus corpus/train --out runs/render_fast``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from chatanyone.render import keypoints as kpm
from chatanyone.render.presets import RenderPreset, get_preset
from chatanyone.render.hands import rasterize_hands

log = logging.getLogger("chatanyone")
G = kpm.N_CONTROL


# ----------------------------------------------------------------------------- kernel references
def identity_grid(h: int, w: int, device=None) -> torch.Tensor:
    """``[H, W, 2]`` (x, y) pixel centres, ``align_corners=False``."""
    xs = (2 * torch.arange(w, dtype=torch.float32, device=device) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=torch.float32, device=device) + 1) / h - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)


def heatmaps_torch(kp: torch.Tensor, h: int, w: int, sigma: float, weights=None) -> torch.Tensor:
    """``kp [N,K,2] -> [N,K,H,W]``: ``w_k exp(-|p - kp_k|^2 / 2 sigma^2)`` (reference of ops.heatmaps)."""
    xs = (2 * torch.arange(w, dtype=kp.dtype, device=kp.device) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=kp.dtype, device=kp.device) + 1) / h - 1
    gx = torch.exp(-(xs.view(1, 1, w) - kp[..., 0:1]) ** 2 / (2 * sigma ** 2))   # N,K,W
    gy = torch.exp(-(ys.view(1, 1, h) - kp[..., 1:2]) ** 2 / (2 * sigma ** 2))   # N,K,H
    out = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    if weights is not None:
        out = out * weights[..., None, None]
    return out


def sparse_motion_torch(kp_s, kp_d, h, w, sigma, weights=None, affines=None):
    """Reference of ops.sparse_motion: ``(heatmap_diff [N,K+1,H,W], grids [N,K+1,H,W,2])``; with
    ``affines [N,K,2,2]`` the grids are local affine (reference of ``render._kernels.affine_grids``)."""
    n = kp_s.shape[0]
    diff = heatmaps_torch(kp_d, h, w, sigma, weights) - heatmaps_torch(kp_s, h, w, sigma, weights)
    hd = torch.cat([diff.new_zeros(n, 1, h, w), diff], 1)
    shift = torch.cat([kp_s.new_zeros(n, 1, 2), kp_s - kp_d], 1)               # N,K+1,2
    ident = identity_grid(h, w, kp_s.device)
    grids = ident[None, None] + shift[:, :, None, None, :]
    if affines is not None:
        delta = ident[None, None] - kp_d[:, :, None, None, :]                   # N,K,H,W,2
        m = affines - torch.eye(2, device=kp_s.device)
        grids = torch.cat([grids[:, :1], grids[:, 1:] + torch.einsum("ngij,nghwj->nghwi", m, delta)], 1)
    return hd, grids


def driving_heatmaps(kp_d, h, w, sigma, weights=None):
    """``[N,K+1,H,W]``: a zero background channel, then the heatmaps of the driving keypoints."""
    hm = heatmaps_torch(kp_d, h, w, sigma, weights)
    return torch.cat([hm.new_zeros(hm.shape[0], 1, h, w), hm], 1)


def warp_torch(x, grid, padding="zeros", mask=None):
    """Reference of ops.warp (2-D, bilinear, align_corners=False)."""
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    return out if mask is None else out * mask


def deform_source(image_q: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Source image (1/4 res) warped by each sparse grid: ``[N,3,h,w]`` x ``[N,K+1,h,w,2] -> [N,(K+1)*3,h,w]``."""
    n, k1, h, w, _ = grids.shape
    src = image_q.unsqueeze(1).expand(n, k1, 3, h, w).reshape(n * k1, 3, h, w)
    out = warp_torch(src, grids.reshape(n * k1, h, w, 2))
    return out.reshape(n, k1 * 3, h, w)


# ----------------------------------------------------------------------------- networks
def conv(cin, cout, k=3, s=1):
    return nn.Conv2d(cin, cout, k, s, k // 2)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.c2 = conv(c, c), conv(c, c)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x):
        return x + self.c2(F.relu(self.c1(x)))


class AppearanceEncoder(nn.Module):
    """``image [N,3,H,W]`` in [0,1] -> ``(feat_h [N,Ch,H/2,W/2], feat_q [N,Cq,H/4,W/4], image_q [N,3,H/4,W/4])``."""

    def __init__(self, p: RenderPreset):
        super().__init__()
        self.c1 = conv(3, p.enc_half, 3, 2)
        self.c2 = conv(p.enc_half, p.enc_half)
        self.c3 = conv(p.enc_half, p.enc_quarter, 3, 2)
        self.res = ResBlock(p.enc_quarter)

    def forward(self, image):
        x = F.relu(self.c1(image * 2 - 1))
        fh = F.relu(self.c2(x))                                  # N,Ch,H/2,W/2
        fq = self.res(F.relu(self.c3(fh)))                       # N,Cq,H/4,W/4
        return fh, fq, F.avg_pool2d(image, 4)


class ControlRefine(nn.Module):
    """Face refine + body offsets. ``(c_src, c_drv [N,G,2], w_src, w_drv [N,G]) -> (d_src, d_drv [N,G,2])``.

    Face groups (those in keypoints.REFINE_GROUPS): offsets for the driving points from (source, driving) points. Body groups: one
    offset head applied to each frame alone (implicit body keypoints). Hands: no offsets.
    """

    def __init__(self, p: RenderPreset):
        super().__init__()
        hid, self.scale = p.refine_hidden, p.refine_scale
        nf, nb = kpm.N_FACE_GROUPS, kpm.N_BODY_GROUPS
        self.face = nn.Sequential(nn.Linear(nf * 6 + nf, hid), nn.ReLU(), nn.Linear(hid, hid), nn.ReLU(),
                                  nn.Linear(hid, nf * 2))
        self.body = nn.Sequential(nn.Linear(G * 3, hid), nn.ReLU(), nn.Linear(hid, nb * 2))
        mask = torch.zeros(nf)
        mask[kpm.REFINE_GROUPS] = 1.0
        self.register_buffer("refine_mask", mask, persistent=False)   # groups that get offsets
        for last in (self.face[-1], self.body[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def _body(self, c, w):
        n = c.shape[0]
        return self.scale * torch.tanh(self.body(torch.cat([c * w[..., None], w[..., None]], -1).reshape(n, -1)))

    def forward(self, c_src, c_drv, w_src, w_drv):
        n = c_src.shape[0]
        fs, fd = c_src[:, kpm.FACE_GROUP_SLICE], c_drv[:, kpm.FACE_GROUP_SLICE]
        wf = (w_src * w_drv)[:, kpm.FACE_GROUP_SLICE]
        x = torch.cat([fs, fd, fd - fs], -1) * wf[..., None]
        face = self.scale * torch.tanh(self.face(torch.cat([x.reshape(n, -1), wf], -1))).reshape(n, kpm.N_FACE_GROUPS, 2)
        face = face * (wf * self.refine_mask)[..., None]
        zh = c_src.new_zeros(n, kpm.N_HAND_GROUPS, 2)
        bs = self._body(c_src, w_src).reshape(n, kpm.N_BODY_GROUPS, 2)
        bd = self._body(c_drv, w_drv).reshape(n, kpm.N_BODY_GROUPS, 2)
        d_src = torch.cat([torch.zeros_like(face), bs, zh], 1)
        d_drv = torch.cat([face, bd, zh], 1)
        return d_src, d_drv


def _up(x):
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _resize_flow(grid_q, ident_out):
    """Upsample the displacement (grid minus identity), then add the identity of the output size."""
    n, h, w, _ = grid_q.shape
    disp = (grid_q - identity_grid(h, w, grid_q.device)).permute(0, 3, 1, 2)   # N,2,h,w
    ho, wo = ident_out.shape[:2]
    disp = F.interpolate(disp, size=(ho, wo), mode="bilinear", align_corners=False)
    return disp.permute(0, 2, 3, 1) + ident_out


class DenseMotion(nn.Module):
    """``(heatmap_diff [N,G+1,h,w], deformed [N,3(G+1),h,w], grids [N,G+1,h,w,2], heat_drv [N,G+1,h,w])``
    at 1/4 res (``heat_drv``: driving heatmaps, background channel 0 zero) ->
    ``(grid_q [N,h,w,2], grid_h [N,2h,2w,2], grid_f [N,4h,4w,2], occ_q [N,1,h,w], occ_h [N,1,2h,2w], masks)``."""

    def __init__(self, p: RenderPreset):
        super().__init__()
        m = p.motion_base
        cin = (G + 1) * 4
        self.inp = conv(cin, m, 1)
        self.e0 = conv(m, m)
        self.e1 = conv(m, 2 * m, 3, 2)
        self.e2 = conv(2 * m, 4 * m, 3, 2)
        self.d1 = conv(6 * m, 2 * m)
        self.d0 = conv(3 * m, m)
        self.uq = conv(m + G + 1, m // 2)
        self.mask = conv(m // 2, G + 1)
        self.occ = conv(m // 2, 2)
        nn.init.constant_(self.occ.bias, 2.0)
        with torch.no_grad():
            self.mask.bias[0] += 1.0   # start near the background (identity) motion

    # Mask logits = bounded network term + 8 x driving heatmap: near a driving keypoint its sparse
    # motion always wins, so the network cannot settle on "copy the source" (it did, unbounded, on
    # 2 cores' worth of training); away from keypoints the network term chooses.
    prior_scale = 8.0
    net_bound = 2.0
    bg_bound = 6.0

    def forward(self, hd, deformed, grids, heat_drv):
        x = F.avg_pool2d(torch.cat([hd, deformed], 1), 2)        # N,4(G+1),h/2,w/2
        x = F.relu(self.inp(x))
        e0 = F.relu(self.e0(x))
        e1 = F.relu(self.e1(e0))
        e2 = F.relu(self.e2(e1))
        d1 = F.relu(self.d1(torch.cat([_up(e2), e1], 1)))
        d0 = F.relu(self.d0(torch.cat([_up(d1), e0], 1)))
        u = F.relu(self.uq(torch.cat([_up(d0), hd], 1)))       # N,m/2,h,w
        raw = self.mask(u)
        # the background may win by more (bound 6: static regions stay static), a keypoint by less (2)
        logits = torch.cat([self.bg_bound * torch.tanh(raw[:, :1] / self.bg_bound),
                            self.net_bound * torch.tanh(raw[:, 1:] / self.net_bound)], 1) + self.prior_scale * heat_drv
        masks = torch.softmax(logits, 1)                         # N,G+1,h,w
        occ = torch.sigmoid(self.occ(u))                         # N,2,h,w
        grid_q = (masks.unsqueeze(-1) * grids).sum(1)            # N,h,w,2
        h, w = hd.shape[2:]
        grid_h = _resize_flow(grid_q, identity_grid(2 * h, 2 * w, hd.device))[None][0]
        grid_f = _resize_flow(grid_q, identity_grid(4 * h, 4 * w, hd.device))
        occ_q = occ[:, 0:1]
        occ_h = F.interpolate(occ[:, 1:2], scale_factor=2.0, mode="bilinear", align_corners=False)
        return grid_q, grid_h, grid_f, occ_q, occ_h, masks


class Decoder(nn.Module):
    """``(warped_q [N,Cq,h,w], warped_h [N,Ch,2h,2w], warped_image [N,3,4h,4w], hand [N,3,2h,2w])``
    -> ``(image [N,3,4h,4w] in [0,1], gate [N,1,4h,4w])``."""

    def __init__(self, p: RenderPreset):
        super().__init__()
        self.inq = conv(p.enc_quarter + 3, p.dec_quarter)
        self.blocks = nn.Sequential(*[ResBlock(p.dec_quarter) for _ in range(p.dec_blocks)])
        self.toh = conv(p.dec_quarter, p.dec_half, 1)
        self.inh = conv(p.dec_half + p.enc_half + 3 + 3, p.dec_half)
        self.h2 = conv(p.dec_half, p.dec_half)
        self.out = conv(p.dec_half, 16)
        with torch.no_grad():
            self.out.bias.view(4, 4)[3] -= 2.0   # gate channel starts mostly closed

    def forward(self, wq, wh, wimg, hand):
        x = F.relu(self.inq(torch.cat([wq, F.avg_pool2d(hand, 2)], 1)))
        x = self.blocks(x)
        x = _up(F.relu(self.toh(x)))                              # N,Dh,2h,2w
        x = F.relu(self.inh(torch.cat([x, wh, hand, F.avg_pool2d(wimg, 2)], 1)))
        x = F.relu(self.h2(x))
        y = F.pixel_shuffle(self.out(x), 2)                       # N,4,4h,4w
        rgb = torch.sigmoid(y[:, :3])
        gate = torch.sigmoid(y[:, 3:4])
        return wimg * (1 - gate) + rgb * gate, gate, rgb


class RenderModel(nn.Module):
    """All four networks plus the reference kernels: the PyTorch twin of the runtime pipeline."""

    def __init__(self, preset: RenderPreset | str = "fast"):
        super().__init__()
        self.p = get_preset(preset) if isinstance(preset, str) else preset
        self.encoder = AppearanceEncoder(self.p)
        self.refine = ControlRefine(self.p)
        self.motion = DenseMotion(self.p)
        self.decoder = Decoder(self.p)

    def forward(self, source, c_src, c_drv, w_src, w_drv, hand, *, use_refine=True, use_hands=True,
                affines=None):
        """``source [N,3,H,W]`` in [0,1]; control points ``[N,G,2]`` (paired, see keypoints.pair_controls);
        ``w_*`` [N,G]; ``hand [N,3,H/2,W/2]``; ``affines [N,G,2,2]`` (keypoints.group_affines) for a
        model trained with local affine sparse motion, else None.
        Returns a dict with ``image`` [N,3,H,W] and intermediates."""
        fh, fq, img_q = self.encoder(source)
        d_src, d_drv = self.refine(c_src, c_drv, w_src, w_drv)
        if not use_refine:
            d_drv = d_drv.clone()
            d_drv[:, kpm.FACE_GROUP_SLICE] = 0
        ks, kd = c_src + d_src, c_drv + d_drv
        h, w = fq.shape[2:]
        hd, grids = sparse_motion_torch(ks, kd, h, w, self.p.sigma, w_src * w_drv,
                                        affines if self.p.affine else None)
        deformed = deform_source(img_q, grids)
        heat_drv = driving_heatmaps(kd, h, w, self.p.sigma, w_src * w_drv)
        grid_q, grid_h, grid_f, occ_q, occ_h, masks = self.motion(hd, deformed, grids, heat_drv)
        wq = warp_torch(fq, grid_q, mask=occ_q)
        wh = warp_torch(fh, grid_h, mask=occ_h)
        wimg = warp_torch(source, grid_f, padding="border")
        if not use_hands:
            hand = torch.zeros_like(hand)
        image, gate, rgb = self.decoder(wq, wh, wimg, hand)
        return {"image": image, "gate": gate, "rgb": rgb, "warped": wimg, "masks": masks, "occ_q": occ_q,
                "d_src": d_src, "d_drv": d_drv, "grid_q": grid_q}


class DetailNet(nn.Module):
    """The quality preset's full-resolution stage.

    ``(core_image [N,3,h,w], core_gate [N,1,h,w], warped_full [N,3,2h,2w])`` -> ``image [N,3,2h,2w]``:
    the core's output and gate are upsampled 2x (bilinear); the full-size source photo warped by the
    core's flow shows where the gate is closed, as in the core, but now at full resolution. A small
    network (one full-resolution layer, two at half) corrects the gate and adds a residual; both
    start at zero, so an untrained detail stage is the plain upsampled blend.
    """

    def __init__(self, p: RenderPreset):
        super().__init__()
        c = p.detail_channels
        self.c1 = conv(7, c)
        self.c2 = conv(c, c, 3, 2)
        self.c3 = conv(c, c)
        self.out = conv(2 * c, 4, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def upsample(core_image, core_gate):
        up = lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return up(core_image), up(core_gate).clamp(1e-4, 1 - 1e-4)

    def forward(self, core_image, core_gate, warped_full):
        return self.blend(*self.upsample(core_image, core_gate), warped_full)

    def blend(self, img, g, warped_full):
        """The full-resolution part on upsampled inputs (training runs it on patches)."""
        f1 = F.relu(self.c1(torch.cat([warped_full * 2 - 1, img * 2 - 1, g], 1)))
        f3 = F.relu(self.c3(F.relu(self.c2(f1))))
        y = self.out(torch.cat([f1, _up(f3)], 1))
        gate = torch.sigmoid(torch.log(g / (1 - g)) + y[:, 3:4])
        return warped_full * (1 - gate) + img * gate + y[:, :3]


class QualityModel(nn.Module):
    """A preset with a core (``quality``): the core :class:`RenderModel` on the source downsized 2x,
    then :class:`DetailNet` at full resolution. ``forward`` takes the full-size source and the hand
    image at the core's half resolution; returns the core's dict with ``image`` at full size and
    ``core_image`` (the core's own output)."""

    def __init__(self, preset: RenderPreset | str = "quality", core: "RenderModel | None" = None):
        super().__init__()
        self.p = get_preset(preset) if isinstance(preset, str) else preset
        cp = self.p.core_preset
        if cp is None:
            raise ValueError(f"preset {self.p.name!r} has no core: use RenderModel")
        self.core = core if core is not None else RenderModel(cp)
        self.detail = DetailNet(self.p)

    def forward(self, source, c_src, c_drv, w_src, w_drv, hand, *, use_refine=True, use_hands=True,
                patches=None, affines=None):
        """``patches``: optional ``[(y0, x0)] * N`` and a size ``(h, w)``: the detail stage then runs
        on those windows only (training) and ``image`` is ``[N,3,h,w]``."""
        res = self.core(F.avg_pool2d(source, 2), c_src, c_drv, w_src, w_drv, hand,
                        use_refine=use_refine, use_hands=use_hands, affines=affines)
        H, W = source.shape[2:]
        grid = _resize_flow(res["grid_q"], identity_grid(H, W, source.device))
        warped = warp_torch(source, grid, padding="border")
        res["core_image"] = res["image"]
        img, g = self.detail.upsample(res["image"], res["gate"])
        if patches is not None:
            img, g, warped = (crop_windows(x, patches) for x in (img, g, warped))
        res["image"] = self.detail.blend(img, g, warped)
        res["warped_full"] = warped
        return res


def crop_windows(x: torch.Tensor, patches) -> torch.Tensor:
    """``x [N,C,H,W]`` cut to the windows of :func:`detail_patches`: ``[N,C,h,w]``, one per sample."""
    corners, (h, w) = patches
    return torch.stack([x[i, :, y:y + h, x0:x0 + w] for i, (y, x0) in enumerate(corners)])


def detail_patches(rng: np.random.Generator, c_drv: torch.Tensor, H: int, W: int, size=(256, 256)):
    """Training windows for the detail stage: half of them around the driving mouth (where the
    detail matters most), half anywhere. Returns ``([(y0, x0)] * N, size)``."""
    h, w = size
    mouth = c_drv[:, kpm.MOUTH_GROUPS].mean(1).numpy()          # N,2 normalized (x, y)
    corners = []
    for i in range(c_drv.shape[0]):
        if rng.random() < 0.5:
            cx = (mouth[i, 0] + 1) / 2 * W + rng.normal(0, 0.15 * w)
            cy = (mouth[i, 1] + 1) / 2 * H + rng.normal(0, 0.15 * h)
        else:
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        y0 = int(np.clip(round(cy - h / 2), 0, H - h)) // 2 * 2
        x0 = int(np.clip(round(cx - w / 2), 0, W - w)) // 2 * 2
        corners.append((y0, x0))
    return corners, size


def build_model(preset: RenderPreset | str, affine: bool = False) -> nn.Module:
    """:class:`RenderModel` or, for a preset with a core, :class:`QualityModel` (whose core gets
    ``affine``: local affine sparse motion)."""
    import dataclasses
    p = get_preset(preset) if isinstance(preset, str) else preset
    if p.core:
        core = RenderModel(dataclasses.replace(p.core_preset, affine=affine))
        return QualityModel(p, core=core)
    return RenderModel(dataclasses.replace(p, affine=affine))


def model_from_checkpoint(st: dict, ema: bool = True) -> nn.Module:
    """The model a checkpoint dict of :func:`train` describes, with its (EMA) weights loaded."""
    model = build_model(st.get("preset", "fast"), affine=bool(st.get("affine", False)))
    model.load_state_dict(st.get("ema", st["model"]) if ema else st["model"])
    return model


def count_macs(model: RenderModel) -> dict[str, int]:
    """Multiply-adds per frame of each network (convs and linears; pooling, activations excluded)."""
    p = model.p
    counts: dict[str, int] = {}

    def hook_for(name):
        def hook(mod, inp, out):
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1]
                counts[name] += out.numel() // out.shape[0] * mod.in_channels // mod.groups * k
            elif isinstance(mod, nn.Linear):
                counts[name] += mod.in_features * mod.out_features
        return hook

    hs = []
    parts = {n: getattr(model, n) for n in ("encoder", "refine", "motion", "decoder")} if isinstance(
        model, RenderModel) else {**{n: getattr(model.core, n) for n in ("encoder", "refine", "motion", "decoder")},
                                  "detail": model.detail}
    for name, part in parts.items():
        counts[name] = 0
        for m in part.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                hs.append(m.register_forward_hook(hook_for(name)))
    with torch.no_grad():
        x = synthetic_batch(p, 1)
        model(*x)
    for hnd in hs:
        hnd.remove()
    return counts


def synthetic_batch(p: RenderPreset, n: int, seed: int = 0, scale: float = 1.0):
    """Random inputs of the right shapes (tests, export, MAC counting)."""
    g = torch.Generator().manual_seed(seed)
    H, W = int(p.height * scale), int(p.width * scale)
    src = torch.rand(n, 3, H, W, generator=g)
    c_src = torch.rand(n, G, 2, generator=g) * 1.6 - 0.8
    c_drv = c_src + 0.05 * torch.randn(n, G, 2, generator=g)
    w = torch.ones(n, G)
    f = 4 if p.core else 2   # the hand image is at the core's half resolution
    hand = torch.rand(n, 3, H // f, W // f, generator=g)
    return src, c_src, c_drv, w, w.clone(), hand


# ----------------------------------------------------------------------------- data
class ClipSet:
    """Frames and control points of corpus clips (``<dir>/<clip>/crops.npy`` + ``landmarks.npz``)."""

    def __init__(self, roots: list[Path], min_frames: int = 8):
        self.roots, self.min_frames = roots, min_frames
        self.clips = []
        self.rescan()
        if not self.clips:
            raise FileNotFoundError(f"no clips with crops.npy and landmarks.npz under {roots}")

    def rescan(self) -> int:
        """Pick up clips that appeared since the last scan (a corpus still being built); returns how many."""
        have = {c["path"] for c in self.clips}
        added = 0
        for root in self.roots:
            for d in sorted(Path(root).iterdir()):
                if str(d) in have or not all((d / f).exists() for f in ("crops.npy", "landmarks.npz", "meta.json")):
                    continue
                try:
                    crops = np.load(d / "crops.npy", mmap_mode="r")
                    lm = dict(np.load(d / "landmarks.npz"))
                except (OSError, ValueError, EOFError, KeyError) as exc:   # still being written
                    log.debug("render train: %s not readable yet (%s)", d.name, exc)
                    continue
                if crops.ndim != 4 or len(crops) != len(lm["face"]):
                    continue
                kp, vis = kpm.from_landmarks(lm["face"], lm["face_ok"], lm["pose"], lm["hands"], lm["hands_ok"])
                ctrl, w = kpm.control_points(kp, vis)                  # T,G,2 / T,G
                ok = np.asarray(lm["face_ok"]).astype(bool)
                idx = np.nonzero(ok)[0]
                if len(idx) < self.min_frames:
                    log.info("render train: skip %s (%d frames with a face)", d.name, len(idx))
                    continue
                hands = np.nan_to_num(np.asarray(lm["hands"], np.float32)[..., :2])
                clip = {"name": d.name, "path": str(d), "crops": crops, "ctrl": ctrl, "w": w,
                        "idx": idx, "hands": hands, "hands_ok": np.asarray(lm["hands_ok"], np.float32),
                        "kp": kp, "vis": vis}
                if (d / "crops_hq.npy").exists() and (d / "crops_hq_idx.npy").exists():
                    # quality-preset targets (corpus.write_quality_crops): positions whose frame has a face
                    hq_t = np.load(d / "crops_hq_idx.npy")
                    clip["hq"] = np.load(d / "crops_hq.npy", mmap_mode="r")
                    clip["hq_t"] = hq_t
                    clip["hq_pos"] = np.nonzero(ok[hq_t])[0]
                self.clips.append(clip)
                added += 1
        n = np.array([len(c["idx"]) for c in self.clips], np.float64)
        self.prob = np.sqrt(n) / np.sqrt(n).sum()   # long clips count more, but not linearly
        # frames that show a hand (8% of the corpus): sampled on purpose as driving frames, so the
        # renderer learns to move hands, which uniform pairs almost never ask of it
        self.hand_frames = [(ci, int(t)) for ci, c in enumerate(self.clips)
                            for t in c["idx"] if c["hands_ok"][t].any()]
        return added

    def sample(self, rng: np.random.Generator, batch: int, scale: float, p: RenderPreset,
               hand_frac: float = 0.0):
        H, W = int(p.height * scale), int(p.width * scale)
        out = {k: [] for k in ("src", "drv", "cs", "cd", "ws", "wd", "hand", "affines")}
        for _ in range(batch):
            if self.hand_frames and rng.random() < hand_frac:
                ci, td = self.hand_frames[int(rng.integers(len(self.hand_frames)))]
                c = self.clips[ci]
                ts = int(rng.choice(c["idx"]))
            else:
                c = self.clips[rng.choice(len(self.clips), p=self.prob)]
                ts, td = rng.choice(c["idx"], 2)
            imgs = []
            for t in (ts, td):
                im = np.asarray(c["crops"][t], np.float32) / 255.0    # 384,256,3
                if im.shape[0] != H:
                    f = im.shape[0] // H
                    im = im.reshape(H, f, W, f, 3).mean((1, 3))
                imgs.append(im.transpose(2, 0, 1))
            # same colour jitter on both frames
            gain = 1 + 0.1 * rng.standard_normal(3).astype(np.float32)
            imgs = [np.clip(i * gain[:, None, None], 0, 1) for i in imgs]
            cs, cd, _ = kpm.pair_controls(c["ctrl"][ts], c["w"][ts], c["ctrl"][td], c["w"][td])
            out["src"].append(imgs[0]); out["drv"].append(imgs[1])
            out["cs"].append(cs); out["cd"].append(cd)
            out["ws"].append(c["w"][ts]); out["wd"].append(c["w"][td])
            out["hand"].append(rasterize_hands(c["hands"][td], c["hands_ok"][td], H // 2, W // 2))
            out["affines"].append(kpm.group_affines(c["kp"][ts], c["vis"][ts], c["kp"][td], c["vis"][td]))
        return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}

    def sample_hq(self, rng: np.random.Generator, batch: int, p: RenderPreset):
        """Like :meth:`sample` for a preset with a core: frames at full size from ``crops_hq.npy``,
        the hand image at the core's half resolution."""
        clips = [c for c in self.clips if len(c.get("hq_pos", ())) >= 2]
        if not clips:
            raise FileNotFoundError("no clip has crops_hq.npy (run corpus.write_quality_crops on the corpus)")
        n = np.array([len(c["hq_pos"]) for c in clips], np.float64)
        prob = np.sqrt(n) / np.sqrt(n).sum()
        out = {k: [] for k in ("src", "drv", "cs", "cd", "ws", "wd", "hand", "affines")}
        for _ in range(batch):
            c = clips[rng.choice(len(clips), p=prob)]
            ps, pd = rng.choice(c["hq_pos"], 2)
            ts, td = int(c["hq_t"][ps]), int(c["hq_t"][pd])
            gain = 1 + 0.1 * rng.standard_normal(3).astype(np.float32)
            for key, pos in (("src", ps), ("drv", pd)):
                im = np.asarray(c["hq"][pos], np.float32) / 255.0
                out[key].append(np.clip(im.transpose(2, 0, 1) * gain[:, None, None], 0, 1))
            cs, cd, _ = kpm.pair_controls(c["ctrl"][ts], c["w"][ts], c["ctrl"][td], c["w"][td])
            out["cs"].append(cs); out["cd"].append(cd)
            out["ws"].append(c["w"][ts]); out["wd"].append(c["w"][td])
            out["hand"].append(rasterize_hands(c["hands"][td], c["hands_ok"][td], p.height // 4, p.width // 4))
            out["affines"].append(kpm.group_affines(c["kp"][ts], c["vis"][ts], c["kp"][td], c["vis"][td]))
        return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}


# ----------------------------------------------------------------------------- loss
def region_weight(cd, wd, H, W, cs=None, ws=None, hand_w: float = 1.0):
    """``[N,1,H,W]`` loss weight: 1, plus 3 in a box around the mouth, plus ``hand_w`` around each
    driving hand and 1 where a source hand was (that region must change when the hand moves away)."""
    n = cd.shape[0]
    ident = identity_grid(H, W)                                       # H,W,2
    wt = torch.ones(n, 1, H, W)
    mouth = cd[:, kpm.MOUTH_GROUPS].mean(1)                           # N,2
    d = (ident[None] - mouth[:, None, None]).abs()
    inbox = (d[..., 0] < 0.16) & (d[..., 1] < 0.09)
    wt += 3.0 * (inbox & (wd[:, 0:1, None] > 0)).unsqueeze(1).float()
    for h in range(2):
        gi = kpm.N_FACE_GROUPS + kpm.N_BODY_GROUPS + 2 * h
        ctr = cd[:, gi]
        d = (ident[None] - ctr[:, None, None]).abs()
        inbox = (d[..., 0] < 0.25) & (d[..., 1] < 0.17) & (wd[:, gi, None, None] > 0)
        wt += hand_w * inbox.unsqueeze(1).float()
        if cs is not None and ws is not None and hand_w != 1.0:
            d = (ident[None] - cs[:, gi][:, None, None]).abs()
            inbox = (d[..., 0] < 0.25) & (d[..., 1] < 0.17) & (ws[:, gi, None, None] > 0)
            wt += inbox.unsqueeze(1).float()
    return wt


def render_loss(pred, target, weight):
    l1 = ((pred - target).abs() * weight).mean()
    ms = sum(F.l1_loss(F.avg_pool2d(pred, s), F.avg_pool2d(target, s)) for s in (2, 4, 8))
    gx = lambda x: x[..., :, 1:] - x[..., :, :-1]
    gy = lambda x: x[..., 1:, :] - x[..., :-1, :]
    grad = F.l1_loss(gx(pred), gx(target)) + F.l1_loss(gy(pred), gy(target))
    return l1 + 0.5 * ms + grad, {"l1": l1.item(), "ms": ms.item(), "grad": grad.item()}


# ----------------------------------------------------------------------------- training loop
def train(args) -> Path:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    p = get_preset(args.preset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = ClipSet([Path(c) for c in args.corpus])
    log.info("render train: %d clips, %d frames", len(data.clips), sum(len(c["idx"]) for c in data.clips))
    ckpt = out / "last.pt"
    affine = bool(args.affine)
    core_st = None
    if p.core:   # the core's trained weights, frozen: only the detail stage learns
        if not args.core:
            raise SystemExit(f"preset {p.name!r} trains its detail stage on a trained core: pass --core CKPT")
        core_st = torch.load(args.core, map_location="cpu")
        if core_st.get("preset", "fast") != p.core:
            raise SystemExit(f"--core {args.core}: a {core_st.get('preset')!r} checkpoint, preset {p.name!r} "
                             f"needs {p.core!r}")
        affine = bool(core_st.get("affine", False))
    if ckpt.exists() and not args.fresh:
        affine = bool(torch.load(ckpt, map_location="cpu").get("affine", False))
    model = build_model(p, affine=affine)
    if core_st is not None:
        model.core.load_state_dict(core_st.get("ema", core_st["model"]))
        model.core.requires_grad_(False)
    ema = build_model(p, affine=affine)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr, betas=(0.5, 0.999))
    state = {"step": 0, "seconds": 0.0, "history": []}
    if ckpt.exists() and not args.fresh:
        s = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(s["model"])
        ema.load_state_dict(s.get("ema", s["model"]))
        opt.load_state_dict(s["opt"])
        state = s["state"]
        log.info("render train: resumed at step %d (%.0f s)", state["step"], state["seconds"])
    if args.init and state["step"] == 0:
        s = torch.load(args.init, map_location="cpu")
        model.load_state_dict(s["model"])
        ema.load_state_dict(s.get("ema", s["model"]))
        if args.reset_heads:
            with torch.no_grad():
                for m in (model, ema):
                    m.decoder.out.weight.view(4, 4, *m.decoder.out.weight.shape[1:])[3].zero_()
                    m.decoder.out.bias.view(4, 4)[3].fill_(-2.0)
                    m.motion.mask.weight.mul_(0.1)
                    m.motion.mask.bias.zero_()
            log.info("render train: gate and mask heads re-initialised")
        log.info("render train: initialised from %s", args.init)
    rng = np.random.default_rng(args.seed + state["step"])
    t_last_save = time.time()
    t0 = time.time() - state["seconds"]
    budget = args.minutes * 60
    run = {}
    while state["seconds"] < budget and state["step"] < args.max_steps:
        frac = state["seconds"] / budget
        scale = 0.5 if frac < args.half_res_frac else 1.0
        bs = args.batch * (2 if scale < 1 else 1)
        lr = args.lr * (0.5 * (1 + math.cos(math.pi * frac)) * 0.9 + 0.1)
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        patches = None
        if p.core:   # frozen core on whole frames, the detail stage on windows of them
            scale, bs = 1.0, args.batch
            b = data.sample_hq(rng, bs, p)
            patches = detail_patches(rng, b["cd"], p.height, p.width)
            res = model(b["src"], b["cs"], b["cd"], b["ws"], b["wd"], b["hand"], patches=patches,
                        affines=b["affines"])
        else:
            b = data.sample(rng, bs, scale, p, hand_frac=args.hand_frac)
            res = model(b["src"], b["cs"], b["cd"], b["ws"], b["wd"], b["hand"], affines=b["affines"])
        H, W = b["drv"].shape[2:]
        wmap = region_weight(b["cd"], b["wd"], H, W, b["cs"], b["ws"], hand_w=args.hand_weight)
        if patches is not None:
            b["drv"], wmap = crop_windows(b["drv"], patches), crop_windows(wmap, patches)
        loss, parts = render_loss(res["image"], b["drv"], wmap)
        # the decoder's own RGB is also asked to match, so it becomes worth opening the gate for
        # (a frozen core: nothing to learn there)
        if not p.core:
            aux = ((res["rgb"] - b["drv"]).abs() * wmap).mean()
            loss = loss + args.aux * aux
        else:
            aux = torch.zeros(())   # nothing to log: the core is frozen
        parts["aux"] = aux.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                if pm.requires_grad:
                    pe.lerp_(pm, 1 - args.ema)
        state["step"] += 1
        if state["step"] % 50 == 0 and data.rescan():
            log.info("render train: now %d clips", len(data.clips))
        state["seconds"] = time.time() - t0
        for k, v in parts.items():
            run[k] = 0.9 * run.get(k, v) + 0.1 * v
        if state["step"] % 20 == 0:
            log.info("step %d t=%.0fs scale=%.1f lr=%.1e l1=%.4f ms=%.4f grad=%.4f aux=%.4f gate=%.3f bg=%.3f",
                     state["step"], state["seconds"], scale, lr, run["l1"], run["ms"], run["grad"], run["aux"],
                     float(res["gate"].mean()), float(res["masks"][:, 0].mean()))
            state["history"].append({"step": state["step"], "seconds": round(state["seconds"], 1), **run})
        if time.time() - t_last_save > 120:
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "state": state,
                        "preset": p.name, "affine": affine}, ckpt)
            t_last_save = time.time()
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "state": state,
                "preset": p.name, "affine": affine}, ckpt)
    (out / "train_log.json").write_text(json.dumps({"args": vars(args), "state": state}, indent=1, default=str))
    log.info("render train: done, %d steps in %.0f s -> %s", state["step"], state["seconds"], ckpt)
    return ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train the renderer by self-reenactment")
    ap.add_argument("--corpus", nargs="+", default=["corpus/train"], help="corpus split folder(s)")
    ap.add_argument("--out", default="runs/render_fast", help="checkpoint folder (resumes from last.pt)")
    ap.add_argument("--preset", default="fast", help="fast, or quality (trains the detail stage on --core)")
    ap.add_argument("--core", default=None, help="quality preset: the trained fast checkpoint it builds on")
    ap.add_argument("--affine", action="store_true",
                    help="local affine sparse motion per control group (keypoints.group_affines)")
    ap.add_argument("--minutes", type=float, default=40.0, help="training time budget (wall clock)")
    ap.add_argument("--max-steps", type=int, default=10 ** 9)
    ap.add_argument("--batch", type=int, default=4, help="batch at full resolution (x2 at half)")
    ap.add_argument("--half-res-frac", type=float, default=0.5, help="fraction of time at half resolution")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.99, help="decay of the weight average that is exported")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="start from this checkpoint's weights (fine-tuning)")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing last.pt")
    ap.add_argument("--hand-frac", type=float, default=0.0,
                    help="fraction of driving frames drawn from frames that show a hand")
    ap.add_argument("--hand-weight", type=float, default=1.0,
                    help="loss weight added around driving hands (above 1: also 1 around source hands)")
    ap.add_argument("--aux", type=float, default=0.5, help="weight of the L1 loss on the decoder's ungated RGB")
    ap.add_argument("--reset-heads", action="store_true", help="with --init: re-initialise gate and mask heads")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args)


if __name__ == "__main__":
    main()
