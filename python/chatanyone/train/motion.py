"""Train the hierarchical motion diffusion models on a corpus (``chatanyone prepare-data`` layout).

    python -m chatanyone.train.motion --part face --corpus corpus/train --dev corpus/dev \
        --run runs/motion_face --minutes 20 --threads 2
    python -m chatanyone.train.motion --part body ...   (same corpus; conditioned on real face motion)

Resumable: the run folder holds ``ckpt.pt`` (model, EMA, optimizer, step, elapsed time, RNG); the
same command continues where it stopped, and the time budget counts across restarts. The learning
rate follows the fraction of the budget spent (warmup, then cosine), so a resumed run ends the same.
``onnx_export/motion.py`` turns a finished face run and body run into the shipped ONNX graphs.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio.features import log_mel
from ..audio.whisper import FEAT_DIM
from ..spec import motion_layout as layout
from ..spec.keypoint_layout import N_HAND_POINTS
from ..spec.motion_layout import AudioFrontEndSpec, MotionSpec, SamplingSpec
from ..spec.timeline import MEL_PER_FRAME, MOTION_FPS as FPS, N_MELS, SAMPLE_RATE, SAMPLES_PER_FRAME, SILENCE_RAW
from ..motion.sampler import cosine_alphas_cumprod
from .motion_model import MotionDiT, StyleEncoder, n_params

log = logging.getLogger("chatanyone")

HAND_VEC = 2 * N_HAND_POINTS  # one hand's channels in the body vector (21 points x, y)

# The run-time contract (spec.motion_layout.MotionSpec: rates, 1 s window, 320 ms prefix, 200 ms
# lookahead, v-prediction, the audio front end: Whisper tiny.en encoder features of a segment per
# window, C frames of context before the prefix, up to the window's last heard frame (hop + L); see
# audio/whisper.py), written into motion_config.json with the architecture below; the run time
# reads it back with MotionSpec.load.
CONTRACT = MotionSpec(audio=AudioFrontEndSpec(kind="whisper", context=12, compute_type="int8"),
                      sampling=SamplingSpec(steps=4, guidance=2.0, clip_x0=5.0, hop=10))

DEFAULT_CONFIG = {
    **CONTRACT.to_config(),
    "style_frames": 64,                               # style reference length in training (any at run time)
    "face": {"d_model": 128, "n_layers": 3, "n_heads": 4, "mlp_ratio": 2, "d_cond": 64, "d_style": 64,
             "dropout": 0.1},
    "style": {"d": 96, "layers": 1},
    "body": {"d_model": 96, "n_layers": 3, "n_heads": 4, "mlp_ratio": 2, "d_cond": 64, "dropout": 0.1},
    "mouth_weight": 3.0,                              # face loss: lip-moving expression dims up to 4x
}


# ----------------------------------------------------------------------------------------- corpus

@dataclass
class Clip:
    name: str
    face: np.ndarray      # [n, Df] raw; frames without a face interpolated from their neighbours
    body: np.ndarray      # [n, 102] raw (hands zero where not seen); missing body frames interpolated
    hands_ok: np.ndarray  # [n, 2]
    mel: np.ndarray       # [4n, 80] raw log-mel
    face_ok: np.ndarray   # [n] 1 where the face was tracked (loss mask)
    body_ok: np.ndarray   # [n, 8] 1 where that body point was tracked and visible (loss mask)
    shot: np.ndarray | None = None  # [n] int camera-shot index (windows never span a cut)
    path: Path | None = None        # the clip folder (caches of derived features live there)
    wfeat: np.ndarray | None = None  # [n_starts, n_tok, 768] float16 Whisper features per window start

    @property
    def n(self) -> int:
        return self.face.shape[0]


def load_clip(d: Path) -> Clip | None:
    """One corpus folder -> :class:`Clip`, or None (logged) when it cannot train the model."""
    d = Path(d)
    try:
        meta = json.loads((d / "meta.json").read_text())
    except FileNotFoundError:
        meta = {}
    if meta.get("has_audio") is False or meta.get("audio_silent"):
        log.info("skip %s: no audio (or a silent track)", d.name)
        return None
    m = dict(np.load(d / "motion.npz"))
    mel = np.load(d / "mel.npy").astype(np.float32)
    n = min(m["head"].shape[0], mel.shape[0] // MEL_PER_FRAME)
    face = np.nan_to_num(layout.pack_face(m["head"][:n], m["exp"][:n], m["eye"][:n]))
    body = np.nan_to_num(layout.pack_body(m["body"][:n], m["hands"][:n], m["hands_ok"][:n]))
    face_ok = (m["face_ok"][:n] > 0) if "face_ok" in m else np.ones(n, bool)
    face_ok &= np.all(np.isfinite(layout.pack_face(m["head"][:n], m["exp"][:n], m["eye"][:n])), 1)
    if face_ok.mean() < 0.5:
        log.info("skip %s: face tracked in %.0f%% of frames", d.name, 100 * face_ok.mean())
        return None
    body_ok = np.ones((n, 8), bool)
    if "body_ok" in m:
        body_ok &= (m["body_ok"][:n] > 0)[:, None]
    if "body_vis" in m:
        body_ok &= m["body_vis"][:n] > 0.5
    face = interpolate_missing(face, face_ok)
    body[:, :layout.BODY_DIM] = interpolate_missing(body[:, :layout.BODY_DIM],
                                                    body_ok.all(1) if body_ok.any() else np.ones(n, bool))
    shot = np.cumsum(m["cut"][:n] > 0) if "cut" in m else np.zeros(n, np.int64)
    return Clip(d.name, face, body, m["hands_ok"][:n].astype(np.float32), mel[: n * MEL_PER_FRAME],
                face_ok.astype(np.float32), body_ok.astype(np.float32), shot, path=d)


def interpolate_missing(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Frames where ``ok`` is False, linearly interpolated from the tracked ones ``[n, D]``."""
    ok = np.asarray(ok, bool)
    if ok.all() or not ok.any():
        return x
    t = np.arange(x.shape[0])
    out = x.copy()
    for j in range(x.shape[1]):
        out[~ok, j] = np.interp(t[~ok], t[ok], x[ok, j])
    return out


