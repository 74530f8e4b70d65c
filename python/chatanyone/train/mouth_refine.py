"""Training of the mouth refiner (:mod:`chatanyone.render.refine`; PyTorch, extra ``[train]``).

Data (``build``): self-reenactment pairs from the TRAINING split only
(:func:`chatanyone.eval.split.role` is ``"train"``; corpus folders made by ``chatanyone
prepare-data``, their raw videos). For each clip, two source frames (the first with a face and the
one with the most closed mouth) each become an Avatar; the clip's own motion
(:func:`chatanyone.reenact.driving_motion`, head and body relative to that source frame) drives the
geometry renderer (refiner off), and for every few driving frames one sample is stored:

- the network's input as the run time computes it (:func:`chatanyone.render.refine.features`: the
  rendered crop aligned by the driving lip landmarks, the driven inner-mouth and lip masks, the
  photo's mouth crop), as uint8;
- the target: the real driving frame, cropped the same way by its own (real) lip landmarks, so the
  mouth the network learns to draw sits where the driving landmarks put it.

Training (``train``): L1 (mouth area weighted x4) + a conditional patch discriminator trained from
scratch (hinge loss) with feature matching, as FOMM and LivePortrait do; no pretrained backbone.
Resumable: ``--out`` holds ``last.pt`` (networks, optimizers, step) and the log. ``export`` writes
the ONNX graph (input ``x [1, 8, C, C]``, output ``delta [1, 3, C, C]``).

Run::

    python -m chatanyone.train.mouth_refine build --corpus /work/corpus/train --out runs/mouth/data.npz
    python -m chatanyone.train.mouth_refine train --data runs/mouth/data.npz --out runs/mouth --minutes 40
    python -m chatanyone.train.mouth_refine export --ckpt runs/mouth/last.pt --onnx python/chatanyone/weights/mouth_refine.onnx

The shipped weights (session 7): ``build --every 2 --max-frames 300`` on the current renderer, then
``train --minutes 35 --init-onnx <the previous weights> --warmup 0.1`` (fine-tuned). The quality
preset's weights (``weights/mouth_refine_quality.onnx``, session 9): ``build --output-size 1024
--crop 128`` (17 clips at ``--every 3 --max-frames 360``, the other 39 at ``--every 4 --max-frames
240`` to fit the time: 5,748 pairs from the 56 training-split clips), then ``train --batch 8
--warmup 0.3 --init-onnx weights/mouth_refine.onnx`` (the fast preset's 64 px weights: the network
is fully convolutional, only its window follows the crop), stopped after 1,587 steps (28 minutes).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("chatanyone")


# --- data -----------------------------------------------------------------------------------

def prepared_from_corpus(clip_dir, video=None):
    """A :class:`~chatanyone.eval.prepare.PreparedVideo` from a corpus folder's raw landmarks
    (crop coordinates mapped back to the video's image coordinates): no detection is run."""
    from ..eval.prepare import PreparedVideo
    from ..vision.framing import Box, from_crop_coords
    d = Path(clip_dir)
    meta = json.loads((d / "meta.json").read_text())
    video = video or meta["source"]
    box = Box.from_array(meta["crop_box"])
    w, h = meta["original_size"]
    with np.load(d / "landmarks.npz") as z:
        lm = {k: z[k] for k in ("raw_face", "raw_face_ok", "raw_pose", "raw_pose_ok", "raw_hands", "raw_hands_ok")}

    def back(p):
        out = np.array(p, np.float32, copy=True)
        px = from_crop_coords(out[..., :2], box)
        out[..., 0] = px[..., 0] / w
        out[..., 1] = px[..., 1] / h
        out[..., 2] = out[..., 2] * box.w / (2.0 * w)
        return out

    n = int(lm["raw_face"].shape[0])
    audio = np.load(d / "audio.npy").astype(np.float32)
    return PreparedVideo(path=str(video), key="corpus", fps=float(meta["fps"]), n=n, width=int(w), height=int(h),
                         has_audio=bool(meta.get("has_audio", True)), audio=audio,
                         face=back(lm["raw_face"]), face_ok=lm["raw_face_ok"].astype(bool),
                         pose=back(lm["raw_pose"]), pose_ok=lm["raw_pose_ok"].astype(bool),
                         hands=back(lm["raw_hands"]), hands_ok=lm["raw_hands_ok"].astype(bool))


def _relative_to(motion, s: int):
    """The motion frames with head, gaze and body relative to frame ``s`` (a copy)."""
    import copy
    m = copy.copy(motion)
    m.head = motion.head - motion.head[s]
    eye = motion.eye.copy()
    eye[:, 2:] -= eye[s, 2:]
    eye[:, :2] /= np.maximum(eye[s, :2], 1e-6)
    m.eye = eye
    m.body = motion.body - motion.body[s]
    return m


def clip_samples(pv, *, every: int = 2, max_frames: int = 200, sources: int = 2, seed: int = 0,
                 output_size: int | None = None, crop: int | None = None):
    """Samples of one prepared clip: dict of uint8 arrays ``x [N, C, C, 8]`` (input channels as
    :func:`~chatanyone.render.refine.features`, times 255), ``y [N, C, C, 3]`` (target), and ``src``
    (index of the sample's source, local to the clip). ``output_size``: the frame's long side
    (default: the fast preset's); ``crop``: the crop's side (default :data:`~chatanyone.render.refine.CROP`).
    Blocks (decoding, rendering)."""
    from ..avatar import Avatar
    from ..inputs import AvatarError
    from ..eval.frames import real_view
    from ..eval import mouth as EM
    from ..reenact import driving_motion
    from ..render import refine as R
    from ..render.geometry import GeomRenderer
    rng = np.random.default_rng(seed)
    c = int(crop or R.CROP)
    n = min(pv.n, max_frames)
    frames = [img for _, img in pv.frames(stop=n)]
    n = len(frames)
    ok = np.asarray(pv.face_ok[:n], bool)
    if ok.sum() < 10:
        return None
    motion = driving_motion(pv, expression="median")   # (sources other than the first frame: relative to the median)
    canon, _ = EM.canonical_faces(pv.face_px()[:n], ok)
    op = EM.opening(canon)
    cand = [int(np.flatnonzero(ok)[0]), int(np.nanargmin(np.where(ok, op, np.nan)))]
    srcs = list(dict.fromkeys(cand))[:sources]
    xs, ys = [], []
    for s in srcs:
        try:
            av = Avatar.prepare(frames[s])
        except AvatarError as exc:
            log.info("skip source %d: %s", s, exc)
            continue
        r = GeomRenderer(av, *(() if output_size is None else (output_size,)), refine_mouth=False)
        m = _relative_to(motion, s)
        rx0, ry0, rx1, ry1 = r.rect
        ow, oh = r.size
        src_crop = R.crop_image(r._base, R.mouth_affine(r.src_face_px, c), c)
        ts = [t for t in range(int(rng.integers(0, every)), n, every) if ok[t] and t != s]
        for t in ts:
            out = r.render(m[t:t + 1].frame(0))
            reg = out[ry0:ry1, rx0:rx1]
            a = R.mouth_affine(r.face_px, c)
            inner, lips = R.lip_masks(r.face_px, a, c)
            x = R.features(R.crop_image(reg, a, c), inner, lips, src_crop)[0].transpose(1, 2, 0)
            real = real_view(av, frames[t], (oh, ow))[ry0:ry1, rx0:rx1]
            fpx = pv.face[t, :, :2].astype(np.float64) * np.array([ow, oh]) - 0.5 - np.array([rx0, ry0])
            y = R.crop_image(real, R.mouth_affine(fpx, c), c)
            xs.append(np.clip(np.round(x * 255), 0, 255).astype(np.uint8))
            ys.append(np.clip(np.round(y), 0, 255).astype(np.uint8))
    if not xs:
        return None
    return dict(x=np.stack(xs), y=np.stack(ys))


def build(corpus, out, *, every: int = 2, max_frames: int = 200, limit: int | None = None,
          output_size: int | None = None, crop: int | None = None) -> None:
    """Samples of every training-split clip of ``corpus`` into ``out`` (.npz; one part file per
    clip under ``out``'s folder, so an interrupted build resumes). ``output_size``, ``crop``: as
    :func:`clip_samples` (the quality preset's refiner: 1024 and 128)."""
    from ..eval.split import role
    out = Path(out)
    parts = out.parent / (out.stem + "_parts")
    parts.mkdir(parents=True, exist_ok=True)
    clips = sorted(p for p in Path(corpus).iterdir() if (p / "meta.json").is_file() and role(p.name) == "train")
    if limit:
        clips = clips[:limit]
    for i, c in enumerate(clips):
        pf = parts / f"{c.name}.npz"
        if pf.exists():
            continue
        t0 = time.perf_counter()
        try:
            pv = prepared_from_corpus(c)
            res = clip_samples(pv, every=every, max_frames=max_frames, seed=i, output_size=output_size, crop=crop)
        except Exception as exc:     # one bad clip must not stop the build
            log.warning("clip %s skipped: %s", c.name, exc)
            res = None
        if res is None:
            np.savez(pf, x=np.zeros((0, 1), np.uint8), y=np.zeros((0, 1), np.uint8))
            continue
        np.savez(pf, **res)
        log.info("%s: %d samples in %.1f s (%d/%d)", c.name, len(res["x"]), time.perf_counter() - t0, i + 1, len(clips))
    merge(parts, out)


def merge(parts, out) -> None:
    """Join the per-clip part files of ``parts`` into one ``out`` .npz (``x``, ``y``, ``clip``)."""
    xs, ys, names = [], [], []
    for pf in sorted(Path(parts).glob("*.npz")):
        with np.load(pf) as z:
            if z["x"].ndim == 4 and len(z["x"]):
                xs.append(z["x"])
                ys.append(z["y"])
                names += [pf.stem] * len(z["x"])
    np.savez(out, x=np.concatenate(xs), y=np.concatenate(ys), clip=np.array(names))
    log.info("wrote %s: %d samples from %d clips", out, sum(len(x) for x in xs), len(xs))


def pack(data, out, *, quality: int = 94) -> None:
    """A compact copy of a built ``data`` .npz (a few times smaller: it travels to a training
    machine): the rendered and target crops as JPEG (``quality``), the masks as they are, each
    source's mouth crop once. :func:`load_data` reads either format."""
    import cv2
    with np.load(data) as z:
        x, y, clip = z["x"], z["y"], z["clip"]
    src, src_idx = np.unique(x[..., 5:8].reshape(len(x), -1), axis=0, return_inverse=True)
    blobs, offs = [], [0]
    for i in range(len(x)):
        for im in (x[i, ..., :3], y[i]):
            ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(im), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            blobs.append(enc.reshape(-1))
            offs.append(offs[-1] + enc.size)
    np.savez_compressed(out, jpeg=np.concatenate(blobs), offsets=np.asarray(offs, np.int64),
                        masks=x[..., 3:5], src=src.reshape(-1, x.shape[1], x.shape[2], 3),
                        src_idx=src_idx.reshape(-1).astype(np.int32), clip=clip)
    log.info("packed %s: %d samples, %.1f MB", out, len(x), Path(out).stat().st_size / 1e6)


def load_data(path):
    """``(x [N, C, C, 8] uint8, y [N, C, C, 3] uint8, clip [N])`` from a built or packed .npz."""
    with np.load(path) as z:
        if "x" in z.files:
            return z["x"], z["y"], z["clip"]
        import cv2
        jpeg, offs, masks, src, src_idx, clip = (z[k] for k in ("jpeg", "offsets", "masks", "src", "src_idx", "clip"))
    n, c = len(masks), masks.shape[1]
    x = np.empty((n, c, c, 8), np.uint8)
    y = np.empty((n, c, c, 3), np.uint8)
    for i in range(n):
        x[i, ..., :3] = cv2.imdecode(jpeg[offs[2 * i]:offs[2 * i + 1]], cv2.IMREAD_COLOR)
        y[i] = cv2.imdecode(jpeg[offs[2 * i + 1]:offs[2 * i + 2]], cv2.IMREAD_COLOR)
    x[..., 3:5] = masks
    x[..., 5:8] = src[src_idx]
    return x, y, clip


# --- networks -------------------------------------------------------------------------------

def _nets():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from ..render import refine as R

    def conv(i, o, k=3, s=1):
        return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2 if s == 1 else 1), nn.LeakyReLU(0.2))

    class RefineNet(nn.Module):
        """A small U-Net: ``x [B, 8, C, C]`` -> ``delta [B, 3, C, C]`` (see render/refine.py).
        Sized for 2 shared CPU cores: the work is at 1/2, 1/4 and 1/8 of the crop; at full size
        only one 3x3 layer over the input and the upsampled features, and the head."""

        def __init__(self, ch=(24, 32, 48), c_full=16, crop: int | None = None):
            super().__init__()
            self.crop = int(crop or R.CROP)
            c1, c2, c3 = ch
            self.e1 = nn.Sequential(conv(R.N_IN, c1, 4, 2), conv(c1, c1))
            self.e2 = nn.Sequential(conv(c1, c2, 4, 2), conv(c2, c2))
            self.e3 = nn.Sequential(conv(c2, c3, 4, 2), conv(c3, c3))
            self.d2 = conv(c3 + c2, c2)
            self.d1 = conv(c2 + c1, c1)
            self.d0 = conv(c1 + R.N_IN, c_full)
            self.head = nn.Conv2d(c_full, 4, 3, 1, 1)
            nn.init.zeros_(self.head.weight)
            with torch.no_grad():
                self.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -2.0]))
            self.register_buffer("win", torch.from_numpy(R.window(self.crop, R.border_for(self.crop)))[None, None])

        def forward(self, x):
            img = x[:, :3]
            f1 = self.e1(x)
            f2 = self.e2(f1)
            f3 = self.e3(f2)
            up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")   # noqa: E731
            g2 = self.d2(torch.cat([up(f3), f2], 1))
            g1 = self.d1(torch.cat([up(g2), f1], 1))
            g0 = self.d0(torch.cat([up(g1), x], 1))
            o = self.head(g0)
            pred = torch.clamp(img + torch.tanh(o[:, :3]), 0.0, 1.0)
            alpha = torch.sigmoid(o[:, 3:4])
            return alpha * (pred - img) * self.win

    class PatchD(nn.Module):
        """Conditional patch discriminator (image + driven masks; ``c_in`` channels of both),
        spectral-normalized; returns its feature maps and the patch logits. (The region refiner's,
        train/region_refine.py, is this one on 6 channels.)"""

        def __init__(self, ch=(16, 32, 64), c_in: int = 5):
            super().__init__()
            sn = nn.utils.spectral_norm
            layers, i = [], int(c_in)
            for o in ch:
                layers.append(nn.Sequential(sn(nn.Conv2d(i, o, 4, 2, 1)), nn.LeakyReLU(0.2)))
                i = o
            self.layers = nn.ModuleList(layers)
            self.out = sn(nn.Conv2d(i, 1, 3, 1, 1))

        def forward(self, img, cond):
            h = torch.cat([img, cond], 1)
            feats = []
            for layer in self.layers:
                h = layer(h)
                feats.append(h)
            return feats, self.out(h)

    return RefineNet, PatchD


