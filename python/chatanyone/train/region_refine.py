"""Training of the region refiner (:mod:`chatanyone.render.region_refine`; PyTorch, extra ``[train]``).

Data (``build``): self-driven reenactment pairs from raw videos of the TRAINING split only
(:func:`chatanyone.eval.split.role` is ``"train"``; a video of another role is refused). Each video
is prepared as ``chatanyone eval render`` prepares it (:func:`chatanyone.eval.prepare.prepare`,
cached), its first frame with a face becomes the Avatar, and the video's own motion (with the
body's registered maps, :func:`chatanyone.reenact.driving_frames`) drives the geometry renderer
(both refiners off). For every ``every``-th frame one sample is stored, at half the region's size
(:data:`BUILD_SCALE`; training reads it down to the network's own, 1/:data:`~chatanyone.render.region_refine.SCALE`):

- ``x``: the network's input as the run time computes it (:func:`~chatanyone.render.region_refine.features`:
  the region image, the warp's displacement, the person's coverage), as uint8;
- ``y``: the real frame's region, seen the same way (:func:`chatanyone.eval.frames.real_view`);
- ``m``: the person's pixels (selfie segmentation of the real and the source region, their
  union), where the loss counts four times as much as on the background.

Training (``train``): batches of whole frames of one clip, padded as the run time pads them; L1
(person-weighted) + a conditional patch discriminator trained from scratch (hinge loss,
conditioned on the displacement and coverage) with feature matching, as FOMM and LivePortrait do;
no pretrained backbone. The network's change is high-passed inside the graph (less its mean over
every :data:`HIGH_PASS`-pixel box): it may sharpen, move and fill edges, not recolour areas. With
``--val`` (DEV clips, built with ``--split dev``) the checkpoint with the best mean gain on them is
kept as ``best.pt``. Squared error instead of L1 (``--loss l2``) learns to blur wherever the
training clips' render is misaligned, and loses on well-aligned clips (render/design.md,
"Session 16"). Resumable: ``--out`` holds
``last.pt`` (networks, optimizers, step) and ``log.jsonl``; checkpoints every ~2 minutes.
``export`` writes the ONNX graph (input ``x [1, 6, H, W]``, H and W free multiples of 8; output
``delta [1, 3, H, W]``).

Run::

    python -m chatanyone.train.region_refine build --out runs/region/data <the training-split videos>
    python -m chatanyone.train.region_refine build --split dev --out runs/region/dev <the 5 DEV videos>
    python -m chatanyone.train.region_refine train --data runs/region/data --val runs/region/dev \
        --out runs/region/run --minutes 13 --batch 8 --loss l1 --w-adv 0.05
    python -m chatanyone.train.region_refine export --ckpt runs/region/run/best.pt --onnx python/chatanyone/weights/region_refine.onnx

The shipped weights (session 16): the 57 training-split videos' first 4 s, every 2nd frame (2,716
samples from 56 clips; ``build`` took 13 minutes in two processes), 13 minutes of training on 2 CPU
threads (L1 alone for the first 30 %), ``best.pt`` by the DEV clips.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("chatanyone")

BUILD_SCALE = 2      # the built samples are stored at 1/BUILD_SCALE of the region's size
MIN_SIDE = 32       # clips whose region is smaller than this at the network's size are left out
PERSON_WEIGHT = 4.0  # the loss on the person's pixels, against 1 on the background
HIGH_PASS = 15      # the refiner's change is zero-mean over every box of this many pixels (its size)


# --- data -----------------------------------------------------------------------------------

def clip_samples(video, *, max_seconds: float = 4.0, every: int = 2, cache=None, seed: int = 0) -> dict | None:
    """Samples of one raw video (see the module docstring): dict of uint8 ``x [N, h, w, 6]``,
    ``y [N, h, w, 3]``, ``m [N, h, w]``. None when it has too few faces. Blocks (preparation,
    registration, rendering)."""
    import cv2
    from ..avatar import Avatar
    from ..spec.presets import PRESET_LONG_SIDE
    from ..eval.frames import real_view
    from ..eval.prepare import prepare
    from ..eval.selfdriven import _Person
    from ..reenact import driving_frames
    from ..render import region_refine as RR
    from ..render.geometry import GeomRenderer
    pv = prepare(video, max_seconds=max_seconds, cache=cache)
    if int(np.sum(pv.face_ok)) < 10:
        return None
    s = pv.first_face_frame()
    src = pv.frame(s)
    avatar = Avatar.prepare(src, name=pv.name)
    motion = driving_frames(pv, cache=cache)
    r = GeomRenderer(avatar, PRESET_LONG_SIDE["fast"])
    got = {}

    def capture(img, grid, alpha):        # the features at full size, read down to BUILD_SCALE below
        got["x"] = RR.features(img, grid, alpha, 1.0)

    r.region_refiner = capture
    rx0, ry0, rx1, ry1 = r.rect
    ow, oh = r.size
    h2, w2 = max(1, round((ry1 - ry0) / BUILD_SCALE)), max(1, round((rx1 - rx0) / BUILD_SCALE))
    seg = _Person()
    try:
        src_view = real_view(avatar, src, (oh, ow))[ry0:ry1, rx0:rx1]
        src_mask = seg(np.ascontiguousarray(src_view))
        rng = np.random.default_rng(seed)
        start = int(rng.integers(0, every))
        xs, ys, ms = [], [], []
        for t, real in pv.frames():
            if t >= len(motion):
                break
            if t == s or (t - start) % every or not pv.face_ok[t]:
                continue
            r.render(motion.frame(t))
            x = _resize(got.pop("x"), (w2, h2))
            rv = np.ascontiguousarray(real_view(avatar, real, (oh, ow))[ry0:ry1, rx0:rx1])
            m = (seg(rv) | src_mask).astype(np.float32)
            y = cv2.resize(rv, (w2, h2), interpolation=cv2.INTER_AREA)
            m = cv2.resize(m, (w2, h2), interpolation=cv2.INTER_AREA)
            q = np.empty(x.shape, np.uint8)
            q[..., :3] = np.clip(np.round(x[..., :3] * 255), 0, 255)
            q[..., 3:5] = np.clip(np.round((x[..., 3:5] + 1) * 127.5), 0, 255)
            q[..., 5] = np.clip(np.round(x[..., 5] * 255), 0, 255)
            xs.append(q)
            ys.append(y)
            ms.append(np.clip(np.round(m * 255), 0, 255).astype(np.uint8))
    finally:
        seg.close()
    if not xs:
        return None
    return dict(x=np.stack(xs), y=np.stack(ys), m=np.stack(ms))


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``a [h, w]`` or ``[h, w, c]`` resized to ``size`` (w, h) by area (OpenCV takes at most 4
    channels at once in general: more are resized 3 at a time)."""
    import cv2
    if a.ndim == 2 or a.shape[-1] <= 4:
        return cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
    return np.concatenate([cv2.resize(np.ascontiguousarray(a[..., i:i + 3]), size, interpolation=cv2.INTER_AREA)
                           for i in range(0, a.shape[-1], 3)], -1)


