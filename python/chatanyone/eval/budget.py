"""``chatanyone eval budget VIDEO...``: where the person-pixel error of self-driven reenactment lies.

The same self-driven setting as ``chatanyone eval render`` (:mod:`chatanyone.eval.selfdriven`):
the first face frame of each raw video is the photo, the video's own motion drives it through the
geometry renderer; rendered and real frames are compared on the person's pixels (selfie
segmentation of the real and the source frame, their union). The error is split two ways:

**By region** (on each real frame, from its face mesh, pose and hands; a pixel belongs to the
first region of this list that claims it):

- ``mouth``: the outer lips' polygon (grown by 3 % of the face height);
- ``eyes``: each eye's lid polygon grown by 4 % of the face height (lashes, lids);
- ``face``: the rest of the face oval;
- ``arms``: capsules round the upper arms and forearms (0.2 / 0.16 face heights) and each hand's
  hull grown by 0.1 face heights, of the real frame and of the source frame (an arm that moved
  errs where it was and where it is);
- ``edge``: within 4 % of the face height of the person's outline (real or source): hair and
  shoulder silhouettes, ears against the background, what a moving outline uncovers;
- ``neck``: below the chin, above the shoulders' line, within 0.6 face heights of the face's
  middle;
- ``head``: the rest above the chin (hair, ears);
- ``torso``: the rest (clothes, chest).

For each region: its share of the person's squared error, and the PSNR of the renderer, of the
source repeated and of each ceiling image below over it.

**By cause**, as ceilings (person PSNR of images no renderer here makes, each an upper bound on what
one fix could gain):

- ``source_affine``: the source moved by the best global affine map (ECC on the person, grey
  levels): what following the whole person's translation, scale and turn alone would give;
- ``source_affine_gain``: that, with the best per-channel gain and offset (least squares on the
  person): plus global brightness;
- ``model_gain``: the rendered frame with the best per-channel gain and offset: the share of the
  renderer's error that is global brightness (exposure, lighting);
- ``model_flow``: the rendered frame re-aligned to the real one by dense optical flow (OpenCV DIS,
  medium preset, real -> rendered): what is left when every misplaced pixel is put right, i.e. the
  appearance error (what the photo cannot show: teeth, lids, disocclusions, lighting);
- ``oracle_flow``: the source warped by dense optical flow real -> source: the ceiling of a renderer
  that warps the photo (optimistic: a dense flow also hides some appearance error).

Figures on the dev clips (``split.DEV``) may be used to choose what to fix; held-out figures are
results. Blocks for the whole run (a few seconds per frame on one core).
"""
from __future__ import annotations

import json
import logging
import time

import numpy as np

from .frames import photo_to_frame, real_view, valid_region
from .prepare import prepare

log = logging.getLogger("chatanyone")

REGIONS = ("mouth", "eyes", "face", "arms", "edge", "neck", "head", "torso")
CEILINGS = ("source_affine", "source_affine_gain", "model_gain", "model_flow", "oracle_flow")


def _psnr_sse(sse: float, n: int) -> float | None:
    if n <= 0:
        return None
    return float(10 * np.log10(255.0 ** 2 / max(sse / n, 1e-10)))