def _pairs(x8, y8, idx, torch):
    """Rows ``idx`` of the uint8 ``[N, C, C, ch]`` arrays or tensors (on any device) as float
    ``[n, ch, C, C]`` in [0, 1]: ``(x, y)``."""
    if isinstance(x8, np.ndarray):
        x, y = torch.from_numpy(x8[idx]), torch.from_numpy(y8[idx])
    else:
        ii = torch.as_tensor(idx, device=x8.device)
        x, y = x8[ii], y8[ii]
    return x.float().div_(255.0).permute(0, 3, 1, 2), y.float().div_(255.0).permute(0, 3, 1, 2)


def _batch(x8, y8, idx, rng, torch):
    """A training batch from uint8 arrays or tensors (on any device): flips and colour gain."""
    x, y = _pairs(x8, y8, idx, torch)
    dev = x.device
    flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(dev)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None, None], y.flip(-1), y)
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (len(idx), 3, 1, 1)).astype(np.float32)).to(dev)
    x = torch.cat([(x[:, 0:3] * gain).clamp_(0, 1), x[:, 3:5], (x[:, 5:8] * gain).clamp_(0, 1)], 1)
    y = (y * gain).clamp_(0, 1)
    return x.contiguous(), y.contiguous()


def train(data, out, *, minutes: float = 40.0, batch: int = 16, threads: int = 1, lr: float = 2e-4,
          w_l1: float = 10.0, w_adv: float = 0.5, w_fm: float = 2.0, warmup: float = 0.2, seed: int = 0,
          device: str = "cpu", max_steps: int | None = None, init_onnx=None) -> dict:
    """Train for ``minutes`` of wall time or ``max_steps`` steps, whichever ends first (resuming
    ``out/last.pt``); checkpoints every ~2 min. ``device``: ``"cpu"`` or ``"cuda"`` (the data is
    moved there once). ``init_onnx``: a new run's refiner starts from this exported graph's weights
    (a refiner trained before, fine-tuned on new data; the discriminator starts from scratch).
    Returns the last logged losses. Validation: 5% of the clips held back (by clip)."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    RefineNet, PatchD = _nets()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x8, y8, clip = load_data(data)
    import zlib
    names = sorted(set(clip.tolist()))
    # validation clips by a hash of the name: the same ones whatever else the data holds
    val_clips = {c for c in names if zlib.crc32(c.encode()) % 16 == 0} or {names[0]}
    is_val = np.array([c in val_clips for c in clip])
    tr_idx, va_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)[:256]
    log.info("data: %d train samples, %d val (%s)", len(tr_idx), len(va_idx), sorted(val_clips))
    crop = int(x8.shape[1])
    g, d = RefineNet(crop=crop).to(device), PatchD().to(device)
    if device != "cpu":
        x8, y8 = torch.from_numpy(x8).to(device), torch.from_numpy(y8).to(device)
    og = torch.optim.Adam(g.parameters(), lr, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr, betas=(0.5, 0.999))
    state = {"step": 0, "seconds": 0.0}
    ck = out / "last.pt"
    if ck.exists():
        c = torch.load(ck, weights_only=False, map_location=device)
        g.load_state_dict(c["g"]); d.load_state_dict(c["d"])
        og.load_state_dict(c["og"]); od.load_state_dict(c["od"])
        state = c["state"]
        log.info("resumed at step %d (%.0f s)", state["step"], state["seconds"])
    elif init_onnx is not None:
        g.load_state_dict(_onnx_state(init_onnx, g, torch))
        log.info("refiner initialised from %s", init_onnx)
    budget = minutes * 60.0
    rng = np.random.default_rng(seed + state["step"])
    t_last_ck = time.perf_counter()
    t0 = time.perf_counter() - state["seconds"]
    logf = open(out / "log.jsonl", "a")
    last = {}

    def weight_map(x):
        m = (x[:, 3:4] + x[:, 4:5]).clamp(0, 1)
        m = F.max_pool2d(m, 7, 1, 3)
        return 1.0 + 4.0 * m

    while True:
        el = time.perf_counter() - t0
        if el >= budget or (max_steps is not None and state["step"] >= max_steps):
            break
        idx = rng.choice(tr_idx, batch)
        x, y = _batch(x8, y8, idx, rng, torch)
        cond = x[:, 3:5]
        fake = x[:, :3] + g(x)
        adv_on = el > warmup * budget
        # discriminator
        if adv_on:
            _, dr = d(y, cond)
            _, df = d(fake.detach(), cond)
            ld = F.relu(1 - dr).mean() + F.relu(1 + df).mean()
            od.zero_grad()
            ld.backward()
            od.step()
        # generator
        wm = weight_map(x)
        l1 = (wm * (fake - y).abs()).mean() / wm.mean()
        lg = w_l1 * l1
        if adv_on:
            adv, fm = generator_adversarial(d, y, fake, cond)
            lg = lg + w_adv * adv + w_fm * fm
        og.zero_grad()
        lg.backward()
        og.step()
        state["step"] += 1
        state["seconds"] = time.perf_counter() - t0
        if state["step"] % (50 if device == "cpu" else 500) == 0:
            last = {"step": state["step"], "s": round(state["seconds"], 1), "l1": float(l1)}
            log_every = 200 if device == "cpu" else 2000
            if adv_on:
                last.update(ld=float(ld), adv=float(adv), fm=float(fm))
            if state["step"] % log_every == 0 and len(va_idx):
                last.update(_validate(g, x8, y8, va_idx, torch))
            logf.write(json.dumps(last) + "\n")
            logf.flush()
            log.info("%s", last)
        if time.perf_counter() - t_last_ck > 120:
            _save(ck, g, d, og, od, state, torch)
            t_last_ck = time.perf_counter()
    _save(ck, g, d, og, od, state, torch)
    if len(va_idx):
        last.update(_validate(g, x8, y8, va_idx, torch))
    log.info("done: %s", last)
    return last


def _onnx_state(path, net, torch) -> dict:
    """``net``'s state dict filled from an exported refiner graph's initializers (same names as the
    PyTorch parameters); ``ValueError`` when one is missing or of another shape. The network is
    fully convolutional, so a graph exported at another crop size fits too: only the window buffer
    (``win``, made from the crop size) is not taken from it."""
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    out = {}
    for k, v in net.state_dict().items():
        if k == "win":
            out[k] = v.clone()
            continue
        a = inits.get(k)
        if a is None or tuple(a.shape) != tuple(v.shape):
            raise ValueError(f"{path}: no initializer {k!r} of shape {tuple(v.shape)} (not this refiner's graph)")
        out[k] = torch.from_numpy(np.array(a, np.float32))
    return out


def _validate(g, x8, y8, idx, torch) -> dict:
    """Validation L1 (0-255 units) in the driven inner-mouth+lips area: refined vs the input."""
    with torch.no_grad():
        x, y = _pairs(x8, y8, idx, torch)
        m = (x[:, 3:4] + x[:, 4:5]).clamp(0, 1)
        fake = x[:, :3] + g(x)
        e_in = float((m * (x[:, :3] - y).abs()).sum() / (3 * m.sum()) * 255)
        e_out = float((m * (fake - y).abs()).sum() / (3 * m.sum()) * 255)
    return {"val_mouth_l1_in": round(e_in, 2), "val_mouth_l1_out": round(e_out, 2)}


def generator_adversarial(d, real, fake, cond):
    """The generator's adversarial terms against the conditional patch discriminator ``d``:
    ``(adv, fm)``, the hinge loss's generator side (-D(fake)) and feature matching (L1 between
    D's features of the fake and of the real image, the real ones detached). Shared with the
    region refiner's training."""
    import torch.nn.functional as F
    fr, _ = d(real, cond)
    ff, lf = d(fake, cond)
    fm = sum(F.l1_loss(a, b.detach()) for a, b in zip(ff, fr)) / len(ff)
    return -lf.mean(), fm