def build(videos, out, *, max_seconds: float = 4.0, every: int = 2, cache=None, split: str = "train") -> None:
    """Samples of every video of ``videos`` into the folder ``out`` (one .npz per clip, so an
    interrupted build resumes; a clip that fails is logged and skipped). ``split``: ``"train"``
    (training data) or ``"dev"`` (the validation data that picks the checkpoint); every video must
    be of that split (ValueError naming those that are not: held-out clips never become data)."""
    from ..eval.split import role
    if split not in ("train", "dev"):
        raise ValueError(f"split must be 'train' or 'dev', got {split!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bad = [str(v) for v in videos if role(Path(v).name) != split]
    if bad:
        raise ValueError(f"--split {split}: these clips are not of the {split} split: {bad}")
    for i, v in enumerate(videos):
        pf = out / f"{Path(v).stem}.npz"
        if pf.exists():
            continue
        t0 = time.perf_counter()
        try:
            res = clip_samples(v, max_seconds=max_seconds, every=every, cache=cache, seed=i)
        except Exception as exc:     # one bad clip must not stop the build
            log.warning("clip %s skipped: %s", v, exc)
            res = None
        if res is None:
            np.savez(pf, x=np.zeros((0, 1, 1, 6), np.uint8), y=np.zeros((0, 1, 1, 3), np.uint8),
                     m=np.zeros((0, 1, 1), np.uint8))
            continue
        np.savez(pf, **res)
        log.info("%s: %d samples %s in %.1f s (%d/%d)", Path(v).stem, len(res["x"]), res["x"].shape[1:3],
                 time.perf_counter() - t0, i + 1, len(videos))


def load_data(folder) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``[(clip, x, y, m), ...]`` of the built clips in ``folder``, read down to the network's size
    (uint8), those at least :data:`MIN_SIDE` on a side."""
    import cv2
    from ..render import region_refine as RR
    f = BUILD_SCALE / RR.SCALE
    out = []
    for pf in sorted(Path(folder).glob("*.npz")):
        with np.load(pf) as z:
            x, y, m = z["x"], z["y"], z["m"]
        if not len(x):
            continue
        size = (max(1, round(x.shape[2] * f)), max(1, round(x.shape[1] * f)))

        def down(a):
            return np.stack([_resize(im, size) for im in a])
        x, y, m = down(x), down(y), down(m)
        if min(x.shape[1:3]) >= MIN_SIDE:
            out.append((pf.stem, x, y, m))
    if not out:
        raise ValueError(f"no built clips in {folder}")
    return out


# --- networks -------------------------------------------------------------------------------

def _nets():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from ..render import region_refine as RR

    def conv(i, o, k=3, s=1):
        return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2 if s == 1 else 1), nn.LeakyReLU(0.2))

    class RegionNet(nn.Module):
        """A small U-Net: ``x [B, 6, H, W]`` -> ``delta [B, 3, H, W]`` (H, W multiples of 8). The
        work is at 1/2, 1/4 and 1/8 of its input (itself 1/4 of the region); at its input's size one
        3x3 layer over the input and the upsampled features, and the head."""

        def __init__(self, ch=(16, 32, 48), c_full=16):
            super().__init__()
            c1, c2, c3 = ch
            self.e1 = nn.Sequential(conv(RR.N_IN, c1, 4, 2), conv(c1, c1))
            self.e2 = nn.Sequential(conv(c1, c2, 4, 2), conv(c2, c2))
            self.e3 = nn.Sequential(conv(c2, c3, 4, 2), conv(c3, c3), conv(c3, c3))
            self.d2 = conv(c3 + c2, c2)
            self.d1 = conv(c2 + c1, c1)
            self.d0 = conv(c1 + RR.N_IN, c_full)
            self.head = nn.Conv2d(c_full, 3, 3, 1, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def forward(self, x):
            f1 = self.e1(x)
            f2 = self.e2(f1)
            f3 = self.e3(f2)
            up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")   # noqa: E731
            g2 = self.d2(torch.cat([up(f3), f2], 1))
            g1 = self.d1(torch.cat([up(g2), f1], 1))
            g0 = self.d0(torch.cat([up(g1), x], 1))
            d = 0.5 * torch.tanh(self.head(g0))
            # local changes only: less their own local mean (a HIGH_PASS-pixel box). A network
            # free to change colour over larger areas learns the training clips' own colour and
            # exposure drift and recolours other clips' faces (seen on a DEV clip: -2 dB)
            k = HIGH_PASS
            return d - F.avg_pool2d(d, k, 1, k // 2, count_include_pad=False)

    from .mouth_refine import _nets as _mouth_nets

    def PatchD():
        """The mouth refiner's conditional patch discriminator on the image and the displacement
        and coverage (6 channels)."""
        return _mouth_nets()[1](c_in=6)

    return RegionNet, PatchD


def _frames(data, n, rng, torch):
    """``(x [n, 6, H, W], y [n, 3, H, W], w [n, 1, H, W])``: ``n`` random whole frames of one random
    clip, padded by edge to multiples of 8 as the run time pads them (weight 0 there), flipped
    alike at random, with one colour gain on image and target."""
    _, x8, y8, m8 = data[int(rng.integers(len(data)))]
    idx = rng.choice(len(x8), min(n, len(x8)), replace=False)
    h, w = x8.shape[1:3]
    ph, pw = (-h) % 8, (-w) % 8
    x = x8[idx].astype(np.float32) / 255.0
    y = y8[idx].astype(np.float32) / 255.0
    m = m8[idx].astype(np.float32) / 255.0
    x[..., 3:5] = x[..., 3:5] * 2.0 - 1.0
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    x[..., :3] = np.clip(x[..., :3] * gain, 0, 1)
    y = np.clip(y * gain, 0, 1)
    wgt = 1.0 + (PERSON_WEIGHT - 1.0) * m
    pad = ((0, 0), (0, ph), (0, pw))
    x = np.pad(x, pad + ((0, 0),), mode="edge")
    y = np.pad(y, pad + ((0, 0),), mode="edge")
    wgt = np.pad(wgt, pad, mode="constant")
    if rng.random() < 0.5:
        x = x[:, :, ::-1].copy()
        x[..., 3] = -x[..., 3]
        y, wgt = y[:, :, ::-1], wgt[:, :, ::-1]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return t(x), t(y), torch.from_numpy(np.ascontiguousarray(wgt))[:, None]


def train(data, out, *, minutes: float = 40.0, batch: int = 12, threads: int = 2, lr: float = 2e-4,
          w_adv: float = 0.05, w_fm: float = 0.5, warmup: float = 0.3, seed: int = 0,
          max_steps: int | None = None, loss: str = "l1", init=None, val=None, val_every: int = 500) -> dict:
    """Train for ``minutes`` of wall time or ``max_steps`` steps, whichever ends first (resuming
    ``out/last.pt``); checkpoints every ~2 min. L1 alone for the first ``warmup`` share of the
    time, then with the discriminator (never when ``w_adv`` and ``w_fm`` are both 0). ``loss``:
    the pixel loss, ``"l1"`` or ``"l2"`` (squared error, what PSNR counts). ``init``: a new run's
    refiner starts from this checkpoint's (fine-tuning; the discriminator starts from scratch).
    ``val``: a folder of validation clips (built with ``--split dev``): every ``val_every`` steps
    :func:`validate` is logged and the refiner with the best mean gain so far is kept as
    ``out/best.pt``. Batches are whole frames of one clip (:func:`_frames`, as the network runs;
    random patches of many clips, session 16's first runs, are in git history at ``2f4124d``).
    Returns the last logged losses."""
    if loss not in ("l1", "l2"):
        raise ValueError(f"loss must be 'l1' or 'l2', got {loss!r}")
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    from .mouth_refine import generator_adversarial
    RegionNet, PatchD = _nets()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_data(data)
    log.info("data: %d clips, %d samples", len(clips), sum(len(c[1]) for c in clips))
    g, d = RegionNet(), PatchD()
    og = torch.optim.Adam(g.parameters(), lr, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr, betas=(0.5, 0.999))
    state = {"step": 0, "seconds": 0.0}
    ck = out / "last.pt"
    if ck.exists():
        c = torch.load(ck, weights_only=False)
        g.load_state_dict(c["g"]); d.load_state_dict(c["d"])
        og.load_state_dict(c["og"]); od.load_state_dict(c["od"])
        state = c["state"]
        log.info("resumed at step %d (%.0f s)", state["step"], state["seconds"])
    elif init is not None:
        g.load_state_dict(torch.load(init, weights_only=False, map_location="cpu")["g"])
        log.info("refiner initialised from %s", init)
    val_clips = load_data(val) if val is not None else None
    best = state.get("best_val", -float("inf"))
    budget = minutes * 60.0
    rng = np.random.default_rng(seed + state["step"])
    t_last_ck = time.perf_counter()
    t0 = time.perf_counter() - state["seconds"]
    last = {}
    with open(out / "log.jsonl", "a") as logf:
        while True:
            el = time.perf_counter() - t0
            if el >= budget or (max_steps is not None and state["step"] >= max_steps):
                break
            x, y, wm = _frames(clips, batch, rng, torch)
            cond = x[:, 3:6]
            fake = (x[:, :3] + g(x)).clamp(0.0, 1.0)
            adv_on = el > warmup * budget and (w_adv > 0 or w_fm > 0)
            if adv_on:
                _, dr = d(y, cond)
                _, df = d(fake.detach(), cond)
                ld = F.relu(1 - dr).mean() + F.relu(1 + df).mean()
                od.zero_grad()
                ld.backward()
                od.step()
            err = (fake - y).abs() if loss == "l1" else (fake - y) ** 2
            err_in = (x[:, :3] - y).abs() if loss == "l1" else (x[:, :3] - y) ** 2
            l1 = (wm * err).sum() / (3.0 * wm.sum() + 1e-6)
            l1_id = (wm * err_in).sum() / (3.0 * wm.sum() + 1e-6)
            lg = l1 * (1.0 if loss == "l1" else 20.0)
            if adv_on:
                adv, fm = generator_adversarial(d, y, fake, cond)
                lg = lg + w_adv * adv + w_fm * fm
            og.zero_grad()
            lg.backward()
            og.step()
            state["step"] += 1
            state["seconds"] = time.perf_counter() - t0
            if state["step"] % 25 == 0:
                last = {"step": state["step"], "s": round(state["seconds"], 1), "l1": round(l1.item(), 5),
                        "l1_input": round(l1_id.item(), 5)}
                if adv_on:
                    last.update(ld=round(ld.item(), 4), adv=round(adv.item(), 4), fm=round(fm.item(), 4))
                logf.write(json.dumps(last) + "\n")
                logf.flush()
            if val_clips is not None and state["step"] % val_every == 0:
                v = validate(g, val_clips, torch)
                last.update(val=v["mean"])
                logf.write(json.dumps({"step": state["step"], "val": v}) + "\n")
                logf.flush()
                if v["mean"] > best:
                    best = state["best_val"] = v["mean"]
                    _save(out / "best.pt", g, d, og, od, state, torch)
            if time.perf_counter() - t_last_ck > 120:
                _save(ck, g, d, og, od, state, torch)
                t_last_ck = time.perf_counter()
    _save(ck, g, d, og, od, state, torch)
    log.info("stopped at step %d (%.0f s): %s", state["step"], state["seconds"], last)
    return last


def validate(g, clips, torch) -> dict:
    """Per validation clip, the person-weighted squared error of the refined frames against the
    renderer's own, in dB (positive: the refiner brings the frames nearer the real ones; whole
    frames), and their mean (``"mean"``: what picks the checkpoint, each clip counting alike as in
    ``chatanyone eval render``'s mean PSNR)."""
    out = {}
    g.eval()
    with torch.no_grad():
        for name, x8, y8, m8 in clips:
            num = den = 0.0
            h, w = x8.shape[1:3]
            ph, pw = (-h) % 8, (-w) % 8
            x = x8.astype(np.float32) / 255.0
            x[..., 3:5] = x[..., 3:5] * 2.0 - 1.0
            xp = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
            for i in range(0, len(x), 16):
                xt = torch.from_numpy(np.ascontiguousarray(xp[i:i + 16])).permute(0, 3, 1, 2)
                fake = (xt[:, :3] + g(xt)).clamp(0, 1)[:, :, :h, :w].permute(0, 2, 3, 1).numpy()
                y = y8[i:i + 16].astype(np.float32) / 255.0
                wgt = (1.0 + (PERSON_WEIGHT - 1.0) * m8[i:i + 16].astype(np.float32) / 255.0)[..., None]
                num += float((wgt * (fake - y) ** 2).sum())
                den += float((wgt * (x[i:i + 16, ..., :3] - y) ** 2).sum())
            out[name[:24]] = round(10.0 * np.log10(max(den, 1e-12) / max(num, 1e-12)), 4)
    g.train()
    out["mean"] = round(float(np.mean(list(out.values()))), 4)
    return out


def _save(path, g, d, og, od, state, torch):
    tmp = Path(str(path) + ".tmp")
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "og": og.state_dict(), "od": od.state_dict(),
                "state": dict(state)}, tmp)
    tmp.replace(path)


