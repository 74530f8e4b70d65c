"""Export the renderer (``chatanyone.train.render``) to the four ONNX graphs the runtime loads, split
around the native kernels, and check the ONNX + native pipeline against PyTorch end to end.

    python onnx_export/render.py --ckpt runs/render_fast/last.pt --out python/chatanyone/weights

Writes ``render_<preset>_{encoder,refine,motion,decoder}.onnx`` and ``render_<preset>.json``
(preset, multiply-adds per network, training summary, parity figures).

Graphs (native kernels between them, see ``chatanyone.render.renderer``):
  A encoder  image -> feat_h, feat_q, image_q                       (once per avatar)
  R refine   c_src, c_drv, w_src, w_drv -> d_src, d_drv             (control-point offsets)
     native: ops.sparse_motion (heatmap diff, sparse grids); ops.warp (source deformed per grid)
     native: ops.heatmaps of the driving points (mask prior)
  B motion   heatmap_diff, deformed, grids, heat_drv -> grid_q, grid_h, grid_f, occ_q, occ_h
     native: ops.warp of feat_q, feat_h (x occlusion) and of the image
  C decoder  warped_q, warped_h, warped_image, hand -> image
"""
from __future__ import annotations

import argparse
import json

from chatanyone.spec import keypoint_layout as KL
from chatanyone.spec.keypoint_layout import LAYOUT
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("chatanyone")
OPSET = 17


class _Motion(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, heatmap_diff, deformed, grids, heat_drv):
        return self.m(heatmap_diff, deformed, grids, heat_drv)[:5]


class _Decoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, warped_q, warped_h, warped_image, hand):
        return self.m(warped_q, warped_h, warped_image, hand)[:2]  # image, gate (rgb stays inside)


def load_model(ckpt: str | Path):
    from chatanyone.train.render import model_from_checkpoint
    st = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = model_from_checkpoint(st)
    model.eval()
    return model, st


def _export(module, args, names_in, names_out, path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names_in, output_names=names_out,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))


def export_detail(model, out: Path) -> list[Path]:
    """A preset with a core (quality): write its detail graph only. The core's graphs are the core
    preset's own files (exported from the core checkpoint; parity checks they match)."""
    p, cp = model.p, model.p.core_preset
    g = torch.Generator().manual_seed(0)
    core_image = torch.rand(1, 3, cp.height, cp.width, generator=g)
    core_gate = torch.rand(1, 1, cp.height, cp.width, generator=g)
    warped = torch.rand(1, 3, p.height, p.width, generator=g)
    path = out / f"render_{p.name}_detail.onnx"
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        _export(model.detail, (core_image, core_gate, warped), ["core_image", "core_gate", "warped_full"],
                ["image"], path)
    return [path]


def export(model, out: Path) -> list[Path]:
    """Write the four graphs for ``model``'s preset into ``out``; returns their paths."""
    from chatanyone.train.render import deform_source, driving_heatmaps, sparse_motion_torch, synthetic_batch
    if model.p.core:
        return export_detail(model, out)
    p = model.p
    out.mkdir(parents=True, exist_ok=True)
    src, cs, cd, ws, wd, hand = synthetic_batch(p, 1)
    paths = []
    with torch.no_grad():
        fh, fq, iq = model.encoder(src)
        pa = out / f"render_{p.name}_encoder.onnx"
        _export(model.encoder, (src,), ["image"], ["feat_h", "feat_q", "image_q"], pa)
        pr = out / f"render_{p.name}_refine.onnx"
        _export(model.refine, (cs, cd, ws, wd), ["c_src", "c_drv", "w_src", "w_drv"], ["d_src", "d_drv"], pr)
        h, w = fq.shape[2:]
        hd, grids = sparse_motion_torch(cs, cd, h, w, p.sigma, ws * wd)
        deformed = deform_source(iq, grids)
        heat = driving_heatmaps(cd, h, w, p.sigma, ws * wd)
        pb = out / f"render_{p.name}_motion.onnx"
        _export(_Motion(model.motion), (hd, deformed, grids, heat), ["heatmap_diff", "deformed", "grids", "heat_drv"],
                ["grid_q", "grid_h", "grid_f", "occ_q", "occ_h"], pb)
        gq, gh, gf, oq, oh, _ = model.motion(hd, deformed, grids, heat)
        wq = torch.nn.functional.grid_sample(fq, gq, align_corners=False) * oq
        wh = torch.nn.functional.grid_sample(fh, gh, align_corners=False) * oh
        wi = torch.nn.functional.grid_sample(src, gf, padding_mode="border", align_corners=False)
        pc = out / f"render_{p.name}_decoder.onnx"
        _export(_Decoder(model.decoder), (wq, wh, wi, hand), ["warped_q", "warped_h", "warped_image", "hand"],
                ["image", "gate"], pc)
        paths += [pa, pr, pb, pc]
    # what the runtime must know of how these graphs were trained (main() adds the rest)
    (out / f"render_{p.name}.json").write_text(json.dumps({"preset": p.name, "affine": bool(p.affine),
                                                          "keypoints": LAYOUT.as_json()}))
    return paths


