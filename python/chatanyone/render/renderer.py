"""The run-time renderer: ONNX Runtime graphs with the native kernels between them. No torch."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _kernels as K
from . import keypoints as kpm
from .presets import RenderPreset, get_preset
from .hands import rasterize_hands
from ..spec import keypoint_layout as KL
from chatanyone.runners.base import weights_path

log = logging.getLogger("chatanyone")


@dataclass
class StageTimes:
    """Accumulated seconds per stage over :attr:`frames` rendered frames."""
    frames: int = 0
    seconds: dict = field(default_factory=dict)

    def add(self, name: str, dt: float):
        self.seconds[name] = self.seconds.get(name, 0.0) + dt

    def per_frame_ms(self) -> dict:
        return {k: 1000 * v / max(self.frames, 1) for k, v in self.seconds.items()}


class Renderer:
    """Hybrid-control warping generator (ChatAnyone Sec. 3.3) at one preset.

    Args:
        preset: "fast" (256x384) or "quality" (512x768: the fast graphs at half size plus a
            full-resolution detail graph).
        providers: ONNX Runtime providers requested (see ``runners.base.choose_providers``).
        threads: intra-op threads per graph (0: ONNX Runtime's default).
        weights_dir: folder with ``render_<preset>_{encoder,refine,motion,decoder}.onnx``
            (default: the package's ``chatanyone/weights``).

    Thread safety: one Renderer renders one frame at a time; use one per thread.
    """

    def __init__(self, preset: str = "fast", *, providers=None, threads: int = 0, weights_dir=None):
        from chatanyone.runners.render_graphs import (AppearanceEncoderRunner, DecoderRunner,
                                               DenseMotionRunner, DetailRunner, FaceRefineRunner)
        self.preset: RenderPreset = get_preset(preset)
        # a preset with a core (quality) runs the core's four graphs at half size, then its detail graph
        self.core: RenderPreset = self.preset.core_preset or self.preset
        kw = {"providers": providers, "threads": threads}

        def path(name, part):
            return None if weights_dir is None else f"{weights_dir}/render_{name}_{part}.onnx"
        core = self.core.name
        meta = Path(weights_dir) / f"render_{core}.json" if weights_dir else weights_path(f"render_{core}.json")
        meta = json.loads(meta.read_text()) if meta.exists() else {}
        if "keypoints" in meta and KL.KeypointLayout.from_json(meta["keypoints"]) != KL.LAYOUT:
            raise ValueError(f"render_{core}.json: these weights were trained on another renderer keypoint "
                             "layout than chatanyone.spec.keypoint_layout; re-export them")
        if meta.get("affine"):
            # these weights were trained with local affine sparse motion: run it the same way
            self.core = dataclasses.replace(self.core, affine=True)
        self.encoder = AppearanceEncoderRunner(core, path(core, "encoder"), **kw)
        self.refine = FaceRefineRunner(core, path(core, "refine"), **kw)
        self.motion = DenseMotionRunner(core, path(core, "motion"), **kw)
        self.decoder = DecoderRunner(core, path(core, "decoder"), **kw)
        self.detail = DetailRunner(preset, path(preset, "detail"), **kw) if self.preset.core else None
        self.times = StageTimes()

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        return self.preset.height, self.preset.width

    def prepare_source(self, crop: np.ndarray, kp_source: np.ndarray, vis: np.ndarray) -> dict:
        """Encode the source crop once per avatar.

        Args:
            crop: ``[H, W, 3]`` uint8 RGB at the preset's size (2:3 upper-body framing).
            kp_source: ``[K, 2]`` renderer keypoints of the crop (normalized crop coordinates).
            vis: ``[K]`` visibility in {0, 1}.
        Returns:
            A dict of float32 arrays (goes into ``Avatar.features``): ``image [1,3,H,W]``,
            ``image_q [1,3,H/4,W/4]``, ``feat_h [1,Ch,H/2,W/2]``, ``feat_q [1,Cq,H/4,W/4]``,
            ``ctrl [G,2]``, ``ctrl_w [G]`` (G = 31 control points). With a core (quality) the
            sizes are the core's, ``image`` is the crop downsized 2x (2x2 means) and ``image_full``
            ``[1,3,H,W]`` is the crop itself.
            Blocks while the encoder runs (a few ms).
        """
        crop = np.asarray(crop)
        H, W = self.size
        if crop.shape != (H, W, 3) or crop.dtype != np.uint8:
            raise ValueError(f"crop: expected uint8 [{H}, {W}, 3], got {crop.dtype} {list(crop.shape)}")
        image = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()   # 1,3,H,W
        extra = {}
        if self.detail is not None:
            extra["image_full"] = image
            image = image.reshape(1, 3, H // 2, 2, W // 2, 2).mean((3, 5), dtype=np.float32)
        feat_h, feat_q, image_q = self.encoder(image)
        kp_source, vis = _check_kp(kp_source, vis, "kp_source")
        ctrl, w = kpm.control_points(kp_source, vis)
        return {"image": image, "image_q": image_q, "feat_h": feat_h, "feat_q": feat_q,
                "ctrl": ctrl, "ctrl_w": w, "kp": kp_source, "vis": vis, **extra}

    def render(self, source_cache: dict, kp_driving: np.ndarray, vis: np.ndarray, *,
               hands: bool = True, refine: bool = True) -> np.ndarray:
        """Render one frame.

        Args:
            source_cache: what :meth:`prepare_source` returned.
            kp_driving: ``[K, 2]`` driving renderer keypoints; vis: ``[K]``.
            hands: False renders without the hand image (ablation: a zero image is injected).
            refine: False drops the face refine offsets (ablation; body offsets are kept).
        Returns:
            ``[H, W, 3]`` uint8 RGB. Blocks until the frame is done.
        """
        return self.render_float(source_cache, kp_driving, vis, hands=hands, refine=refine)[1]

    def render_float(self, source_cache, kp_driving, vis, *, hands=True, refine=True):
        """Like :meth:`render`, returning ``(image [1,3,H,W] float32 in [0,1], uint8 [H,W,3])``."""
        p = self.core
        t = time.perf_counter()
        hq, wq = p.quarter
        kp_driving, vis = _check_kp(kp_driving, vis, "kp_driving")
        c_drv, w_drv = kpm.control_points(kp_driving, vis)
        cs, cd, w = kpm.pair_controls(source_cache["ctrl"], source_cache["ctrl_w"], c_drv, w_drv)
        d_src, d_drv = self.refine(cs[None], cd[None], source_cache["ctrl_w"][None], w_drv[None])
        if not refine:
            d_drv = d_drv.copy()
            d_drv[:, kpm.FACE_GROUP_SLICE] = 0
        ks = (cs[None] + d_src).astype(np.float32)
        kd = (cd[None] + d_drv).astype(np.float32)
        t = self._tick("refine", t)
        hd, grids = K.sparse_motion(ks, kd, hq, wq, p.sigma, weights=w[None])
        if p.affine:
            aff = kpm.group_affines(source_cache["kp"], source_cache["vis"], kp_driving, vis)
            grids = K.affine_grids(np.array(grids, np.float32), kd, aff[None], hq, wq)
        rep = np.repeat(source_cache["image_q"], kpm.N_CONTROL + 1, axis=0)           # G+1,3,h,w
        deformed = K.warp(rep, grids[0])                                               # G+1,3,h,w
        deformed = deformed.reshape(1, -1, hq, wq)
        heat = np.zeros_like(hd)
        heat[:, 1:] = K.heatmaps(kd, hq, wq, p.sigma, weights=w[None])
        t = self._tick("sparse_motion", t)
        grid_q, grid_h, grid_f, occ_q, occ_h = self.motion(hd, deformed, grids, heat)
        t = self._tick("dense_motion", t)
        warped_q = K.warp(source_cache["feat_q"], grid_q, mask=occ_q)
        warped_h = K.warp(source_cache["feat_h"], grid_h, mask=occ_h)
        warped_img = K.warp(source_cache["image"], grid_f, padding="border")
        t = self._tick("warp", t)
        hh, wh = p.half
        n_face_body = kp_driving.shape[0] - KL.N_HAND_KP
        if hands:
            hk = np.nan_to_num(np.asarray(kp_driving[n_face_body:], np.float32)).reshape(2, KL.N_HAND_POINTS, 2)
            hok = np.asarray(vis[n_face_body:], np.float32).reshape(2, KL.N_HAND_POINTS).min(1)
            hand = rasterize_hands(hk, hok, hh, wh)[None]
        else:
            hand = np.zeros((1, 3, hh, wh), np.float32)
        t = self._tick("hand_image", t)
        image, gate = self.decoder(warped_q, warped_h, warped_img, hand)
        t = self._tick("decoder", t)
        if self.detail is not None:
            H, W = self.size
            warped_full = K.warp(source_cache["image_full"], K.upsample_grid(grid_q, H, W), padding="border")
            t = self._tick("warp_full", t)
            image = self.detail(image, gate, warped_full)
            t = self._tick("detail", t)
        out = (np.clip(image[0], 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        self._tick("to_uint8", t)
        self.times.frames += 1
        return image, out

    def _tick(self, name, t0):
        t1 = time.perf_counter()
        self.times.add(name, t1 - t0)
        return t1


def _check_kp(kp, vis, name):
    kp = np.asarray(kp, np.float32)
    vis = np.asarray(vis, np.float32)
    k = kpm.group_matrix().shape[1]
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"{name}: expected [K, 2] renderer keypoints (K = {k}), got {list(kp.shape)}")
    kpm.group_matrix(kp.shape[0])   # raises ValueError naming the expected K
    if vis.shape != kp.shape[:1]:
        raise ValueError(f"vis: expected [{kp.shape[0]}] to match {name}, got {list(vis.shape)}")
    return kp, vis