def region_labels(hw, face, pose, hands, src_face, src_pose, src_hands, person_real, person_src) -> np.ndarray:
    """``[H, W] int8``: the index in :data:`REGIONS` of each person pixel, -1 elsewhere.

    ``face [478, >=2]`` (NaN: none), ``pose [33, 4]`` (x, y, z, visibility; NaN: none),
    ``hands``: list of ``[21, 2]``, all in frame pixels, for the real frame; ``src_*`` the same for
    the source frame; ``person_*``: ``[H, W] bool`` person masks."""
    import cv2
    from ..render import mesh as M
    h, w = hw
    person = person_real | person_src
    lab = np.full((h, w), -1, np.int8)
    claimed = np.zeros((h, w), bool)

    def claim(mask, k):
        m = mask & person & ~claimed
        lab[m] = k
        claimed[m] = True

    def poly(pts, grow):
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(np.asarray(pts)[:, :2]).astype(np.int32)], 1)
        if grow >= 1:
            r = int(round(grow))
            m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        return m.astype(bool)

    fok = face is not None and np.all(np.isfinite(face[:468, :2]))
    fh = float(np.linalg.norm(face[152, :2] - face[10, :2])) if fok else 0.3 * h
    if fok:
        lips = list(M.LIP_UPPER_OUTER) + list(M.LIP_LOWER_OUTER[::-1])
        claim(poly(face[lips], 0.03 * fh), REGIONS.index("mouth"))
        eyes = poly(face[M.RIGHT_EYE_UPPER + M.RIGHT_EYE_LOWER[::-1]], 0.04 * fh) | \
            poly(face[M.LEFT_EYE_UPPER + M.LEFT_EYE_LOWER[::-1]], 0.04 * fh)
        claim(eyes, REGIONS.index("eyes"))
        claim(poly(face[M.FACE_OVAL], 0), REGIONS.index("face"))
    arms = np.zeros((h, w), np.uint8)
    for p, hs in ((pose, hands), (src_pose, src_hands)):
        if p is not None:
            for a, b, r in ((11, 13, 0.2), (13, 15, 0.16), (12, 14, 0.2), (14, 16, 0.16)):
                if np.all(np.isfinite(p[[a, b], :2])) and min(p[a, 3], p[b, 3]) >= 0.5:
                    cv2.line(arms, tuple(int(v) for v in np.round(p[a, :2])), tuple(int(v) for v in np.round(p[b, :2])),
                             1, max(1, int(round(2 * r * fh))))
        for hp in hs:
            if np.all(np.isfinite(hp)):
                hull = cv2.convexHull(np.round(hp).astype(np.int32))
                m = np.zeros((h, w), np.uint8)
                cv2.fillConvexPoly(m, hull, 1)
                r = max(1, int(round(0.1 * fh)))
                arms |= cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    claim(arms.astype(bool), REGIONS.index("arms"))
    band = max(1, int(round(0.04 * fh)))
    edge = np.zeros((h, w), bool)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    for m in (person_real, person_src):
        mu = m.astype(np.uint8)
        edge |= (cv2.dilate(mu, ker) > 0) & ~(cv2.erode(mu, ker) > 0)
    claim(edge, REGIONS.index("edge"))
    yy, xx = np.mgrid[0:h, 0:w]
    if fok:
        chin = float(face[152, 1])
        xc = float(face[M.FACE_OVAL, 0].mean())
        sh = [pose[j, 1] for j in (11, 12) if pose is not None and np.isfinite(pose[j, 1]) and pose[j, 3] >= 0.5]
        y_sh = float(np.mean(sh)) if sh else chin + 0.6 * fh
        claim((yy > chin) & (yy < max(y_sh, chin + 0.2 * fh)) & (np.abs(xx - xc) < 0.6 * fh), REGIONS.index("neck"))
        claim(yy <= chin, REGIONS.index("head"))
    claim(np.ones((h, w), bool), REGIONS.index("torso"))
    return lab