def parity(model, weights_dir: Path, n: int = 3, seed: int = 1) -> dict:
    """Max |PyTorch - (ONNX + kernels)| of the rendered image over ``n`` random source/driving pairs."""
    from chatanyone.render import _kernels
    from chatanyone.render import keypoints as kpm
    from chatanyone.render.renderer import Renderer
    from chatanyone.render.hands import rasterize_hands
    p = model.p
    r = Renderer(p.name, weights_dir=str(weights_dir), threads=2)
    rng = np.random.default_rng(seed)
    K = kpm.group_matrix().shape[1]
    worst = 0.0
    for i in range(n):
        crop = rng.integers(0, 256, (p.height, p.width, 3), dtype=np.uint8)
        kp_s = rng.uniform(-0.8, 0.8, (K, 2)).astype(np.float32)
        kp_d = (kp_s + rng.normal(0, 0.04, (K, 2))).astype(np.float32)
        vis = np.ones(K, np.float32)
        if i == 1:
            vis[-21:] = 0   # one hand unseen
        cache = r.prepare_source(crop, kp_s, vis)
        img, _ = r.render_float(cache, kp_d, vis)
        cs, ws = kpm.control_points(kp_s, vis)
        cd, wd = kpm.control_points(kp_d, vis)
        cs2, cd2, _ = kpm.pair_controls(cs, ws, cd, wd)
        aff = kpm.group_affines(kp_s, vis, kp_d, vis)
        hk = kp_d[KL.HANDS_SLICE].reshape(2, KL.N_HAND_POINTS, 2)
        hand = rasterize_hands(hk, vis[KL.HANDS_SLICE].reshape(2, KL.N_HAND_POINTS).max(1), *(p.core_preset or p).half)
        with torch.no_grad():
            ref = model(torch.from_numpy(crop.astype(np.float32) / 255).permute(2, 0, 1)[None],
                        torch.from_numpy(cs2)[None], torch.from_numpy(cd2)[None],
                        torch.from_numpy(ws)[None], torch.from_numpy(wd)[None],
                        torch.from_numpy(hand)[None], affines=torch.from_numpy(aff)[None])["image"].numpy()
        worst = max(worst, float(np.abs(ref - img).max()))
    return {"max_abs_diff": worst, "pairs": n, "native_kernels": _kernels.native_available()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="checkpoint of chatanyone.train.render (last.pt)")
    ap.add_argument("--out", default="python/chatanyone/weights")
    ap.add_argument("--tol", type=float, default=2e-3, help="max allowed |difference| of the image")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from chatanyone.train.render import count_macs
    model, st = load_model(args.ckpt)
    out = Path(args.out)
    paths = export(model, out)
    par = parity(model, out)
    macs = count_macs(model)
    state = st.get("state", {})
    meta = {"preset": model.p.name, "height": model.p.height, "width": model.p.width,
            "core": model.p.core,
            "affine": bool((model.core if model.p.core else model).p.affine),
            "keypoints": LAYOUT.as_json(),
            "control_points": __import__("chatanyone.render.keypoints", fromlist=["N_CONTROL"]).N_CONTROL,
            "macs_per_frame": macs,
            "macs_per_frame_runtime": sum(v for k, v in macs.items() if k != "encoder"),
            "params": sum(q.numel() for q in model.parameters()),
            "train": {"steps": state.get("step"), "seconds": state.get("seconds"),
                      "history_tail": state.get("history", [])[-3:]},
            "parity": par, "files": {pth.name: pth.stat().st_size for pth in paths}}
    (out / f"render_{model.p.name}.json").write_text(json.dumps(meta, indent=1))
    log.info("exported %s; parity %s; MACs %s", [pth.name for pth in paths], par, macs)
    if par["max_abs_diff"] > args.tol:
        log.error("parity failed: %.2e > %.2e", par["max_abs_diff"], args.tol)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
