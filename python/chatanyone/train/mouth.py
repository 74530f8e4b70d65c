"""Train the deterministic mouth predictor: Whisper features of a short streamed segment -> the
expression coefficients of the lips and jaw (``motion/mouth.py`` runs it; ``motion/design.md``
says why and how it was chosen).

    python -m chatanyone.train.mouth features /work/corpus/train /work/corpus/dev
    python -m chatanyone.train.mouth fit --train /work/corpus/train --dev /work/corpus/dev \
        --lookahead 0 1 2 3 5 8 --json runs/mouth_curve.json          # the lookahead curve (dev)
    python -m chatanyone.train.mouth fit --train ... --dev ... --lookahead 2 --hop 2 \
        --out python/chatanyone/weights/motion_mouth.npz                # the shipped predictor

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
"""
from __future__ import annotations

import argparse
import json
import logging
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


def load_clips(roots, open_vec, *, allow=("train",), enc=None) -> list[ClipData]:
    """Clips with speech and a tracked face under the corpus folders ``roots``; a clip whose role
    (``eval.split``) is not in ``allow`` raises (held-out clips never reach training)."""
    out = []
    for root in roots:
        for d in sorted(Path(root).iterdir()):
            if not (d / "motion.npz").is_file():
                continue
            if role(d.name) not in allow:
                raise ValueError(f"{d.name} is a {role(d.name)} clip; this step reads only {allow} clips")
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

def design(tokens: np.ndarray, mean: np.ndarray, std: np.ndarray, pca: np.ndarray) -> np.ndarray:
    """``tokens [n, k, 768]`` -> ridge inputs ``[n, k * d]``: normalized, projected on ``pca [768, d]``."""
    z = (tokens - mean) / std
    return (z @ pca).reshape(tokens.shape[0], -1)


def fit_pca(clips, mean, std, d: int, rng) -> np.ndarray:
    toks = []
    for c in clips:
        idx = rng.choice(c.feat.shape[0], size=min(400, c.feat.shape[0]), replace=False)
        toks.append(np.asarray(c.feat[np.sort(idx), -1], np.float32))
    z = (np.concatenate(toks) - mean) / std
    _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    return vt[:d].T.astype(np.float32)


def build_xy(clips, look: int, extra: int, mean, std, pca, ref_amp: float, *, stride: int = 1,
             normalize: bool = True):
    """Stacked ridge inputs and speaker-normalized targets of ``clips``: for each tracked frame
    ``t`` the tokens of ``t - past .. t + look`` from the segment ending ``look + extra`` frames
    after it (in a chunk of ``hop`` frames released together, the frame ``i`` places before the
    chunk's last has ``extra = i``), and the frame's expression scaled to the reference amplitude."""
    xs, ys, ws = [], [], []
    for c in clips:
        frames = np.arange(0, c.n, stride)
        src = frames - c.shift  # the video frame that shows frame t's sound (the clip's own A/V offset)
        keep = (src >= 0) & (src < c.n)
        frames, src = frames[keep], src[keep]
        keep = c.ok[src]
        frames, src = frames[keep], src[keep]
        tok = lookahead_tokens(c.feat, frames, look + extra, PAST)[:, :PAST + look + 1]
        s = ref_amp / c.amp if normalize else 1.0
        xs.append(design(tok, mean, std, pca))
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


def open_gain(y: np.ndarray, center: np.ndarray, gain: float, open_vec: np.ndarray) -> np.ndarray:
    """Scale only the mouth-opening component of ``y - center`` by ``gain`` (the inner-lip gap moves
    ``gain`` times as much; the rest of the predicted shape is left as the regression has it, which
    keeps its error small where the audio says little)."""
    u = open_vec / float(open_vec @ open_vec)
    return y + (gain - 1.0) * ((y - center) @ open_vec)[:, None] * u[None]


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
    return open_gain(y, center, float(model["gain"]), model["open_vec"])