def whisper_window_features(clips: list[Clip], cfg: dict, *, threads: int = 2, cache: bool = True) -> None:
    """Fill each clip's ``wfeat``: for every training window start ``s`` the Whisper features of the
    segment the generator encodes at run time (``MotionGenerator._window_whisper``): audio from
    frame ``s - P - C`` to ``s + hop + L`` (zeros outside the clip), the last ``P + hop + L`` tokens.
    Cached in the clip folder (float16), keyed by the segment layout."""
    from ..audio.whisper import segment_features_batch, shared_encoder
    a = cfg["audio"]
    T, P, L, C, hop = cfg["window"], cfg["prefix"], cfg["lookahead"], a["context"], a["hop"]
    n_tok, n_seg = P + hop + L, C + P + hop + L
    spf = SAMPLES_PER_FRAME
    enc = None
    for c in clips:
        f = (Path(c.path) / f"whisper_{a.get('compute_type', 'int8')}_c{C}p{P}h{hop}l{L}.npy") if c.path else None
        n_starts = max(c.n - T, 0) + 1
        if cache and f is not None and f.is_file():
            w = np.load(f)
            if w.shape[0] == n_starts:
                c.wfeat = w
                continue
        enc = enc or shared_encoder(threads, a.get("compute_type", "int8"))
        audio = np.load(Path(c.path) / "audio.npy").astype(np.float32).reshape(-1)[: c.n * spf]
        audio = np.concatenate([np.zeros((P + C) * spf, np.float32), audio,
                                np.zeros((c.n * spf - audio.size) + (T + hop + L) * spf, np.float32)])
        out = np.zeros((n_starts, n_tok, FEAT_DIM), np.float16)
        for b0 in range(0, n_starts, 32):
            idx = range(b0, min(b0 + 32, n_starts))
            segs = np.stack([audio[s * spf:(s + n_seg) * spf] for s in idx])
            out[b0:b0 + len(idx)] = segment_features_batch(enc, segs, n_tok)
        c.wfeat = out
        if cache and f is not None:
            np.save(f, out)
        log.info("whisper features: %s (%d windows)", c.name, n_starts)


def load_corpus(root: Path | list, *, min_frames: int = 40, min_loudness: float = -7.5) -> list[Clip]:
    """Every clip folder under ``root`` (or a list of folders) that has audio with speech in it."""
    dirs = sorted(p.parent for p in Path(root).glob("*/motion.npz")) if not isinstance(root, list) \
        else [Path(p) for p in root]
    clips = []
    for d in dirs:
        c = load_clip(d)
        if c is None:
            continue
        if c.n < min_frames:
            log.info("skip %s: %d frames", c.name, c.n)
            continue
        loud = np.percentile(c.mel.mean(axis=1), 90)
        if loud < min_loudness:  # a silent track under a talking face would teach "silence talks"
            log.info("skip %s: audio is silent (90th percentile log-mel %.1f)", c.name, loud)
            continue
        clips.append(c)
    if not clips:
        raise ValueError(f"no usable clips in {root}")
    return clips


def clip_log_intensity(exp: np.ndarray, ref: float) -> float:
    """log of the clip's expression energy (RMS of ``exp`` over frames) relative to ``ref``."""
    e = float(np.sqrt(np.mean(np.sum(np.asarray(exp, np.float64) ** 2, axis=-1))))
    return float(np.log(max(e, 1e-6) / ref))


