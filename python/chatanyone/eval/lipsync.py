"""``chatanyone eval lipsync VIDEO... [--json]``: lip sync end to end through the public Session.

For each raw video: the video is prepared once and cached (:mod:`chatanyone.eval.prepare`: 25 fps
timeline, 16 kHz audio, face mesh on every real frame). An :class:`~chatanyone.Avatar` is prepared
from the clip's first frame with a face, a :class:`~chatanyone.Session` is driven with the clip's own
audio, and every rendered frame is read. Mouth opening is measured by face mesh on the rendered
frames (real pixels only: the renderer's padding is cut away) and on the real video
(:mod:`chatanyone.eval.mouth`: inner-lip gap in face heights, canonical face frame). Frame ``t`` of
the Session and frame ``t`` of the video own the same audio samples.

Per clip and mean over clips:

- ``model``: the Session's frames. ``r``: Pearson correlation of rendered and real mouth opening
  over the frames where both show a face; ``amp``: std of the rendered opening over std of the
  real one, on speech frames (energy); ``lmd``: mean distance of the 16 lip landmarks in the
  canonical face frame, percent of the face height; ``peak``: how wide the rendered mouth opens at
  the real mouth's widest tenth of speech frames, over how wide the real one does (each above its
  median, :func:`~chatanyone.eval.mouth.peak_ratio`; 1: the wide peaks open as wide);
  ``r_best``/``lag``: the best r within +-5 frames
  and its lag (positive: the rendered mouth is late); ``rest``: std of the opening in the clip's
  pauses over std in speech (rendered; ``rest_real`` the same on the real video; ``rest_tracked`` /
  ``rest_real_tracked`` without frame 0, the one frame face mesh reads with its detector, not by
  tracking); ``face``: fraction of rendered frames where face mesh finds a face.
- ``no_motion``: the source frame repeated (its real landmarks): r undefined, amp 0.
- ``loudness``: the audio's RMS envelope (per frame) against the real opening: r only.
- ``loudness_matched``: that envelope mapped linearly onto the real opening's mean and std (an
  oracle amplitude) and applied to the source frame's lower lip: r, amp, lmd.

Held-out figures only count on ``chatanyone.eval.split.HELDOUT`` clips (each row says its role).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from . import mouth as M
from .frames import valid_region
from .prepare import prepare
from ..spec.timeline import SAMPLE_RATE

log = logging.getLogger("chatanyone")

MAX_LAG = 5
METHODS = ("model", "no_motion", "loudness", "loudness_matched")
SUMMARY = {"model": ("r", "amp", "lmd", "peak", "r_best", "lag", "rest", "rest_tracked", "face"),
           "no_motion": ("amp", "lmd"), "loudness": ("r",), "loudness_matched": ("r", "amp", "lmd", "peak")}


def _session_config(preset: str, seed: int, output_size: int | None):
    from ..config import SessionConfig
    kw = dict(preset=preset, seed=seed)
    if output_size is not None:
        if "output_size" not in {f.name for f in dataclasses.fields(SessionConfig)}:
            raise ValueError("this chatanyone's SessionConfig has no output_size")
        kw["output_size"] = output_size
    return SessionConfig(**kw)


# variant keys that set one MotionGenerator attribute: (key, attribute, type)
_GENERATOR_KEYS = (("render_gain", "MOUTH_RENDER_GAIN", float), ("shift", "MOUTH_OPEN_SHIFT", float),
                   ("pause_close", "PAUSE_CLOSE", float), ("pause_seal", "PAUSE_SEAL", float),
                   ("pause_settle", "PAUSE_SETTLE_FRAMES", float), ("lid_keep", "LID_KEEP", float),
                   ("blink_depth", "BLINK_DEPTH", float), ("hold", "GATE_HOLD", int),
                   ("release", "GATE_RELEASE", int), ("onset", "GATE_ONSET", int),
                   ("bridge", "GATE_BRIDGE", int), ("gate_db", "GATE_REL_DB", float),
                   ("gate_pow", "GATE_POWER", float), ("head_calm", "HEAD_PAUSE_CALM", float),
                   ("spk_amp", "SPEAKER_AMP", lambda v: bool(int(v))), ("gate_init", "GATE_INIT_DB", float),
                   ("noise_skip", "GATE_NOISE_SKIPS_SILENCE", lambda v: bool(int(v))))


# variant keys that set one GeomRenderer attribute (the painted mouth): (key, attribute, type)
_RENDERER_KEYS = (("paint_shadow", "paint_shadow", lambda v: bool(int(v))), ("paint_soft", "paint_soft", float))


def apply_variant(gen, spec: dict, renderer=None) -> None:
    """Change a :class:`~chatanyone.motion.MotionGenerator`'s mouth as a variant ``spec`` says
    (keys: ``mouth`` a predictor npz (its own lookahead and hop: :func:`render_clip` makes the
    Session wait for them), ``gate`` ``speech``/``digital``/``none``, ``gain`` the
    predictor's opening gain, ``gain_x`` a factor on it, ``render_gain`` ``MOUTH_RENDER_GAIN``,
    ``shift`` ``MOUTH_OPEN_SHIFT``, ``pause_close`` ``PAUSE_CLOSE``, ``pause_seal`` ``PAUSE_SEAL``,
    ``pause_settle`` ``PAUSE_SETTLE_FRAMES``, ``lid_keep`` / ``blink_depth`` ``LID_KEEP`` /
    ``BLINK_DEPTH`` (``lid_keep:1,blink_depth:0``: the face model's own lids, as before session 8),
    ``hold`` / ``release`` / ``onset`` / ``bridge`` the speech gate's edges (``GATE_HOLD`` etc., frames),
    ``gate_db`` / ``gate_pow`` its threshold below the running speech level (``GATE_REL_DB``, dB) and
    the power on its weights (``GATE_POWER``), ``head_calm`` how much the head moves in pauses
    (``HEAD_PAUSE_CALM``, 0..1), ``gate_init`` the gate's speech level before the first word
    (``GATE_INIT_DB``, dBFS), ``noise_skip`` ``1``/``0``: (near) digital silence leaves its noise
    floor alone (``GATE_NOISE_SKIPS_SILENCE``), ``spk_amp`` ``1``/``0``: the speaker's amplitude
    from the audio on or off (``SPEAKER_AMP``; needs ``weights/mouth_amp.npz``), ``amp_model`` another
    such npz (and on), ``open_dir`` ``0``: the gains open the mouth along the smallest change
    of the inner lips (before session 11) instead of the predictor's ``open_dir``, ``dit_mouth`` ``1``: the
    diffusion model's own mouth at 120 ms; with ``renderer``, a
    :class:`~chatanyone.render.geometry.GeomRenderer`, ``paint_shadow`` ``0``/``1`` and
    ``paint_soft`` (px) its painted mouth's ``PAINT_SHADOW`` / ``PAINT_SOFT``). Raises ValueError
    for an unknown key or value."""
    from ..motion.mouth import MouthPredictor
    unknown = (set(spec) - {"mouth", "gate", "gain", "gain_x", "dit_mouth", "amp_model", "open_dir"}
               - {k for k, _, _ in _GENERATOR_KEYS})
    unknown -= {k for k, _, _ in _RENDERER_KEYS} if renderer is not None else set()
    if unknown:
        raise ValueError(f"eval lipsync variant: unknown keys {sorted(unknown)}")
    for key, attr, kind in _RENDERER_KEYS:
        if key in spec:
            try:
                v = kind(spec[key])
            except ValueError:
                raise ValueError(f"eval lipsync variant: {key} must be a number, got {spec[key]!r}") from None
            if isinstance(v, float) and not v >= 0:
                raise ValueError(f"eval lipsync variant: {key} must be >= 0, got {spec[key]!r}")
            setattr(renderer, attr, v)
    if gen.mouth is None:
        raise ValueError("eval lipsync variant: the motion model has no mouth predictor")
    if "mouth" in spec:
        if not Path(spec["mouth"]).is_file():
            raise FileNotFoundError(f"eval lipsync variant: no predictor {spec['mouth']!r}")
        m = MouthPredictor(spec["mouth"])
        if m.n_exp != gen.n_exp:
            raise ValueError(f"eval lipsync variant: the predictor has {m.n_exp} expression coefficients, "
                             f"the face model {gen.n_exp}")
        if m.seg < max(gen.P, m.past) + m.hop + m.look:
            raise ValueError(f"eval lipsync variant: the predictor's segment ({m.seg} frames) is too short "
                             "for its layout")
        # a predictor with another lookahead/hop brings its own: the generator's lookahead_samples
        # follows gen.mouth (the caller refreshes a Pipeline's copy, see render_clip)
        gen.mouth = m
    if "gate" in spec:
        if spec["gate"] not in ("speech", "digital", "none"):
            raise ValueError(f"eval lipsync variant: gate must be speech, digital or none, got {spec['gate']!r}")
        gen.mouth_gate = None if spec["gate"] == "none" else spec["gate"]
    if "open_dir" in spec:
        if spec["open_dir"] not in ("0", "1", 0, 1):
            raise ValueError(f"eval lipsync variant: open_dir must be 0 or 1, got {spec['open_dir']!r}")
        if int(spec["open_dir"]) == 0:   # the smallest opening change (the gains' direction before session 11)
            from ..motion.mouth import min_open_dir
            gen.mouth.open_dir = min_open_dir(gen.mouth.open_vec)
    if "gain" in spec:
        gen.mouth.gain = float(spec["gain"])
    if "gain_x" in spec:
        gen.mouth.gain *= float(spec["gain_x"])
    for key, attr, kind in _GENERATOR_KEYS:
        if key in spec:
            setattr(gen, attr, kind(spec[key]))
    if "gate_pow" in spec and not gen.GATE_POWER > 0:
        raise ValueError(f"eval lipsync variant: gate_pow must be > 0, got {spec['gate_pow']!r}")
    if "head_calm" in spec and not 0 <= gen.HEAD_PAUSE_CALM <= 1:
        raise ValueError(f"eval lipsync variant: head_calm must be in [0, 1], got {spec['head_calm']!r}")
    if "gate_db" in spec and not gen.GATE_REL_DB < 0:
        raise ValueError(f"eval lipsync variant: gate_db must be < 0 (dB below the speech level), got {spec['gate_db']!r}")
    if "amp_model" in spec:
        from ..motion.mouth import SpeakerAmplitude
        gen.speaker_amp = SpeakerAmplitude(spec["amp_model"])
        gen.SPEAKER_AMP = True
    if gen.SPEAKER_AMP and gen.speaker_amp is None:
        raise ValueError("eval lipsync variant: spk_amp:1 needs weights/mouth_amp.npz (or amp_model:NPZ)")
    if spec.get("dit_mouth") in ("1", 1, True):
        gen.mouth.A = np.zeros_like(gen.mouth.A)
    gen.reset()
    gen._mouth_shift = gen._open_shift()
    gen._upper = np.eye(gen.n_exp, dtype=np.float32) - gen.mouth.A


def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME=KEY:VALUE,KEY:VALUE`` (``NAME=`` alone: the shipped model) -> ``(NAME, {KEY: VALUE})``."""
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--variant must be NAME=KEY:VALUE[,KEY:VALUE...], got {text!r}")
    spec = {}
    for item in filter(None, rest.split(",")):
        k, sep, v = item.partition(":")
        if not sep:
            raise ValueError(f"--variant {name}: {item!r} is not KEY:VALUE")
        spec[k] = v
    return name, spec


def render_clip(avatar, audio: np.ndarray, config, *, keep: set | None = None, on_frame=None,
                variant: dict | None = None) -> tuple[int, dict]:
    """Drive a Session for ``avatar`` with 16 kHz ``audio [S]`` (fed in 100 ms chunks, then flushed)
    and read every frame. ``on_frame(index, image)`` is called for each; the images of frame indices
    in ``keep`` are returned; ``variant``: the motion model changed by :func:`apply_variant`.
    Returns ``(frame count, {index: image})``. Blocks until the last frame."""
    from ..pipeline import Pipeline
    from ..session import Session
    kept = {}
    n = 0
    pipe = None
    if variant:
        pipe = Pipeline(avatar, config)
        apply_variant(pipe.gen, variant, pipe.renderer)
        # the variant's predictor may read another lookahead: the Session waits for its audio
        pipe.lookahead_samples = int(pipe.gen.lookahead_samples)
    with Session(avatar, config, _pipeline=pipe) as s:
        chunk = SAMPLE_RATE // 10
        for i in range(0, len(audio), chunk):
            s.feed_audio(audio[i:i + chunk], SAMPLE_RATE)
        s.flush()
        while (f := s.next_frame()) is not None:
            img = np.asarray(f.image)
            if on_frame is not None:
                on_frame(f.index, img)
            if keep and f.index in keep:
                kept[f.index] = img
            n += 1
    return n, kept


def _best_lag(a, b, max_lag=MAX_LAG):
    best = (None, 0)
    for lag in range(-max_lag, max_lag + 1):  # lag > 0: a (rendered) is late, a[t + lag] ~ b[t]
        x = a[lag:] if lag >= 0 else a[:lag]
        y = b[:len(b) - lag] if lag >= 0 else b[-lag:]
        r = M.pearson(x, y)
        if r is not None and (best[0] is None or r > best[0]):
            best = (r, lag)
    return best


def _rest(open_, speech, tracked: bool = False):
    """Std of the opening ``open_ [T]`` on non-``speech`` frames over its std on speech frames (None
    with fewer than 10 of either). ``tracked``: frame 0 left out: face mesh reads a stream's first
    frame with its detector and every later one by tracking, and on a still, narrow mouth the two
    read up to 0.01 face heights apart (half a speech std; motion/design.md, "Session 11")."""
    if tracked:
        open_ = np.array(open_, np.float64)
        open_[:1] = np.nan
    sil = ~speech & np.isfinite(open_)
    sp = speech & np.isfinite(open_)
    if sil.sum() < 10 or sp.sum() < 10 or open_[sp].std() < 1e-9:
        return None
    return float(open_[sil].std() / open_[sp].std())


def most_open_frames(open_real: np.ndarray, k: int = 4, min_gap: int = 10) -> list[int]:
    """Indices of the ``k`` largest real openings, at least ``min_gap`` frames apart."""
    order = np.argsort(np.nan_to_num(open_real, nan=-np.inf))[::-1]
    picked: list[int] = []
    for i in order:
        if not np.isfinite(open_real[i]):
            break
        if all(abs(int(i) - j) >= min_gap for j in picked):
            picked.append(int(i))
        if len(picked) == k:
            break
    return sorted(picked)


def pause_frames(speech: np.ndarray, k: int = 2, min_len: int = 8) -> list[int]:
    """The middle frames of the ``k`` longest runs of non-speech frames (at least ``min_len``)."""
    runs, start = [], None
    for i, sp in enumerate(list(np.asarray(speech, bool)) + [True]):
        if not sp and start is None:
            start = i
        elif sp and start is not None:
            if i - start >= min_len:
                runs.append((i - start, (start + i) // 2))
            start = None
    return sorted(m for _, m in sorted(runs, reverse=True)[:k])


def evaluate_clip(video, *, config=None, max_seconds: float | None = None, cache=None,
                  frames_dir: str | os.PathLike | None = None, variants: dict | None = None) -> dict:
    """One clip's figures (see the module docstring). ``frames_dir``: write mouth close-ups
    (real | rendered) at the most open real frames and in the longest pauses there as PNG
    (``<clip>_<frame>.png``, ``<clip>_<frame>_pause.png``). ``variants``: ``{name: spec}``
    (:func:`apply_variant`; ``{}`` spec: the shipped model), each rendered in turn and reported
    under ``"variants"``; the first is also ``"model"`` (and the close-ups'). Blocks for the whole run."""
    from ..avatar import Avatar
    from .split import role
    if config is None:
        config = _session_config("fast", 0, None)
    t0 = time.perf_counter()
    pv = prepare(video, max_seconds=max_seconds, cache=cache)
    s = pv.first_face_frame()
    src_img = pv.frame(s)
    avatar = Avatar.prepare(src_img, name=pv.name)
    canon_real, _ = M.canonical_faces(pv.face_px(), pv.face_ok)
    open_real = M.opening(canon_real)
    lips_real = M.lips(canon_real)
    speech = M.speech_frames(pv.audio, pv.n)
    pauses = set(pause_frames(speech)) if frames_dir else set()
    keep = (set(most_open_frames(open_real)) | pauses) if frames_dir else set()

    res: dict = {"clip": pv.name, "role": role(pv.path), "frames": pv.n, "source_frame": s,
                 "speech_frames": int(speech.sum()), "real_face": float(pv.face_ok.mean())}
    names = list(variants) if variants else ["model"]
    sizes = set()
    for j, name in enumerate(names):
        rend = np.full((pv.n, 478, 3), np.nan)
        region_of = {}
        t_render = time.perf_counter()
        with M.FaceMeshTrack() as fm:
            def on_frame(i, img):
                if i >= pv.n:
                    return
                hw = img.shape[:2]
                sizes.add(hw)
                if hw not in region_of:
                    region_of[hw] = valid_region(avatar, hw)
                p = fm(img, region_of[hw])
                if p is not None:
                    rend[i] = p
            kw = {"variant": variants[name]} if variants else {}
            n_frames, kept_j = render_clip(avatar, pv.audio, config, keep=keep if j == 0 else None,
                                           on_frame=on_frame, **kw)
        t_render = time.perf_counter() - t_render
        if n_frames != pv.n:
            log.warning("%s: the Session gave %d frames for %d frames of audio", pv.name, n_frames, pv.n)
        canon_rend, _ = M.canonical_faces(rend)
        open_rend = M.opening(canon_rend)
        lips_rend = M.lips(canon_rend)
        r_best, lag = _best_lag(open_rend, open_real)
        fig = {"r": M.pearson(open_rend, open_real), "amp": M.amplitude_ratio(open_rend, open_real, speech),
               "lmd": M.lmd(lips_rend, lips_real), "peak": M.peak_ratio(open_rend, open_real, speech),
               "r_best": r_best, "lag": lag,
               "rest": _rest(open_rend, speech), "rest_tracked": _rest(open_rend, speech, tracked=True),
               "face": float(np.isfinite(open_rend).mean()),
               "seconds_render": t_render}
        if j == 0:
            kept, rend0 = kept_j, rend
            res["model"] = fig
            res["seconds_render"] = t_render
        if variants:
            res.setdefault("variants", {})[name] = fig
    res["frame_size"] = sorted({f"{w}x{h}" for h, w in sizes})
    res["rest_real"] = _rest(open_real, speech)
    res["rest_real_tracked"] = _rest(open_real, speech, tracked=True)
    src_lips, src_open = lips_real[s], float(open_real[s])
    still = np.repeat(src_lips[None], pv.n, 0)
    res["no_motion"] = {"r": None, "amp": 0.0, "lmd": M.lmd(still, lips_real)}
    env = M.rms_envelope(pv.audio, pv.n)
    res["loudness"] = {"r": M.pearson(env, open_real)}
    okr = np.isfinite(open_real)
    if okr.sum() >= 3 and env[okr].std() > 1e-12:
        matched = open_real[okr].mean() + open_real[okr].std() * (env - env[okr].mean()) / env[okr].std()
        res["loudness_matched"] = {"r": M.pearson(matched, open_real),
                                   "amp": M.amplitude_ratio(matched, open_real, speech),
                                   "lmd": M.lmd(M.lips_with_opening(src_lips, src_open, matched), lips_real),
                                   "peak": M.peak_ratio(matched, open_real, speech)}
    else:
        res["loudness_matched"] = {"r": None, "amp": None, "lmd": None, "peak": None}
    if frames_dir and kept:
        res["closeups"] = _write_closeups(pv, avatar, kept, rend0, Path(frames_dir), pauses)
    res["seconds"] = time.perf_counter() - t0
    return res


def _mouth_box(face_px: np.ndarray, scale: float = 1.0) -> tuple[int, int, int, int]:
    """A square around the mouth: 1.2 mouth widths wide (times ``scale``)."""
    m = face_px[M.LIPS, :2]
    c = m.mean(0)
    half = 0.6 * scale * max(np.ptp(m[:, 0]), 1.0) + 4
    return int(c[0] - half), int(c[1] - half), int(c[0] + half), int(c[1] + half)


def _cut(img, box, size=160):
    import cv2
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return cv2.resize(np.ascontiguousarray(img[y0:y1, x0:x1]), (size, size), interpolation=cv2.INTER_CUBIC)


def _write_closeups(pv, avatar, kept: dict, rend_px: np.ndarray, out: Path, pauses=()) -> list[str]:
    """PNG per kept frame: real mouth | rendered mouth | whole rendered frame (for looking at);
    frames in ``pauses`` get a ``_pause`` suffix."""
    import cv2
    out.mkdir(parents=True, exist_ok=True)
    real_px = pv.face_px()
    written = []
    wanted = set(kept)
    for t, real in pv.frames(start=min(wanted), stop=max(wanted) + 1):
        if t not in wanted or not pv.face_ok[t]:
            continue
        img = kept[t]
        a = _cut(real, _mouth_box(real_px[t]))
        b = (_cut(img, _mouth_box(rend_px[t])) if np.isfinite(rend_px[t]).all()
             else np.zeros_like(a))
        full = cv2.resize(img, (int(round(img.shape[1] * 160 / img.shape[0])), 160))
        tile = np.concatenate([a, b, full], 1)
        p = out / f"{pv.name}_{t:04d}{'_pause' if t in pauses else ''}.png"
        cv2.imwrite(str(p), tile[:, :, ::-1])
        written.append(str(p))
    return written


def _mean(results, method, key):
    xs = [r[method].get(key) for r in results]
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _source_commit() -> str | None:
    """The git commit of the chatanyone source tree, when it is a checkout (for reports)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def evaluate(videos: list, *, preset: str = "fast", seed: int = 0, output_size: int | None = None,
             max_seconds: float | None = None, cache=None, frames_dir=None, variants: dict | None = None) -> dict:
    """Evaluate every video; returns ``{"clips": [...], "mean": {...}, ...}`` (see the module
    docstring; with ``variants`` also ``"variant_mean": {name: {...}}``). Raises
    FileNotFoundError / ValueError for a missing or unusable video or variant."""
    if not videos:
        raise ValueError("eval lipsync: no videos given")
    for v in videos:
        if not os.path.isfile(v):
            raise FileNotFoundError(f"video not found: {v!r}")
    config = _session_config(preset, seed, output_size)
    results = []
    for v in videos:
        log.info("eval lipsync: %s", v)
        results.append(evaluate_clip(v, config=config, max_seconds=max_seconds, cache=cache,
                                     frames_dir=frames_dir, variants=variants))
    mean = {m: {k: _mean(results, m, k) for k in keys} for m, keys in SUMMARY.items()}
    extra = {}
    if variants:
        extra["variant_mean"] = {
            name: {k: _mean([r["variants"] for r in results], name, k) for k in SUMMARY["model"]}
            for name in variants}
        extra["variant_specs"] = variants
    return {"clips": results, "mean": mean, **extra, "preset": preset, "seed": seed, "max_seconds": max_seconds,
            "commit": _source_commit(),
            "units": {"r": "Pearson r of mouth opening, rendered (or baseline) vs real",
                      "amp": "std ratio of mouth opening on speech frames, rendered / real",
                      "lmd": "% of face height, 16 lip points, canonical face frame",
                      "lag": "frames, positive = rendered mouth late"}}


def format_table(res: dict) -> str:
    """The per-clip and mean table printed by the CLI."""
    def f(x, w=7, p=3):
        return f"{'-':>{w}s}" if x is None else f"{x:{w}.{p}f}"
    head = (f"{'clip':36s}{'role':>8s}{'frames':>7s} | {'r':>7s}{'r_loud':>7s} | {'amp':>7s}{'amp_lm':>7s} | "
            f"{'LMD':>7s}{'LMD_0':>7s}{'LMD_lm':>7s} | {'lag':>4s}{'rest':>6s}{'face':>6s}")
    lines = [head, "-" * len(head)]
    for r in res["clips"] + [{"clip": "mean", "role": "", "frames": None, **res["mean"]}]:
        m, nm, ld, lm = r["model"], r["no_motion"], r["loudness"], r["loudness_matched"]
        fr = "" if r["frames"] is None else str(r["frames"])
        lag = "-" if m.get("lag") is None else f"{m['lag']:.0f}"
        lines.append(f"{r['clip'][:36]:36s}{r['role']:>8s}{fr:>7s} | {f(m['r'])}{f(ld['r'])} | "
                     f"{f(m['amp'])}{f(lm['amp'])} | {f(m['lmd'])}{f(nm['lmd'])}{f(lm['lmd'])} | "
                     f"{lag:>4s}{f(m.get('rest'), 6, 2)}{f(m.get('face'), 6, 2)}")
    lines.append("r: mouth opening vs real (r_loud: RMS envelope); amp: std ratio on speech frames "
                 "(amp_lm: loudness amplitude-matched); LMD: % face height (LMD_0: source frame "
                 "repeated, LMD_lm: loudness amplitude-matched); rest: pause/speech motion; "
                 "face: rendered frames with a face")
    if res.get("variant_mean"):
        names = list(res["variant_mean"])
        lines.append("")
        lines.append(f"{'variant r':36s}" + "".join(f"{n[:14]:>15s}" for n in names))
        for key in ("r", "amp", "lmd", "peak", "rest"):
            for r in res["clips"] + [{"clip": "mean", "variants": res["variant_mean"]}]:
                lines.append(f"{(key + ' ' + r['clip'])[:36]:36s}"
                             + "".join(f(r["variants"][n].get(key), 15) for n in names))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="raw videos with speech (any format FFmpeg reads)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--preset", default="fast", help="renderer preset (default: fast)")
    p.add_argument("--seed", type=int, default=0, help="Session seed (default: 0)")
    p.add_argument("--output-size", type=int, default=None,
                   help="SessionConfig.output_size, where this version has it")
    p.add_argument("--max-seconds", type=float, default=None, help="use only the first seconds of each video")
    p.add_argument("--cache", default=None, help="preparation cache folder (default: $CHATANYONE_CACHE/eval "
                                                 "or ~/.cache/chatanyone/eval)")
    p.add_argument("--no-cache", action="store_true", help="prepare every video again, cache nothing")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=KEY:VALUE,...",
                   help="render again with the mouth changed (keys: mouth:NPZ, gate:speech|digital|none, "
                        "gain, gain_x, render_gain, shift, pause_close, pause_seal, pause_settle, lid_keep, "
                        "blink_depth, hold, release, onset, bridge, gate_db, gate_pow, spk_amp:0|1, "
                        "amp_model:NPZ, open_dir:0|1, dit_mouth:1, head_calm, gate_init, noise_skip:0|1, "
                        "paint_shadow:0|1, paint_soft; NAME= alone: the shipped model); repeatable, the first is "
                        "reported as 'model'")
    p.add_argument("--frames", default=None, metavar="DIR",
                   help="write mouth close-ups (real | rendered) at the most open real frames as PNG")


def run(args) -> int:
    res = evaluate(args.videos, preset=args.preset, seed=args.seed, output_size=args.output_size,
                   max_seconds=args.max_seconds, cache=False if args.no_cache else args.cache,
                   frames_dir=args.frames, variants=dict(parse_variant(v) for v in args.variant) or None)
    if args.json:
        print(json.dumps(res, default=float))
    else:
        print(format_table(res))
    return 0
