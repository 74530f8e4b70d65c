"""Which parts of the motion model help lip sync: ``chatanyone eval ablation CLIP... [--json]``.

Every variant drives each clip with its own audio in one run, beside the baselines, and is compared
with the clip's real motion in landmark space (``eval.motion``: LMD, mouth-opening r, amplitude of
the mouth-opening against the real speaker's). Variants:

- ``no_motion``: the neutral face throughout (baseline);
- ``loudness``: expression as a linear function of the frame's loudness (baseline, fitted on the
  training corpus);
- ``shipped``: the face diffusion model alone, released per 10-frame window with 200 ms lookahead
  (the previous model);
- ``dit_lowlat``: the same diffusion model at the mouth predictor's latency (each window heard only
  up to the first chunk's lookahead), its own mouth kept: what the latency costs without the
  predictor;
- ``mouth``: the shipped configuration: deterministic mouth predictor (speaker-normalized targets,
  amplitude gain) for the lower face, diffusion for the rest;
- ``mouth_nogain``: the predictor without its amplitude gain (ridge's shrunken output);
- ``mouth_digital_gate``: the rest gate before the speech-activity gate: the mouth rests in
  (near) digital silence only, real pauses (room noise, breaths) are left to the predictor;
- ``mouth_nogate``: no rest at all (the predictor's own output everywhere);
- ``mouth_norendergain``: without the generator's ``MOUTH_RENDER_GAIN`` (the factor on the opening
  for what rendering loses);
- any other predictor given as ``--variant NAME=NPZ`` (e.g. one trained on raw, not
  speaker-normalized targets, or without the audio/video offset correction); ``NAME=NPZ@1``
  runs it with ``MOUTH_RENDER_GAIN`` 1 (the model before that factor).

Also per variant: the mouth-opening spread in 4 s of appended silence over that in speech
(``rest``), the same in the clip's own pauses (``rest_pause``: frames with no speech energy,
``eval.mouth.speech_frames``, as ``eval lipsync`` finds them; the ``real`` column gives the real
speaker's), head motion in that silence over speech (``head_rest``), and seams: the mean
frame-to-frame change of the expression at window and chunk joins over that inside them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..motion.generator import MotionGenerator
from .motion import LipModel, generate, load_eval_clip, lmd, pearson

log = logging.getLogger("chatanyone")

TAIL = 100  # frames of appended silence


def _variant_generators(weights_dir=None, extra=None, mouth_path=None) -> dict:
    from ..motion.mouth import MouthPredictor
    gens = {}
    base = MotionGenerator(seed=0, weights_dir=weights_dir, mouth=False)
    gens["shipped"] = base
    from ..runners.base import weights_path
    mp = Path(mouth_path) if mouth_path else (
        weights_path("motion_mouth.npz") if weights_dir is None else Path(weights_dir) / "motion_mouth.npz")
    if not mp.is_file():
        log.warning("eval ablation: no motion_mouth.npz; mouth variants skipped")
        return gens

    def with_mouth(path, *, keep_dit_mouth=False, nogain=False, gate="speech", render_gain=None):
        g = MotionGenerator(seed=0, weights_dir=weights_dir, mouth=False)
        g.mouth = MouthPredictor(path)
        g.mouth_gate = gate
        if render_gain is not None:
            g.MOUTH_RENDER_GAIN = float(render_gain)
        if keep_dit_mouth:
            g.mouth.A = np.zeros_like(g.mouth.A)
        if nogain:
            g.mouth.gain = 1.0
        g.reset()
        return g

    gens["dit_lowlat"] = with_mouth(mp, keep_dit_mouth=True)
    gens["mouth"] = with_mouth(mp)
    gens["mouth_nogain"] = with_mouth(mp, nogain=True)
    gens["mouth_digital_gate"] = with_mouth(mp, gate="digital")
    gens["mouth_nogate"] = with_mouth(mp, gate=None)
    gens["mouth_norendergain"] = with_mouth(mp, render_gain=1.0)
    for name, path in (extra or {}).items():
        path, _, rg = str(path).partition("@")
        gens[name] = with_mouth(path, render_gain=rg or None)
    return gens


def _joins(exp: np.ndarray, period: int) -> float | None:
    """Mean |step| of the expression at multiples of ``period`` over the mean elsewhere."""
    n = exp.shape[0]
    st = np.abs(np.diff(exp, axis=0)).mean(1)
    jn = (np.arange(1, n) % period) == 0
    if not jn.any() or not (~jn).any():
        return None
    return float(st[jn].mean() / max(st[~jn].mean(), 1e-12))


def _pause_rest(gap: np.ndarray, speech: np.ndarray, pause: np.ndarray) -> float | None:
    """Mouth-opening spread in the pause frames over that in the speech frames (None: fewer than
    10 of either)."""
    if pause.sum() < 10 or speech.sum() < 10:
        return None
    return float(gap[pause].std() / max(gap[speech].std(), 1e-9))


def ablation(paths, *, weights_dir=None, extra=None, mouth_path=None, seed: int = 0) -> dict:
    """Per clip and variant: LMD, mouth r, amplitude ratio, rest in silence, seams. Returns
    ``{"clips": {clip: {variant: {...}}}, "mean": {variant: {...}}}``."""
    lm = LipModel.packaged()
    gens = _variant_generators(weights_dir, extra, mouth_path)
    stats = gens["shipped"].stats
    out = {}
    skip = {".json", ".npz", ".npy", ".txt", ".tsv", ".md", ".log"}
    paths = [p for p in paths if not (Path(p).is_file() and Path(p).suffix.lower() in skip)]
    if not paths:
        raise ValueError("eval motion --ablation: no clip folders or videos given")
    for p in paths:
        clip = load_eval_clip(p)
        n = clip.n
        m = clip.motion
        real = m["exp"][:n]
        ok = (m["face_ok"][:n] > 0) if "face_ok" in m else np.ones(n, bool)
        real_gap = lm.gap(real)
        real_amp = max(float(real_gap[ok].std()), 1e-9)
        row = {}
        pause = speech = None
        if clip.audio is not None:
            from .mouth import speech_frames
            speech = speech_frames(clip.audio, n)
            pause = _pause_rest(real_gap, ok & speech, ok & ~speech)
        row["real"] = {"rest_pause": pause}
        zero = np.zeros_like(real)
        row["no_motion"] = {"lmd": lmd(lm, zero, real, ok), "r": 0.0, "amp": 0.0}
        loud = np.maximum(clip.mel[: n * 4], stats["mel_floor"]).reshape(n, -1).mean(1)
        z = (loud - stats["loud_mu"]) / stats["loud_sd"]
        lexp = z[:, None] * stats["loud_w"][None] + stats["loud_b"][None]
        row["loudness"] = {"lmd": lmd(lm, lexp, real, ok), "r": pearson(lm.gap(lexp)[ok], real_gap[ok]),
                           "amp": float(lm.gap(lexp)[ok].std() / real_amp)}
        for name, g in gens.items():
            fr, ms = generate(clip, seed=seed, gen=g, tail_silence=TAIL)
            e = fr.exp[:n]
            gap = lm.gap(fr.exp)
            sil = slice(n + 10, n + TAIL)
            r = {"lmd": lmd(lm, e, real, ok), "r": pearson(gap[:n][ok], real_gap[ok]),
                 "amp": float(gap[:n][ok].std() / real_amp),
                 "rest": float(gap[sil].std() / max(gap[:n].std(), 1e-9)),
                 "rest_pause": None if speech is None else _pause_rest(gap[:n], speech, ~speech),
                 "head_rest": float(fr.head[sil, :3].std(0).mean() / max(fr.head[:n, :3].std(0).mean(), 1e-9)),
                 "ms_per_call": float(np.mean(ms)) if ms else None,
                 "joins_window": _joins(e, g.hop)}
            if g.mouth is not None:
                r["joins_chunk"] = _joins(e, g.mouth.hop)
                r["lookahead_ms"] = g.lookahead_samples / 16.0
            else:
                r["lookahead_ms"] = g.lookahead_samples / 16.0
            eo = fr.eye[sil, :2].mean(1)
            thr = eo.mean() - 2.5 * eo.std()
            r["blinks_in_silence"] = int(np.sum((eo[1:] < thr) & (eo[:-1] >= thr)))
            row[name] = r
        out[clip.name] = row
        log.info("ablation %s: %s", clip.name, {k: round(v["r"], 3) for k, v in row.items() if "r" in v})
    names = list(next(iter(out.values())).keys())
    mean = {}
    for v in names:
        keys = set().union(*(out[c][v].keys() for c in out))
        mean[v] = {k: float(np.mean([out[c][v][k] for c in out if out[c][v].get(k) is not None]))
                   for k in sorted(keys) if any(out[c][v].get(k) is not None for c in out)}
    return {"clips": out, "mean": mean}


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def print_table(res: dict) -> None:
    cols = list(res["mean"].keys())
    print(f"{'clip':36s}" + "".join(f"{c:>14s}" for c in cols))
    for metric in ("r", "lmd", "amp"):
        print(f"-- {metric}")
        for clip, row in res["clips"].items():
            print(f"{clip[:36]:36s}" + "".join(f"{_num(row[c].get(metric)):14.3f}" for c in cols))
        print(f"{'mean':36s}" + "".join(f"{_num(res['mean'][c].get(metric)):14.3f}" for c in cols))
    for metric in ("rest", "rest_pause", "head_rest", "blinks_in_silence", "joins_window", "joins_chunk", "lookahead_ms",
                   "ms_per_call"):
        print(f"{'mean ' + metric:36s}" + "".join(f"{_num(res['mean'][c].get(metric)):14.3f}" for c in cols))


def add_arguments(p) -> None:
    p.add_argument("clips", nargs="+", help="corpus clip folders (with motion.npz, audio.npy) or videos")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--weights", default=None, help="folder with motion_*.onnx (default: packaged)")
    p.add_argument("--mouth", default=None, help="the mouth predictor npz (default: the weights')")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=NPZ",
                   help="another mouth predictor to compare (repeatable; NPZ@G: with MOUTH_RENDER_GAIN G)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    import json
    extra = {}
    for v in args.variant:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--variant must be NAME=NPZ, got {v!r}")
        extra[name] = path
    res = ablation(args.clips, weights_dir=args.weights, extra=extra, mouth_path=args.mouth, seed=args.seed)
    if args.json:
        print(json.dumps(res, default=float))
    else:
        print_table(res)
    return 0
