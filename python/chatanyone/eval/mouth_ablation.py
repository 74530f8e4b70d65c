"""The mouth's ablation in self-driven reenactment: several renderer variants in one run.

``python -m chatanyone.eval.mouth_ablation VIDEO... [--refiner model.onnx] [--json out.json]``

For each raw video (prepared and cached as in ``chatanyone eval render``): the first frame with a
face is the source photo; the video's own motion drives it. Variants, rendered frame by frame side
by side and compared with the same real frame:

- ``source``: the source frame repeated;
- ``median``: the driving expression relative to the video's median face
  (``driving_motion(mouth="median")``), the geometry renderer with the previous mouth (main before
  the mouth amplitude fix);
- ``previous``: the expression set on the photo's neutralized face (the amplitude fix), the mouth
  as it was before session 6 (``GeomRenderer(mouth="previous")``: the photo's inside stretched
  between the driven lips, or a flat painted band of teeth);
- ``rigid``: the renderer as shipped (``mouth="rigid"``: the photo's teeth kept rigid with the head
  and the jaw and a dark gap between them, or painted teeth with texture);
- ``refine``: ``rigid`` plus the learned mouth refiner (:mod:`chatanyone.render.refine`), when a
  refiner is installed or given: the preset's own (``--preset``: fast 64 px crop, quality 128 px);
- ``refine_fast``: ``rigid`` plus the fast preset's refiner (64 px crop) whatever the preset (for
  the quality preset: what ``refine_mouth`` ran before it had its own).

``--variants`` chooses among them (default: all but ``median`` and ``refine_fast``). ``--preset``
sets the frame size (fast 512, quality 1024) and the refiner.

Figures (real pixels; the photo layout only): ``psnr_person`` (selfie segmentation of the real and
the source frame, their union, as ``eval render``), ``ssim`` (whole frame), ``mouth_psnr`` and
``mouth_l1`` (0-255) in a box around the real frame's lips (their outer contour's bounds widened by
a quarter of the mouth width on every side), ``csim`` (dlib, every ``CSIM_EVERY``-th pixel frame),
and by face mesh on every frame: ``mouth_r``, ``mouth_amp`` (rendered against real, amplitude on
speech frames). ``--frames DIR`` writes mouth close-ups (real | variants | source) at the most open
real frames. Blocks for the whole run (about 1 s per frame on a loaded 2-core machine).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("chatanyone")

CSIM_EVERY = 10
VARIANTS = ("median", "previous", "rigid", "refine", "refine_fast")
DEFAULT_VARIANTS = ("previous", "rigid", "refine")
LIP_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375]


def _mouth_box(face_px: np.ndarray, hw) -> tuple[int, int, int, int] | None:
    p = face_px[LIP_OUTER, :2]
    if not np.all(np.isfinite(p)):
        return None
    w = float(np.linalg.norm(face_px[291, :2] - face_px[61, :2]))
    x0, y0 = p.min(0) - 0.25 * w
    x1, y1 = p.max(0) + 0.25 * w
    h, ww = hw
    x0, y0 = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
    x1, y1 = int(min(ww, np.ceil(x1))), int(min(h, np.ceil(y1)))
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def evaluate_clip(video, *, max_seconds=4.0, pixel_every=2, refiner=None, csim=None, frames_dir=None,
                  variants=DEFAULT_VARIANTS, preset: str = "fast") -> dict:
    from ..avatar import Avatar
    from ..render.geometry import GeomRenderer
    from ..render.refine import attach, available
    from ..spec.presets import PRESET_LONG_SIDE
    from ..reenact import driving_motion
    from ..vision.detect import Detector
    from . import mouth as EM
    from .frames import real_view
    from .metrics import psnr, ssim
    from .prepare import prepare
    from .selfdriven import _Person, _face_px
    from .split import role
    t_start = time.perf_counter()
    pv = prepare(video, max_seconds=max_seconds)
    s = pv.first_face_frame()
    src = pv.frame(s)
    avatar = Avatar.prepare(src, name=pv.name)
    neutral = driving_motion(pv, expression="median")
    size = PRESET_LONG_SIDE[preset]
    rends, motions = {}, {}
    if "median" in variants:
        rends["median"] = GeomRenderer(avatar, size, refine_mouth=False, mouth="previous")
        motions["median"] = driving_motion(pv, mouth="median", expression="median")
    if "previous" in variants:
        rends["previous"] = GeomRenderer(avatar, size, refine_mouth=False, mouth="previous")
    if "rigid" in variants:
        rends["rigid"] = GeomRenderer(avatar, size, refine_mouth=False)
    if "refine" in variants and (refiner is not None or available(preset)):
        r = GeomRenderer(avatar, size, refine_mouth=False)
        attach(r, preset, refiner)
        rends["refine"] = r
    if "refine_fast" in variants and available("fast"):
        r = GeomRenderer(avatar, size, refine_mouth=False)
        attach(r, "fast")
        rends["refine_fast"] = r
    for m in rends:
        motions.setdefault(m, neutral)
    variants = list(rends)
    methods = ["source"] + variants
    dets = {m: Detector(video=True, pose=False, hands=False) for m in variants}
    seg = _Person()
    face_rend = {m: np.full((pv.n, 478, 3), np.nan) for m in variants}
    acc = {m: {k: [] for k in ("psnr_person", "ssim", "mouth_psnr", "mouth_l1", "csim")} for m in methods}
    ow, oh = rends[variants[0]].size
    sv = real_view(avatar, src, (oh, ow))
    src_mask = seg(sv)
    src_desc = csim.descriptor(sv) if csim else None
    real_face = pv.face_px()                                   # [n, 478, 3] photo px
    scale = np.array([ow / pv.width, oh / pv.height])
    opening_real = EM.opening(EM.canonical_faces(real_face, pv.face_ok)[0])
    want = set()
    if frames_dir:
        o = np.where(np.isfinite(opening_real), opening_real, -np.inf)
        o[s] = -np.inf
        want = set(np.argsort(o)[::-1][:3].tolist())
    shots = []
    for t, real in pv.frames():
        outs = {m: rends[m].render(motions[m][t:t + 1].frame(0)) for m in variants}
        for m in variants:
            fl = dets[m](outs[m])
            face_rend[m][t] = _face_px(fl, (0, 0, ow, oh))
        if t == s:
            continue
        rv = real_view(avatar, real, (oh, ow))
        if t in want and pv.face_ok[t]:
            box = _mouth_box(real_face[t, :, :2] * scale, (oh, ow))
            if box is not None:
                x0, y0, x1, y1 = box
                cx, cy, half = (x0 + x1) // 2, (y0 + y1) // 2, max(x1 - x0, y1 - y0) // 2 + 4
                sl = np.s_[max(0, cy - half):cy + half, max(0, cx - half):cx + half]
                shots.append((t, np.concatenate([rv[sl]] + [outs[m][sl] for m in variants] + [sv[sl]], 1)))
        if t % pixel_every:
            continue
        mask = seg(rv) | src_mask
        box = _mouth_box(real_face[t, :, :2] * scale, (oh, ow)) if pv.face_ok[t] else None
        for m in methods:
            out = sv if m == "source" else outs[m]
            a = acc[m]
            if mask.sum() > 100:
                mse = np.mean((out[mask].astype(np.float64) - rv[mask]) ** 2)
                a["psnr_person"].append(float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10))))
            a["ssim"].append(ssim(out, rv))
            if box is not None:
                x0, y0, x1, y1 = box
                a["mouth_psnr"].append(psnr(out[y0:y1, x0:x1], rv[y0:y1, x0:x1]))
                a["mouth_l1"].append(float(np.abs(out[y0:y1, x0:x1].astype(np.float64) - rv[y0:y1, x0:x1]).mean()))
            if csim is not None and src_desc is not None and t % (CSIM_EVERY * pixel_every) == 0:
                if m == "source":
                    a["csim"].append(1.0)
                else:
                    d = csim.descriptor(out)
                    a["csim"].append(0.0 if d is None else csim.cos(d, src_desc))
    for d in dets.values():
        d.close()
    seg.close()
    res = {"clip": pv.name, "role": role(pv.path), "frames": pv.n, "source_frame": s, "preset": preset,
           "photo_paints_mouth": bool(rends[variants[0]].paints_mouth)}
    sel = np.ones(pv.n, bool)
    sel[s] = False
    speech = EM.speech_frames(pv.audio, pv.n)
    for m in methods:
        res[m] = {k: (float(np.mean(v)) if v else None) for k, v in acc[m].items()}
        if m != "source":
            o = EM.opening(EM.canonical_faces(face_rend[m])[0])
            res[m]["mouth_r"] = EM.pearson(o, opening_real, sel)
            res[m]["mouth_amp"] = EM.amplitude_ratio(o, opening_real, sel & speech)
        res[m]["ms_per_frame"] = (sum(rends[m].per_frame_ms().values()) if m != "source" else None)
    if frames_dir and shots:
        import cv2
        Path(frames_dir).mkdir(parents=True, exist_ok=True)
        for t, img in shots:
            big = cv2.resize(img, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
            p = Path(frames_dir) / f"{pv.name}_mouth_{t:04d}.png"
            cv2.imwrite(str(p), big[:, :, ::-1])
        res["pngs"] = [str(Path(frames_dir) / f"{pv.name}_mouth_{t:04d}.png") for t, _ in shots]
        res["png_columns"] = ["real"] + variants + ["source"]
    res["seconds"] = time.perf_counter() - t_start
    return res


KEYS = ("psnr_person", "ssim", "mouth_psnr", "mouth_l1", "csim", "mouth_r", "mouth_amp", "ms_per_frame")


def summarize(results: list[dict]) -> dict:
    out = {}
    for rl in sorted({r["role"] for r in results}):
        rs = [r for r in results if r["role"] == rl]
        methods = [m for m in ("source",) + VARIANTS if all(m in r for r in rs)]
        out[rl] = {m: {k: (float(np.mean([r[m][k] for r in rs if r[m].get(k) is not None]))
                           if any(r[m].get(k) is not None for r in rs) else None) for k in KEYS}
                   for m in methods}
        out[rl]["clips"] = len(rs)
    return out


def format_table(summary: dict) -> str:
    lines = []
    for rl, ms in summary.items():
        lines.append(f"[{rl}] {ms['clips']} clips")
        lines.append(f"{'variant':12s}" + "".join(f"{k:>12s}" for k in KEYS))
        for m, row in ms.items():
            if m == "clips":
                continue
            lines.append(f"{m:12s}" + "".join(f"{'-':>12s}" if row[k] is None else f"{row[k]:12.3f}" for k in KEYS))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chatanyone.eval.mouth_ablation")
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--max-seconds", type=float, default=4.0)
    ap.add_argument("--pixel-every", type=int, default=2)
    ap.add_argument("--refiner", default=None, help="a refiner .onnx (default: the installed one, if any)")
    ap.add_argument("--no-csim", action="store_true")
    ap.add_argument("--frames", default=None, help="folder for mouth close-ups at the most open real frames")
    ap.add_argument("--json", default=None, help="write per-clip results and the summary here")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma-separated, of {VARIANTS}")
    ap.add_argument("--preset", default="fast", choices=("fast", "quality"),
                    help="frame size and refiner: fast (512, 64 px crop) or quality (1024, 128 px crop)")
    args = ap.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v)
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        ap.error(f"--variants: choose from {VARIANTS}, got {args.variants!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    csim = None
    if not args.no_csim:
        try:
            from .metrics import _Csim
            csim = _Csim()
        except ImportError as exc:
            log.warning("CSIM left out: %s", exc)
    results = []
    for v in args.videos:
        r = evaluate_clip(v, max_seconds=args.max_seconds, pixel_every=args.pixel_every, refiner=args.refiner,
                          csim=csim, frames_dir=args.frames, variants=variants, preset=args.preset)
        log.info("%s", json.dumps({k: r[k] for k in r if k not in ("pngs",)}, default=float))
        results.append(r)
        if args.json:
            Path(args.json).write_text(json.dumps({"clips": results, "summary": summarize(results)}, default=float))
    summary = summarize(results)
    print(format_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
