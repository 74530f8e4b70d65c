"""Export the motion diffusion models (a face run and a body run of ``chatanyone.train.motion``) to
the ONNX graphs the runtime loads, and check each against PyTorch on random inputs.

    python onnx_export/motion.py --face runs/motion_face --body runs/motion_body \
        --out python/chatanyone/weights

Writes ``motion_face.onnx`` (face denoiser), ``motion_style.onnx`` (style encoder),
``motion_body.onnx`` (body+hands denoiser), ``motion_stats.npz`` (normalization, loudness baseline)
and ``motion_config.json`` (window sizes, schedule, sampling defaults, parity figures).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("chatanyone")

FACE_INPUTS = ["x", "t", "audio", "audio_keep", "prefix", "prefix_keep", "style", "style_keep", "scalars"]
BODY_INPUTS = ["x", "t", "audio", "audio_keep", "prefix", "prefix_keep", "face", "scalars"]
OPSET = 17


class _Face(torch.nn.Module):
    def __init__(self, den):
        super().__init__()
        self.den = den

    def forward(self, x, t, audio, audio_keep, prefix, prefix_keep, style, style_keep, scalars):
        return self.den(x, t, audio, audio_keep, prefix, prefix_keep, style, style_keep, scalars, None)


class _Body(torch.nn.Module):
    def __init__(self, den):
        super().__init__()
        self.den = den

    def forward(self, x, t, audio, audio_keep, prefix, prefix_keep, face, scalars):
        return self.den(x, t, audio, audio_keep, prefix, prefix_keep, None, None, scalars, face)


def _load(run: Path, part: str):
    from chatanyone.train.motion import build_models
    st = torch.load(Path(run) / f"ckpt_{part}.pt", map_location="cpu", weights_only=False)
    cfg = st["config"]
    models = build_models(cfg, part)
    for k, m in models.items():
        m.load_state_dict(st["ema"][k])
        m.eval()
    return models, cfg, st


def random_inputs(cfg: dict, part: str, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Random denoiser inputs of the right shapes (for parity checks and tests)."""
    from chatanyone.spec import motion_layout as layout
    from chatanyone.train.motion import audio_dim
    g = np.random.default_rng(seed)
    T, P, L = cfg["window"], cfg["prefix"], cfg["lookahead"]
    df = layout.face_dim(cfg["n_exp"])
    dx = df if part == "face" else layout.BODY_VEC_DIM
    f = lambda *s: g.standard_normal(s).astype(np.float32)  # noqa: E731
    d = {"x": f(batch, T, dx), "t": g.uniform(0, cfg["n_train"] - 1, batch).astype(np.float32),
         "audio": f(batch, P + T + L, audio_dim(cfg)),
         "audio_keep": (g.random((batch, P + T + L)) > 0.3).astype(np.float32), "prefix": f(batch, P, dx),
         "prefix_keep": np.ones(batch, np.float32)}
    if part == "face":
        d.update(style=f(batch, cfg["face"]["d_style"]), style_keep=np.array([1, 0] * batch, np.float32)[:batch],
                 scalars=f(batch, 1))
    else:
        d.update(face=f(batch, P + T, df), scalars=f(batch, 2))
    return d