def _gain(img: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``img`` with the per-channel gain and offset that best match ``ref`` on ``mask`` (float32)."""
    out = img.astype(np.float32).copy()
    for c in range(3):
        x = img[..., c][mask].astype(np.float64)
        y = ref[..., c][mask].astype(np.float64)
        a = np.stack([x, np.ones_like(x)], 1)
        g, o = np.linalg.lstsq(a, y, rcond=None)[0]
        out[..., c] = g * out[..., c] + o
    return np.clip(out, 0, 255)


def _affine(src: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``src`` moved by the global affine map that best aligns it to ``ref`` on ``mask`` (ECC)."""
    import cv2
    g_s = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g_r = cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY).astype(np.float32)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(g_r, g_s, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5),
                                       mask.astype(np.uint8), 5)
    except cv2.error:
        return src
    h, w = src.shape[:2]
    return cv2.warpAffine(src, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _flow_warp(img: np.ndarray, ref: np.ndarray, dis) -> np.ndarray:
    """``img`` warped onto ``ref`` along DIS optical flow ref -> img."""
    import cv2
    g_r = cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)
    g_i = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    flow = dis.calc(g_r, g_i, None)
    h, w = ref.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def budget_clip(video, *, max_seconds=None, cache=None, pixel_every: int = 2, renderers=None,
                ceilings: bool = True) -> dict:
    """One raw video's error budget (see the module docstring). ``renderers``: ``{name: kwargs}``
    of :class:`~chatanyone.render.geometry.GeomRenderer` variants driven by the same motion
    (default: ``{"model": {}}``, the shipped renderer). Blocks for the whole clip."""
    import cv2
    from ..avatar import Avatar
    from ..config import SessionConfig
    from ..reenact import driving_frames
    from ..render.geometry import GeomRenderer
    from .selfdriven import _Person
    from .split import role
    renderers = renderers or {"model": {}}
    pv = prepare(video, max_seconds=max_seconds, cache=cache)
    s = pv.first_face_frame()
    src = pv.frame(s)
    avatar = Avatar.prepare(src, name=pv.name)
    long_side = SessionConfig().long_side
    geo = {k: GeomRenderer(avatar, long_side, **kw) for k, kw in renderers.items()}
    motion = driving_frames(pv, cache=cache)   # what reenact renders (the body's registered maps)
    seg = _Person()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    face_all, pose_all, hands_all = pv.face_px(), pv.to_pixels(pv.pose), pv.to_pixels(pv.hands[..., :2])
    names = list(renderers) + ["source"]
    sse = {m: np.zeros(len(REGIONS)) for m in names}
    cnt = np.zeros(len(REGIONS))
    ceil = {c: [] for c in CEILINGS}
    tot = {m: [] for m in names}
    ms = {m: [] for m in renderers}
    views = None
    t_start = time.perf_counter()

    def to_frame(pts, hw, off):
        if pts is None:
            return None
        q = np.array(pts, np.float64, copy=True)
        q[..., :2] = photo_to_frame(avatar, q[..., :2], hw) - off
        return q

    try:
        for t, real in pv.frames():
            if t == s or t % pixel_every:
                continue
            outs = {}
            for k, g in geo.items():
                t0 = time.perf_counter()
                outs[k] = g.render(motion.frame(t))
                ms[k].append(time.perf_counter() - t0)
            hw = next(iter(outs.values())).shape[:2]
            if views is None:
                x0, y0, x1, y1 = valid_region(avatar, hw)
                sv = np.ascontiguousarray(real_view(avatar, src, hw)[y0:y1, x0:x1])
                off = np.array([x0, y0], np.float64)
                s_hands = [to_frame(hands_all[s, k], hw, off) for k in range(2) if pv.hands_ok[s, k]]
                s_pose = to_frame(pose_all[s], hw, off) if pv.pose_ok[s] else None
                views = (x0, y0, x1, y1, sv, seg(sv), off, s_pose, s_hands)
            x0, y0, x1, y1, sv, src_mask, off, s_pose, s_hands = views
            rv = np.ascontiguousarray(real_view(avatar, real, hw)[y0:y1, x0:x1])
            outs = {k: np.ascontiguousarray(v[y0:y1, x0:x1]) for k, v in outs.items()}
            outs["source"] = sv
            mask = seg(rv) | src_mask
            if mask.sum() < 100:
                continue
            lab = region_labels(rv.shape[:2], to_frame(face_all[t], hw, off) if pv.face_ok[t] else None,
                                to_frame(pose_all[t], hw, off) if pv.pose_ok[t] else None,
                                [to_frame(hands_all[t, k], hw, off) for k in range(2) if pv.hands_ok[t, k]],
                                None, s_pose, s_hands, seg(rv), src_mask)
            rvf = rv.astype(np.float64)
            lab_m = lab[mask]
            cnt += np.bincount(lab_m[lab_m >= 0], minlength=len(REGIONS))[:len(REGIONS)]

            def account(m, img):
                e = ((np.asarray(img, np.float64) - rvf) ** 2).sum(-1)[mask] / 3.0
                sse.setdefault(m, np.zeros(len(REGIONS)))
                sse[m] += np.bincount(lab_m[lab_m >= 0], weights=e[lab_m >= 0], minlength=len(REGIONS))[:len(REGIONS)]
                return _psnr_sse(float(e.sum()), int(mask.sum()))

            for m, img in outs.items():
                tot[m].append(account(m, img))
            if ceilings:
                model = outs[list(renderers)[0]]
                aff = _affine(sv, rv, mask)
                ceil["source_affine"].append(account("source_affine", aff))
                ceil["source_affine_gain"].append(account("source_affine_gain", _gain(aff, rv, mask)))
                ceil["model_gain"].append(account("model_gain", _gain(model, rv, mask)))
                ceil["model_flow"].append(account("model_flow", _flow_warp(model, rv, dis)))
                ceil["oracle_flow"].append(account("oracle_flow", _flow_warp(sv, rv, dis)))
    finally:
        seg.close()
    names = names + [c for c in CEILINGS if c in sse]
    total_sse = {m: float(sse[m].sum()) for m in names}
    res = {"clip": pv.name, "role": role(pv.path), "frames": int(len(tot["source"])),
           "person": {m: float(np.mean(v)) if v else None for m, v in tot.items()},
           "ceilings": {c: float(np.mean(v)) if v else None for c, v in ceil.items()},
           "regions": {}, "ms": {k: 1000 * float(np.mean(v)) for k, v in ms.items() if v},
           "seconds": time.perf_counter() - t_start}
    for i, r in enumerate(REGIONS):
        n = int(cnt[i])
        res["regions"][r] = {"pixels": n / max(1, len(tot["source"])),
                             **{f"{m}_share": float(sse[m][i] / max(total_sse[m], 1e-9)) for m in names},
                             **{f"{m}_psnr": _psnr_sse(float(sse[m][i]), n) for m in names}}
    return res