def predict_clip(c: ClipData, model: dict) -> np.ndarray:
    """``[n, E]`` predicted expression (gain applied) for every frame of ``c``, each frame from the
    segment the streaming generator gives it (chunks of ``hop`` frames from frame 0)."""
    look, hop = model["look"], model["hop"]
    frames = np.arange(c.n)
    extra = hop - 1 - frames % hop
    out = np.zeros((c.n, c.exp.shape[1]), np.float32)
    for j in range(hop):
        sel = extra == j
        tok = lookahead_tokens(c.feat, frames[sel], look + j, PAST)[:, :PAST + look + 1]
        x = design(tok, model["mean"], model["std"], model["pca"])
        out[sel] = apply(model, x, j)
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
        align: bool = True) -> dict:
    """Fit at one lookahead and chunk size ``hop`` (one weight set per place in the chunk); the
    ridge strength chosen by mean DEV mouth r. Returns the model dict and its DEV scores."""
    rng = np.random.default_rng(seed)
    mean, std = wstats
    pca = fit_pca(train, mean, std, d, rng)
    ref_amp = float(np.median([c.amp for c in train]))
    xy = [build_xy(train, look, j, mean, std, pca, ref_amp, stride=stride, normalize=normalize)
          for j in range(hop)]
    best = None
    for lam in lams:
        Wb = [ridge(x, y, w, lam) for x, y, w in xy]
        model = dict(mean=mean, std=std, pca=pca, W=np.stack([a for a, _ in Wb]), b=np.stack([b for _, b in Wb]),
                     gain=np.float32(1.0), look=look, hop=hop, open_vec=open_vec)
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
            c.shift = best_lag(predict_clip(c, model) @ open_vec, c.open, c.ok)
        log.info("training clip offsets (frames): %s", {c.name: c.shift for c in train if c.shift})
        xy = [build_xy(train, look, j, mean, std, pca, ref_amp, stride=stride, normalize=normalize)
              for j in range(hop)]
        Wb = [ridge(x, y, w, lam) for x, y, w in xy]
        model = dict(model, W=np.stack([a for a, _ in Wb]), b=np.stack([b for _, b in Wb]))
        model["offsets"] = {c.name: int(c.shift) for c in train}
        for c in train:
            c.shift = 0
    # gain: undo ridge's shrinkage, so that the training clips' predicted mouth spread (median)
    # equals the reference amplitude
    tr_amp = np.median([np.std((predict_clip(c, model) @ open_vec)[c.ok]) for c in train])
    model["gain"] = np.float32(ref_amp / tr_amp)
    model.update(past=PAST, lam=lam, ref_amp=np.float32(ref_amp), seg=SEG_FRAMES)
    scores = {c.name: clip_scores(c, predict_clip(c, model), open_vec) for c in dev}
    return model, scores