def _export(module, names, example: dict, path: Path, dyn: dict):
    args = tuple(torch.from_numpy(example[n]) for n in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names, output_names=["out"],
                          dynamic_axes=dyn, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def parity(module, onnx_path: Path, feeds: dict, names: list[str]) -> float:
    """Max abs difference between PyTorch and ONNX Runtime outputs on ``feeds``."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(*(torch.from_numpy(feeds[n]) for n in names)).numpy()
    got = sess.run(None, {n: feeds[n] for n in names})[0]
    return float(np.max(np.abs(ref - got)))


def export(face_run: Path, body_run: Path | None, out: Path, *, tol: float = 1e-4,
           sampling: dict | None = None) -> dict:
    """Export, check parity (max abs diff <= ``tol`` on random inputs, batch 1 and 3), write config."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    fm, cfg, fst = _load(face_run, "face")
    face = _Face(fm["denoiser"]).eval()
    ex = random_inputs(cfg, "face")
    dyn = {n: {0: "batch"} for n in FACE_INPUTS}
    dyn["out"] = {0: "batch"}
    _export(face, FACE_INPUTS, ex, out / "motion_face.onnx", dyn)
    report["face_max_abs_diff"] = max(parity(face, out / "motion_face.onnx", random_inputs(cfg, "face", b, 5 + b),
                                             FACE_INPUTS) for b in (1, 3))
    sty = fm["style"].eval()
    ref = np.random.default_rng(1).standard_normal((1, cfg["style_frames"], ex["x"].shape[-1])).astype(np.float32)
    _export(sty, ["ref"], {"ref": ref}, out / "motion_style.onnx", {"ref": {0: "batch", 1: "frames"},
                                                                        "out": {0: "batch"}})
    ref2 = np.random.default_rng(2).standard_normal((2, 97, ex["x"].shape[-1])).astype(np.float32)
    report["style_max_abs_diff"] = max(parity(sty, out / "motion_style.onnx", {"ref": r}, ["ref"]) for r in (ref, ref2))
    stats = dict(np.load(Path(face_run) / "stats.npz"))
    summaries = {"face": json.loads((Path(face_run) / "summary_face.json").read_text())
                 if (Path(face_run) / "summary_face.json").exists() else {"steps": fst["step"]}}
    if body_run is not None:
        bm, bcfg, bst = _load(body_run, "body")
        if bcfg["n_exp"] != cfg["n_exp"] or bcfg["window"] != cfg["window"]:
            raise ValueError("face and body runs were trained with different configs")
        body = _Body(bm["denoiser"]).eval()
        bex = random_inputs(cfg, "body")
        dyn = {n: {0: "batch"} for n in BODY_INPUTS}
        dyn["out"] = {0: "batch"}
        _export(body, BODY_INPUTS, bex, out / "motion_body.onnx", dyn)
        report["body_max_abs_diff"] = max(parity(body, out / "motion_body.onnx",
                                                 random_inputs(cfg, "body", b, 9 + b), BODY_INPUTS) for b in (1, 3))
        bstats = dict(np.load(Path(body_run) / "stats.npz"))
        for k in ("face_mean", "face_std", "mel_mean", "wfeat_mean"):
            if (k in bstats) != (k in stats):
                raise ValueError(f"face and body runs use different audio features ({k})")
            if k in stats and not np.allclose(bstats[k], stats[k], atol=1e-5):
                raise ValueError(f"face and body runs have different normalization ({k}): train both on one corpus")
        summaries["body"] = json.loads((Path(body_run) / "summary_body.json").read_text()) \
            if (Path(body_run) / "summary_body.json").exists() else {"steps": bst["step"]}
    bad = {k: v for k, v in report.items() if not v <= tol}
    if bad:
        raise RuntimeError(f"ONNX parity failed (tol {tol}): {bad}")
    np.savez(out / "motion_stats.npz", **stats)
    meta = dict(cfg)
    meta["sampling"] = {**cfg["sampling"], **(sampling or {})}  # run-time defaults chosen on the eval
    meta["parity"] = report
    meta["training"] = {k: {kk: vv for kk, vv in v.items() if kk != "clips"} for k, v in summaries.items()}
    meta["training_clips"] = summaries["face"].get("clips", [])
    (out / "motion_config.json").write_text(json.dumps(meta, indent=1))
    log.info("exported motion models to %s; parity %s", out, report)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--face", type=Path, required=True, help="face run folder")
    p.add_argument("--body", type=Path, default=None, help="body run folder")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "python/chatanyone/weights")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=None, help="default DDIM steps at run time")
    p.add_argument("--guidance", type=float, default=None, help="default audio guidance at run time")
    p.add_argument("--hop", type=int, default=None, help="default frames released per window")
    p.add_argument("--temperature", type=float, default=None, help="default start-noise scale (expression)")
    p.add_argument("--head-temperature", type=float, default=None,
                   help="default start-noise scale of head, eyes and body")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sampling = {k: v for k, v in (("steps", a.steps), ("guidance", a.guidance), ("hop", a.hop),
                                  ("temperature", a.temperature), ("head_temperature", a.head_temperature))
                if v is not None}
    rep = export(a.face, a.body, a.out, tol=a.tol, sampling=sampling)
    print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