def budget(videos, *, max_seconds=None, cache=None, pixel_every: int = 2, renderers=None,
           ceilings: bool = True) -> dict:
    """The budget of each video and their mean (see the module docstring)."""
    clips = [budget_clip(v, max_seconds=max_seconds, cache=cache, pixel_every=pixel_every,
                         renderers=renderers, ceilings=ceilings) for v in videos]

    def mean(get):
        xs = [get(c) for c in clips]
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    names = list(clips[0]["person"])
    out = {"person": {m: mean(lambda c, m=m: c["person"][m]) for m in names},
           "ceilings": {k: mean(lambda c, k=k: c["ceilings"][k]) for k in CEILINGS},
           "regions": {r: {k: mean(lambda c, r=r, k=k: c["regions"][r][k]) for k in clips[0]["regions"][r]}
                       for r in REGIONS}}
    return {"clips": clips, "mean": out, "max_seconds": max_seconds, "pixel_every": pixel_every}


def format_budget(res: dict) -> str:
    def f(x, p=2):
        return "    -" if x is None else f"{x:6.{p}f}"
    lines = []
    for c in res["clips"] + [{"clip": "mean", "role": "", **res["mean"]}]:
        names = [k[:-6] for k in c["regions"][REGIONS[0]] if k.endswith("_share")]
        lines.append(f"{c['clip']} ({c.get('role', '')}): person PSNR " +
                     ", ".join(f"{m} {f(v)}" for m, v in c["person"].items()))
        lines.append("  ceilings: " + ", ".join(f"{k} {f(v)}" for k, v in c["ceilings"].items()))
        lines.append(f"  {'region':8s}{'px':>8s}" + "".join(f"{m[:8] + ' %':>11s}{m[:8] + ' dB':>11s}" for m in names))
        for r in REGIONS:
            g = c["regions"][r]
            lines.append(f"  {r:8s}{f(g['pixels'], 0):>8s}" + "".join(
                f"{f(100 * g[m + '_share'], 1):>11s}{f(g[m + '_psnr']):>11s}" for m in names))
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--max-seconds", type=float, default=4.0)
    p.add_argument("--pixel-every", type=int, default=2, metavar="N")
    p.add_argument("--no-ceilings", action="store_true", help="skip the optical-flow / ECC ceilings")
    p.add_argument("--unregistered", action="store_true",
                   help="also the renderer without the body's registered motion (GeomRenderer(register=False))")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    renderers = {"model": {}, "unregistered": {"register": False}} if getattr(args, "unregistered", False) else None
    res = budget(args.videos, max_seconds=args.max_seconds, pixel_every=args.pixel_every,
                 ceilings=not args.no_ceilings, renderers=renderers)
    print(json.dumps(res) if args.json else format_budget(res))
    return 0


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m chatanyone.eval.budget", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