def fit_mlp(train, dev, look: int, hop: int, *, d: int = 128, hidden: int = 256, steps: int = 4000,
            normalize: bool = True, seed: int = 0, wstats=None, open_vec=None, threads: int = 1,
            stride: int = 1) -> tuple[dict, dict]:
    """A small MLP on the same inputs as the ridge (plus the one-hot place in the chunk), PyTorch,
    AdamW with input noise and dropout; the checkpoint with the best mean DEV mouth r is kept. Same
    gain rule as :func:`fit`. Minutes on one core."""
    import torch
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    mean, std = wstats
    pca = fit_pca(train, mean, std, d, rng)
    ref_amp = float(np.median([c.amp for c in train]))
    xs, ys, ws = [], [], []
    for j in range(hop):
        x, y, w = build_xy(train, look, j, mean, std, pca, ref_amp, stride=stride, normalize=normalize)
        xs.append(np.concatenate([x, np.repeat(np.eye(hop, dtype=np.float32)[j][None], len(x), 0)], 1))
        ys.append(y)
        ws.append(w)
    X, Y, Wt = (torch.from_numpy(np.concatenate(a)) for a in (xs, ys, ws))
    ymean = (Y * Wt[:, None]).sum(0) / Wt.sum()
    ysd = Y.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(X.shape[1], hidden),
                              torch.nn.GELU(approximate="tanh"), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, hidden), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Dropout(0.2), torch.nn.Linear(hidden, Y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
    u = torch.from_numpy(open_vec / np.linalg.norm(open_vec))
    p = (Wt / Wt.sum()).numpy().astype(np.float64)
    p /= p.sum()
    best = None

    def export():
        lins = [m for m in net if isinstance(m, torch.nn.Linear)]
        layers = []
        for i, m in enumerate(lins):
            W = m.weight.detach().numpy().T.copy()
            b = m.bias.detach().numpy().copy()
            if i == len(lins) - 1:  # outputs were standardized in training
                W, b = W * ysd.numpy(), b * ysd.numpy() + ymean.numpy()
            layers.append((W.astype(np.float32), b.astype(np.float32)))
        return dict(kind="mlp", layers=layers, mean=mean, std=std, pca=pca, gain=np.float32(1.0),
                    ymean=ymean.numpy().astype(np.float32), look=look, hop=hop, open_vec=open_vec)

    for step in range(steps):
        net.train()
        idx = torch.from_numpy(rng.choice(len(X), size=512, p=p))
        xb = X[idx] + 0.1 * torch.randn(len(idx), X.shape[1])
        yb = (Y[idx] - ymean) / ysd
        out = net(xb)
        loss = ((out - yb) ** 2).mean() + ((((out - yb) * ysd) @ u) ** 2).mean() / (ysd ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 500 == 0 or step + 1 == steps:
            net.eval()
            model = export()
            r = float(np.mean([clip_scores(c, predict_clip(c, model), open_vec)["r"] for c in dev]))
            log.info("mlp look %d step %d loss %.3f dev mouth r %.3f", look, step + 1, float(loss), r)
            if best is None or r > best[0]:
                best = (r, step + 1, model)
    r, best_step, model = best
    tr_amp = np.median([np.std((predict_clip(c, model) @ open_vec)[c.ok]) for c in train])
    model["gain"] = np.float32(ref_amp / tr_amp) if normalize else np.float32(1.0)
    model.update(past=PAST, lam=float(best_step), ref_amp=np.float32(ref_amp), seg=SEG_FRAMES)
    scores = {c.name: clip_scores(c, predict_clip(c, model), open_vec) for c in dev}
    return model, scores


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
    g.add_argument("--steps", type=int, default=4000, help="MLP training steps")
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--only", default=None, help="a JSON list of training clip names to use (a fixed set)")
    g.add_argument("--lams", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0, 30.0],
                   help="ridge strengths to choose from on DEV")
    g.add_argument("--no-align", action="store_true", help="ablation: no per-clip audio/video offset correction")
    g.add_argument("--no-normalize", action="store_true", help="ablation: raw (not speaker-normalized) targets")
    g.add_argument("--json", default=None, help="write the DEV scores here")
    g.add_argument("--out", default=None, help="write the predictor (npz) here (one lookahead)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
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
    res = {}
    for look in args.lookahead:
        if args.model == "mlp":
            model, scores = fit_mlp(train, dev, look, args.hop, d=args.pca, normalize=not args.no_normalize,
                                    stride=args.stride, wstats=wstats, open_vec=open_vec, steps=args.steps,
                                    threads=args.threads)
        else:
            model, scores = fit(train, dev, look, args.hop, d=args.pca, normalize=not args.no_normalize,
                                stride=args.stride, wstats=wstats, open_vec=open_vec, align=not args.no_align,
                                lams=tuple(args.lams))
        summ = {k: float(np.mean([s[k] for s in scores.values()])) for k in ("r", "amp_ratio")}
        res[look] = {"dev_mean": summ, "dev_clips": scores, "lam": model["lam"], "gain": float(model["gain"]),
                     "train_offsets": model.get("offsets"),
                     "ref_amp": float(model["ref_amp"]), "train_clips": [c.name for c in train]}
        print(f"lookahead {look} ({40 * look} ms), hop {args.hop}: dev mouth r {summ['r']:.3f}, "
              f"amp {summ['amp_ratio']:.2f}, lam {model['lam']}, gain {float(model['gain']):.2f}", flush=True)
        if args.out:
            save_predictor(args.out, model, open_vec)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


def save_predictor(path, model: dict, open_vec: np.ndarray) -> None:
    """The run-time predictor as plain arrays (``motion/mouth.py`` reads it): token normalization,
    PCA, the weights, the gain, the layout, and the lower-face projector."""
    from ..audio.whisper import segment_features, shared_encoder
    from ..spec.head import load_basis
    from ..motion.mouth import mouth_projector
    basis = load_basis()
    # the mouth at rest: the prediction for a segment of digital silence
    k = model["past"] + model["look"] + 1
    tok = segment_features(shared_encoder(1, "int8"), np.zeros(model["seg"] * SPF, np.float32), k)[None]
    rest = apply(model, design(tok, model["mean"], model["std"], model["pca"]), 0)[0]
    common = dict(rest=rest.astype(np.float32), mean=model["mean"], std=model["std"], pca=model["pca"], look=np.int32(model["look"]),
                  past=np.int32(model["past"]), hop=np.int32(model["hop"]), seg=np.int32(model["seg"]),
                  ref_amp=np.float32(model["ref_amp"]), open_vec=open_vec.astype(np.float32),
                  gain=np.float32(model["gain"]),
                  A=mouth_projector(basis.components, basis.canonical).astype(np.float32))
    if model.get("kind", "ridge") == "ridge":
        np.savez(path, kind="ridge", W=model["W"].astype(np.float32), b=model["b"].astype(np.float32), **common)
        return
    arrays = {}
    for i, (W, b) in enumerate(model["layers"]):
        arrays[f"mlp_W{i}"], arrays[f"mlp_b{i}"] = W.astype(np.float32), b.astype(np.float32)
    np.savez(path, kind="mlp", n_layers=np.int32(len(model["layers"])), ymean=model["ymean"].astype(np.float32),
             **arrays, **common)


if __name__ == "__main__":
    raise SystemExit(main())