def export(ckpt, onnx_path, *, net=None) -> None:
    """Write the refiner of checkpoint ``ckpt`` (or ``net``) as an ONNX graph with free height and
    width (multiples of 8)."""
    import torch
    from ..render import region_refine as RR
    g = net
    if g is None:
        RegionNet, _ = _nets()
        g = RegionNet()
        g.load_state_dict(torch.load(ckpt, weights_only=False, map_location="cpu")["g"])
    g.eval()
    x = torch.zeros(1, RR.N_IN, 128, 96)
    torch.onnx.export(g, (x,), str(onnx_path), input_names=["x"], output_names=["delta"], opset_version=17,
                      dynamic_axes={"x": {2: "h", 3: "w"}, "delta": {2: "h", 3: "w"}}, dynamo=False)
    log.info("exported %s", onnx_path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chatanyone.train.region_refine", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="self-driven pairs from training-split videos")
    b.add_argument("videos", nargs="+")
    b.add_argument("--out", required=True)
    b.add_argument("--max-seconds", type=float, default=4.0)
    b.add_argument("--every", type=int, default=2)
    b.add_argument("--split", choices=("train", "dev"), default="train",
                   help="train: training data; dev: validation data (picks the checkpoint)")
    t = sub.add_parser("train", help="train (resumes --out/last.pt)")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=13.0)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--w-adv", type=float, default=0.05)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--w-fm", type=float, default=0.5)
    t.add_argument("--loss", choices=("l1", "l2"), default="l1")
    t.add_argument("--init", default=None, help="start the refiner from this checkpoint (a new run)")
    t.add_argument("--val", default=None, help="validation clips' folder (build --split dev): keeps best.pt")
    e = sub.add_parser("export", help="write the ONNX graph")
    e.add_argument("--ckpt", required=True)
    e.add_argument("--onnx", required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.cmd == "build":
        build(a.videos, a.out, max_seconds=a.max_seconds, every=a.every, split=a.split)
    elif a.cmd == "train":
        print(json.dumps(train(a.data, a.out, minutes=a.minutes, batch=a.batch, threads=a.threads,
                               w_adv=a.w_adv, w_fm=a.w_fm, max_steps=a.max_steps, loss=a.loss, init=a.init, val=a.val)))
    else:
        export(a.ckpt, a.onnx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
