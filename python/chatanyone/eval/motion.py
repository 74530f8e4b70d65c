"""Evaluate audio-to-motion on real clips: ``chatanyone eval motion CLIP... [--json]``.

Each clip (a corpus clip folder with ``motion.npz`` and ``mel.npy``, or a video, prepared on the
fly) is driven by its own audio from the neutral state, and the generated motion is compared with
the clip's real motion:

- **LMD**: mean distance of the 16 lip landmarks (mediapipe ``LIPS_OUTER + LIPS_INNER``), rebuilt
  from the expression coefficients on the shipped PCA basis (``face_basis.npz``), x and y in the
  canonical face frame, in percent of the face height. Canonical space, so head pose does not enter.
- **mouth-opening correlation**: Pearson r of the inner-lip gap (points 13-14) over time.
- baselines: **no motion** (neutral face throughout) and **loudness** (expression = linear function
  of the frame's mean log-mel, fitted on the training corpus at training time).
- **Diversity**: across ``seeds`` samples of the same audio, the standard deviation between samples,
  averaged over frames (head rotation in radians; lip landmarks in % face height). The paper
  reports one Diversity figure; its exact feature set is not published, so both are reported.
- **style** (paper's Table 4 protocol, as StyleTalk): each half of the clip is generated with the
  other half's real motion as the style reference, and compared with the real expression
  coefficients: MAE (coefficient units) and SSIM (coefficients normalized by the corpus std,
  sliding 11-frame windows); the same without a style reference.
- **steps**, **hop**: LMD, correlation, joins and time per window for several DDIM step counts
  and window hops (frames released per window: latency).
- **joins**: mean |frame-to-frame change| at window joins over the mean inside windows
  (normalized face units; 1.0 = a join is an ordinary frame step).
- **silence**: 4 s of digital silence after a clip's speech: mouth gap std and head-rotation std
  in silence over the same during speech, and blinks (eye-openness dips).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..spec import motion_layout as layout
from ..spec.timeline import SAMPLES_PER_FRAME
from ..motion.generator import MotionGenerator

log = logging.getLogger("chatanyone")

LIPS = [61, 291, 0, 17, 37, 267, 84, 314, 78, 308, 13, 14, 82, 312, 87, 317]  # outer + inner
UPPER_INNER, LOWER_INNER = 13, 14


# ------------------------------------------------------------------------------------- geometry

class LipModel:
    """Lip landmarks from expression coefficients: ``exp [T,E] -> [T, 16, 2]`` (canonical units),
    plus the neutral canonical face's lips (so the gap is an absolute opening)."""

    def __init__(self, components: np.ndarray, canonical: np.ndarray | None = None):
        c = np.asarray(components, np.float64)  # [E, 1404] over 468 points x (x, y, z)
        e = c.shape[0]
        pts = c.reshape(e, -1, 3)
        self.lip_basis = pts[:, LIPS, :2]  # E x 16 x 2
        self.neutral = (np.zeros((len(LIPS), 2)) if canonical is None
                        else np.asarray(canonical, np.float64)[LIPS, :2])

    @classmethod
    def packaged(cls) -> "LipModel":
        """From the shipped ``weights/face_basis.npz`` (FileNotFoundError when it is missing)."""
        from ..spec.head import FaceBasis
        from ..runners.base import weights_path
        p = weights_path("face_basis.npz")
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing: LMD needs the expression basis of the data pipeline")
        b = FaceBasis.load(p)
        return cls(b.components, b.canonical)

    def lips(self, exp: np.ndarray) -> np.ndarray:
        return self.neutral[None] + np.einsum("te,ekd->tkd", np.asarray(exp, np.float64), self.lip_basis)

    def gap(self, exp: np.ndarray) -> np.ndarray:
        lp = self.lips(exp)
        return lp[:, LIPS.index(LOWER_INNER), 1] - lp[:, LIPS.index(UPPER_INNER), 1]