def compute_stats(clips: list[Clip], n_exp: int) -> dict[str, np.ndarray]:
    """Normalization statistics saved beside the weights (``motion_stats.npz``)."""
    mel = np.concatenate([c.mel for c in clips])
    floor = np.percentile(mel, 2.0, axis=0).astype(np.float32)  # quiet-room level: digital zeros map here
    melc = np.maximum(mel, floor)
    face = np.concatenate([c.face[c.face_ok > 0] for c in clips])
    body = np.concatenate([c.body for c in clips])
    ok = np.concatenate([c.hands_ok for c in clips])
    bm, bs = body.mean(0), body.std(0)
    hs = layout.BODY_DIM
    for h in range(2):  # hand statistics over the frames where that hand was seen
        sl = slice(hs + h * HAND_VEC, hs + (h + 1) * HAND_VEC)
        sel = ok[:, h] > 0.5
        if sel.sum() > 10:
            bm[sl], bs[sl] = body[sel][:, sl].mean(0), body[sel][:, sl].std(0)
        else:
            bm[sl], bs[sl] = 0.0, 0.05
    bm[-2:], bs[-2:] = 0.5, 0.5  # hands_ok: 0/1 -> -1/+1
    energies = [np.sqrt(np.mean(np.sum(c.face[c.face_ok > 0, 6:6 + n_exp].astype(np.float64) ** 2, -1)))
                for c in clips]
    # loudness -> expression linear fit: the "mouth opening from loudness" baseline of the evaluation
    lf, ex = [], []
    for c in clips:
        sel = c.face_ok > 0
        lf.append(np.maximum(c.mel, floor).reshape(c.n, -1).mean(1)[sel])
        ex.append(c.face[sel, 6:6 + n_exp])
    lf, ex = np.concatenate(lf), np.concatenate(ex)
    lmu, lsd = lf.mean(), lf.std() + 1e-6
    z = (lf - lmu) / lsd
    A = np.stack([z, np.ones_like(z)], 1)
    coef, *_ = np.linalg.lstsq(A, ex, rcond=None)  # [2, E]
    extra = {}
    if all(c.wfeat is not None for c in clips):
        w = np.concatenate([c.wfeat.reshape(-1, c.wfeat.shape[-1])[::7].astype(np.float32) for c in clips])
        extra = {"wfeat_mean": w.mean(0).astype(np.float32), "wfeat_std": (w.std(0) + 1e-3).astype(np.float32)}
    return {
        **extra,
        "mel_floor": floor, "mel_mean": melc.mean(0).astype(np.float32),
        "mel_std": (melc.std(0) + 1e-3).astype(np.float32),
        "face_mean": face.mean(0).astype(np.float32), "face_std": np.maximum(face.std(0), 1e-4).astype(np.float32),
        "body_mean": bm.astype(np.float32), "body_std": np.maximum(bs, 1e-4).astype(np.float32),
        "exp_energy_ref": np.float32(np.median(energies)),
        "loud_mu": np.float32(lmu), "loud_sd": np.float32(lsd),
        "loud_w": coef[0].astype(np.float32), "loud_b": coef[1].astype(np.float32),
    }


# ---------------------------------------------------------------------------------- synthetic data

