"""Phoneme supervision for the mouth (issue 12): synthetic speech with exact phone timings, an
audio-to-viseme head on the mouth predictor's Whisper features, and its ablation in the mouth.

    python -m chatanyone.train.phones data --out runs/phones --minutes 30        # espeak-ng corpus
    python -m chatanyone.train.phones train --data runs/phones \
        --out python/chatanyone/weights/motion_phones.npz                         # the head
    python -m chatanyone.train.phones eval --data runs/phones                     # held-out voices

``data`` synthesizes English sentences (from the Python standard library's docstrings, filtered to
plain words) with espeak-ng (``libespeak-ng.so.1`` through ctypes: the phoneme events give each
phone's start sample) in its voice variants, rates and pitches, with noise at a random SNR,
resampled to 16 kHz. Each utterance's frames (40 ms) get soft viseme labels (the fraction of the
frame each viseme covers, :data:`chatanyone.motion.phones.VISEMES`). Features are exactly the mouth
predictor's: Whisper tiny.en tokens of 24-frame segments ending every ``stride`` frames, the last
:data:`~chatanyone.train.mouth.N_TOK` tokens of each (so a frame is seen at several distances from
its segment's end, as the streaming predictor sees it). Shards of utterances, resumable.

Voices named in :data:`TEST_VARIANTS` are never trained on: the head's accuracy is reported on
them (``eval``). espeak-ng is a training-side tool only (``apt-get install espeak-ng``); nothing at
run time needs it.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from ..motion.phones import K, VISEMES, save_head

log = logging.getLogger("chatanyone")

FPS = 25
SR = 16000
# espeak-ng voice variants (``en-us+NAME``) held out from training: the head's test voices
TEST_VARIANTS = ("m3", "f4", "Alicia", "david", "grandma", "steph2", "Mr", "travis")

# ----------------------------------------------------------------------------------- phonemes

_CONS = {
    "p": "pbm", "b": "pbm", "m": "pbm", "ɱ": "pbm",
    "f": "fv", "v": "fv",
    "θ": "th", "ð": "th",
    "t": "tdnl", "d": "tdnl", "n": "tdnl", "l": "tdnl", "ɾ": "tdnl", "ɫ": "tdnl",
    "s": "sz", "z": "sz",
    "ʃ": "sh", "ʒ": "sh",
    "k": "kg", "g": "kg", "ɡ": "kg", "ŋ": "kg", "h": "kg", "ʔ": "kg", "x": "kg", "ç": "kg",
    "ɹ": "r", "r": "r", "ɚ": "r", "ɝ": "r", "ʁ": "r",
    "w": "wu", "ʍ": "wu", "u": "wu", "ʊ": "wu", "ɯ": "wu",
    "o": "o", "ɔ": "o", "ɒ": "o",
    "a": "a", "ɑ": "a", "æ": "a", "ʌ": "a", "ɐ": "a", "ᵻ": "i",
    "e": "e", "ɛ": "e", "ə": "e", "ɜ": "e", "ɘ": "e",
    "i": "i", "ɪ": "i", "j": "i", "y": "i",
}
_IGNORE = "ˈˌːˑ̩̃͡‿-_ ."


def viseme_of(phone: str) -> int:
    """The :data:`VISEMES` class of one espeak-ng IPA phone (``"tʃ"``, ``"aɪ"``, ``"ɜː"``; empty: a
    pause). Affricates tʃ/dʒ count as ``sh``; a diphthong takes its first vowel; ``ɚ`` is ``r``.
    Raises ValueError for a phone it cannot place."""
    p = "".join(ch for ch in phone if ch not in _IGNORE)
    if not p:
        return VISEMES.index("sil")
    if p in ("tʃ", "dʒ"):
        return VISEMES.index("sh")
    for ch in p:
        if ch in _CONS:
            return VISEMES.index(_CONS[ch])
    raise ValueError(f"viseme_of: unknown phone {phone!r}")


def frame_labels(events, n_frames: int, total_s: float) -> np.ndarray:
    """Soft labels ``[n_frames, K]``: for each 40 ms frame the fraction of it each viseme covers.
    ``events``: ``[(start_s, viseme), ...]`` sorted; each lasts until the next (the last until
    ``total_s``); time before the first and after ``total_s`` is a pause."""
    y = np.zeros((n_frames, K), np.float32)
    sil = VISEMES.index("sil")
    bounds = [(0.0, events[0][0] if events else total_s, sil)]
    for i, (t0, v) in enumerate(events):
        t1 = events[i + 1][0] if i + 1 < len(events) else total_s
        if t1 > t0:
            bounds.append((t0, t1, v))
    bounds.append((total_s, n_frames / FPS + 1.0, sil))
    for t0, t1, v in bounds:
        f0, f1 = int(np.floor(t0 * FPS)), int(np.ceil(t1 * FPS))
        for f in range(max(f0, 0), min(f1, n_frames)):
            ov = min(t1, (f + 1) / FPS) - max(t0, f / FPS)
            if ov > 0:
                y[f, v] += ov * FPS
    y /= np.maximum(y.sum(1, keepdims=True), 1e-6)
    return y


# ------------------------------------------------------------------------------------ espeak-ng

class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_EV_PHONEME, _EV_END = 7, 0


class Espeak:
    """espeak-ng through its C library (synchronous synthesis, IPA phoneme events). One per
    process (the library is global). Raises RuntimeError when ``libespeak-ng`` is not installed."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng); it is needed "
                               "only to make the phoneme training data") from None
        # AUDIO_OUTPUT_SYNCHRONOUS, PHONEME_EVENTS | PHONEME_IPA | DONT_EXIT
        self.rate = int(self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x0002 | 0x8000))
        if self.rate <= 0:
            raise RuntimeError("espeak-ng failed to initialize")
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._wav: list[np.ndarray] = []
        self._ev: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._callback)  # kept referenced
        self.lib.espeak_SetSynthCallback(self._cb)

    def _callback(self, wav, n, events) -> int:
        if n > 0:
            self._wav.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_END:
            if events[i].type == _EV_PHONEME:
                self._ev.append((int(events[i].sample), events[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def synth(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, range_: int = 50):
        """``(samples [S] float32 at self.rate, [(start_sample, ipa_phone), ...])``. Blocks for the
        synthesis (a few ms per second of speech)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng: no voice {voice!r}")
        for param, value in ((1, rate), (3, pitch), (4, range_)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._wav, self._ev = [], []
        b = text.encode("utf-8")
        if self.lib.espeak_Synth(b, len(b) + 1, 0, 0, 0, 1, None, None) != 0:
            raise RuntimeError(f"espeak-ng failed on {text[:40]!r}")
        self.lib.espeak_Synchronize()
        wav = np.concatenate(self._wav).astype(np.float32) / 32768.0 if self._wav else np.zeros(0, np.float32)
        return wav, list(self._ev)


def variants() -> list[str]:
    """espeak-ng's voice variant names (``espeak-ng --voices=variant``)."""
    import subprocess
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 5 and f[4].startswith("!v/"):
            names.append(f[4][3:])
    return names


def sentences(seed: int = 0) -> list[str]:
    """Plain English sentences (5-25 words, letters only) from the docstrings of the Python
    standard library's sources (read with ``ast``, nothing imported), shuffled by ``seed``."""
    import ast
    import sysconfig
    texts = []
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d:
                    texts.append(d)
    out = set()
    for t in texts:
        for s in re.split(r"(?<=[.!?])\s+", " ".join(t.split())):
            w = s.rstrip(".!?").split()
            if 5 <= len(w) <= 25 and all(re.fullmatch(r"[A-Za-z][a-z']*,?", x) for x in w):
                out.add(s)
    out = sorted(out)
    np.random.default_rng(seed).shuffle(out)
    return out


# -------------------------------------------------------------------------------------- the data

def _resample(wav: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly
    from math import gcd
    g = gcd(SR, sr)
    return resample_poly(wav, SR // g, sr // g).astype(np.float32)


def make_utterance(es: Espeak, text: str, voice: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic utterance: ``(audio [n * 640] float32 16 kHz, labels [n, K])``, with random
    rate, pitch, leading/trailing silence, gain and noise."""
    wav, ev = es.synth(text, voice, rate=int(rng.uniform(120, 240)), pitch=int(rng.uniform(15, 85)),
                       range_=int(rng.uniform(20, 90)))
    lead = rng.uniform(0.1, 0.6)
    total = wav.size / es.rate
    events = []
    for s, ph in ev:
        try:
            events.append((s / es.rate + lead, viseme_of(ph)))
        except ValueError:
            log.debug("phones: unknown phone %r in %r", ph, text[:30])
            events.append((s / es.rate + lead, events[-1][1] if events else 0))
    a = _resample(wav, es.rate)
    a = np.concatenate([np.zeros(int(lead * SR), np.float32), a, np.zeros(int(rng.uniform(0.1, 0.6) * SR), np.float32)])
    n = -(-a.size // 640)
    a = np.pad(a, (0, n * 640 - a.size))
    a *= 10 ** (rng.uniform(-12, 6) / 20) * 0.5 / max(float(np.abs(a).max()), 1e-4)
    snr = rng.uniform(10, 45)
    noise = rng.standard_normal(a.size).astype(np.float32)
    if rng.random() < 0.5:  # brown-ish noise half the time
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(400) / 400, "same")
    p = float(np.mean(a[np.abs(a) > 1e-3] ** 2)) if np.any(np.abs(a) > 1e-3) else 1e-6
    a = a + noise * np.sqrt(p / 10 ** (snr / 10) / max(float(np.mean(noise ** 2)), 1e-12))
    y = frame_labels(events, n, lead + total)
    return a.astype(np.float32), y


def utterance_tokens(enc, audio: np.ndarray, labels: np.ndarray, stride: int, rng):
    """Whisper tokens as the mouth predictor gets them: segments of ``SEG_FRAMES`` frames ending
    every ``stride`` frames (random phase; zeros before the audio and after it), the last ``N_TOK``
    tokens of each -> ``(x [m, 768] float16, y [m, K] float16, dist [m] int8)``: each token, its
    frame's soft label and its distance (frames) from its segment's end."""
    from ..audio.whisper import segment_features_batch
    from .mouth import N_TOK, SEG_FRAMES
    n = labels.shape[0]
    pad = SEG_FRAMES * 640
    a = np.concatenate([np.zeros(pad, np.float32), audio, np.zeros(N_TOK * 640, np.float32)])
    ends = np.arange(1 + int(rng.integers(stride)), n + N_TOK, stride)
    xs, ys, ds = [], [], []
    for b0 in range(0, len(ends), 32):
        e = ends[b0:b0 + 32]
        segs = np.stack([a[(k - SEG_FRAMES) * 640 + pad:k * 640 + pad] for k in e])
        f = segment_features_batch(enc, segs, N_TOK)  # [B, N_TOK, 768]: frames e - N_TOK .. e - 1
        fr = e[:, None] - N_TOK + np.arange(N_TOK)[None]
        ok = (fr >= 0) & (fr < n)
        xs.append(f[ok].astype(np.float16))
        ys.append(labels[fr[ok]].astype(np.float16))
        ds.append(np.broadcast_to(N_TOK - 1 - np.arange(N_TOK)[None], fr.shape)[ok].astype(np.int8))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ds)


def make_data(out: Path, minutes: float, *, shard_s: float = 120.0, stride: int = 3, seed: int = 0,
              threads: int = 1) -> None:
    """Write shards ``out/shard_XXX.npz`` (x, y, dist, voice ids) until ``minutes`` of synthetic
    speech; existing shards are kept (resumable). Voices of :data:`TEST_VARIANTS` go to
    ``test_XXX.npz`` shards (one in six utterances). Blocks for the synthesis and the encoder."""
    from ..audio.whisper import shared_encoder
    out.mkdir(parents=True, exist_ok=True)
    es = Espeak()
    enc = shared_encoder(threads, "int8")
    texts = sentences(seed)
    var = variants()
    train_v = [v for v in var if v not in TEST_VARIANTS]
    test_v = [v for v in var if v in TEST_VARIANTS]
    accents = ("en-us", "en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029")
    n_shards = int(np.ceil(minutes * 60 / shard_s))
    (out / "meta.json").write_text(json.dumps({"visemes": list(VISEMES), "stride": stride, "seed": seed,
                                               "test_variants": list(TEST_VARIANTS)}))
    ti = 0
    for s in range(n_shards):
        for kind in ("shard", "test"):
            f = out / f"{kind}_{s:03d}.npz"
            rng = np.random.default_rng([seed, s, kind == "test"])
            budget = shard_s if kind == "shard" else shard_s / 5
            if f.is_file():
                continue
            t = time.time()
            xs, ys, ds, vs = [], [], [], []
            dur = 0.0
            while dur < budget:
                text = texts[ti % len(texts)] if kind == "shard" else texts[-1 - ti % len(texts)]
                ti += 1
                pool = train_v if kind == "shard" else test_v
                voice = f"{accents[int(rng.integers(len(accents)))]}+{pool[int(rng.integers(len(pool)))]}"
                a, y = make_utterance(es, text, voice, rng)
                x, yy, d = utterance_tokens(enc, a, y, stride, rng)
                xs.append(x), ys.append(yy), ds.append(d), vs.append(np.full(len(d), ti, np.int32))
                dur += a.size / SR
            np.savez(f.with_suffix(".tmp.npz"), x=np.concatenate(xs), y=np.concatenate(ys),
                     dist=np.concatenate(ds), utt=np.concatenate(vs))
            f.with_suffix(".tmp.npz").replace(f)
            log.info("phones: %s (%.0f s of speech, %.0f s)", f.name, dur, time.time() - t)


def load_shards(data: Path, kind: str = "shard"):
    fs = sorted(Path(data).glob(f"{kind}_*.npz"))
    if not fs:
        raise ValueError(f"no {kind} shards in {data} (run `train.phones data` first)")
    zs = [np.load(f) for f in fs]
    return (np.concatenate([z["x"] for z in zs]), np.concatenate([z["y"] for z in zs]),
            np.concatenate([z["dist"] for z in zs]))


# ------------------------------------------------------------------------------------- training

def real_tokens(roots, align_dir: Path, per_row: int = 3, seed: int = 0):
    """Tokens of real training speech with aligned labels (:func:`align_corpus`): for each segment
    of a clip's cached mouth features (``train.mouth.clip_features``) ``per_row`` random tokens of
    its last ``N_TOK`` -> ``(x [m, 768] float16, y [m, K])``. Training clips only."""
    from ..eval.split import role
    from .mouth import N_TOK, clip_features
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for root in roots:
        for d in sorted(Path(root).iterdir()):
            f = Path(align_dir) / f"{d.name}.json"
            if not f.is_file() or not (d / "meta.json").is_file():
                continue
            if role(d.name) != "train":
                raise ValueError(f"{d.name} is a {role(d.name)} clip; the head trains on training clips only")
            n = json.loads((d / "meta.json").read_text())["n_frames"]
            y = aligned_labels(f, n)
            if y is None:
                continue
            feat = clip_features(d)
            rows = np.repeat(np.arange(feat.shape[0]), per_row)
            pos = rng.integers(N_TOK, size=rows.size)
            fr = rows + 1 - N_TOK + pos
            ok = (fr >= 0) & (fr < n)
            xs.append(np.asarray(feat[rows[ok], pos[ok]], np.float16))
            ys.append(y[fr[ok]])
    if not xs:
        raise ValueError(f"no aligned training clips under {roots} in {align_dir}")
    return np.concatenate(xs), np.concatenate(ys)


def train_head(data: Path, out: Path, *, hidden: int = 256, steps: int = 6000, seed: int = 0,
               threads: int = 1, ckpt: Path | None = None, max_dist: int = 12, real=None) -> dict:
    """Train the head (768 -> hidden -> hidden -> K, GELU, dropout, soft-label cross entropy,
    AdamW) on the training shards (and, with ``real = (x, y)`` from :func:`real_tokens`, half of
    each batch from real speech); resumable from ``ckpt`` (default ``out`` + ``.ckpt.pt``).
    Writes the run-time npz and returns its test-voice figures (:func:`evaluate`). Minutes on one
    core."""
    import torch
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    from ..runners.base import weights_path
    with np.load(weights_path("motion_stats.npz")) as z:
        mean, std = z["wfeat_mean"].astype(np.float32), z["wfeat_std"].astype(np.float32)
    x, y, d = load_shards(data)
    keep = d <= max_dist
    X = torch.from_numpy(((x[keep].astype(np.float32) - mean) / std).astype(np.float32))
    Y = torch.from_numpy(y[keep].astype(np.float32))
    log.info("phones: %d training tokens", len(X))
    if real is not None:
        XR = torch.from_numpy(((real[0].astype(np.float32) - mean) / std).astype(np.float32))
        YR = torch.from_numpy(np.asarray(real[1], np.float32))
        log.info("phones: %d real-speech tokens", len(XR))
    net = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(X.shape[1], hidden),
                              torch.nn.GELU(approximate="tanh"), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, hidden), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Dropout(0.2), torch.nn.Linear(hidden, K))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    ckpt = Path(ckpt) if ckpt else Path(str(out) + ".ckpt.pt")
    step0 = 0
    if ckpt.is_file():
        st = torch.load(ckpt)
        net.load_state_dict(st["net"]), opt.load_state_dict(st["opt"]), sched.load_state_dict(st["sched"])
        step0 = int(st["step"])
        log.info("phones: resumed at step %d", step0)
    g = torch.Generator().manual_seed(seed + step0)
    for step in range(step0, steps):
        net.train()
        if real is None:
            idx = torch.randint(len(X), (512,), generator=g)
            xb, yb = X[idx], Y[idx]
        else:
            idx, jdx = torch.randint(len(X), (256,), generator=g), torch.randint(len(XR), (256,), generator=g)
            xb, yb = torch.cat([X[idx], XR[jdx]]), torch.cat([Y[idx], YR[jdx]])
        xb = xb + 0.1 * torch.randn(512, X.shape[1], generator=g)
        loss = -(yb * torch.log_softmax(net(xb), -1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 1000 == 0 or step + 1 == steps:
            log.info("phones: step %d loss %.3f", step + 1, float(loss.detach()))
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step + 1}, ckpt)
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in lins]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_head(out, layers, mean, std)
    return evaluate(data, out)


def evaluate(data: Path, head_path: Path) -> dict:
    """The head on the test voices' shards: frame accuracy (argmax against the label's majority
    viseme), by distance from the segment's end, and the chance level (the majority class)."""
    from ..motion.phones import VisemeHead
    head = VisemeHead(head_path)
    x, y, d = load_shards(data, "test")
    p = head.posteriors(x.astype(np.float32))
    yt = y.astype(np.float32).argmax(1)
    hit = p.argmax(1) == yt
    res = {"tokens": int(len(x)), "accuracy": float(hit.mean()),
           "chance": float(np.bincount(yt, minlength=K).max() / len(yt)),
           "by_dist": {int(k): float(hit[d == k].mean()) for k in np.unique(d)},
           "per_class_recall": {VISEMES[c]: float(hit[yt == c].mean()) for c in range(K) if np.any(yt == c)}}
    return res


# ------------------------------------------------------------------- real speech: aligned phones

# ARPAbet (pocketsphinx's US English dictionary) -> viseme name
_ARPA = {"AA": "a", "AE": "a", "AH": "a", "AO": "o", "AW": "a", "AY": "a", "B": "pbm", "CH": "sh", "D": "tdnl",
         "DH": "th", "EH": "e", "ER": "r", "EY": "e", "F": "fv", "G": "kg", "HH": "kg", "IH": "i", "IY": "i",
         "JH": "sh", "K": "kg", "L": "tdnl", "M": "pbm", "N": "tdnl", "NG": "kg", "OW": "o", "OY": "o", "P": "pbm",
         "R": "r", "S": "sz", "SH": "sh", "T": "tdnl", "TH": "th", "UH": "wu", "UW": "wu", "V": "fv", "W": "wu",
         "Y": "i", "Z": "sz", "ZH": "sh", "SIL": "sil"}


def _byte_decoder() -> dict:
    """GPT-2's byte-level BPE alphabet, reversed (Whisper's tokens are written in it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def transcribe(audio: np.ndarray) -> str:
    """English transcript of 16 kHz ``audio`` by the bundled Whisper tiny.en (CTranslate2, greedy,
    30 s windows). Blocks for the decoder (about a second per window on one core)."""
    import ctranslate2
    from ..audio.whisper import model_dir, whisper_log_mel
    model = ctranslate2.models.Whisper(str(model_dir()), device="cpu", compute_type="int8", intra_threads=1)
    dec = _byte_decoder()
    words = []
    for s0 in range(0, max(audio.size, 1), 30 * SR):
        seg = np.zeros(30 * SR, np.float32)
        a = audio[s0:s0 + 30 * SR]
        seg[:a.size] = a
        mel = whisper_log_mel(seg)[None, :, :3000]
        res = model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)),
                             [["<|startoftranscript|>", "<|notimestamps|>"]], beam_size=1, max_length=224)
        toks = [t for t in res[0].sequences[0] if not t.startswith("<|")]
        words.append(bytes(dec[ch] for t in toks for ch in t if ch in dec).decode("utf-8", "replace"))
    return " ".join(w.strip() for w in words)


def align_phones(audio: np.ndarray, text: str, decoder=None) -> list[tuple[float, float, str]]:
    """Forced alignment of ``text`` to 16 kHz ``audio`` with pocketsphinx (US English model and
    dictionary): ``[(start_s, end_s, ARPAbet phone), ...]``; words not in the dictionary are left
    out. Raises RuntimeError when pocketsphinx is not installed or the alignment fails."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise RuntimeError("real-speech alignment needs pocketsphinx (pip install pocketsphinx)") from None
    d = decoder or Decoder(samprate=SR, bestpath=False, loglevel="FATAL")
    words = [w for w in re.sub(r"[^a-z' ]", " ", text.lower()).split() if d.lookup_word(w)]
    if not words:
        return []
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    d.set_alignment()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    out = []
    al = d.get_alignment()
    if al is None:
        raise RuntimeError("pocketsphinx: no alignment")
    for w in al:
        for ph in w:
            out.append((ph.start / 100.0, (ph.start + ph.duration) / 100.0, ph.name))
    return out


def align_corpus(roots, out: Path) -> None:
    """Transcribe (Whisper tiny.en) and force-align (pocketsphinx) the corpus clips under ``roots``
    (training and DEV clips only): ``out/<clip>.json`` with the transcript and the phones; existing
    files are kept (resumable)."""
    out.mkdir(parents=True, exist_ok=True)
    from ..eval.split import role
    for root in roots:
        for d in sorted(Path(root).iterdir()):
            if not (d / "audio.npy").is_file():
                continue
            if role(d.name) == "heldout":
                raise ValueError(f"{d.name} is a held-out clip")
            f = out / f"{d.name}.json"
            if f.is_file():
                continue
            t = time.time()
            a = np.load(d / "audio.npy").astype(np.float32).reshape(-1)
            text = transcribe(a)
            try:
                ph = align_phones(a, text)
            except RuntimeError as e:
                log.info("align %s: %s", d.name, e)
                ph = []
            f.write_text(json.dumps({"text": text, "phones": ph, "seconds": a.size / SR}))
            log.info("align %s: %d words, %d phones (%.0f s)", d.name, len(text.split()), len(ph), time.time() - t)


def aligned_labels(path: Path, n_frames: int) -> np.ndarray | None:
    """Soft viseme labels ``[n_frames, K]`` from an :func:`align_corpus` file (None without phones)."""
    z = json.loads(Path(path).read_text())
    if not z["phones"]:
        return None
    ev = [(s, VISEMES.index(_ARPA.get(p.split("(")[0].upper().rstrip("012"), "sil"))) for s, _, p in z["phones"]]
    return frame_labels(ev, n_frames, z["phones"][-1][1])


def evaluate_real(roots, align_dir: Path, head_path, look: int = 3, past: int = 4) -> dict:
    """The head on real speech: the corpus clips' own Whisper features (the token of each frame from
    the segment ending ``look`` frames after it, as the mouth predictor reads it) against the
    aligned phones' visemes; frame accuracy and the majority-class chance."""
    from ..motion.phones import VisemeHead
    from .mouth import lookahead_tokens
    head = VisemeHead(head_path)
    hits, ys = [], []
    per = {}
    for root in roots:
        for d in sorted(Path(root).iterdir()):
            f = Path(align_dir) / f"{d.name}.json"
            if not f.is_file() or not (d / "meta.json").is_file():
                continue
            from .mouth import clip_features
            feat = clip_features(d)
            n = json.loads((d / "meta.json").read_text())["n_frames"]
            y = aligned_labels(f, n)
            if y is None:
                continue
            tok = lookahead_tokens(feat, np.arange(n), look, past)[:, past]
            p = head.posteriors(tok)
            yt = y.argmax(1)
            h = p.argmax(1) == yt
            hits.append(h), ys.append(yt)
            per[d.name] = float(h.mean())
    h, y = np.concatenate(hits), np.concatenate(ys)
    return {"frames": int(h.size), "clips": len(per), "accuracy": float(h.mean()),
            "chance": float(np.bincount(y, minlength=K).max() / y.size), "per_clip": per,
            "per_class_recall": {VISEMES[c]: float(h[y == c].mean()) for c in range(K) if np.any(y == c)}}


# ------------------------------------------------------------------- ablation: the mouth with them

def clip_posteriors(c, head, look: int, past: int) -> np.ndarray:
    """``[n, past + look + 1, K]``: the head's posteriors on the tokens of frames ``t - past ..
    t + look`` of the segment ending ``look`` frames after each frame ``t`` of clip ``c`` (the
    segment the hop-1 mouth predictor reads; ``past`` up to ``N_TOK - 1 - look``)."""
    from .mouth import N_TOK
    if not 0 <= past <= N_TOK - 1 - look:
        raise ValueError(f"clip_posteriors: past must be in [0, {N_TOK - 1 - look}], got {past}")
    out = np.zeros((c.n, past + look + 1, head.n_classes), np.float32)
    lo = N_TOK - 1 - look - past
    for f0 in range(0, c.n, 256):
        fr = np.arange(f0, min(f0 + 256, c.n))
        out[f0:f0 + len(fr)] = head.posteriors(np.asarray(c.feat[fr + look][:, lo:], np.float32))
    return out


def extra_columns(post: np.ndarray, how: str) -> np.ndarray:
    """Ridge columns from posteriors ``[n, k, K]``: ``"post"`` the posteriors, ``"logp"`` their
    logarithm (floored at 1e-4) -> ``[n, k K]``."""
    if how == "logp":
        post = np.log(np.maximum(post, 1e-4))
    return post.reshape(post.shape[0], -1)


def ablate(train_roots, dev_roots, head_path, *, look: int = 3, lams=(1.0,), scales=(0.0, 0.5, 1.0, 2.0),
           hows=("post",), folds: int = 5, seed: int = 0, ppast: int = 4, only: bool = False) -> dict:
    """The mouth ridge (as shipped: 128 PCA dims of 8 tokens, hop 1) with and without the viseme
    posteriors of the same tokens appended (standardized, times ``scale`` the PCA columns' RMS;
    scale 0 = without). Mouth-opening r (canonical space, per clip, mean) by ``folds``-fold
    cross-validation by speaker over the training clips and on the DEV clips (fit on all training
    clips). Training targets use each clip's audio/video offset estimated once by the baseline
    (as ``train.mouth.fit``), the same for every arm. ``ppast``: posteriors of the ``ppast`` frames
    before each frame up to its lookahead; ``only``: the posteriors alone (no PCA columns)."""
    from ..motion.phones import VisemeHead
    from ..runners.base import weights_path
    from ..spec.head import load_basis
    from . import mouth as M
    open_vec = M.mouth_open_vector(load_basis().components)
    with np.load(weights_path("motion_stats.npz")) as z:
        mean, std = z["wfeat_mean"].astype(np.float32), z["wfeat_std"].astype(np.float32)
    train = M.load_clips(train_roots, open_vec, allow=("train",))
    dev = M.load_clips(dev_roots, open_vec, allow=("dev",))
    head = VisemeHead(head_path)
    rng = np.random.default_rng(seed)
    pca = M.fit_pca(train, mean, std, 128, rng)
    ref_amp = float(np.median([c.amp for c in train]))
    clips = train + dev
    Z = {c.name: M.design(M.lookahead_tokens(c.feat, np.arange(c.n), look, M.PAST), mean, std, pca) for c in clips}
    P = {c.name: clip_posteriors(c, head, look, ppast) for c in clips}
    rms = float(np.sqrt(np.mean(np.concatenate([Z[c.name] for c in train]).var(0))))

    def rows(c, X):
        fr, src = M.aligned_frames(c)
        return X[fr], c.exp[src] * (ref_amp / c.amp), np.full(fr.size, 1.0 / np.sqrt(fr.size), np.float32)

    def fit_eval(tr, te, E, lam):
        xs, ys, ws = zip(*(rows(c, E[c.name]) for c in tr))
        W, b = M.ridge(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), lam)
        out = {}
        for c in te:
            p = (E[c.name] @ W + b) @ open_vec
            out[c.name] = float(np.corrcoef(p[c.ok], c.open[c.ok])[0, 1])
        return out

    # audio/video offsets of the training clips from the baseline (lam 1), as train.mouth.fit
    base = {n: z for n, z in Z.items()}
    xs, ys, ws = zip(*(rows(c, base[c.name]) for c in train))
    W, b = M.ridge(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), 1.0)
    for c in train:
        c.shift = M.best_lag((base[c.name] @ W + b) @ open_vec, c.open, c.ok)
    fold_sets = [set(f.tolist()) for f in M.speaker_folds([c.name for c in train], folds, seed)]
    res = {"n_train": len(train), "n_dev": len(dev), "speakers": len({M.speaker_of(c.name) for c in train}),
           "arms": []}
    for how in hows:
        ex = {c.name: extra_columns(P[c.name], how) for c in clips}
        allx = np.concatenate([ex[c.name] for c in train])
        em, es = allx.mean(0), allx.std(0) + 1e-6
        for s in scales:
            if s == 0 and how != hows[0]:
                continue
            if s == 0:
                E = base
            elif only:
                E = {n: (ex[n] - em) / es for n in Z}
            else:
                E = {n: np.concatenate([Z[n], (ex[n] - em) / es * (s * rms)], 1) for n in Z}
            for lam in lams:
                kf = {}
                for fs in fold_sets:
                    tr = [c for i, c in enumerate(train) if i not in fs]
                    te = [c for i, c in enumerate(train) if i in fs]
                    kf.update(fit_eval(tr, te, E, lam))
                dv = fit_eval(train, dev, E, lam)
                arm = {"how": how if s else "none", "scale": s, "lam": lam,
                       "kfold_r": float(np.mean(list(kf.values()))), "dev_r": float(np.mean(list(dv.values()))),
                       "kfold_clips": kf, "dev_clips": dv}
                res["arms"].append(arm)
                log.info("ablate %s scale %.2g lam %.3g: k-fold r %.4f, dev r %.4f", arm["how"], s, lam,
                         arm["kfold_r"], arm["dev_r"])
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("data", help="synthesize the espeak-ng corpus and its Whisper tokens")
    a.add_argument("--out", required=True)
    a.add_argument("--minutes", type=float, default=20)
    a.add_argument("--stride", type=int, default=3)
    a.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("train", help="train the viseme head")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=6000)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--real", nargs="*", default=None, help="corpus roots of real training speech (with --align)")
    t.add_argument("--align", default=None, help="folder of `align` outputs for --real")
    e = sub.add_parser("eval", help="the head's accuracy on the held-out voices")
    e.add_argument("--data", required=True)
    e.add_argument("--head", default=None)
    r = sub.add_parser("align", help="transcribe and force-align corpus clips (real-speech phones)")
    r.add_argument("roots", nargs="+")
    r.add_argument("--out", required=True)
    q = sub.add_parser("eval-real", help="the head's accuracy on aligned real speech")
    q.add_argument("roots", nargs="+")
    q.add_argument("--align", required=True)
    q.add_argument("--head", default=None)
    b = sub.add_parser("ablate", help="the mouth ridge with and without the posteriors (k-fold, dev)")
    b.add_argument("--train", nargs="+", required=True)
    b.add_argument("--dev", nargs="+", required=True)
    b.add_argument("--head", default=None)
    b.add_argument("--look", type=int, default=3)
    b.add_argument("--lams", type=float, nargs="+", default=[1.0])
    b.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    b.add_argument("--how", nargs="+", default=["post"], choices=["post", "logp"])
    b.add_argument("--ppast", type=int, default=4, help="posteriors of this many frames before each frame")
    b.add_argument("--only", action="store_true", help="the posteriors alone (no Whisper PCA columns)")
    for p in (t, e, b, q):
        p.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.cmd == "data":
        make_data(Path(args.out), args.minutes, stride=args.stride, threads=args.threads)
        return 0
    if args.cmd == "align":
        align_corpus(args.roots, Path(args.out))
        return 0
    if args.cmd == "eval-real":
        from ..runners.base import weights_path
        res = evaluate_real(args.roots, Path(args.align), args.head or weights_path("motion_phones.npz"))
        print(f"real speech ({res['clips']} clips, {res['frames']} frames): accuracy {res['accuracy']:.3f} "
              f"(chance {res['chance']:.3f})")
        print("recall:", {k: round(v, 3) for k, v in res["per_class_recall"].items()})
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return 0
    if args.cmd == "ablate":
        from ..runners.base import weights_path
        res = ablate(args.train, args.dev, args.head or weights_path("motion_phones.npz"), look=args.look,
                     lams=tuple(args.lams), scales=tuple(args.scales), hows=tuple(args.how),
                     ppast=args.ppast, only=args.only)
        for a in res["arms"]:
            print(f"{a['how']:5s} scale {a['scale']:<4g} lam {a['lam']:<4g} k-fold r {a['kfold_r']:.4f}  dev r {a['dev_r']:.4f}")
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return 0
    if args.cmd == "train":
        real = real_tokens(args.real, Path(args.align)) if args.real else None
        res = train_head(Path(args.data), Path(args.out), hidden=args.hidden, steps=args.steps, threads=args.threads,
                         real=real)
    else:
        from ..runners.base import weights_path
        res = evaluate(Path(args.data), Path(args.head) if args.head else weights_path("motion_phones.npz"))
    print(f"test voices: accuracy {res['accuracy']:.3f} (chance {res['chance']:.3f}, {res['tokens']} tokens)")
    print("by distance from the segment end:", {k: round(v, 3) for k, v in res["by_dist"].items()})
    print("recall:", {k: round(v, 3) for k, v in res["per_class_recall"].items()})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