def lmd(lm: LipModel, exp_a: np.ndarray, exp_b: np.ndarray, sel: np.ndarray | None = None) -> float:
    """Mean lip-landmark distance in percent of the face height (over frames ``sel``)."""
    d = lm.lips(exp_a) - lm.lips(exp_b)
    e = np.linalg.norm(d, axis=-1).mean(-1)
    return float(100.0 * np.mean(e if sel is None else e[sel]))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def ssim_1d(x: np.ndarray, y: np.ndarray, win: int = 11, data_range: float | None = None) -> float:
    """SSIM of two ``[T, C]`` coefficient trajectories: sliding windows over time, per channel, mean."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if data_range is None:
        data_range = max(float(y.max() - y.min()), 1e-6)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    k = np.ones(win) / win
    T = x.shape[0]
    if T < win:
        win, k = T, np.ones(T) / T

    def filt(a):
        return np.stack([np.convolve(a[:, j], k, mode="valid") for j in range(a.shape[1])], 1)

    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx ** 2, filt(y * y) - my ** 2, filt(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(s.mean())


# ---------------------------------------------------------------------------------------- clips

@dataclasses.dataclass
class EvalClip:
    name: str
    motion: dict          # real motion arrays (motion.npz)
    mel: np.ndarray       # [4n, 80]
    audio: np.ndarray | None = None  # 16 kHz mono samples (audio.npy), when the clip has them

    @property
    def n(self) -> int:
        return int(min(self.motion["exp"].shape[0], self.mel.shape[0] // 4))


def load_eval_clip(path: str | os.PathLike, cache: Path | None = None) -> EvalClip:
    """A corpus clip folder, or a video (prepared into ``cache`` with the data pipeline)."""
    p = Path(path)
    if p.is_dir():
        d = p
    elif p.is_file():
        from ..data import corpus
        cache = Path(cache or Path(tempfile.gettempdir()) / "chatanyone_eval")
        d = cache / corpus.clip_id(p)
        if not (d / "motion.npz").exists():
            log.info("preparing %s (landmarks, motion) into %s", p.name, d)
            corpus.prepare_clip(p, d, require_audio=True)
            corpus.write_motion(d)
    else:
        raise FileNotFoundError(f"clip not found: {path}")
    with np.load(d / "motion.npz") as z:
        motion = {k: np.nan_to_num(z[k]) for k in z.files}
    audio = np.load(d / "audio.npy").astype(np.float32).reshape(-1) if (d / "audio.npy").is_file() else None
    return EvalClip(d.name, motion, np.load(d / "mel.npy").astype(np.float32), audio)


def generate(clip: EvalClip, *, seed=0, steps=None, style=None, intensity=1.0, weights_dir=None,
             body=True, gen: MotionGenerator | None = None, tail_silence: int = 0):
    """Drive ``clip``'s audio through a fresh stream; returns (MotionFrames [n (+tail)], window ms)."""
    g = gen or MotionGenerator(style=style, intensity=intensity, seed=seed, steps=steps,
                               weights_dir=weights_dir, body=body)
    if gen is not None:
        g.seed = seed
        g.set_style(style)
        g.set_intensity(intensity)
        g.reset()
        g.window_ms.clear()
    if clip.audio is not None:  # the samples themselves (the generator computes its own features)
        g.push_audio(clip.audio[: clip.n * SAMPLES_PER_FRAME])
    elif g.audio_kind == "logmel":
        g.push_audio_features(clip.mel[: clip.n * 4])
    else:
        raise ValueError(f"eval motion: clip {clip.name} has no audio.npy, and this model reads the audio itself")
    if tail_silence:
        g.push_silence(tail_silence)
    g.flush()
    out = g.generate_all()
    return out, list(g.window_ms)


def _real_face(clip: EvalClip) -> np.ndarray:
    m = clip.motion
    return layout.pack_face(m["head"], m["exp"], m["eye"])[: clip.n]