def make_synthetic_corpus(out: Path, *, n_clips: int = 6, seconds: float = 12.0, n_exp: int = 16,
                          seed: int = 0) -> list[Path]:
    """Write clips in the corpus layout whose motion follows their audio (for tests and development):
    the mouth coefficient ``exp[:, 0]`` follows the syllable envelope, the head sways, eyes blink,
    hands gesture on loud syllables. No real data involved."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    dirs = []
    for k in range(n_clips):
        n = int(seconds * FPS)
        spf = SAMPLES_PER_FRAME
        env = np.zeros(n * spf, np.float32)
        t = int(rng.integers(5, 20)) * spf
        while t < env.size - spf * 12:
            ln = int(rng.integers(4, 9)) * spf  # a syllable, 160-360 ms
            env[t:t + ln] += np.hanning(ln).astype(np.float32) * rng.uniform(0.4, 1.0)
            t += ln + (int(rng.integers(0, 3)) * spf if rng.random() < 0.8 else int(rng.integers(10, 30)) * spf)
        ts = np.arange(env.size) / SAMPLE_RATE
        f0 = rng.uniform(100, 220)
        voiced = sum(np.sin(2 * np.pi * f0 * h * ts) / h for h in range(1, 8))
        audio = (env * (0.25 * voiced + 0.05 * rng.standard_normal(env.size))
                 + 0.002 * rng.standard_normal(env.size)).astype(np.float32)
        mouth = env.reshape(n, spf).mean(1)
        exp = 0.02 * rng.standard_normal((n, n_exp)).astype(np.float32)
        exp[:, 0] = mouth * (1.0 + 0.5 * k / n_clips)
        exp[:, 1] = 0.5 * mouth * (1.0 if k % 2 else -1.0)  # a per-clip "style"
        from scipy.ndimage import gaussian_filter1d
        head = gaussian_filter1d(rng.standard_normal((n, 6)), 8, axis=0).astype(np.float32) * 0.3
        head[:, 1] += 0.3 * gaussian_filter1d(mouth, 3)  # nods with speech
        eye = np.zeros((n, 4), np.float32)
        for b in rng.integers(0, n - 4, size=max(1, n // 80)):
            eye[b:b + 4, :2] -= np.array([[0.3], [1.0], [1.0], [0.3]], np.float32)
        body = gaussian_filter1d(rng.standard_normal((n, 8, 2)), 10, axis=0).astype(np.float32) * 0.02
        body[:, :2, 1] += 0.02 * head[:, 1:2]
        hands_ok = np.ones((n, 2), np.float32) * (k % 3 != 0)
        hands = gaussian_filter1d(rng.standard_normal((n, 2, 21, 2)), 4, axis=0).astype(np.float32) * 0.05
        hands *= (1 + 2 * gaussian_filter1d(mouth, 5))[:, None, None, None]
        hands *= hands_ok[:, :, None, None]
        d = out / f"synth_{k:02d}"
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "audio.npy", audio)
        np.save(d / "mel.npy", log_mel(audio))
        np.savez(d / "motion.npz", head=head, exp=exp, eye=eye, body=body, hands=hands, hands_ok=hands_ok,
                 face_ok=np.ones(n, np.uint8), body_ok=np.ones(n, np.uint8), body_vis=np.ones((n, 8), np.float32))
        (d / "meta.json").write_text(json.dumps({"source": "synthetic", "fps": FPS, "n_frames": n,
                                                 "has_audio": True}))
        dirs.append(d)
    return dirs


# --------------------------------------------------------------------------------------- sampling

class WindowSampler:
    """Random training windows (numpy) from clips: everything the denoiser reads, normalized."""

    def __init__(self, clips: list[Clip], stats: dict, cfg: dict, part: str, seed: int = 0):
        self.clips, self.stats, self.cfg, self.part = clips, stats, cfg, part
        self.T, self.P, self.L = cfg["window"], cfg["prefix"], cfg["lookahead"]
        self.R = cfg["style_frames"]
        self.rng = np.random.default_rng(seed)
        self.whisper = uses_whisper(cfg)
        # training augmentation: prefix_drop (stream starts; also makes the model read the style
        # reference instead of copying the prefix), style_drop (the null style), audio_noise
        self.aug = dict(cfg.get("augment") or {})
        self.d_audio = audio_dim(cfg)
        n_exp = cfg["n_exp"]
        ref = float(stats["exp_energy_ref"])
        self.face = [(c.face - stats["face_mean"]) / stats["face_std"] for c in clips]
        self.body = []
        for c in clips:
            b = (c.body - stats["body_mean"]) / stats["body_std"]
            for h in range(2):  # unseen hands -> 0 (masked in the loss anyway)
                sl = slice(layout.BODY_DIM + h * HAND_VEC, layout.BODY_DIM + (h + 1) * HAND_VEC)
                b[c.hands_ok[:, h] < 0.5, sl] = 0.0
            self.body.append(b.astype(np.float32))
        pad_l, pad_r = self.P * MEL_PER_FRAME, (self.T + self.L) * MEL_PER_FRAME
        self.mel = [np.concatenate([np.full((pad_l, N_MELS), SILENCE_RAW, np.float32), c.mel,
                                    np.full((pad_r, N_MELS), SILENCE_RAW, np.float32)]) for c in clips]
        self.scal = []
        for c in clips:
            li = clip_log_intensity(c.face[:, 6:6 + n_exp], ref)
            hr = float(c.hands_ok.mean())
            self.scal.append(np.array([li], np.float32) if part == "face" else np.array([li, 2 * hr - 1], np.float32))
        w = np.array([max(c.n - self.T, 1) for c in clips], np.float64)
        self.p = w / w.sum()
        self.dim_w = np.ones(layout.face_dim(n_exp) if part == "face" else layout.BODY_VEC_DIM, np.float32)

    def weight_mouth(self, lip_energy: np.ndarray, strength: float) -> None:
        """Weight each expression dim's loss by how much it moves the lips: ``1 + strength * e``,
        ``e`` = lip displacement per normalized unit (``[E]``, from the face basis), max 1."""
        e = np.asarray(lip_energy, np.float64) * self.stats["face_std"][6:6 + len(lip_energy)]
        e = e / max(e.max(), 1e-12)
        self.dim_w[6:6 + len(e)] = (1.0 + strength * e).astype(np.float32)

    def norm_mel(self, raw: np.ndarray, gain: float = 0.0) -> np.ndarray:
        s = self.stats
        return (np.maximum(raw + gain, s["mel_floor"]) - s["mel_mean"]) / s["mel_std"]

    def _whisper_audio(self, c: Clip, s: int, train: bool, rng) -> tuple[np.ndarray, np.ndarray]:
        """Audio tokens and keep-mask of the window at ``s``: the precomputed Whisper segment
        features; positions after the last heard frame are null, as at run time."""
        N = self.P + self.T + self.L
        aud = np.zeros((N, self.d_audio), np.float32)
        ak = np.ones(N, np.float32)
        n_tok = c.wfeat.shape[1]
        aud[:n_tok] = (c.wfeat[s].astype(np.float32) - self.stats["wfeat_mean"]) / self.stats["wfeat_std"]
        ak[n_tok:] = 0.0  # not heard yet at run time
        if train:
            aud[:n_tok] += rng.normal(0, self.aug.get("audio_noise", 0.1), (n_tok, self.d_audio)).astype(np.float32)
            if rng.random() < 0.5:  # drop a few tokens (null audio there)
                w = int(rng.integers(1, 5))
                r0 = int(rng.integers(0, n_tok - w + 1))
                ak[r0:r0 + w] = 0.0
            if rng.random() < 0.1:  # classifier-free guidance: no audio
                ak[:] = 0.0
        return aud, ak

    def _mel_audio(self, i: int, s: int, train: bool, rng) -> tuple[np.ndarray, np.ndarray]:
        """Audio tokens and keep-mask of the window at ``s`` from log-mel (gain, noise and
        SpecAugment-like masks in training; low-latency masks of the keep-mask)."""
        P, T, L = self.P, self.T, self.L
        N = P + T + L
        gain = float(rng.uniform(-1.5, 1.5)) if train else 0.0
        raw = self.mel[i][s * MEL_PER_FRAME:(s + N) * MEL_PER_FRAME]  # pad offset P*4 included
        aud = self.norm_mel(raw, gain)
        ak = np.ones(N, np.float32)
        if train:
            aud = aud + rng.normal(0, 0.1, aud.shape).astype(np.float32)
            if rng.random() < 0.5:  # SpecAugment-like masks (mean = 0 after normalization)
                for _ in range(2):
                    w = int(rng.integers(0, 9))
                    f0 = int(rng.integers(0, N_MELS - w + 1))
                    aud[:, f0:f0 + w] = 0.0
                w = int(rng.integers(0, 7))
                r0 = int(rng.integers(0, aud.shape[0] - w + 1))
                aud[r0:r0 + w] = 0.0
            u = rng.random()
            if u < 0.1:  # classifier-free guidance: no audio
                ak[:] = 0.0
            elif u < 0.5:  # low latency: audio known only up to k frames + lookahead
                ak[P + int(rng.integers(1, T + 1)) + L:] = 0.0
        return aud.reshape(N, self.d_audio), ak

    def batch(self, bsz: int, *, train: bool = True, rng=None) -> dict[str, np.ndarray]:
        rng = rng or self.rng
        T, P, L, R = self.T, self.P, self.L, self.R
        N = P + T + L
        out = {k: [] for k in ("x0", "audio", "audio_keep", "prefix", "prefix_keep", "style_ref",
                               "style_keep", "scalars", "face", "mask")}
        for _ in range(bsz):
            i = int(rng.choice(len(self.clips), p=self.p))
            c = self.clips[i]
            s = int(rng.integers(0, max(c.n - T, 0) + 1))
            for _ in range(20):  # a window inside one camera shot
                if c.shot is None or c.shot[s] == c.shot[min(s + T, c.n) - 1]:
                    break
                s = int(rng.integers(0, max(c.n - T, 0) + 1))
            src = self.face[i] if self.part == "face" else self.body[i]
            x0 = src[s:s + T]
            if x0.shape[0] < T:  # clip shorter than a window: repeat the last frame
                x0 = np.concatenate([x0, np.repeat(x0[-1:], T - x0.shape[0], 0)])
            same_shot = c.shot is None or s < P or c.shot[s - P] == c.shot[s]
            pk = float(s >= P and same_shot and (not train or rng.random() > self.aug.get("prefix_drop", 0.15)))
            pre = src[s - P:s] if s >= P else np.zeros((P, src.shape[1]), np.float32)
            if train and pk:
                pre = pre + rng.normal(0, 0.05, pre.shape).astype(np.float32)
            if self.whisper:
                aud, ak = self._whisper_audio(c, s, train, rng)
            else:
                aud, ak = self._mel_audio(i, s, train, rng)
            r0 = int(rng.integers(0, max(c.n - R, 0) + 1))
            ref = self.face[i][r0:r0 + R]
            if ref.shape[0] < R:
                ref = np.resize(ref, (R, ref.shape[1]))
            sk = float(not train or rng.random() > self.aug.get("style_drop", 0.25))
            mask = np.ones_like(x0)

            def win(a):  # frames s..s+T of a per-frame array, the last frame repeated past the end
                w = a[s:s + T]
                return np.concatenate([w, np.repeat(w[-1:], T - w.shape[0], 0)]) if w.shape[0] < T else w

            if self.part == "face":
                mask *= win(c.face_ok)[:, None]
            else:
                ok = win(c.hands_ok)
                for h in range(2):
                    mask[:, layout.BODY_DIM + h * HAND_VEC:layout.BODY_DIM + (h + 1) * HAND_VEC] = ok[:, h:h + 1]
                mask[:, :layout.BODY_DIM] = np.repeat(win(c.body_ok), 2, axis=1)
                f = self.face[i][max(s - P, 0):s + T]
                f = np.concatenate([np.zeros((P + T - f.shape[0], f.shape[1]), np.float32), f]) \
                    if f.shape[0] < P + T else f
                if not pk:
                    f = f.copy()
                    f[:P] = 0.0
                if train:
                    f = f + rng.normal(0, 0.1, f.shape).astype(np.float32)
            if self.part == "face":
                f = np.zeros((P + T, 1), np.float32)
            mask = mask * self.dim_w
            for k, v in (("x0", x0), ("audio", aud.reshape(N, self.d_audio)),
                         ("audio_keep", ak), ("prefix", pre), ("prefix_keep", pk), ("style_ref", ref),
                         ("style_keep", sk), ("scalars", self.scal[i]), ("face", f), ("mask", mask)):
                out[k].append(v)
        return {k: np.asarray(np.stack(v) if isinstance(v[0], np.ndarray) else v, np.float32)
                for k, v in out.items()}


# -------------------------------------------------------------------------------------- the models

def audio_dim(cfg: dict) -> int:
    """Width of one audio token: 4 log-mel frames (320) or two Whisper encoder frames (768)."""
    return FEAT_DIM if uses_whisper(cfg) else cfg["mel_per_frame"] * cfg["n_mels"]


def uses_whisper(cfg: dict) -> bool:
    """Whether the config's audio tokens are Whisper segment features (else log-mel)."""
    return (cfg.get("audio") or {}).get("kind") == "whisper"