def _save(path, g, d, og, od, state, torch):
    tmp = Path(str(path) + ".tmp")
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "og": og.state_dict(), "od": od.state_dict(),
                "state": state, "crop": g.crop}, tmp)
    tmp.replace(path)


def export(ckpt, onnx_path, *, net=None) -> None:
    """Write the refiner network (``ckpt``'s, or ``net``) as ONNX (input ``x``, output ``delta``)."""
    import torch
    from ..render import refine as R
    RefineNet, _ = _nets()
    if net is None:
        c = torch.load(ckpt, weights_only=False, map_location="cpu")
        net = RefineNet(crop=c.get("crop", R.CROP))
        net.load_state_dict(c["g"])
    net.eval()
    x = torch.zeros(1, R.N_IN, net.crop, net.crop)
    torch.onnx.export(net, (x,), str(onnx_path), input_names=["x"], output_names=["delta"], opset_version=17,
                      dynamo=False)
    log.info("exported %s (%.0f KB)", onnx_path, Path(onnx_path).stat().st_size / 1024)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m chatanyone.train.mouth_refine")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--corpus", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--every", type=int, default=2)
    b.add_argument("--max-frames", type=int, default=200)
    b.add_argument("--limit", type=int, default=None)
    b.add_argument("--output-size", type=int, default=None, help="frame long side (default: the fast preset's)")
    b.add_argument("--crop", type=int, default=None, help="crop side in pixels (default: render.refine.CROP)")
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--threads", type=int, default=1)   # 2 threads were 4x slower on the shared 2 cores
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--init-onnx", default=None, help="start a new run from this exported refiner's weights")
    t.add_argument("--warmup", type=float, default=0.2, help="share of the time budget trained on L1 alone")
    pk = sub.add_parser("pack")
    pk.add_argument("--data", required=True)
    pk.add_argument("--out", required=True)
    e = sub.add_parser("export")
    e.add_argument("--ckpt", required=True)
    e.add_argument("--onnx", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.cmd == "build":
        build(args.corpus, args.out, every=args.every, max_frames=args.max_frames, limit=args.limit,
              output_size=args.output_size, crop=args.crop)
    elif args.cmd == "train":
        train(args.data, args.out, minutes=args.minutes, batch=args.batch, threads=args.threads, device=args.device,
              max_steps=args.max_steps, lr=args.lr, init_onnx=args.init_onnx, warmup=args.warmup)
    elif args.cmd == "pack":
        pack(args.data, args.out)
    else:
        export(args.ckpt, args.onnx)


if __name__ == "__main__":
    main()