def evaluate_clip(clip: EvalClip, lm: LipModel, *, seeds: int = 5, steps_list=(2, 4, 8, 16),
                  hops=(5, 25), weights_dir=None) -> dict:
    n = clip.n
    real_exp = clip.motion["exp"][:n]
    ok = (clip.motion["face_ok"][:n] > 0) if "face_ok" in clip.motion else np.ones(n, bool)
    real_gap = lm.gap(real_exp)
    gen0 = MotionGenerator(seed=0, weights_dir=weights_dir)
    stats = gen0.stats
    default_steps = gen0.steps
    res: dict = {"clip": clip.name, "frames": n, "seconds": n / 25.0}

    # main figures (default steps, seed 0) and diversity over seeds
    samples, times = [], []
    for s in range(seeds):
        fr, ms = generate(clip, seed=s, gen=gen0)
        samples.append(fr)
        times += ms
    g = samples[0]
    res["face_tracked"] = float(ok.mean())
    res["lmd"] = lmd(lm, g.exp[:n], real_exp, ok)
    res["mouth_corr"] = pearson(lm.gap(g.exp[:n])[ok], real_gap[ok])
    # baselines
    zero = np.zeros_like(real_exp)
    res["lmd_no_motion"] = lmd(lm, zero, real_exp, ok)
    loud = np.maximum(clip.mel[: n * 4], stats["mel_floor"]).reshape(n, -1).mean(1)
    z = (loud - stats["loud_mu"]) / stats["loud_sd"]
    loud_exp = z[:, None] * stats["loud_w"][None] + stats["loud_b"][None]
    res["lmd_loudness"] = lmd(lm, loud_exp, real_exp, ok)
    res["mouth_corr_loudness"] = pearson(lm.gap(loud_exp)[ok], real_gap[ok])
    res["mouth_corr_no_motion"] = 0.0
    # realism of amplitude: generated vs real std of the mouth gap
    res["mouth_gap_std_ratio"] = float(lm.gap(g.exp[:n]).std() / max(real_gap[ok].std(), 1e-9))
    rot = np.stack([fr.head[:n, :3] for fr in samples])  # S x n x 3
    lips = np.stack([lm.lips(fr.exp[:n]) for fr in samples])  # S x n x 16 x 2
    res["diversity_head_rad"] = float(rot.std(0).mean()) if seeds > 1 else 0.0
    res["diversity_lips"] = float(100 * np.linalg.norm(lips - lips.mean(0), axis=-1).mean()) if seeds > 1 else 0.0
    res["head_std_rad_generated"] = float(rot[0].std(0).mean())
    res["head_std_rad_real"] = float(clip.motion["head"][:n][ok, :3].std(0).mean())
    # body and hands: amount of motion against the real clip's, and how often hands are shown
    bok = (clip.motion["body_ok"][:n] > 0) if "body_ok" in clip.motion else np.ones(n, bool)
    if bok.sum() > 10:
        res["body_std_generated"] = float(g.body[:n].reshape(n, -1).std(0).mean())
        res["body_std_real"] = float(clip.motion["body"][:n][bok].reshape(int(bok.sum()), -1).std(0).mean())
    res["hands_shown_generated"] = float(g.hands_ok[:n].mean())
    res["hands_shown_real"] = float(clip.motion["hands_ok"][:n].mean())
    # joins: frame-to-frame change at window boundaries vs inside windows (normalized face units)
    T = gen0.T
    fn = (layout.pack_face(g.head, g.exp, g.eye)[:n] - stats["face_mean"]) / stats["face_std"]
    step = np.abs(np.diff(fn, axis=0)).mean(1)  # [n-1], step i: frame i -> i+1
    is_join = (np.arange(1, n) % T) == 0
    if is_join.any() and (~is_join).any():
        res["join_step"] = float(step[is_join].mean())
        res["inner_step"] = float(step[~is_join].mean())
        res["join_ratio"] = res["join_step"] / max(res["inner_step"], 1e-9)
        rn = (_real_face(clip) - stats["face_mean"]) / stats["face_std"]
        res["real_step"] = float(np.abs(np.diff(rn, axis=0)).mean())
    res["ms_per_window"] = float(np.mean(times))
    res["window_frames"] = T
    res["steps"] = default_steps

    # quality vs DDIM steps (seed 0)
    res["by_steps"] = {}
    for k in steps_list:
        gk = MotionGenerator(seed=0, steps=k, weights_dir=weights_dir)
        fr, ms = generate(clip, seed=0, gen=gk)
        res["by_steps"][str(k)] = {"lmd": lmd(lm, fr.exp[:n], real_exp, ok),
                                   "mouth_corr": pearson(lm.gap(fr.exp[:n])[ok], real_gap[ok]),
                                   "ms_per_window": float(np.mean(ms))}

    # latency: frames released per window (hop) against quality and joins
    res["by_hop"] = {}
    for hop in hops:
        gh = MotionGenerator(seed=0, hop=hop, weights_dir=weights_dir)
        fr, ms = generate(clip, seed=0, gen=gh)
        xh = (layout.pack_face(fr.head, fr.exp, fr.eye)[:n] - stats["face_mean"]) / stats["face_std"]
        st = np.abs(np.diff(xh, axis=0)).mean(1)
        jn = (np.arange(1, n) % hop) == 0
        res["by_hop"][str(hop)] = {
            "lmd": lmd(lm, fr.exp[:n], real_exp, ok), "mouth_corr": pearson(lm.gap(fr.exp[:n])[ok], real_gap[ok]),
            "join_ratio": float(st[jn].mean() / max(st[~jn].mean(), 1e-9)) if jn.any() and (~jn).any() else None,
            "ms_per_window": float(np.mean(ms)), "latency_ms": gh.lookahead_samples / 16.0 + 40.0}

    # style (Table 4 protocol): each half with the other half as reference
    h = n // 2
    if h >= 50:
        fstd = stats["face_std"][6:6 + gen0.n_exp]
        out = {"with": {"mae": [], "ssim": []}, "without": {"mae": [], "ssim": []}}
        real_n = real_exp / fstd
        dr = float(real_n.max() - real_n.min())
        for sl_eval, sl_ref in ((slice(0, h), slice(h, n)), (slice(h, n), slice(0, h))):
            ref = {k: clip.motion[k][sl_ref] for k in ("head", "exp", "eye", "hands_ok") if k in clip.motion}
            for key, sty in (("with", ref), ("without", None)):
                fr, _ = generate(clip, seed=0, style=sty, gen=gen0)
                ge = fr.exp[:n][sl_eval]
                okh = ok[sl_eval]
                out[key]["mae"].append(float(np.abs(ge - real_exp[sl_eval])[okh].mean()))
                out[key]["ssim"].append(ssim_1d(ge / fstd, real_n[sl_eval], data_range=dr))
        res["style_mae_with_ref"] = float(np.mean(out["with"]["mae"]))
        res["style_ssim_with_ref"] = float(np.mean(out["with"]["ssim"]))
        res["style_mae_without_ref"] = float(np.mean(out["without"]["mae"]))
        res["style_ssim_without_ref"] = float(np.mean(out["without"]["ssim"]))
        gen0.set_style(None)

    # intensity control: expression RMS at 0.5x and 2x over 1x
    rms = {}
    for it in (0.5, 1.0, 2.0):
        fr, _ = generate(clip, seed=0, intensity=it, gen=gen0)
        rms[it] = float(np.sqrt(np.mean(fr.exp[:n] ** 2)))
    res["intensity_rms_ratio_0.5"] = rms[0.5] / max(rms[1.0], 1e-9)
    res["intensity_rms_ratio_2"] = rms[2.0] / max(rms[1.0], 1e-9)
    gen0.set_intensity(1.0)

    # silence: 4 s of digital zeros after the clip
    tail = 100
    fr, _ = generate(clip, seed=0, gen=gen0, tail_silence=tail)
    sil = slice(n + 10, n + tail)  # skip the lookahead/transition
    gap_sil, gap_sp = lm.gap(fr.exp[sil]), lm.gap(fr.exp[:n])
    res["silence_mouth_std_ratio"] = float(gap_sil.std() / max(gap_sp.std(), 1e-9))
    res["silence_mouth_mean_vs_neutral"] = float(100 * (gap_sil.mean() - lm.gap(np.zeros((1, gen0.n_exp)))[0]))
    res["silence_head_std_ratio"] = float(fr.head[sil, :3].std(0).mean() / max(fr.head[:n, :3].std(0).mean(), 1e-9))
    eo = fr.eye[sil, :2].mean(1)
    res["silence_blinks"] = int(np.sum((eo[1:] < eo.mean() - 2.5 * eo.std()) & (eo[:-1] >= eo.mean() - 2.5 * eo.std())))
    res["silence_head_still"] = bool(fr.head[sil, :3].std(0).mean() < 1e-4)
    res["_curves"] = {"real_gap": real_gap, "gen_gap": lm.gap(g.exp[:n]), "loud_gap": lm.gap(loud_exp)}
    return res