def build_models(cfg: dict, part: str) -> dict[str, torch.nn.Module]:
    T, P, L = cfg["window"], cfg["prefix"], cfg["lookahead"]
    df = layout.face_dim(cfg["n_exp"])
    if part == "face":
        f = cfg["face"]
        den = MotionDiT(df, window=T, prefix=P, lookahead=L, d_model=f["d_model"], n_layers=f["n_layers"],
                        n_heads=f["n_heads"], mlp_ratio=f["mlp_ratio"], d_cond=f["d_cond"],
                        d_style=f["d_style"], n_scalars=1, dropout=f["dropout"], d_audio=audio_dim(cfg))
        sty = StyleEncoder(df, d=cfg["style"]["d"], d_style=f["d_style"], layers=cfg["style"]["layers"])
        return {"denoiser": den, "style": sty}
    b = cfg["body"]
    den = MotionDiT(layout.BODY_VEC_DIM, window=T, prefix=P, lookahead=L, d_model=b["d_model"],
                    n_layers=b["n_layers"], n_heads=b["n_heads"], mlp_ratio=b["mlp_ratio"],
                    d_cond=b["d_cond"], d_style=0, n_scalars=2, d_face=df, dropout=b["dropout"],
                    d_audio=audio_dim(cfg))
    return {"denoiser": den}


