"""Train the deterministic mouth predictor: Whisper features of a short streamed segment -> the
expression coefficients of the lips and jaw (``motion/mouth.py`` runs it; ``motion/design.md``
says why and how it was chosen).

    python -m chatanyone.train.mouth features /work/corpus/train /work/corpus/dev
    python -m chatanyone.train.mouth fit --train /work/corpus/train --dev /work/corpus/dev \
        --lookahead 0 1 2 3 5 8 --json runs/mouth_curve.json          # the lookahead curve (dev)
    python -m chatanyone.train.mouth fit --train ... --dev ... --lookahead 2 --hop 2 \
        --out python/chatanyone/weights/motion_mouth.npz                # the shipped predictor

    python -m chatanyone.train.mouth cv --train /work/corpus/train --dev /work/corpus/dev \
        --configs ridge_l1 mlp_bn64_256_skip --json runs/mouth_cv.json    # k-fold by speaker + DEV
    python -m chatanyone.train.mouth fit --train ... --dev ... --lookahead 3 --model mlp \
        --config mlp_bn64_256_skip --ckpt runs/mouth_mlp.pt --out runs/motion_mouth_mlp.npz
    python -m chatanyone.train.mouth fit --train ... --dev ... --lookahead 3 --hop 1 --model mlp \
        --config ens_mlp256_phones_lead1_ema05 --phones python/chatanyone/weights/motion_phones.npz \
        --ckpt runs/ens.pt --out motion_mouth.npz         # session 8's (shipped with its gain x 1.08)
    # shipped since session 8's end: the same at --lookahead 4 (160 ms), its gain x 1.08
    python -m chatanyone.train.mouth amp --train /work/corpus/train --dev /work/corpus/dev \
        --json runs/mouth_amp.json --out python/chatanyone/weights/mouth_amp.npz
    # session 10: the speaker's amplitude from the spread of the Whisper tokens (k-fold, DEV, fit)
    python -m chatanyone.train.mouth direction --train /work/corpus/train \
        --predictor python/chatanyone/weights/motion_mouth.npz --out python/chatanyone/weights/motion_mouth.npz
    # session 11: the direction the gains open the mouth along (the real faces' jaw and lips)

Segments: the audio of frames ``[e - S, e)`` (zeros before the clip and after its end, as in a
flushed stream) is encoded once with Whisper tiny.en; its last tokens belong to the frames just
before ``e``. Frame ``t`` predicted from the segment ending at ``e = t + 1 + l`` has heard ``l``
frames (``40 l`` ms) of lookahead. One segment per end frame serves every lookahead at once, so the
features are computed once per clip (``clip_features``, cached in the clip folder).

Targets are speaker normalized: each clip's expression coefficients are scaled so that its
mouth-opening spread equals the training corpus median (an unseen speaker's own amplitude is not
in the audio). The predictor is a ridge regression on PCA-reduced tokens of the ``past`` frames
before ``t`` up to its lookahead, followed by a gain that undoes ridge's shrinkage towards the mean
(so the predicted mouth moves as much as a real one). The ridge strength is chosen on DEV clips;
held-out clips are refused.

The nonlinear alternative (``--model mlp``, ``train_mlp``): a small MLP on the same inputs (an
optional linear bottleneck, GELU hidden layers, an optional linear skip path), trained with
PyTorch (resumable from its checkpoint) and exported as plain matrices that ``motion/mouth.py``
runs with numpy. Configurations (``CV_CONFIGS``) are compared by ``cv``: 5-fold cross-validation by
speaker over the training clips (``speaker_folds``: one person's clips in one fold; PCA, target
scale and gain fitted inside each fold; the clips' audio/video offsets from out-of-fold ridge
predictions) and a fit on all training clips scored on the DEV clips.

Timing (session 8): ``lead`` trains the predictor on the mouth that many frames after each frame
and ``smooth`` smooths its output over frames (an exponential moving average, part of the saved
predictor, whose delay the lead takes back); both are configuration keys of ``cv``/``fit_mlp`` and
options of the ridge ``fit``.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from ..audio.whisper import FEAT_DIM
from ..eval.split import role
from ..spec.timeline import SAMPLES_PER_FRAME

log = logging.getLogger("chatanyone")

SPF = SAMPLES_PER_FRAME  # 640 samples per video frame
SEG_FRAMES = 24        # segment length (0.96 s), as the generator's: C + P = 20 frames of context + hop + L
MAX_LOOK = 8           # lookaheads computed: 0..MAX_LOOK frames
PAST = 4               # tokens before the frame that the predictor may read
N_TOK = PAST + MAX_LOOK + 1


def mouth_open_vector(components: np.ndarray) -> np.ndarray:
    """``[E]``: the linear map from expression coefficients to the inner-lip gap (mesh point 14's
    y minus point 13's, canonical units, face height 1)."""
    comp = np.asarray(components, np.float64).reshape(len(components), -1, 3)
    return (comp[:, 14, 1] - comp[:, 13, 1]).astype(np.float32)


def clip_features(clip_dir: Path, enc=None, *, seg: int = SEG_FRAMES, cache: bool = True) -> np.ndarray:
    """``[n + MAX_LOOK, N_TOK, 768]`` float16 for a corpus clip of ``n`` frames: row ``r`` holds the
    last ``N_TOK`` tokens (frames ``r + 1 - N_TOK .. r``) of the segment of ``seg`` frames ending at
    frame ``e = r + 1``. Cached as ``mouthfeat_s<seg>_k<PAST>_l<MAX_LOOK>.npy`` in the clip folder.
    Blocks for about 15 ms of encoder time per frame on one core."""
    from ..audio.whisper import segment_features_batch, shared_encoder
    clip_dir = Path(clip_dir)
    n = json.loads((clip_dir / "meta.json").read_text())["n_frames"]
    f = clip_dir / f"mouthfeat_s{seg}_k{PAST}_l{MAX_LOOK}.npy"
    n_rows = n + MAX_LOOK
    if cache and f.is_file():
        w = np.load(f, mmap_mode="r")
        if w.shape[0] == n_rows:
            return w
    enc = enc or shared_encoder(1, "int8")
    audio = np.load(clip_dir / "audio.npy").astype(np.float32).reshape(-1)[: n * SPF]
    pad_l = seg * SPF
    audio = np.concatenate([np.zeros(pad_l, np.float32), audio,
                            np.zeros(n * SPF - audio.size + (MAX_LOOK + 1) * SPF, np.float32)])
    out = np.zeros((n_rows, N_TOK, FEAT_DIM), np.float16)
    for b0 in range(0, n_rows, 32):
        ends = np.arange(b0, min(b0 + 32, n_rows)) + 1         # segment end frame (exclusive)
        segs = np.stack([audio[(e - seg) * SPF + pad_l:e * SPF + pad_l] for e in ends])
        out[b0:b0 + len(ends)] = segment_features_batch(enc, segs, N_TOK)
    if cache:
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(f)
    return out


def lookahead_tokens(feat: np.ndarray, frames: np.ndarray, look: int, past: int = PAST) -> np.ndarray:
    """``[len(frames), past + look + 1, 768]`` float32: for each frame ``t`` the tokens of frames
    ``t - past .. t + look`` of the segment ending at ``t + 1 + look`` (``feat``: :func:`clip_features`)."""
    if not 0 <= look <= MAX_LOOK or not 0 <= past <= PAST:
        raise ValueError(f"lookahead must be in [0, {MAX_LOOK}] and past in [0, {PAST}], got {look}, {past}")
    rows = np.asarray(frames) + look
    lo = N_TOK - 1 - look - past
    return np.asarray(feat[rows][:, lo:N_TOK], np.float32)


class ClipData:
    """A corpus clip's mouth-training arrays: ``exp [n, E]``, ``ok [n]``, mouth ``open [n]``,
    frame loudness ``loud [n]`` (mean raw log-mel), features (:func:`clip_features`)."""

    def __init__(self, d: Path, open_vec: np.ndarray, enc=None):
        self.name = d.name
        self.path = d
        with np.load(d / "motion.npz") as m:
            exp = m["exp"].astype(np.float32)
            self.ok = (m["face_ok"] > 0) & np.all(np.isfinite(exp), 1)
        self.exp = np.nan_to_num(exp)
        self.n = self.exp.shape[0]
        self.feat = clip_features(d, enc)
        self.open = self.exp @ open_vec
        mel = np.load(d / "mel.npy").astype(np.float32)
        n4 = min(mel.shape[0] // 4, self.n)
        self.loud = np.full(self.n, -20.0, np.float32)
        self.loud[:n4] = mel[: 4 * n4].reshape(n4, 4, 80).mean((1, 2))
        self.amp = float(np.std(self.open[self.ok])) if self.ok.sum() > 10 else 0.0
        self.shift = 0  # audio/video offset in frames (training alignment; positive: the video is early)


def corpus_clip_dirs(roots, allow=("train",)):
    """The prepared clip folders (those with a ``motion.npz``) under the corpus folders ``roots``, in
    name order; a clip whose role (``eval.split``) is not in ``allow`` raises ``ValueError``
    (held-out clips never reach training)."""
    for root in roots:
        for d in sorted(Path(root).iterdir()):
            if not (d / "motion.npz").is_file():
                continue
            if role(d.name) not in allow:
                raise ValueError(f"{d.name} is a {role(d.name)} clip; this step reads only {allow} clips")
            yield d


def load_clips(roots, open_vec, *, allow=("train",), enc=None) -> list[ClipData]:
    """Clips with speech and a tracked face under the corpus folders ``roots``; a clip whose role
    (``eval.split``) is not in ``allow`` raises (held-out clips never reach training)."""
    out = []
    for d in corpus_clip_dirs(roots, allow):
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("has_audio") is False or meta.get("audio_silent"):
            continue
        c = ClipData(d, open_vec, enc)
        if c.ok.mean() < 0.5 or c.n < 40 or np.percentile(c.loud, 90) < -7.5 or c.amp <= 0:
            log.info("mouth: skip %s", c.name)
            continue
        out.append(c)
    if not out:
        raise ValueError(f"no usable clips in {roots}")
    return out


# ----------------------------------------------------------------------------------------- model

def design(tokens: np.ndarray, mean: np.ndarray, std: np.ndarray, pca: np.ndarray, phones=None) -> np.ndarray:
    """``tokens [n, k, 768]`` -> ridge inputs ``[n, k * d]``: normalized, projected on ``pca [768, d]``;
    with ``phones`` (:func:`phone_stats`) the tokens' viseme columns appended (``[n, k (d + K)]``)."""
    z = ((tokens - mean) / std @ pca).reshape(tokens.shape[0], -1)
    if phones is None:
        return z
    from ..motion.mouth import phone_columns
    return np.concatenate([z, phone_columns(phones["head"].posteriors(tokens), phones["cm"], phones["cs"])], 1)


def phone_stats(clips, head, look: int, mean, std, pca, scale: float = 1.0) -> dict:
    """The viseme inputs' standardization on the training clips' frames: each column (log-posterior
    of a viseme at a token) to zero mean and ``scale`` times the RMS spread of the PCA columns
    (``chatanyone.train.phones ablate`` chose log-posteriors at scale 1)."""
    cols, zs = [], []
    for c in clips:
        tok = lookahead_tokens(c.feat, np.arange(0, c.n, 2), look, PAST)
        zs.append(design(tok, mean, std, pca))
        cols.append(np.log(np.maximum(head.posteriors(tok), 1e-4)).reshape(len(tok), -1))
    cols, zs = np.concatenate(cols), np.concatenate(zs)
    rms = float(np.sqrt(np.mean(zs.var(0))))
    return {"head": head, "cm": cols.mean(0).astype(np.float32),
            "cs": ((cols.std(0) + 1e-6) / (scale * rms)).astype(np.float32)}


def fit_pca(clips, mean, std, d: int, rng) -> np.ndarray:
    toks = []
    for c in clips:
        idx = rng.choice(c.feat.shape[0], size=min(400, c.feat.shape[0]), replace=False)
        toks.append(np.asarray(c.feat[np.sort(idx), -1], np.float32))
    z = (np.concatenate(toks) - mean) / std
    _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    return vt[:d].T.astype(np.float32)


def build_xy(clips, look: int, extra: int, mean, std, pca, ref_amp: float, *, stride: int = 1,
             normalize: bool = True, phones=None, lead: int = 0):
    """Stacked ridge inputs and speaker-normalized targets of ``clips``: for each tracked frame
    ``t`` the tokens of ``t - past .. t + look`` from the segment ending ``look + extra`` frames
    after it (in a chunk of ``hop`` frames released together, the frame ``i`` places before the
    chunk's last has ``extra = i``), and the frame's expression scaled to the reference amplitude
    (``lead`` frames later: the predictor learns to run that far ahead of the real mouth)."""
    xs, ys, ws = [], [], []
    for c in clips:
        frames = np.arange(0, c.n, stride)
        src = frames - c.shift + lead  # the video frame that shows frame t's sound (the clip's own A/V offset)
        keep = (src >= 0) & (src < c.n)
        frames, src = frames[keep], src[keep]
        keep = c.ok[src]
        frames, src = frames[keep], src[keep]
        tok = lookahead_tokens(c.feat, frames, look + extra, PAST)[:, :PAST + look + 1]
        s = ref_amp / c.amp if normalize else 1.0
        xs.append(design(tok, mean, std, pca, phones))
        ys.append(c.exp[src] * s)
        ws.append(np.full(frames.size, 1.0 / np.sqrt(frames.size), np.float32))  # long clips count less
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def ridge(x, y, w, lam: float):
    """Weighted ridge with an unpenalized intercept: ``(W [k, E], b [E])``; ``lam`` relative to the
    mean eigenvalue of the weighted input covariance."""
    sw = w / w.sum()
    mx, my = sw @ x, sw @ y
    xc, yc = x - mx, y - my
    xw = xc * np.sqrt(sw)[:, None]
    g = xw.T.astype(np.float64) @ xw
    g[np.diag_indices_from(g)] += lam * np.trace(g) / g.shape[0]
    W = np.linalg.solve(g, (xw.T.astype(np.float64) @ (yc * np.sqrt(sw)[:, None])))
    W = W.astype(np.float32)
    return W, (my - mx @ W).astype(np.float32)


def open_gain(y: np.ndarray, center: np.ndarray, gain: float, open_vec: np.ndarray,
              open_dir: np.ndarray | None = None) -> np.ndarray:
    """The run time's :func:`chatanyone.motion.mouth.open_gain`: only the mouth-opening component of
    ``y - center`` scaled by ``gain``, the extra opening added along ``open_dir`` (the predictor's:
    the jaw and both lips with it). ``None``: along the smallest change that parts the inner lips
    (:func:`~chatanyone.motion.mouth.min_open_dir`; before session 11, and the scoring in
    :func:`_score`: it keeps the outer lips' error small where the audio says little, but a wide gained
    mouth was a thin ring of lip)."""
    from ..motion.mouth import min_open_dir
    from ..motion.mouth import open_gain as gain_along
    return gain_along(y, center, gain, open_vec, min_open_dir(open_vec) if open_dir is None else open_dir)


def apply(model: dict, x: np.ndarray, extra: int) -> np.ndarray:
    """The predictor on design rows ``x [n, k d]`` whose segments end ``extra`` frames late, with
    the amplitude gain on the mouth opening (:func:`open_gain`)."""
    if model.get("kind", "ridge") == "ridge":
        center = model["b"][extra]
        y = center + x @ model["W"][extra]
    else:
        from ..motion.mouth import mlp_forward
        h = np.concatenate([x, np.repeat(np.eye(model["hop"], dtype=np.float32)[extra][None], len(x), 0)], 1)
        center = model["ymean"]
        y = mlp_forward(model["layers"], h)
        if "skip" in model:
            y = y + h @ model["skip"][0] + model["skip"][1]
    return open_gain(y, center, float(model["gain"]), model["open_vec"], model.get("open_dir"))


def predict_clip(c: ClipData, model: dict) -> np.ndarray:
    """``[n, E]`` predicted expression (gain applied) for every frame of ``c``, each frame from the
    segment the streaming generator gives it (chunks of ``hop`` frames from frame 0), smoothed over
    frames as the run time does (``model["smooth"]``, :func:`~chatanyone.motion.mouth.ema`)."""
    look, hop = model["look"], model["hop"]
    frames = np.arange(c.n)
    extra = hop - 1 - frames % hop
    out = np.zeros((c.n, c.exp.shape[1]), np.float32)
    for j in range(hop):
        sel = extra == j
        tok = lookahead_tokens(c.feat, frames[sel], look + j, PAST)[:, :PAST + look + 1]
        x = design(tok, model["mean"], model["std"], model["pca"], model.get("phones"))
        out[sel] = apply(model, x, j)
    if model.get("smooth"):
        from ..motion.mouth import ema
        out = ema(out, float(model["smooth"]))[0]
    return out


def clip_scores(c: ClipData, pred: np.ndarray, open_vec: np.ndarray) -> dict:
    """Mouth-opening r and amplitude ratio (predicted std / the real speaker's) on one clip,
    canonical space, tracked frames."""
    p = pred @ open_vec
    ok = c.ok
    return {"r": float(np.corrcoef(p[ok], c.open[ok])[0, 1]), "amp_ratio": float(np.std(p[ok]) / c.amp)}


def best_lag(pred_open: np.ndarray, real_open: np.ndarray, ok: np.ndarray, max_lag: int = 4) -> int:
    """The shift ``lag`` (frames) for which ``pred_open[t + lag]`` correlates best with ``real_open[t]``."""
    best = (-2.0, 0)
    n = len(real_open)
    for lag in range(-max_lag, max_lag + 1):
        t = np.arange(max(0, -lag), min(n, n - lag))
        t = t[ok[t]]
        if t.size < 20:
            continue
        r = float(np.corrcoef(pred_open[t + lag], real_open[t])[0, 1])
        if r > best[0]:
            best = (r, lag)
    return best[1]


def fit(train, dev, look: int, hop: int, *, lams=(0.3, 1.0, 3.0, 10.0, 30.0), d: int = 128,
        normalize: bool = True, stride: int = 1, seed: int = 0, wstats=None, open_vec=None,
        align: bool = True, phones=None, lead: int = 0, smooth: float = 0.0) -> dict:
    """Fit at one lookahead and chunk size ``hop`` (one weight set per place in the chunk); the
    ridge strength chosen by mean DEV mouth r. ``phones``: a viseme head
    (:class:`~chatanyone.motion.phones.VisemeHead`) whose log-posteriors of the same tokens are
    appended to the inputs (:func:`phone_stats`). ``lead``: targets that many frames after each frame
    (with ``align``); ``smooth``: the output's smoothing over frames (:func:`~chatanyone.motion.mouth.ema`),
    part of the model (the gain and the scores are of the smoothed output). Returns the model dict
    and its DEV scores."""
    rng = np.random.default_rng(seed)
    mean, std = wstats
    pca = fit_pca(train, mean, std, d, rng)
    ref_amp = float(np.median([c.amp for c in train]))
    ph = phone_stats(train, phones, look, mean, std, pca) if phones is not None else None
    xy = [build_xy(train, look, j, mean, std, pca, ref_amp, stride=stride, normalize=normalize, phones=ph)
          for j in range(hop)]
    if lead and not align:
        xy = [build_xy(train, look, j, mean, std, pca, ref_amp, stride=stride, normalize=normalize, phones=ph,
                       lead=lead) for j in range(hop)]
    best = None
    for lam in lams:
        Wb = [ridge(x, y, w, lam) for x, y, w in xy]
        model = dict(mean=mean, std=std, pca=pca, W=np.stack([a for a, _ in Wb]), b=np.stack([b for _, b in Wb]),
                     gain=np.float32(1.0), look=look, hop=hop, open_vec=open_vec, phones=ph, smooth=float(smooth))
        r = float(np.mean([clip_scores(c, predict_clip(c, model), open_vec)["r"] for c in dev]))
        log.info("look %d hop %d lam %.3g: dev mouth r %.3f", look, hop, lam, r)
        if best is None or r > best[0]:
            best = (r, lam, model)
    r, lam, model = best
    if align:
        # many source videos carry an audio/video offset of a few frames; estimate each training
        # clip's with this first fit (the lag of best mouth correlation) and fit again on targets
        # shifted by it. DEV clips are scored as they are.
        for c in train:
            # (the unsmoothed output: the smoothing's delay is what ``lead`` makes up for)
            c.shift = best_lag(predict_clip(c, dict(model, smooth=0.0)) @ open_vec, c.open, c.ok)
        log.info("training clip offsets (frames): %s", {c.name: c.shift for c in train if c.shift})
        xy = [build_xy(train, look, j, mean, std, pca, ref_amp, stride=stride, normalize=normalize, phones=ph,
                       lead=lead) for j in range(hop)]
        Wb = [ridge(x, y, w, lam) for x, y, w in xy]
        model = dict(model, W=np.stack([a for a, _ in Wb]), b=np.stack([b for _, b in Wb]))
        model["offsets"] = {c.name: int(c.shift) for c in train}
        for c in train:
            c.shift = 0
    # gain: undo ridge's shrinkage, so that the training clips' predicted mouth spread (median)
    # equals the reference amplitude
    tr_amp = np.median([np.std((predict_clip(c, model) @ open_vec)[c.ok]) for c in train])
    model["gain"] = np.float32(ref_amp / tr_amp)
    model.update(past=PAST, lam=lam, ref_amp=np.float32(ref_amp), seg=SEG_FRAMES, lead=int(lead))
    scores = {c.name: clip_scores(c, predict_clip(c, model), open_vec) for c in dev}
    return model, scores


# ------------------------------------------------------------------ k-fold by speaker, the MLP

def speaker_of(name: str) -> str:
    """The speaker group of a training clip for cross-validation: one person's clips together
    (``styletalk_feifeili_clip1`` .. ``clip3``; MEAD actor ``M030`` of ``eamm_mead_M030_sad_3_001``
    and ``spectre_mead_M030_angry_016``); any other clip is its own speaker."""
    n = re.sub(r"_clip_?\d+.*$", "", str(name))
    m = re.search(r"mead_([MW]\d{3})_", n)
    return f"mead_{m.group(1)}" if m else n


def speaker_folds(names, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """``k`` folds of clip indices, no speaker (:func:`speaker_of`) in two folds; speakers dealt in
    a seeded random order, so the folds are fixed for a seed."""
    groups = sorted({speaker_of(n) for n in names})
    if len(groups) < k:
        raise ValueError(f"{len(groups)} speakers cannot make {k} folds")
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[g]: i % k for i, g in enumerate(order)}
    return [np.array([i for i, n in enumerate(names) if fold_of[speaker_of(n)] == f], np.int64) for f in range(k)]


def clip_design(c: ClipData, look: int, mean, std, pca, phones=None) -> np.ndarray:
    """``[n, (PAST + look + 1) d]`` design rows of every frame of ``c`` (hop 1: each frame from the
    segment ending ``look`` frames after it); ``phones``: viseme columns appended (:func:`design`)."""
    tok = lookahead_tokens(c.feat, np.arange(c.n), look, PAST)
    return design(tok, mean, std, pca, phones)


def aligned_frames(c: ClipData, lead: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, src)``: each audio frame of ``c`` paired with the video frame that shows its sound
    (``src = frame - c.shift``), or ``lead`` frames after it, where that frame exists and has a face."""
    frames = np.arange(c.n)
    src = frames - c.shift + lead
    keep = (src >= 0) & (src < c.n)
    frames, src = frames[keep], src[keep]
    keep = c.ok[src]
    return frames[keep], src[keep]


def clip_rows(c: ClipData, z: np.ndarray, ref_amp: float, *, normalize: bool = True, center: bool = False,
              lead: int = 0):
    """Training rows of one clip from its design ``z`` (:func:`clip_design`): inputs, targets (the
    video frame that shows each frame's sound, ``c.shift``), row weights (long clips count less).
    ``normalize``: targets scaled to ``ref_amp`` mouth-opening spread; ``center``: and the clip's
    mean expression removed (a speaker's resting shape is not in the audio; the intercept holds the
    corpus mean); ``lead``: targets that many frames later (:func:`aligned_frames`)."""
    frames, src = aligned_frames(c, lead)
    y = c.exp[src] * (ref_amp / c.amp if normalize else 1.0)
    if center:
        y = y - y.mean(0)
    return z[frames], y.astype(np.float32), np.full(frames.size, 1.0 / np.sqrt(frames.size), np.float32)


def _stack_rows(clips, zs, ref_amp, normalize, center, mean_exp=None, lead: int = 0):
    xs, ys, ws = zip(*(clip_rows(c, z, ref_amp, normalize=normalize, center=center, lead=lead)
                       for c, z in zip(clips, zs)))
    y = np.concatenate(ys)
    if center:  # back to the corpus's mean expression (weighted as the rows)
        y = y + mean_exp
    return np.concatenate(xs), y, np.concatenate(ws)


def design_rows(clips, zs, ref_amp: float, cfg: dict):
    """``(x, y, w)``: the training rows of ``clips`` (designs ``zs``) as a configuration ``cfg`` asks
    (``normalize``, default True; ``center``: each clip's mean expression swapped for the corpus's;
    ``lead``: targets that many frames later)."""
    normalize, center, lead = cfg.get("normalize", True), cfg.get("center", False), int(cfg.get("lead", 0))
    mean_exp = None
    if center:
        rows = [clip_rows(c, z, ref_amp, normalize=normalize, lead=lead) for c, z in zip(clips, zs)]
        yy, ww = np.concatenate([r[1] for r in rows]), np.concatenate([r[2] for r in rows])
        mean_exp = (ww / ww.sum()) @ yy
    return _stack_rows(clips, zs, ref_amp, normalize, center, mean_exp, lead)


def mlp_predict(model: dict, z: np.ndarray) -> np.ndarray:
    """The MLP's raw output (no gain) on design rows ``z`` with the place-in-chunk flag of extra 0."""
    from ..motion.mouth import mlp_forward
    h = np.concatenate([z, np.ones((len(z), 1), np.float32)], 1)
    y = mlp_forward(model["layers"], h)
    if "skip" in model:
        y = y + h @ model["skip"][0] + model["skip"][1]
    return y


def train_mlp(x, y, w, open_vec, *, hidden=(256,), steps: int = 3000, lr: float = 1e-3, wd: float = 0.05,
              drop_in: float = 0.1, drop: float = 0.2, noise: float = 0.1, open_weight: float = 1.0,
              skip: bool = False, bottleneck: int = 0, batch: int = 512, seed: int = 0, evals=(), on_eval=None,
              ckpt: str | Path | None = None, ckpt_every: int = 500) -> dict:
    """A small MLP on ridge inputs ``x [n, k]`` (plus a constant place flag: hop 1) -> targets
    ``y [n, E]``, row weights ``w``: inputs centred and scaled by one common factor, ``hidden`` GELU layers with dropout,
    optionally a linear skip path (a ridge-like map the hidden layers correct), AdamW with a
    one-cycle schedule, Gaussian input noise; loss: standardized MSE plus ``open_weight`` times the
    mouth-opening error. ``on_eval(step, model)`` is called at the steps in ``evals``; ``ckpt``: a
    torch checkpoint written every ``ckpt_every`` steps and resumed from. Returns the exported model
    (numpy: ``layers``, ``skip``, ``ymean``). Blocks: about a minute on one core for 3000 steps."""
    import torch
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.concatenate([x, np.ones((len(x), 1), np.float32)], 1)
    X, Y = torch.from_numpy(x), torch.from_numpy(np.asarray(y, np.float32))
    p = np.asarray(w, np.float64)
    p = p / p.sum()
    xm = torch.from_numpy((p @ x).astype(np.float32))
    # one scale for all inputs, not one per input: the PCA components keep their relative spread, so
    # weight decay and input noise shrink the weak (noisy) components most, as the ridge does
    xs = torch.full((x.shape[1],), float(np.sqrt(p @ ((x - p @ x) ** 2).mean(1))) + 1e-6)
    xm[-1], xs[-1] = 0.0, 1.0                      # the constant flag stays as it is
    ymean = torch.from_numpy((p @ y).astype(np.float32))
    ysd = torch.from_numpy(np.sqrt(p @ (y - p @ y) ** 2).astype(np.float32)) + 1e-6
    mods, k = [torch.nn.Dropout(drop_in)], X.shape[1]
    if bottleneck:  # a linear projection first (folded into the first hidden layer on export)
        mods.append(torch.nn.Linear(k, bottleneck))
        k = bottleneck
    for h in hidden:
        mods += [torch.nn.Linear(k, h), torch.nn.GELU(approximate="tanh"), torch.nn.Dropout(drop)]
        k = h
    mods.append(torch.nn.Linear(k, Y.shape[1]))
    net = torch.nn.Sequential(*mods)
    lin = torch.nn.Linear(X.shape[1], Y.shape[1]) if skip else None
    params = list(net.parameters()) + (list(lin.parameters()) if skip else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    u = torch.from_numpy((open_vec / np.linalg.norm(open_vec)).astype(np.float32))
    start = 0
    if ckpt is not None and Path(ckpt).is_file():
        st = torch.load(ckpt, weights_only=False)
        net.load_state_dict(st["net"])
        if skip:
            lin.load_state_dict(st["lin"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        rng.bit_generator.state, start = st["rng"], st["step"]
        torch.set_rng_state(st["torch_rng"])
        log.info("mlp: resumed %s at step %d", ckpt, start)

    def export() -> dict:
        lins = [m for m in net if isinstance(m, torch.nn.Linear)]
        layers = []
        for i, m in enumerate(lins):
            W = m.weight.detach().numpy().T.astype(np.float64)
            b = m.bias.detach().numpy().astype(np.float64)
            if i == 0:  # fold the input standardization in
                b = b - (xm.numpy() / xs.numpy()) @ W
                W = W / xs.numpy()[:, None]
            if i == len(lins) - 1:  # and the output's
                W, b = W * ysd.numpy(), b * ysd.numpy() + ymean.numpy()
            layers.append((W, b))
        if bottleneck:  # linear then linear: one matrix
            (W0, b0), (W1, b1) = layers[:2]
            layers = [(W0 @ W1, b0 @ W1 + b1)] + layers[2:]
        layers = [(W.astype(np.float32), b.astype(np.float32)) for W, b in layers]
        out = dict(kind="mlp", layers=layers, ymean=ymean.numpy().copy())
        if skip:
            W = lin.weight.detach().numpy().T.astype(np.float64) / xs.numpy()[:, None]
            b = lin.bias.detach().numpy() - (xm.numpy() / xs.numpy()) @ (lin.weight.detach().numpy().T)
            out["skip"] = ((W * ysd.numpy()).astype(np.float32), (b * ysd.numpy()).astype(np.float32))
        return out

    for step in range(start, steps):
        net.train()
        idx = torch.from_numpy(rng.choice(len(X), size=batch, p=p))
        xb = (X[idx] - xm) / xs
        xb = xb + noise * torch.randn_like(xb)
        yb = (Y[idx] - ymean) / ysd
        out = net(xb) + (lin(xb) if skip else 0.0)
        err = out - yb
        loss = (err ** 2).mean() + open_weight * ((err * ysd) @ u).pow(2).mean() / (ysd ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if ckpt is not None and (step + 1) % ckpt_every == 0:
            tmp = Path(str(ckpt) + ".tmp")
            torch.save({"net": net.state_dict(), "lin": lin.state_dict() if skip else None,
                        "opt": opt.state_dict(), "sched": sched.state_dict(), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "step": step + 1}, tmp)
            tmp.replace(ckpt)
        if on_eval is not None and step + 1 in evals:
            net.eval()
            on_eval(step + 1, export())
    net.eval()
    return export()


def with_ridge(model: dict, W: np.ndarray, b: np.ndarray, alpha: float) -> dict:
    """The MLP ``model`` averaged with a ridge ``(W [k, E], b [E])`` on the same inputs:
    ``(1 - alpha) mlp + alpha ridge``, written as one MLP whose linear skip path carries the ridge
    (so the run time needs nothing new)."""
    layers = [(Wl, bl) for Wl, bl in model["layers"]]
    Wl, bl = layers[-1]
    layers[-1] = ((1 - alpha) * Wl, (1 - alpha) * bl)
    Wr = np.concatenate([W, np.zeros((1, W.shape[1]), W.dtype)], 0)  # the place flag: no weight
    sW, sb = model.get("skip", (np.zeros_like(Wr), np.zeros_like(b)))
    out = dict(model, layers=[(a.astype(np.float32), c.astype(np.float32)) for a, c in layers])
    out["skip"] = (((1 - alpha) * sW + alpha * Wr).astype(np.float32), ((1 - alpha) * sb + alpha * b).astype(np.float32))
    return out


def _predict_raw(model: dict, z: np.ndarray) -> np.ndarray:
    """The model (no gain) on one clip's design rows ``z``, every frame in order (hop 1), smoothed
    over frames where the model says (``smooth``)."""
    y = z @ model["W"][0] + model["b"][0] if model["kind"] == "ridge" else mlp_predict(model, z)
    if model.get("smooth"):
        from ..motion.mouth import ema
        y = ema(y, float(model["smooth"]))[0]
    return y


def _with_gain(model: dict, train_clips, train_z, ref_amp, open_vec) -> dict:
    """The gain rule of :func:`fit`: the training clips' median predicted opening spread brought to
    ``ref_amp``."""
    amps = [np.std((_predict_raw(model, z) @ open_vec)[c.ok]) for c, z in zip(train_clips, train_z)]
    return dict(model, gain=np.float32(ref_amp / np.median(amps)))


def _score(model: dict, c: ClipData, z: np.ndarray, open_vec) -> dict:
    y = _predict_raw(model, z)
    center = model["b"][0] if model["kind"] == "ridge" else model["ymean"]
    return clip_scores(c, open_gain(y, center, float(model["gain"]), open_vec), open_vec)


def cv_run(train, dev, cfg: dict, *, open_vec, wstats, look: int = 3, k: int = 5, d: int = 128,
           seed: int = 0, threads: int = 1, parts=None, phones=None) -> dict:
    """One configuration cross-validated by speaker over ``train`` (k folds; a fold's clips scored by
    a fit without their speakers, PCA included) and fitted on all of ``train``, scored on ``dev``.
    ``cfg``: ``model`` ``"ridge"`` (``lam``) or ``"mlp"`` (:func:`train_mlp` keywords, ``steps``
    and ``evals``: the MLP is scored at each of those steps), ``normalize``, ``center``, ``phones``
    (True: the viseme head ``phones``' columns appended, standardized on each fold's training clips).
    Returns ``{"kfold": {step: {clip: scores}}, "dev": {step: {clip: scores}}}`` (step 0 for ridge).
    The clips' ``shift`` (A/V offsets) are used as set."""
    mean, std = wstats
    names = [c.name for c in train]
    folds = [f for f in speaker_folds(names, k, seed)] + [None]
    res = {"kfold": {}, "dev": {}}
    for fi, fold in enumerate(folds):
        if parts is not None and fi not in parts:  # a quick screen: some folds only (index k: DEV)
            continue
        held = set(fold.tolist()) if fold is not None else set()
        tr = [c for i, c in enumerate(train) if i not in held]
        te = [c for i, c in enumerate(train) if i in held] if fold is not None else dev
        key = "kfold" if fold is not None else "dev"
        rng = np.random.default_rng(seed)
        pca = fit_pca(tr, mean, std, d, rng)
        ref_amp = float(np.median([c.amp for c in tr]))
        ph = phone_stats(tr, phones, look, mean, std, pca) if cfg.get("phones") else None
        ztr = [clip_design(c, look, mean, std, pca, ph) for c in tr]
        zte = [clip_design(c, look, mean, std, pca, ph) for c in te]
        x, y, w = design_rows(tr, ztr, ref_amp, cfg)

        alphas = _ensemble_weights(cfg)
        if alphas:
            Wr, br = ridge(x, y, w, cfg.get("lam", 1.0))

        def record(step, model):
            for a in alphas or (None,):
                m = with_ridge(model, Wr, br, a) if a else model
                m = _with_gain(dict(m, smooth=float(cfg.get("smooth", 0.0))), tr, ztr, ref_amp, open_vec)
                # one weight: keyed by the step as before; a grid: "STEP@aALPHA"
                out = res[key].setdefault(step if len(alphas) <= 1 else f"{step}@a{a:g}", {})
                for c, z in zip(te, zte):
                    out[c.name] = _score(m, c, z, open_vec)

        if cfg["model"] == "ridge":
            W, b = ridge(x, y, w, cfg.get("lam", 1.0))
            record(0, dict(kind="ridge", W=W[None], b=b[None]))
        else:
            kw = {k2: v for k2, v in cfg.items()
                  if k2 not in ("model", "normalize", "center", "name", "phones", "ensemble", "ensemble_grid", "lam",
                                "lead", "smooth")}
            kw.setdefault("evals", (kw.get("steps", 3000),))
            import torch
            torch.set_num_threads(threads)
            train_mlp(x, y, w, open_vec, seed=seed, on_eval=record, **kw)
        log.info("cv %s fold %s: %s", cfg.get("name"), fi if fold is not None else "dev",
                 {s: round(float(np.mean([v["r"] for v in res[key][s].values()])), 3) for s in res[key]})
    return res


def _ensemble_weights(cfg: dict) -> tuple:
    """The ridge weights ``alpha`` a configuration's MLP is averaged with (``ensemble``: one;
    ``ensemble_grid``: several, all scored from one MLP per fold by :func:`cv_run`); () for none."""
    grid = cfg.get("ensemble_grid")
    if grid:
        return tuple(float(a) for a in grid)
    return (float(cfg["ensemble"]),) if cfg.get("ensemble") else ()


def cross_fitted_offsets(train, *, open_vec, wstats, look: int = 3, k: int = 5, seed: int = 0) -> dict:
    """Each training clip's audio/video offset (frames) from a ridge (lambda 1) fitted without its
    speaker (out-of-fold predictions, :func:`best_lag`); sets ``c.shift`` and returns them."""
    mean, std = wstats
    for c in train:
        c.shift = 0
    for fold in speaker_folds([c.name for c in train], k, seed):
        held = set(fold.tolist())
        tr = [c for i, c in enumerate(train) if i not in held]
        pca = fit_pca(tr, mean, std, 128, np.random.default_rng(seed))
        ref_amp = float(np.median([c.amp for c in tr]))
        ztr = [clip_design(c, look, mean, std, pca) for c in tr]
        W, b = ridge(*_stack_rows(tr, ztr, ref_amp, True, False), 1.0)
        for i in fold:
            c = train[i]
            z = clip_design(c, look, mean, std, pca)
            c._oof_shift = best_lag((z @ W + b) @ open_vec, c.open, c.ok)
    for c in train:
        c.shift = c._oof_shift
    return {c.name: int(c.shift) for c in train}


CV_CONFIGS = {
    "ridge_l1": dict(model="ridge", lam=1.0),
    "ridge_l1_raw": dict(model="ridge", lam=1.0, normalize=False),
    "ridge_l1_center": dict(model="ridge", lam=1.0, center=True),
    "mlp64_skip": dict(model="mlp", hidden=(64,), skip=True, drop_in=0.0, drop=0.5, noise=1.0, steps=1000,
                       evals=(500, 1000)),
    "mlp256_skip": dict(model="mlp", hidden=(256,), skip=True, drop_in=0.0, drop=0.5, noise=1.0, steps=1000,
                        evals=(500, 1000)),
    "mlp64_skip_2k": dict(model="mlp", hidden=(64,), skip=True, drop_in=0.0, drop=0.5, noise=1.0, steps=2000,
                          evals=(1000, 1500, 2000)),
    "ens_mlp256": dict(model="mlp", hidden=(256,), drop_in=0.0, drop=0.3, noise=1.0, steps=300, evals=(150, 300),
                       ensemble=0.5),
    "ens_mlp256_raw": dict(model="mlp", hidden=(256,), drop_in=0.0, drop=0.3, noise=1.0, steps=300, evals=(150, 300),
                           ensemble=0.5, normalize=False),
    "ens_mlp64_skip": dict(model="mlp", hidden=(64,), skip=True, drop_in=0.0, drop=0.5, noise=1.0, steps=1000,
                           evals=(500, 1000), ensemble=0.5),
    "mlp256": dict(model="mlp", hidden=(256,), drop_in=0.0, drop=0.3, noise=1.0, steps=1000, evals=(250, 500, 1000)),
    "linear_sgd": dict(model="mlp", hidden=(), drop_in=0.0, drop=0.0, noise=1.0, wd=0.0, steps=1000, evals=(500, 1000)),
    "mlp_bn64_256_skip_n1": dict(model="mlp", bottleneck=64, hidden=(256,), steps=1500, evals=(500, 1000, 1500),
                                 skip=True, noise=1.0),
    "mlp_bn32_128_skip_wd": dict(model="mlp", bottleneck=32, hidden=(128,), steps=1500, evals=(500, 1000, 1500),
                                 skip=True, wd=0.5, noise=0.5),
    "mlp_skip_128": dict(model="mlp", hidden=(128,), steps=1500, evals=(500, 1000, 1500), skip=True, drop=0.3),
    "mlp_bn64_256": dict(model="mlp", bottleneck=64, hidden=(256,), steps=1500, evals=(500, 1000, 1500)),
    "mlp_bn64_256_skip": dict(model="mlp", bottleneck=64, hidden=(256,), steps=1500, evals=(500, 1000, 1500),
                              skip=True),
    "mlp1_256": dict(model="mlp", hidden=(256,), steps=3000, evals=(1000, 2000, 3000)),
    "mlp1_256_raw": dict(model="mlp", hidden=(256,), steps=3000, evals=(1000, 2000, 3000), normalize=False),
    "mlp1_256_center": dict(model="mlp", hidden=(256,), steps=3000, evals=(1000, 2000, 3000), center=True),
    "mlp2_256": dict(model="mlp", hidden=(256, 256), steps=3000, evals=(1000, 2000, 3000)),
    "mlp1_256_skip": dict(model="mlp", hidden=(256,), steps=3000, evals=(1000, 2000, 3000), skip=True),
    "mlp1_512_drop": dict(model="mlp", hidden=(512,), steps=3000, evals=(1000, 2000, 3000), drop=0.5, drop_in=0.2),
    # with the viseme head's log-posteriors of the same tokens (cv --phones HEAD; train.phones)
    "ridge_l1_phones": dict(model="ridge", lam=1.0, phones=True),
    "mlp_bn64_256_skip_phones": dict(model="mlp", bottleneck=64, hidden=(256,), steps=1500, evals=(500, 1000, 1500),
                                     skip=True, phones=True),
    # session 8: the ridge + MLP average on the viseme inputs, the ridge's weight scored on a grid
    "ens_mlp256_phones_grid": dict(model="mlp", hidden=(256,), drop_in=0.0, drop=0.3, noise=1.0, steps=600,
                                   evals=(300, 600), ensemble_grid=(0.3, 0.5, 0.6, 0.7, 0.8), phones=True),
    # the same predicting one frame ahead of the real mouth, its output smoothed (EMA 0.5: about the
    # frame of delay the lead makes up for); the ridge's weight on a grid, then the shipped one
    "ens_mlp256_phones_lead1_ema05_grid": dict(model="mlp", hidden=(256,), drop_in=0.0, drop=0.3, noise=1.0,
                                               steps=600, evals=(600,), ensemble_grid=(0.5, 0.7), phones=True,
                                               lead=1, smooth=0.5),
    "ens_mlp256_phones_lead1_ema05": dict(model="mlp", hidden=(256,), drop_in=0.0, drop=0.3, noise=1.0, steps=600,
                                          evals=(600,), ensemble=0.7, phones=True, lead=1, smooth=0.5),
    "ridge_l1_phones_lead1_ema05": dict(model="ridge", lam=1.0, phones=True, lead=1, smooth=0.5),
}


def fit_mlp(train, dev, look: int, cfg: dict, *, d: int = 128, seed: int = 0, wstats=None, open_vec=None,
            threads: int = 1, ckpt=None, k: int = 5, phones=None) -> tuple[dict, dict]:
    """The MLP predictor (hop 1) on all of ``train`` with the configuration ``cfg``
    (:data:`CV_CONFIGS`, chosen by :func:`cv_run`; trained to its last step, no early stopping):
    the training clips' audio/video offsets cross-fitted (:func:`cross_fitted_offsets`), the gain
    rule of :func:`fit`. ``phones``: the viseme head (:class:`~chatanyone.motion.phones.VisemeHead`)
    whose log-posteriors a ``phones`` configuration appends to the inputs (standardized on
    ``train``, :func:`phone_stats`; the head travels in the saved file). ``cfg["ensemble"]``: the
    weight of a ridge on the same rows averaged in (:func:`with_ridge`). Returns the model dict
    (``save_predictor``) and its DEV scores."""
    import torch
    torch.set_num_threads(threads)
    if cfg.get("phones") and phones is None:
        raise ValueError(f"fit_mlp: configuration {cfg.get('name')} has viseme inputs; give the head (--phones HEAD)")
    if cfg.get("ensemble_grid") and not cfg.get("ensemble"):
        raise ValueError(f"fit_mlp: configuration {cfg.get('name')} has an ensemble grid; fit takes one weight "
                         "(set 'ensemble' to the weight cv chose)")
    mean, std = wstats
    offsets = cross_fitted_offsets(train, open_vec=open_vec, wstats=wstats, look=look, k=k, seed=seed)
    log.info("training clip offsets (frames): %s", {n: o for n, o in offsets.items() if o})
    pca = fit_pca(train, mean, std, d, np.random.default_rng(seed))
    ref_amp = float(np.median([c.amp for c in train]))
    ph = phone_stats(train, phones, look, mean, std, pca) if cfg.get("phones") else None
    ztr = [clip_design(c, look, mean, std, pca, ph) for c in train]
    x, y, w = design_rows(train, ztr, ref_amp, cfg)
    kw = {k2: v for k2, v in cfg.items() if k2 not in ("model", "normalize", "center", "name", "evals", "ensemble",
                                                      "ensemble_grid", "lam", "phones", "lead", "smooth")}
    model = train_mlp(x, y, w, open_vec, seed=seed, ckpt=ckpt, **kw)
    if cfg.get("ensemble"):
        model = with_ridge(model, *ridge(x, y, w, cfg.get("lam", 1.0)), cfg["ensemble"])
    model = _with_gain(dict(model, smooth=float(cfg.get("smooth", 0.0))), train, ztr, ref_amp, open_vec)
    model.update(mean=mean, std=std, pca=pca, look=look, hop=1, open_vec=open_vec, past=PAST, phones=ph,
                 lead=int(cfg.get("lead", 0)),
                 lam=float(kw.get("steps", 3000)), ref_amp=np.float32(ref_amp), seg=SEG_FRAMES, offsets=offsets)
    for c in train:
        c.shift = 0
    scores = {c.name: clip_scores(c, predict_clip(c, model), open_vec) for c in dev}
    return model, scores


def summarize_cv(res: dict) -> dict:
    """``{part: {step: {"r": mean, "amp_ratio": mean}}}`` of a :func:`cv_run` result."""
    return {part: {str(s): {m: float(np.mean([v[m] for v in d.values()])) for m in ("r", "amp_ratio")}
                   for s, d in steps.items()} for part, steps in res.items()}


def cv_main(args) -> int:
    """``cv``: the configurations ``args.configs`` k-fold by speaker and on DEV; results appended to
    ``args.json`` (a configuration already there is skipped: resumable)."""
    from ..spec.head import load_basis
    from ..runners.base import weights_path
    open_vec = mouth_open_vector(load_basis().components)
    with np.load(weights_path("motion_stats.npz")) as z:
        wstats = (z["wfeat_mean"].astype(np.float32), z["wfeat_std"].astype(np.float32))
    train = load_clips(args.train, open_vec, allow=("train",))
    dev = load_clips(args.dev, open_vec, allow=("dev",))
    out = Path(args.json)
    done = json.loads(out.read_text()) if out.is_file() else {}
    if "offsets" not in done:
        done["offsets"] = cross_fitted_offsets(train, open_vec=open_vec, wstats=wstats, look=args.lookahead, k=args.folds)
        done["folds"] = [[train[i].name for i in f] for f in speaker_folds([c.name for c in train], args.folds)]
        out.write_text(json.dumps(done, indent=1))
    for c in train:
        c.shift = int(done["offsets"][c.name])
    phones = None
    if args.phones:
        from ..motion.phones import VisemeHead
        phones = VisemeHead(args.phones)
    for name in args.configs:
        if (f"{name}@{'-'.join(map(str, args.parts))}" if args.parts is not None else name) in done:
            continue
        cfg = dict(CV_CONFIGS[name], name=name)
        t = time.time()
        if cfg.get("phones") and not args.phones:
            raise ValueError(f"cv: configuration {name} needs --phones HEAD")
        res = cv_run(train, dev, cfg, open_vec=open_vec, wstats=wstats, look=args.lookahead, k=args.folds,
                     threads=args.threads, parts=args.parts, phones=phones)
        if args.parts is not None:
            name = f"{name}@{'-'.join(map(str, args.parts))}"
        done[name] = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                      "summary": summarize_cv(res), "clips": res, "seconds": time.time() - t}
        out.write_text(json.dumps(done, indent=1))
        for part, steps in done[name]["summary"].items():
            for s, v in steps.items():
                print(f"{name} {part} step {s}: r {v['r']:.3f} amp {v['amp_ratio']:.2f}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("features", help="cache the segment features of corpus clips")
    f.add_argument("roots", nargs="+")
    f.add_argument("--threads", type=int, default=1)
    g = sub.add_parser("fit", help="fit (and score on DEV) the ridge predictor")
    g.add_argument("--train", nargs="+", required=True)
    g.add_argument("--dev", nargs="+", required=True)
    g.add_argument("--lookahead", type=int, nargs="+", default=[2])
    g.add_argument("--hop", type=int, default=1)
    g.add_argument("--pca", type=int, default=128)
    g.add_argument("--stride", type=int, default=1)
    g.add_argument("--model", choices=["ridge", "mlp"], default="ridge")
    g.add_argument("--config", default="mlp_bn64_256_skip", choices=sorted(CV_CONFIGS),
                   help="MLP configuration (--model mlp; chosen with the cv command)")
    g.add_argument("--ckpt", default=None, help="MLP: torch checkpoint written during training and resumed from")
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--only", default=None, help="a JSON list of training clip names to use (a fixed set)")
    g.add_argument("--lams", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0, 30.0],
                   help="ridge strengths to choose from on DEV")
    g.add_argument("--phones", default=None, help="a viseme head npz (train.phones): its log-posteriors "
                   "of the same tokens appended to the ridge inputs")
    g.add_argument("--lead", type=int, default=0, help="ridge: targets this many frames after each frame "
                   "(the predictor runs ahead of the real mouth by what --smooth delays it)")
    g.add_argument("--smooth", type=float, default=0.0, help="ridge: the output's smoothing over frames "
                   "(exponential moving average weight, 0: none; stored in the predictor)")
    g.add_argument("--no-align", action="store_true", help="ablation: no per-clip audio/video offset correction")
    g.add_argument("--no-normalize", action="store_true", help="ablation: raw (not speaker-normalized) targets")
    g.add_argument("--json", default=None, help="write the DEV scores here")
    g.add_argument("--out", default=None, help="write the predictor (npz) here (one lookahead)")
    v = sub.add_parser("cv", help="configurations k-fold by speaker on the training clips and on DEV (resumable)")
    v.add_argument("--train", nargs="+", required=True)
    v.add_argument("--dev", nargs="+", required=True)
    v.add_argument("--configs", nargs="+", default=["ridge_l1", "mlp1_256"], choices=sorted(CV_CONFIGS))
    v.add_argument("--lookahead", type=int, default=3)
    v.add_argument("--folds", type=int, default=5)
    v.add_argument("--phones", default=None, help="viseme head npz for the *_phones configurations")
    v.add_argument("--threads", type=int, default=1)
    v.add_argument("--parts", type=int, nargs="+", default=None,
                   help="a quick screen: only these folds (index FOLDS: the DEV fit), stored as NAME@PARTS")
    v.add_argument("--json", required=True, help="results (read first: configurations there are skipped)")
    a = sub.add_parser("amp", help="the speaker amplitude map (token spreads -> mouth gain): k-fold, DEV, fit")
    a.add_argument("--train", nargs="+", required=True)
    a.add_argument("--dev", nargs="+", required=True)
    a.add_argument("--predictor", default=None, help="mouth predictor npz (default: the shipped one)")
    a.add_argument("--pca", type=int, default=AMP_PCA)
    a.add_argument("--json", default=None, help="write the k-fold and DEV figures here")
    a.add_argument("--out", default=None, help="write the map (npz) here (weights/mouth_amp.npz)")
    o = sub.add_parser("direction", help="the opening direction (open_dir) of the training clips' faces, "
                       "written into a predictor npz")
    o.add_argument("--train", nargs="+", required=True)
    o.add_argument("--predictor", default=None, help="mouth predictor npz (default: the shipped one)")
    o.add_argument("--out", default=None, help="write the predictor with this open_dir here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.cmd == "direction":
        return direction_main(args)
    if args.cmd == "cv":
        return cv_main(args)
    if args.cmd == "amp":
        return amp_main(args)
    if args.cmd == "features":
        from ..audio.whisper import shared_encoder
        enc = shared_encoder(args.threads, "int8")
        for root in args.roots:
            for d in sorted(Path(root).iterdir()):
                if (d / "motion.npz").is_file():  # finished clips only (a corpus may be building)
                    t = time.time()
                    clip_features(d, enc)
                    log.info("features %s (%.0f s)", d.name, time.time() - t)
        return 0
    from ..spec.head import load_basis
    from ..runners.base import weights_path
    open_vec = mouth_open_vector(load_basis().components)
    with np.load(weights_path("motion_stats.npz")) as z:
        wstats = (z["wfeat_mean"].astype(np.float32), z["wfeat_std"].astype(np.float32))
    train = load_clips(args.train, open_vec, allow=("train",))
    if args.only:
        names = set(json.loads(Path(args.only).read_text()))
        train = [c for c in train if c.name in names]
    dev = load_clips(args.dev, open_vec, allow=("dev",))
    log.info("mouth: %d training clips, %d dev clips", len(train), len(dev))
    phones = None
    if args.phones:
        from ..motion.phones import VisemeHead
        phones = VisemeHead(args.phones)
    res = {}
    for look in args.lookahead:
        if args.model == "mlp":
            if args.hop != 1:
                raise ValueError("the MLP predictor is trained for hop 1")
            cfg = dict(CV_CONFIGS[args.config], name=args.config)
            if cfg["model"] != "mlp":
                raise ValueError(f"--config {args.config} is not an MLP configuration")
            model, scores = fit_mlp(train, dev, look, cfg, d=args.pca, wstats=wstats, open_vec=open_vec,
                                    threads=args.threads, ckpt=args.ckpt, phones=phones)
        else:
            model, scores = fit(train, dev, look, args.hop, d=args.pca, normalize=not args.no_normalize,
                                stride=args.stride, wstats=wstats, open_vec=open_vec, align=not args.no_align,
                                lams=tuple(args.lams), phones=phones, lead=args.lead, smooth=args.smooth)
        summ = {k: float(np.mean([s[k] for s in scores.values()])) for k in ("r", "amp_ratio")}
        res[look] = {"dev_mean": summ, "dev_clips": scores, "lam": model["lam"], "gain": float(model["gain"]),
                     "train_offsets": model.get("offsets"),
                     "ref_amp": float(model["ref_amp"]), "train_clips": [c.name for c in train]}
        print(f"lookahead {look} ({40 * look} ms), hop {args.hop}: dev mouth r {summ['r']:.3f}, "
              f"amp {summ['amp_ratio']:.2f}, lam {model['lam']}, gain {float(model['gain']):.2f}", flush=True)
        if args.out:
            # the gains open the jaw and lips as the training faces do (session 11)
            from ..motion.mouth import mouth_projector, opening_direction
            b = load_basis()
            model["open_dir"] = opening_direction([c.exp[c.ok] for c in train], open_vec,
                                                  mouth_projector(b.components, b.canonical))
            save_predictor(args.out, model, open_vec)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


# ------------------------------------------------- the speaker's amplitude from the audio (session 10)

AMP_PCA = 8          # principal components of the token spreads the amplitude map reads
AMP_N0 = 50.0        # speech frames at which the online estimate counts half
AMP_CLIP = 0.7       # |log gain| limit (0.5x .. 2x)


def speaker_amp_rows(clips, predictor, open_vec, *, max_frames: int | None = None) -> list[dict]:
    """Per clip: ``std [768]`` the spread of each Whisper token dimension over its speech frames
    (``eval.mouth.speech_frames``; each frame's own token from the segment the predictor reads,
    ``predictor.look`` frames ahead), ``y`` the log gain the clip needs (the real mouth opening's
    spread on speech frames over the predictor's, :class:`~chatanyone.motion.mouth.MouthPredictor`
    with its smoothing), ``speaker``, ``source`` (the corpus a clip comes from: its name's first
    part; MEAD for every MEAD actor), ``tokens``/``speech``/``pred``/``real`` for the online
    simulation (:func:`speaker_amp_online`). ``max_frames``: only the first frames of each clip."""
    from ..eval.mouth import speech_frames
    L = predictor.look
    rows = []
    for c in clips:
        n = c.n if max_frames is None else min(c.n, max_frames)
        audio = np.load(c.path / "audio.npy").astype(np.float32).reshape(-1)
        sp = speech_frames(audio, c.n)[:n]
        sel = sp & c.ok[:n]
        if sel.sum() < 30:
            continue
        frames = np.arange(n)
        y, _ = predictor.smooth_frames(predictor.predict(lookahead_tokens(c.feat, frames, L, predictor.past), 0))
        pred = y @ open_vec - float(predictor.center @ open_vec)
        tok = np.asarray(c.feat[frames + L, N_TOK - 1 - L], np.float32)
        rows.append(dict(name=c.name, speaker=speaker_of(c.name),
                         source="mead" if "mead" in c.name else c.name.split("_")[0],
                         std=tok[sp].std(0).astype(np.float64), y=float(np.log(c.open[:n][sel].std() / pred[sel].std())),
                         tokens=tok, speech=sp, ok=c.ok[:n], pred=pred, real=c.open[:n]))
    return rows


def fit_speaker_amp(rows, d: int = AMP_PCA) -> dict:
    """The linear map token spreads -> log gain (:class:`~chatanyone.motion.mouth.SpeakerAmplitude`):
    spreads standardized across the clips, their first ``d`` principal components, least squares.
    The intercept is set so that the median training clip's estimate is 0 (gain 1: the estimate moves
    speakers apart, the global amplitude stays the predictor's and ``MOUTH_RENDER_GAIN``'s)."""
    X = np.array([r["std"] for r in rows])
    y = np.array([r["y"] for r in rows])
    if len(rows) < d + 2:
        raise ValueError(f"{len(rows)} clips cannot fit {d} components")
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    _, _, vt = np.linalg.svd(Z - Z.mean(0), full_matrices=False)
    A = (Z - Z.mean(0)) @ vt[:d].T
    w = np.linalg.lstsq(A, y - y.mean(), rcond=None)[0]
    v = vt[:d].T @ w
    b = -float(np.median(Z @ v))
    return dict(mu=mu, sd=sd, v=v, b=b)


def _amp_estimate(m: dict, std) -> float:
    return float(np.clip(((np.asarray(std) - m["mu"]) / m["sd"]) @ m["v"] + m["b"], -AMP_CLIP, AMP_CLIP))


AMP_BIAS_N = (2, 3, 5, 7, 10, 15, 20, 25, 35, 50, 70, 100, 140, 200)


def amp_bias_table(rows, m: dict, min_clips: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(n [k], bias [k])``: how much higher the map's (unclipped) estimate is, on average over
    ``rows``, from the spreads of a clip's first ``n`` speech frames than from all of them (a few
    frames' tokens spread less). Counts only ``n`` that at least ``min_clips`` clips reach (with
    twice as many frames); the table ends with 0 past them."""
    raw = lambda std: float(((np.asarray(std) - m["mu"]) / m["sd"]) @ m["v"] + m["b"])
    ns, bs = [], []
    for n in AMP_BIAS_N:
        d = [raw(r["tokens"][r["speech"]][:n].std(0)) - raw(r["std"]) for r in rows if r["speech"].sum() >= 2 * n]
        if len(d) < min_clips:
            break
        ns.append(n)
        bs.append(float(np.mean(d)))
    ns.append(2 * ns[-1] if ns else 2)
    bs.append(0.0)
    return np.array(ns, np.float64), np.array(bs, np.float64)


def speaker_amp_online(row: dict, m: dict, n0: float = AMP_N0) -> np.ndarray:
    """``[n]`` the gain at each frame of a clip as a stream would have it (the run time's
    :class:`~chatanyone.motion.mouth.SpeakerAmplitude`, speech frames by ``eval.mouth.speech_frames``)."""
    from ..motion.mouth import SpeakerAmplitude
    sa = SpeakerAmplitude.__new__(SpeakerAmplitude)
    sa.mu, sa.sd, sa.v, sa.b, sa.n0, sa.lo, sa.hi = m["mu"], m["sd"], m["v"], m["b"], n0, -AMP_CLIP, AMP_CLIP
    sa.bias_n, sa.bias = m.get("bias_n", np.ones(1)), m.get("bias", np.zeros(1))
    sa.dim = m["mu"].shape[0]
    sa.reset()
    return sa.update(row["tokens"], row["speech"].astype(np.float32))


def speaker_amp_cv(rows, group: str = "speaker", d: int = AMP_PCA, n0: float = AMP_N0,
                   first: int = 250, correct: bool = True) -> dict:
    """Leave-one-group-out (``group``: ``speaker`` or ``source``) over ``rows``: ``r`` of the
    estimate (whole clip) with the needed log gain, and on each clip's first ``first`` frames (10
    s), the log amplitude ratio's spread across clips (predicted opening over real, speech frames)
    without the gain and with the online gain, the fraction of clips within 0.8-1.2x of their
    median, and mean mouth r without and with it. ``correct``: the online estimate's small-sample
    bias taken off (:func:`amp_bias_table`, from the fold's training clips)."""
    est, ys, a0, a1, r0, r1 = [], [], [], [], [], []
    for g in sorted({r[group] for r in rows}):
        tr = [r for r in rows if r[group] != g]
        m = fit_speaker_amp(tr, d)
        if correct:
            m["bias_n"], m["bias"] = amp_bias_table(tr, m)
        for r in rows:
            if r[group] != g:
                continue
            est.append(_amp_estimate(m, r["std"]))
            ys.append(r["y"])
            s = (r["speech"] & r["ok"])[:first]
            p, q, real = r["pred"][:first], (speaker_amp_online(r, m, n0) * r["pred"])[:first], r["real"][:first]
            a0.append(np.log(p[s].std() / real[s].std()))
            a1.append(np.log(q[s].std() / real[s].std()))
            r0.append(float(np.corrcoef(p[s], real[s])[0, 1]))
            r1.append(float(np.corrcoef(q[s], real[s])[0, 1]))
    band = lambda a: float(np.mean(np.abs(np.asarray(a) - np.median(a)) < np.log(1.2)))
    return {"group": group, "correct": bool(correct), "clips": len(ys), "r": float(np.corrcoef(est, ys)[0, 1]),
            "log_amp_spread": [float(np.std(a0)), float(np.std(a1))], "in_band": [band(a0), band(a1)],
            "mouth_r": [float(np.mean(r0)), float(np.mean(r1))]}


def training_expressions(roots, *, allow=("train",)) -> dict[str, np.ndarray]:
    """``{clip: exp [n, E]}``: the tracked frames' expression coefficients of the corpus clips under
    ``roots`` (a clip whose role is not in ``allow`` raises: held-out clips never reach training)."""
    out = {}
    for d in corpus_clip_dirs(roots, allow):
        with np.load(d / "motion.npz") as m:
            exp = m["exp"].astype(np.float64)
            ok = (m["face_ok"] > 0) & np.all(np.isfinite(exp), 1)
        if ok.sum() >= 40:
            out[d.name] = exp[ok]
    return out


def direction_main(args) -> int:
    """``direction``: :func:`~chatanyone.motion.mouth.opening_direction` of the training clips, with
    how well each clip (and each speaker fold) agrees with it, written into a copy of the predictor
    (``open_dir``)."""
    from ..motion.mouth import MouthPredictor, opening_direction
    from ..runners.base import weights_path
    src = Path(args.predictor or weights_path("motion_mouth.npz"))
    pred = MouthPredictor(src)
    exps = training_expressions(args.train)
    names = sorted(exps)
    d = opening_direction([exps[n] for n in names], pred.open_vec, pred.A)
    per = np.array([opening_direction([exps[n]], pred.open_vec, pred.A) for n in names], np.float64)
    cos = per @ d / np.linalg.norm(per, axis=1) / np.linalg.norm(d)
    folds = speaker_folds(names, 5, 0)
    cos_fold = []
    for f in folds:
        held = set(f.tolist())
        dk = opening_direction([exps[n] for i, n in enumerate(names) if i not in held], pred.open_vec, pred.A)
        dh = opening_direction([exps[names[i]] for i in held], pred.open_vec, pred.A)
        cos_fold.append(float(dk @ dh / np.linalg.norm(dk) / np.linalg.norm(dh)))
    log.info("open_dir from %d training clips: cosine with each clip's own 10/50/90 %%: %s; between a fold's "
             "held-out speakers and the rest: %s", len(names), np.round(np.percentile(cos, [10, 50, 90]), 3).tolist(),
             np.round(cos_fold, 3).tolist())
    if args.out:
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["open_dir"] = d.astype(np.float32)
        tmp = Path(str(args.out) + ".tmp.npz")
        np.savez(tmp, **arrays)
        MouthPredictor(tmp)   # it loads
        tmp.replace(args.out)
        log.info("wrote %s", args.out)
    return 0


def amp_main(args) -> int:
    """``amp``: the speaker amplitude map, cross-validated by speaker and by source on the training
    clips, scored on DEV (the gain each DEV clip gets), written to ``args.out``."""
    from ..motion.mouth import MouthPredictor
    from ..runners.base import weights_path
    from ..spec.head import load_basis
    open_vec = mouth_open_vector(load_basis().components)
    pred = MouthPredictor(args.predictor or weights_path("motion_mouth.npz"))
    train = speaker_amp_rows(load_clips(args.train, open_vec, allow=("train",)), pred, open_vec)
    dev = speaker_amp_rows(load_clips(args.dev, open_vec, allow=("dev",)), pred, open_vec)
    res = {"cv": [speaker_amp_cv(train, g, args.pca, correct=c) for c in (True, False) for g in ("speaker", "source")]}
    m = fit_speaker_amp(train, args.pca)
    m["bias_n"], m["bias"] = amp_bias_table(train, m)
    log.info("small-sample bias by speech frames: %s", dict(zip(m["bias_n"].astype(int).tolist(), np.round(m["bias"], 3).tolist())))
    res["dev"] = {}
    for r in dev:
        g = speaker_amp_online(r, m)
        s = (r["speech"] & r["ok"])[:250]
        res["dev"][r["name"]] = {"needed": float(np.exp(r["y"])), "estimate": float(np.exp(_amp_estimate(m, r["std"]))),
                                 "gain_10s": float(g[min(249, len(g) - 1)]),
                                 "amp_10s": [float(r["pred"][:250][s].std() / r["real"][:250][s].std()),
                                             float((g * r["pred"])[:250][s].std() / r["real"][:250][s].std())]}
    dy = [r["y"] for r in dev]
    de = [_amp_estimate(m, r["std"]) for r in dev]
    res["dev_r"] = float(np.corrcoef(de, dy)[0, 1])
    for cv in res["cv"]:
        print(f"k-fold by {cv['group']}{'' if cv['correct'] else ' (no bias correction)'} ({cv['clips']} clips): r {cv['r']:.3f}; first 10 s log-amplitude spread "
              f"{cv['log_amp_spread'][0]:.3f} -> {cv['log_amp_spread'][1]:.3f}, within 0.8-1.2x of the median "
              f"{cv['in_band'][0]:.2f} -> {cv['in_band'][1]:.2f}, mouth r {cv['mouth_r'][0]:.4f} -> {cv['mouth_r'][1]:.4f}")
    for k, v in res["dev"].items():
        print(f"dev {k}: needs {v['needed']:.2f}, estimate {v['estimate']:.2f}, online gain at 10 s {v['gain_10s']:.2f}, "
              f"10 s amplitude {v['amp_10s'][0]:.2f} -> {v['amp_10s'][1]:.2f}")
    print(f"dev r (estimate vs needed log gain, {len(dev)} clips): {res['dev_r']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.out:
        np.savez(args.out, mu=m["mu"].astype(np.float32), sd=m["sd"].astype(np.float32), v=m["v"].astype(np.float32),
                 b=np.float32(m["b"]), n0=np.float32(AMP_N0), lo=np.float32(-AMP_CLIP), hi=np.float32(AMP_CLIP),
                 bias_n=m["bias_n"].astype(np.float32), bias=m["bias"].astype(np.float32))
        log.info("wrote %s", args.out)
    return 0


def save_predictor(path, model: dict, open_vec: np.ndarray) -> None:
    """The run-time predictor as plain arrays (``motion/mouth.py`` reads it): token normalization,
    PCA, the weights, the gain, the layout, the lower-face projector, and the direction its gains
    open the mouth along (``model["open_dir"]``, where the model has one)."""
    from ..audio.whisper import segment_features, shared_encoder
    from ..spec.head import load_basis
    from ..motion.mouth import mouth_projector
    basis = load_basis()
    # the mouth at rest: the prediction for a segment of digital silence
    k = model["past"] + model["look"] + 1
    tok = segment_features(shared_encoder(1, "int8"), np.zeros(model["seg"] * SPF, np.float32), k)[None]
    rest = apply(dict(model, open_vec=open_vec), design(tok, model["mean"], model["std"], model["pca"],
                                                        model.get("phones")), 0)[0]
    common = dict(rest=rest.astype(np.float32), mean=model["mean"], std=model["std"], pca=model["pca"], look=np.int32(model["look"]),
                  past=np.int32(model["past"]), hop=np.int32(model["hop"]), seg=np.int32(model["seg"]),
                  ref_amp=np.float32(model["ref_amp"]), open_vec=open_vec.astype(np.float32),
                  gain=np.float32(model["gain"]), smooth=np.float32(model.get("smooth", 0.0)),
                  lead=np.int32(model.get("lead", 0)),
                  A=mouth_projector(basis.components, basis.canonical).astype(np.float32))
    if model.get("open_dir") is not None:
        common["open_dir"] = np.asarray(model["open_dir"], np.float32)
    if model.get("phones") is not None:  # the viseme head travels inside the predictor's file
        ph = model["phones"]
        common.update(ph["head"].arrays("ph_"), ph_cm=ph["cm"], ph_cs=ph["cs"])
    if model.get("kind", "ridge") == "ridge":
        np.savez(path, kind="ridge", W=model["W"].astype(np.float32), b=model["b"].astype(np.float32), **common)
        return
    arrays = {}
    for i, (W, b) in enumerate(model["layers"]):
        arrays[f"mlp_W{i}"], arrays[f"mlp_b{i}"] = W.astype(np.float32), b.astype(np.float32)
    if "skip" in model:
        arrays["skip_W"], arrays["skip_b"] = (a.astype(np.float32) for a in model["skip"])
    np.savez(path, kind="mlp", n_layers=np.int32(len(model["layers"])), ymean=model["ymean"].astype(np.float32),
             **arrays, **common)


if __name__ == "__main__":
    raise SystemExit(main())