SUMMARY_KEYS = ["lmd", "lmd_no_motion", "lmd_loudness", "mouth_corr", "mouth_corr_loudness",
                "mouth_gap_std_ratio", "diversity_head_rad", "diversity_lips", "head_std_rad_generated",
                "head_std_rad_real", "body_std_generated", "body_std_real", "hands_shown_generated",
                "hands_shown_real", "join_ratio", "ms_per_window",
                "style_mae_with_ref", "style_mae_without_ref", "style_ssim_with_ref", "style_ssim_without_ref",
                "intensity_rms_ratio_0.5", "intensity_rms_ratio_2", "silence_mouth_std_ratio",
                "silence_head_std_ratio", "silence_blinks"]


def evaluate(paths: list, *, seeds: int = 5, steps_list=(2, 4, 8, 16), hops=(5, 25), weights_dir=None,
             plot: str | os.PathLike | None = None, lip_model: LipModel | None = None) -> dict:
    """Evaluate every clip; returns ``{"clips": [...], "mean": {...}, "by_steps": {...}}``."""
    lm = lip_model or LipModel.packaged()
    t0 = time.perf_counter()
    per = []
    skip = {".json", ".npz", ".npy", ".txt", ".tsv", ".md"}
    kept = [p for p in paths if not (Path(p).is_file() and Path(p).suffix.lower() in skip)]
    for p in set(map(str, paths)) - set(map(str, kept)):
        log.info("eval motion: %s is neither a clip folder nor a video; skipped", p)
    if not kept:
        raise ValueError("eval motion: no clip folders or videos given")
    clips = []
    for p in kept:
        clip = load_eval_clip(p)
        clips.append(clip)
        log.info("eval motion: %s (%d frames)", clip.name, clip.n)
        per.append(evaluate_clip(clip, lm, seeds=seeds, steps_list=steps_list, hops=hops, weights_dir=weights_dir))
    follow = style_following(clips, weights_dir=weights_dir)
    if plot and per:
        plot_mouth(per[0], plot)
    mean = {k: float(np.mean([r[k] for r in per if k in r])) for k in SUMMARY_KEYS if any(k in r for r in per)}
    by_steps = {k: {m: float(np.mean([r["by_steps"][k][m] for r in per])) for m in ("lmd", "mouth_corr", "ms_per_window")}
                for k in per[0]["by_steps"]} if per else {}
    by_hop = {k: {m: float(np.mean([r["by_hop"][k][m] for r in per if r["by_hop"][k][m] is not None]))
                  for m in ("lmd", "mouth_corr", "join_ratio", "ms_per_window", "latency_ms")}
              for k in per[0]["by_hop"]} if per else {}
    cfg = MotionGenerator(weights_dir=weights_dir).cfg
    for r in per:
        r.pop("_curves", None)
    return {"clips": per, "mean": mean, "by_steps": by_steps, "by_hop": by_hop, "seeds": seeds,
            "style_following": follow,
            "window_frames": cfg["window"], "lookahead_frames": cfg["lookahead"],
            "eval_seconds": time.perf_counter() - t0,
            "units": {"lmd": "% of face height (canonical lips, x-y)", "diversity_head_rad": "rad",
                      "diversity_lips": "% of face height", "ms_per_window": "ms, face+body, one CPU thread",
                      "latency_ms": "audio needed after a frame's start before it can be generated"}}