def denoiser_inputs(models, bt: dict, x_t: torch.Tensor, t: torch.Tensor, part: str):
    """Assemble the denoiser's positional inputs (the ONNX input order) from a torch batch."""
    b = x_t.shape[0]
    if part == "face":
        style = models["style"](bt["style_ref"])
    else:
        style = torch.zeros(b, 1)
    face = bt["face"] if part == "body" else torch.zeros(b, 1, 1)
    return (x_t, t, bt["audio"], bt["audio_keep"], bt["prefix"], bt["prefix_keep"], style,
            bt["style_keep"], bt["scalars"], face)


def diffusion_loss(models, bt: dict, ac: torch.Tensor, part: str, gen=None):
    x0 = bt["x0"]
    b = x0.shape[0]
    t = torch.randint(0, ac.numel(), (b,), generator=gen)
    a = ac[t].float().reshape(b, 1, 1)
    eps = torch.randn(x0.shape, generator=gen)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    pred = models["denoiser"](*denoiser_inputs(models, bt, x_t, t.float(), part))
    m = bt["mask"]
    loss_v = ((pred - v) ** 2 * m).sum() / m.sum().clamp_min(1.0)
    x0p = a.sqrt() * x_t - (1 - a).sqrt() * pred
    # velocity of the clean estimate, including the step from the prefix's last frame (joins)
    pk = bt["prefix_keep"].reshape(b, 1, 1)
    full_p = torch.cat([bt["prefix"][:, -1:], x0p], 1)
    full_r = torch.cat([bt["prefix"][:, -1:], x0], 1)
    dv = (full_p[:, 1:] - full_p[:, :-1]) - (full_r[:, 1:] - full_r[:, :-1])
    w = torch.cat([pk, torch.ones(b, x0.shape[1] - 1, 1)], 1) * m * a  # trust it where signal is high
    loss_vel = (dv ** 2 * w).sum() / w.sum().clamp_min(1.0)
    return loss_v + 0.5 * loss_vel, float(loss_v.detach())