def style_following(clips: list, weights_dir=None) -> dict | None:
    """Does the generated motion take on the reference's style? Every clip is driven by its own audio
    with each half of every clip as the style reference (the evaluation clips only, never training
    clips); across those runs, the correlation of the reference's motion amplitude (log of the mean
    per-coefficient std of the expression; of the head rotation) with the generated motion's. The
    Table 4 MAE compares frames and so mostly measures timing; this measures style as statistics."""
    refs = []
    for c in clips:
        h = c.n // 2
        if h < 50:
            continue
        ok = (c.motion["face_ok"][:c.n] > 0) if "face_ok" in c.motion else np.ones(c.n, bool)
        for sl in (slice(0, h), slice(h, c.n)):
            sel = ok[sl]
            ref = {k: c.motion[k][:c.n][sl][sel] for k in ("head", "exp", "eye")}
            refs.append((ref, np.log(ref["exp"].std(0).mean()), np.log(ref["head"][:, :3].std(0).mean())))
    if len(refs) < 3:
        return None
    g = MotionGenerator(seed=0, weights_dir=weights_dir, body=False)
    rows = []
    for c in clips:
        for ref, re, rh in refs:
            fr, _ = generate(c, seed=0, style=ref, gen=g)
            rows.append((re, np.log(fr.exp[:c.n].std(0).mean()), rh, np.log(fr.head[:c.n, :3].std(0).mean())))
    a = np.array(rows)
    return {"runs": len(rows), "references": len(refs),
            "exp_amplitude_r": pearson(a[:, 0], a[:, 1]), "head_amplitude_r": pearson(a[:, 2], a[:, 3]),
            "exp_amplitude_slope": float(np.polyfit(a[:, 0], a[:, 1], 1)[0]),
            "head_amplitude_slope": float(np.polyfit(a[:, 2], a[:, 3], 1)[0])}