# -------------------------------------------------------------------------------------- training

def _to_torch(b: dict) -> dict:
    return {k: torch.from_numpy(v) for k, v in b.items()}


def lip_energy(basis_path: Path | None, n_exp: int) -> np.ndarray | None:
    """``[E]`` RMS lip-landmark displacement per unit of each expression coefficient (the face
    basis of the data pipeline: ``basis_path`` or the packaged one), or None without a basis."""
    from ..runners.base import weights_path
    p = Path(basis_path) if basis_path else weights_path("face_basis.npz")
    if not p.is_file():
        log.warning("no face basis at %s: loss not mouth-weighted", p)
        return None
    with np.load(p) as z:
        comp = z["components"]
    if comp.shape[0] != n_exp:
        log.warning("face basis has %d components, corpus %d: loss not mouth-weighted", comp.shape[0], n_exp)
        return None
    lips = [61, 291, 0, 17, 37, 267, 84, 314, 78, 308, 13, 14, 82, 312, 87, 317]
    pts = comp.reshape(n_exp, -1, 3)[:, lips, :2]
    return np.sqrt((pts ** 2).sum(-1).mean(-1))


def train(part: str, corpus: Path, run: Path, *, minutes: float = 20.0, dev: Path | None = None,
          batch: int = 64, lr: float = 1e-3, threads: int = 2, seed: int = 0, config: dict | None = None,
          max_steps: int | None = None, log_every_s: float = 30.0, ckpt_every_s: float = 60.0,
          basis: Path | None = None) -> dict:
    """Train one level (``part`` = "face" or "body") until ``minutes`` of training time are spent
    (across restarts) or ``max_steps``. Returns a summary dict (also in ``run/summary_<part>.json``)."""
    if part not in ("face", "body"):
        raise ValueError(f"part must be 'face' or 'body', got {part!r}")
    torch.set_num_threads(threads)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    clips = load_corpus(corpus)
    n_exp = clips[0].face.shape[1] - layout.HEAD_DIM - layout.EYE_DIM
    cfg = copy.deepcopy(config or DEFAULT_CONFIG)
    cfg["n_exp"] = n_exp
    if uses_whisper(cfg):
        whisper_window_features(clips, cfg, threads=threads)
    stats = compute_stats(clips, n_exp)
    np.savez(run / "stats.npz", **stats)
    (run / "config.json").write_text(json.dumps(cfg, indent=1))
    log.info("%s: %d clips, %d frames (%.1f min), n_exp=%d", part, len(clips), sum(c.n for c in clips),
             sum(c.n for c in clips) / FPS / 60, n_exp)
    models = build_models(cfg, part)
    params = [p for m in models.values() for p in m.parameters()]
    log.info("%s: %d parameters", part, sum(n_params(m) for m in models.values()))
    ema = {k: copy.deepcopy(m).eval() for k, m in models.items()}
    for m in ema.values():
        m.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    step, elapsed = 0, 0.0
    ck = run / f"ckpt_{part}.pt"
    sampler = WindowSampler(clips, stats, cfg, part, seed=seed)
    if part == "face" and cfg.get("mouth_weight", 0) > 0:
        e = lip_energy(basis, n_exp)
        if e is not None:
            sampler.weight_mouth(e, cfg["mouth_weight"])
            log.info("face: mouth-weighted loss, dim weights %s", np.round(sampler.dim_w[6:6 + n_exp], 2).tolist())
    gen = torch.Generator().manual_seed(seed)
    if ck.exists():
        st = torch.load(ck, map_location="cpu", weights_only=False)
        for k in models:
            models[k].load_state_dict(st["model"][k])
            ema[k].load_state_dict(st["ema"][k])
        opt.load_state_dict(st["opt"])
        step, elapsed = st["step"], st["elapsed"]
        sampler.rng = np.random.default_rng(st["np_rng_seed"] + step)
        gen.manual_seed(seed + step)
        log.info("%s: resumed at step %d, %.1f min spent", part, step, elapsed / 60)
    ac = torch.from_numpy(cosine_alphas_cumprod(cfg["n_train"])).float()
    dev_batch = None
    if dev is not None and Path(dev).exists():
        try:
            dclips = load_corpus(dev, min_frames=cfg["window"] + 1)
            if uses_whisper(cfg):
                whisper_window_features(dclips, cfg, threads=threads)
            dev_batch = _to_torch(WindowSampler(dclips, stats, cfg, part, seed=1).batch(
                256, train=False, rng=np.random.default_rng(123)))
        except ValueError:
            dev_batch = None

    def dev_loss():
        if dev_batch is None:
            return float("nan")
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            return diffusion_loss(ema, dev_batch, ac, part, g)[1]

    def save():
        tmp = ck.with_suffix(".tmp")
        torch.save({"model": {k: m.state_dict() for k, m in models.items()},
                    "ema": {k: m.state_dict() for k, m in ema.items()}, "opt": opt.state_dict(),
                    "step": step, "elapsed": elapsed, "np_rng_seed": seed, "config": cfg}, tmp)
        os.replace(tmp, ck)

    budget = minutes * 60.0
    t_last_log = t_last_ck = time.monotonic()
    run_loss, n_loss = 0.0, 0
    for m in models.values():
        m.train()
    while elapsed < budget and (max_steps is None or step < max_steps):
        t0 = time.monotonic()
        frac = elapsed / budget
        cur = lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = cur
        bt = _to_torch(sampler.batch(batch))
        loss, lv = diffusion_loss(models, bt, ac, part, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for k in models:
                for pe, pm in zip(ema[k].parameters(), models[k].parameters()):
                    pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
        step += 1
        run_loss, n_loss = run_loss + lv, n_loss + 1
        now = time.monotonic()
        elapsed += now - t0
        if now - t_last_log > log_every_s:
            log.info("%s step %d  %.1f/%.1f min  loss %.4f  lr %.2e", part, step, elapsed / 60, minutes,
                     run_loss / n_loss, cur)
            run_loss, n_loss, t_last_log = 0.0, 0, now
        if now - t_last_ck > ckpt_every_s:
            save()
            t_last_ck = now
    save()
    summary = {"part": part, "steps": step, "train_minutes": elapsed / 60, "dev_loss_v": dev_loss(),
               "clips": [c.name for c in clips], "n_frames": int(sum(c.n for c in clips)),
               "params": int(sum(n_params(m) for m in models.values())), "threads": threads, "batch": batch}
    (run / f"summary_{part}.json").write_text(json.dumps(summary, indent=1))
    log.info("%s done: %s", part, {k: v for k, v in summary.items() if k != "clips"})
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m chatanyone.train.motion", description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["face", "body"], required=True)
    p.add_argument("--corpus", type=Path, required=True, help="folder of training clip folders")
    p.add_argument("--dev", type=Path, default=None, help="folder of dev clip folders (loss report only)")
    p.add_argument("--run", type=Path, required=True, help="run folder (checkpoints; resumes from it)")
    p.add_argument("--minutes", type=float, default=20.0, help="training-time budget across restarts")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--basis", type=Path, default=None, help="face_basis.npz (default: the packaged one)")
    p.add_argument("--audio", choices=["whisper", "logmel"], default="whisper",
                   help="audio features: Whisper tiny.en encoder segments (default) or log-mel")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a config entry, e.g. face.dropout=0.2 or augment={\"prefix_drop\": 0.5}")
    p.add_argument("--synthetic", action="store_true", help="first write a synthetic corpus into --corpus")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.synthetic:
        make_synthetic_corpus(a.corpus)
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if a.audio == "logmel":
        cfg.pop("audio")
    for item in a.set:
        key, _, val = item.partition("=")
        *path, last = key.split(".")
        d = cfg
        for k in path:
            d = d[k]
        d[last] = json.loads(val)
    train(a.part, a.corpus, a.run, minutes=a.minutes, dev=a.dev, batch=a.batch, lr=a.lr,
          threads=a.threads, seed=a.seed, max_steps=a.max_steps, basis=a.basis, config=cfg)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