def plot_mouth(res: dict, path) -> None:
    """PNG: real vs generated (and loudness-baseline) mouth gap over time for one clip."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    c = res["_curves"]
    t = np.arange(len(c["real_gap"])) / 25.0
    fig, ax = plt.subplots(figsize=(12, 3.2), dpi=100)
    ax.plot(t, 100 * c["real_gap"], label="real", color="k", lw=1.4)
    ax.plot(t, 100 * c["gen_gap"], label=f"generated (r={res['mouth_corr']:.2f})", color="tab:red", lw=1.2)
    ax.plot(t, 100 * c["loud_gap"], label=f"loudness baseline (r={res['mouth_corr_loudness']:.2f})",
            color="tab:blue", lw=0.8, alpha=0.7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("inner-lip gap (% face height)")
    ax.set_title(f"mouth opening, {res['clip']}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clips", nargs="+", help="corpus clip folders (with motion.npz, mel.npy) or videos")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--seeds", type=int, default=5, help="samples per clip for Diversity (default 5)")
    p.add_argument("--steps", default="2,4,8,16", help="DDIM step counts to compare (comma separated)")
    p.add_argument("--hops", default="5,25", help="window hops (frames per window) to compare")
    p.add_argument("--plot", default=None, help="PNG of real vs generated mouth opening (first clip)")
    p.add_argument("--weights", default=None, help="folder with motion_*.onnx (default: packaged)")


def run(args) -> int:
    steps = tuple(int(s) for s in str(args.steps).split(",") if s.strip())
    hops = tuple(int(s) for s in str(args.hops).split(",") if s.strip())
    res = evaluate(args.clips, seeds=args.seeds, steps_list=steps, hops=hops, weights_dir=args.weights,
                   plot=args.plot)
    if args.json:
        print(json.dumps(res, default=float))
        return 0
    m = res["mean"]
    rows = [("LMD (% face h.)", m["lmd"], m["lmd_no_motion"], m["lmd_loudness"]),
            ("mouth-opening r", m["mouth_corr"], 0.0, m["mouth_corr_loudness"])]
    print(f"{'':22s}{'model':>10s}{'no motion':>12s}{'loudness':>10s}")
    for name, a, b, c in rows:
        print(f"{name:22s}{a:10.3f}{b:12.3f}{c:10.3f}")
    for k in SUMMARY_KEYS[5:]:
        if k in m:
            print(f"{k:32s}{m[k]:10.4f}")
    sf = res.get("style_following")
    if sf:
        print(f"style following ({sf['runs']} runs): reference vs generated amplitude r = "
              f"{sf['exp_amplitude_r']:.2f} (expression), {sf['head_amplitude_r']:.2f} (head)")
    print("DDIM steps: " + ", ".join(f"{k}: LMD {v['lmd']:.3f} r {v['mouth_corr']:.3f} {v['ms_per_window']:.1f} ms"
                                     for k, v in res["by_steps"].items()))
    print("hop: " + ", ".join(f"{k}: LMD {v['lmd']:.3f} r {v['mouth_corr']:.3f} join {v['join_ratio']:.2f} "
                              f"{v['ms_per_window']:.1f} ms/window, latency {v['latency_ms']:.0f} ms"
                              for k, v in res["by_hop"].items()))
    return 0
