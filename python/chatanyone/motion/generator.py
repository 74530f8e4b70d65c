"""Streaming audio-to-motion: :class:`MotionGenerator`.

Audio comes in arbitrary chunks of 16 kHz mono samples; motion comes out at 25 fps, one frame per
640 samples. Inside, windows of ``T`` frames (1 s) are generated once their audio plus a lookahead
of ``L`` frames (200 ms) is in, each conditioned on the last ``P`` frames of the previous window
(continuity), a style embedding and the expression intensity. Face motion is sampled first (DDIM
over the face denoiser), then body and hands conditioned on it (hierarchy). See ``design.md`` here.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ..audio.features import HOP, PAD, log_mel
from . import layout
from .layout import MotionFrames
from .sampler import cosine_alphas_cumprod, ddim_sample, ddim_timesteps

log = logging.getLogger("chatanyone")

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
MEL_PER_FRAME = 4
SILENCE_RAW = -20.0      # raw log-mel of padding; clamped up to the corpus floor like digital zeros


def _weights_dir(path=None) -> Path:
    if path is not None:
        return Path(path)
    from ..runners.base import weights_path
    return weights_path("motion_config.json").parent


def load_motion_clip(src) -> dict[str, np.ndarray]:
    """A reference motion clip as a dict of arrays: a ``motion.npz`` path, a corpus clip folder,
    a video file (its motion is extracted with the data pipeline: landmarks, head pose, expression;
    about 0.1 s per frame of video), a mapping with ``head``/``exp``/``eye`` (and optionally
    ``hands_ok``), or :class:`MotionFrames`."""
    from ..inputs import motion_clip_arrays  # one check for every style file (ValueError)

    if isinstance(src, MotionFrames):
        return src.as_dict()
    if isinstance(src, Mapping):
        return motion_clip_arrays(None, {k: np.asarray(v) for k, v in src.items()})
    if not isinstance(src, (str, os.PathLike)):
        raise TypeError(f"style must be None, a path, a mapping or MotionFrames, got {type(src).__name__}")
    p = Path(src)
    if p.is_file() and p.suffix.lower() != ".npz":
        return _motion_of_video(p)
    if p.is_dir():
        p = p / "motion.npz"
    if not p.is_file():
        raise FileNotFoundError(f"style: no motion clip at {src} (expected a motion.npz or a corpus clip folder)")
    return motion_clip_arrays(p)


def _motion_of_video(path: Path) -> dict[str, np.ndarray]:
    """Run the data pipeline (``prepare-data``'s two stages) on one video in a temporary folder."""
    import tempfile

    from ..data.corpus import ClipError, prepare_clip, write_motion

    log.info("style: extracting the motion of %s (about 0.1 s per frame)", path)
    with tempfile.TemporaryDirectory(prefix="chatanyone-style-") as d:
        try:
            prepare_clip(path, d)
            write_motion(d)
        except ClipError as exc:
            raise ValueError(f"style: cannot use {path} as a style reference: {exc}") from None
        with np.load(Path(d) / "motion.npz") as z:
            return {k: z[k] for k in z.files}


class MotionGenerator:
    """Speech in, per-frame motion out, streamed in windows.

    Args:
        style: reference motion clip whose speaking style to imitate (see :func:`load_motion_clip`);
            ``None``: the average style.
        intensity: expression-intensity scale, 1.0 = as the reference (or the average speaker);
            0.5 calmer, 2.0 more expressive, 0 a neutral face. Must be >= 0. The model is conditioned on the style
            reference's own intensity; this scale then multiplies the expression coefficients
            (relative to the neutral face), so it is an exact, explicit control.
        seed: random seed; the same seed and audio give the same motion, however the audio is chunked.
        steps: DDIM steps per window (default from the shipped config).
        guidance: classifier-free guidance scale on the audio (default from the config).
        hands: how often hands are shown, 0..1 (default: from ``style``, else 1.0).
        temperature: scale of the start noise of the expression (default: the config's); < 1 gives
            more average expression (less diversity, better lip sync: the mouth follows the audio
            more closely), > 1 more varied.
        head_temperature: the same for head pose, eyes and body (default: the config's, else 1.0):
            the part of the motion the audio decides least, where variety looks alive.
        hop: frames released per window, 1..T (default: the shipped config's). Each window is sampled over the full
            T frames with the audio up to ``hop + L`` frames ahead and only its first ``hop`` frames
            are kept, so a smaller hop lowers latency (see :attr:`lookahead_samples`) at the cost of
            more windows per second (compute ~ 25 / hop windows per second of speech).
        weights_dir: folder with ``motion_*.onnx``, ``motion_stats.npz``, ``motion_config.json``
            (default: the package's weights).
        providers: ONNX Runtime providers requested (see ``runners.base.choose_providers``).
        threads: ONNX Runtime intra-op threads per graph (default 1: the graphs are tiny, and one
            thread leaves the other cores to the renderer; 0: ONNX Runtime's default).
        body: also generate body and hands (False: zeros, faster).

    Streaming use (a Session)::

        gen = MotionGenerator(style=None, intensity=1.0, seed=0)
        gen.push_audio(chunk)                 # any length, float32 16 kHz mono; never blocks long
        while (f := gen.pop_frames(1)) is not None:
            render(f)                          # f: MotionFrames with one frame, f.start = its index
        gen.flush()                            # end of utterance: the tail (lookahead) is silence
        ...

    Frame ``t`` owns samples ``[640 t, 640 (t+1))``. Without :meth:`flush`, frame ``t`` is released
    once :attr:`lookahead_samples` samples beyond its own 640 are in (its window's end plus the
    model's 200 ms lookahead); after flush every pushed sample is covered (the last partial frame
    is padded with silence). Feed silence (zeros) to get idle motion when nobody speaks. Windows
    start at multiples of ``hop`` frames whatever the chunking, so results are deterministic.
    """

    def __init__(self, style=None, intensity: float = 1.0, seed: int = 0, steps: int | None = None,
                 guidance: float | None = None, hands: float | None = None, *, hop: int | None = None,
                 temperature: float | None = None, head_temperature: float | None = None,
                 weights_dir=None,
                 providers=None, threads: int = 1, body: bool = True):
        from ..runners.motion import BodyDenoiserRunner, FaceDenoiserRunner, StyleEncoderRunner

        if not intensity >= 0:
            raise ValueError(f"intensity must be >= 0, got {intensity!r}")
        wd = _weights_dir(weights_dir)
        self.cfg = json.loads((wd / "motion_config.json").read_text())
        with np.load(wd / "motion_stats.npz") as z:
            self.stats = {k: z[k] for k in z.files}
        c = self.cfg
        self.T, self.P, self.L = c["window"], c["prefix"], c["lookahead"]
        self.n_exp = c["n_exp"]
        self.df = layout.face_dim(self.n_exp)
        self.steps = int(steps if steps is not None else c["sampling"]["steps"])
        self.guidance = float(guidance if guidance is not None else c["sampling"]["guidance"])
        self.clip_x0 = c["sampling"].get("clip_x0")
        self.temperature = float(temperature if temperature is not None else c["sampling"].get("temperature", 1.0))
        self.head_temperature = float(head_temperature if head_temperature is not None
                                      else c["sampling"].get("head_temperature", 1.0))
        if not (self.temperature >= 0 and self.head_temperature >= 0):
            raise ValueError(f"temperatures must be >= 0, got {temperature!r}, {head_temperature!r}")
        # start-noise scale per face channel: head | expression | eyes
        self._face_temp = np.full(self.df, self.head_temperature, np.float32)
        self._face_temp[layout.HEAD_DIM:layout.HEAD_DIM + self.n_exp] = self.temperature
        self.hop = int(hop if hop is not None else c["sampling"].get("hop", self.T))
        if not 1 <= self.hop <= self.T:
            raise ValueError(f"hop must be in [1, {self.T}], got {hop!r}")
        self.seed = int(seed)
        self.intensity = float(intensity)
        self.ac = cosine_alphas_cumprod(c["n_train"])
        self.timesteps = ddim_timesteps(c["n_train"], self.steps)
        # audio features: "logmel" (the model reads log-mel directly) or "whisper" (Whisper tiny.en
        # encoder features of a short segment per window; ``audio/whisper.py``)
        self.audio_cfg = dict(c.get("audio") or {"kind": "logmel"})
        self.audio_kind = self.audio_cfg.get("kind", "logmel")
        if self.audio_kind == "whisper":
            from ..audio.whisper import shared_encoder
            self.C = int(self.audio_cfg["context"])
            self._wenc = shared_encoder(max(int(threads), 1), self.audio_cfg.get("compute_type", "int8"))
        elif self.audio_kind != "logmel":
            raise ValueError(f"motion_config.json: unknown audio kind {self.audio_kind!r}")
        self.face_net = FaceDenoiserRunner(wd / "motion_face.onnx", providers=providers, threads=threads)
        self.body_net = (BodyDenoiserRunner(wd / "motion_body.onnx", providers=providers, threads=threads)
                         if body and (wd / "motion_body.onnx").is_file() else None)
        self._style_net = StyleEncoderRunner(wd / "motion_style.onnx", providers=providers, threads=threads)
        self.set_style(style, hands=hands)
        # compute time of the last 1000 generated windows (bounded: a long session stays flat)
        self.window_ms: collections.deque[float] = collections.deque(maxlen=1000)
        self.reset()

    # ---------------------------------------------------------------------------------- controls
    def set_style(self, style=None, *, hands: float | None = None) -> None:
        """Change the style reference (takes effect from the next window)."""
        s = self.stats
        d_style = self.cfg["face"]["d_style"]
        self.style_log_intensity = 0.0
        hands_rate = 1.0
        if style is None:
            self.style_vec, self.style_keep = np.zeros((1, d_style), np.float32), 0.0
        else:
            clip = load_motion_clip(style)
            if "face_ok" in clip and np.any(clip["face_ok"]):  # untracked frames hold zeros
                sel = np.asarray(clip["face_ok"]) > 0
                clip = {k: (v[sel] if k in ("head", "exp", "eye") else v) for k, v in clip.items()}
            face = layout.pack_face(clip["head"], clip["exp"], clip["eye"])
            if face.shape[1] != self.df:
                raise ValueError(f"style: expected {self.n_exp} expression coefficients, got {clip['exp'].shape}")
            fn = ((face - s["face_mean"]) / s["face_std"]).astype(np.float32)
            chunks = [fn[i:i + 256] for i in range(0, len(fn), 256) if len(fn[i:i + 256]) >= 16] or [fn]
            emb = [self._style_net(ch[None]) for ch in chunks]
            w = np.array([len(ch) for ch in chunks], np.float32)
            self.style_vec = (np.sum([e * wi for e, wi in zip(emb, w)], 0) / w.sum()).astype(np.float32)
            self.style_keep = 1.0
            e = float(np.sqrt(np.mean(np.sum(clip["exp"].astype(np.float64) ** 2, -1))))
            self.style_log_intensity = float(np.log(max(e, 1e-6) / float(s["exp_energy_ref"])))
            if "hands_ok" in clip:
                hands_rate = float(np.mean(clip["hands_ok"]))
        self.hands_rate = float(hands if hands is not None else hands_rate)

    def set_intensity(self, intensity: float) -> None:
        """Expression-intensity scale (>= 0; 0 = neutral face) from the next window on."""
        if not intensity >= 0:
            raise ValueError(f"intensity must be >= 0, got {intensity!r}")
        self.intensity = float(intensity)

    def reset(self) -> None:
        """Forget all audio and motion (a new stream at frame 0; style and settings kept)."""
        self._pcm = np.zeros(PAD, np.float32)  # samples from (mel_done*160 - 120); zeros before 0
        self._n_samples = 0                     # samples pushed (and zero-padded by flush)
        self._mel = np.zeros((0, 80), np.float32)  # raw log-mel from _mel0
        self._mel0 = 0                           # mel frame index of _mel[0]
        self._mel_done = 0                       # mel frames computed
        self._mode = None                        # "audio" or "features"
        self._wav = np.zeros(0, np.float32)      # raw samples from _wav0 (whisper features)
        self._wav0 = 0
        self._eos = None                         # frame index where flushed audio ends
        self._next = 0                           # first frame not yet generated
        self._hist_face = np.zeros((0, self.df), np.float32)   # last <= P generated frames (normalized)
        self._hist_body = np.zeros((0, layout.BODY_VEC_DIM), np.float32)
        self._queue: list[MotionFrames] = []

    # ------------------------------------------------------------------------------------- input
    def push_audio(self, pcm: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples (any length, ``[S]``). Computes their log-mel (fast;
        no network runs here). Use ``chatanyone.audio.features.to_mono_16k`` for other formats."""
        a = np.asarray(pcm, np.float32).reshape(-1)
        if self._mode == "features":
            raise ValueError("push_audio: this stream was fed features; call reset() first")
        self._mode = "audio"
        if a.size == 0:
            return
        if not np.all(np.isfinite(a)):
            raise ValueError("push_audio: samples contain NaN or infinite values")
        self._eos = None
        self._pcm = np.concatenate([self._pcm, a])
        if self.audio_kind == "whisper":
            self._wav = np.concatenate([self._wav, a])
        self._n_samples += a.size
        # mel frame i needs samples up to i*160+280; compute one extra hop and drop it (exactness)
        n_ready = self._n_samples // HOP - 1
        self._compute_mel(n_ready, final=False)

    def push_audio_features(self, mel: np.ndarray) -> None:
        """Append precomputed raw log-mel frames ``[n, 80]`` (``chatanyone.audio.features.log_mel``,
        100 Hz; 4 per video frame), e.g. a corpus clip's ``mel.npy``."""
        m = np.asarray(mel, np.float32)
        if m.ndim != 2 or m.shape[1] != 80:
            raise ValueError(f"push_audio_features: mel must be [n, 80], got {m.shape}")
        if self._mode == "audio":
            raise ValueError("push_audio_features: this stream was fed audio; call reset() first")
        if self.audio_kind == "whisper":
            raise ValueError("push_audio_features: this model reads Whisper features of the audio; "
                             "push_audio() the 16 kHz samples instead")
        self._mode = "features"
        self._eos = None
        self._mel = np.concatenate([self._mel, m])
        self._mel_done += m.shape[0]

    def push_silence(self, n_frames: int) -> None:
        """Append ``n_frames`` video frames of silence (idle motion)."""
        if self._mode == "features":
            self.push_audio_features(np.full((n_frames * MEL_PER_FRAME, 80), SILENCE_RAW, np.float32))
        else:
            self.push_audio(np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32))

    def flush(self) -> None:
        """End of an utterance: the audio is padded with zeros to a whole frame and the lookahead
        beyond it is taken as silence, so every pushed sample gets its frames. More audio may follow
        (it continues the same timeline)."""
        if self._mode == "features":
            n_frames = -(-self._mel_done // MEL_PER_FRAME)
            pad = n_frames * MEL_PER_FRAME - self._mel_done
            if pad:
                self._mel = np.concatenate([self._mel, np.full((pad, 80), SILENCE_RAW, np.float32)])
                self._mel_done += pad
        else:
            rem = (-self._n_samples) % SAMPLES_PER_FRAME
            if rem:
                self._pcm = np.concatenate([self._pcm, np.zeros(rem, np.float32)])
                if self.audio_kind == "whisper":
                    self._wav = np.concatenate([self._wav, np.zeros(rem, np.float32)])
                self._n_samples += rem
            self._compute_mel(self._n_samples // HOP, final=True)
            n_frames = self._n_samples // SAMPLES_PER_FRAME
        self._eos = n_frames

    def _compute_mel(self, n_ready: int, final: bool) -> None:
        i0 = self._mel_done
        if n_ready <= i0:
            return
        # _pcm[0] is sample i0*160 - 120
        if final:
            seg = self._pcm[PAD:PAD + (n_ready - i0) * HOP]
            m = log_mel(seg, left_context=self._pcm[:PAD])
        else:
            seg = self._pcm[PAD:PAD + (n_ready - i0 + 1) * HOP]
            m = log_mel(seg, left_context=self._pcm[:PAD])[:-1]
        self._mel = np.concatenate([self._mel, m])
        self._mel_done = n_ready
        self._pcm = self._pcm[(n_ready - i0) * HOP:]  # keep 120 samples of left context + the rest

    # ------------------------------------------------------------------------------------ output
    @property
    def lookahead_samples(self) -> int:
        """Samples needed beyond a frame's own 640 before that frame can be generated (worst case):
        ``(hop - 1 + L) * 640 + 160`` (the last 160: the log-mel's right context); 18080 (1.13 s)
        with the defaults, 5280 (330 ms) with hop=4. After :meth:`flush` nothing more is needed."""
        return (self.hop - 1 + self.L) * SAMPLES_PER_FRAME + HOP

    @property
    def frames_generated(self) -> int:
        """Index of the first frame not yet generated."""
        return self._next

    def window_ready(self) -> bool:
        """Whether :meth:`generate_window` would produce frames now."""
        avail = self._mel_done // MEL_PER_FRAME
        if self._eos is not None:
            return self._next < self._eos
        return avail >= self._next + self.hop + self.L

    def generate_window(self) -> MotionFrames | None:
        """Generate the next window if its audio (plus lookahead) is in, else return None.

        Blocks for the window's compute (``steps`` face + body network evaluations, a few ms each
        on a CPU core). Returns the window's frames (``T``, or fewer at the end of a flushed
        utterance); they are also queued for :meth:`pop_frames`.
        """
        if not self.window_ready():
            return None
        t0 = time.perf_counter()
        w0 = self._next
        n_out = self.hop if self._eos is None else min(self.hop, self._eos - w0)
        # audio up to hop + L frames ahead only (silence after): deterministic under any chunking
        audio = self._window_audio(w0, w0 + n_out + self.L)  # [1, N, 320]
        scal = self.style_log_intensity  # the model's intensity condition; the user scale is applied after
        prefix_f, pk = self._prefix(self._hist_face)
        rng = np.random.default_rng([self.seed, w0])
        xf = (self._face_temp * rng.standard_normal((1, self.T, self.df))).astype(np.float32)
        cfg_on = self.guidance != 1.0
        b = 2 if cfg_on else 1
        N = self.P + self.T + self.L
        ak = np.zeros((b, N), np.float32)
        # audio positions the model may trust: up to hop + L frames ahead; the rest is "not heard
        # yet" (null tokens), unless the utterance has ended there (real silence) or the lookahead
        # is silent (then more silence is the likely continuation: calm idle)
        known = self.P + n_out + self.L
        if self.audio_kind == "whisper":  # features exist for the heard positions only (as trained)
            known = self.P + self.hop + self.L
        elif (self._eos is not None and self._eos <= w0 + n_out + self.L) or \
                self._lookahead_silent(w0 + n_out, w0 + n_out + self.L):
            known = N
        ak[0, :known] = 1.0  # row 1 (guidance): no audio at all
        ones = np.ones(b, np.float32)
        aud_b = np.repeat(audio, b, 0)
        face_feeds = dict(audio=aud_b, audio_keep=ak, prefix=np.repeat(prefix_f, b, 0), prefix_keep=ones * pk,
                          style=np.repeat(self.style_vec, b, 0), style_keep=ones * self.style_keep,
                          scalars=np.full((b, 1), scal, np.float32))

        def face_den(x, t):
            out = self.face_net(np.repeat(x, b, 0), np.full(b, t, np.float32), **face_feeds)
            return (out[:1], out[1:]) if cfg_on else out

        face_n = ddim_sample(face_den, xf, self.timesteps, self.ac, prediction="v", guidance=self.guidance,
                             clip_x0=self.clip_x0)  # [1, T, Df]
        if self.body_net is not None:
            prefix_b, pkb = self._prefix(self._hist_body)
            fcond = np.concatenate([prefix_f if pk else np.zeros_like(prefix_f), face_n], 1)  # [1, P+T, Df]
            xb = (self.head_temperature * rng.standard_normal((1, self.T, layout.BODY_VEC_DIM))).astype(np.float32)
            body_feeds = dict(audio=aud_b, audio_keep=ak, prefix=np.repeat(prefix_b, b, 0),
                              prefix_keep=ones * pkb, face=np.repeat(fcond, b, 0),
                              scalars=np.repeat(np.array([[scal, 2 * self.hands_rate - 1]], np.float32), b, 0))

            def body_den(x, t):
                out = self.body_net(np.repeat(x, b, 0), np.full(b, t, np.float32), **body_feeds)
                return (out[:1], out[1:]) if cfg_on else out

            body_n = ddim_sample(body_den, xb, self.timesteps, self.ac, prediction="v", guidance=self.guidance,
                                 clip_x0=self.clip_x0)
        else:
            body_n = None
        face_n = self._smooth_join(face_n[0], self._hist_face)
        if body_n is not None:
            body_n = self._smooth_join(body_n[0], self._hist_body, skip_last=layout.HANDS_OK_DIM)[None]
        face_n, body_n = face_n[:n_out], (None if body_n is None else body_n[0, :n_out])
        frames = self._denormalize(w0, face_n, body_n)
        self._hist_face = np.concatenate([self._hist_face, face_n])[-self.P:]
        if body_n is not None:
            self._hist_body = np.concatenate([self._hist_body, body_n])[-self.P:]
        self._next = w0 + n_out
        self._trim_mel()
        self._queue.append(frames)
        self.window_ms.append((time.perf_counter() - t0) * 1000.0)
        return frames

    def pop_frames(self, max_frames: int | None = None) -> MotionFrames | None:
        """Up to ``max_frames`` (None: all) generated frames in order, generating windows as their
        audio allows; None when no frame is ready yet (push more audio or flush). May block for
        one window's compute."""
        if not self._queue:
            self.generate_window()
        if not self._queue:
            return None
        first = self._queue[0]
        if max_frames is None or max_frames >= len(first):
            self._queue.pop(0)
            return first
        self._queue[0] = first[max_frames:]
        return first[:max_frames]

    def generate_all(self) -> MotionFrames | None:
        """Every frame the pushed audio allows now, concatenated (offline use, evaluation)."""
        parts = []
        while self.generate_window() is not None:
            pass
        while self._queue:
            parts.append(self._queue.pop(0))
        return MotionFrames.concat(parts) if parts else None

    # ---------------------------------------------------------------------------------- internals
    JOIN_TAU = 3.0  # frames: how fast a join's residual offset decays

    def _smooth_join(self, x: np.ndarray, hist: np.ndarray, skip_last: int = 0) -> np.ndarray:
        """Remove the seam at a window join: the first frame's offset from the previous window's
        linear extrapolation decays over a few frames (``x [T, D]`` normalized; binary channels
        at the end are left alone). The model already sees the prefix; this takes out the rest."""
        if hist.shape[0] < 2:
            return x
        d = x.shape[1] - skip_last
        expect = hist[-1, :d] + (hist[-1, :d] - hist[-2, :d])
        off = x[0, :d] - expect
        w = np.exp(-np.arange(x.shape[0]) / self.JOIN_TAU)[:, None].astype(np.float32)
        out = x.copy()
        out[:, :d] -= w * off[None]
        return out

    def _prefix(self, hist: np.ndarray) -> tuple[np.ndarray, float]:
        if hist.shape[0] == 0:
            return np.zeros((1, self.P, hist.shape[1]), np.float32), 0.0
        if hist.shape[0] < self.P:  # a short first utterance: repeat its first frame
            hist = np.concatenate([np.repeat(hist[:1], self.P - hist.shape[0], 0), hist])
        return hist[None].astype(np.float32), 1.0

    SILENCE_NATS = 1.0  # mean log-mel above the corpus floor under which a frame counts as silent

    def _lookahead_silent(self, f0: int, f1: int) -> bool:
        """Whether video frames ``[f0, f1)`` (the window's lookahead) are all silent."""
        lo, hi = f0 * MEL_PER_FRAME - self._mel0, f1 * MEL_PER_FRAME - self._mel0
        m = self._mel[max(lo, 0):max(hi, 0)]
        if m.shape[0] < hi - lo:
            return False
        e = (np.maximum(m, self.stats["mel_floor"]) - self.stats["mel_floor"]).mean(1)
        return bool(np.all(e < self.SILENCE_NATS))

    def _window_audio(self, w0: int, upto: int) -> np.ndarray:
        if self.audio_kind == "whisper":
            return self._window_whisper(w0)
        s = self.stats
        N = self.P + self.T + self.L
        lo, hi = (w0 - self.P) * MEL_PER_FRAME, (w0 + self.T + self.L) * MEL_PER_FRAME
        raw = np.full((hi - lo, 80), SILENCE_RAW, np.float32)
        a, b = max(lo, self._mel0), min(hi, self._mel0 + self._mel.shape[0], upto * MEL_PER_FRAME)
        if self._eos is not None:
            b = min(b, self._eos * MEL_PER_FRAME)
        if b > a:
            raw[a - lo:b - lo] = self._mel[a - self._mel0:b - self._mel0]
        norm = (np.maximum(raw, s["mel_floor"]) - s["mel_mean"]) / s["mel_std"]
        return norm.reshape(1, N, MEL_PER_FRAME * 80).astype(np.float32)

    def _window_whisper(self, w0: int) -> np.ndarray:
        """``[1, N, 768]``: normalized Whisper features of the segment from ``C`` frames before the
        prefix to the window's last heard frame (``hop + L`` frames in); zeros past it (not heard:
        the model reads null tokens there). Samples before 0 or after the flushed end are silence."""
        from ..audio.whisper import FEAT_DIM, segment_features
        N = self.P + self.T + self.L
        n_tok = self.P + self.hop + self.L
        f_lo, f_hi = w0 - self.P - self.C, w0 + self.hop + self.L
        s_lo = f_lo * SAMPLES_PER_FRAME
        seg = np.zeros((f_hi - f_lo) * SAMPLES_PER_FRAME, np.float32)
        a = max(s_lo, self._wav0)
        b = min(f_hi * SAMPLES_PER_FRAME, self._wav0 + self._wav.size)
        if self._eos is not None:
            b = min(b, self._eos * SAMPLES_PER_FRAME)
        if b > a:
            seg[a - s_lo:b - s_lo] = self._wav[a - self._wav0:b - self._wav0]
        feat = segment_features(self._wenc, seg, n_tok)
        out = np.zeros((1, N, FEAT_DIM), np.float32)
        out[0, :n_tok] = (feat - self.stats["wfeat_mean"]) / self.stats["wfeat_std"]
        return out

    def _trim_mel(self) -> None:
        if self.audio_kind == "whisper":
            keep = max((self._next - self.P - self.C) * SAMPLES_PER_FRAME, 0)
            if keep > self._wav0:
                self._wav = self._wav[keep - self._wav0:]
                self._wav0 = keep
        keep_from = max((self._next - self.P) * MEL_PER_FRAME, 0)
        drop = keep_from - self._mel0
        if drop > 0:
            self._mel = self._mel[drop:]
            self._mel0 = keep_from

    def _denormalize(self, w0: int, face_n: np.ndarray, body_n: np.ndarray | None) -> MotionFrames:
        s = self.stats
        face = face_n * s["face_std"] + s["face_mean"]
        head, exp, eye = layout.unpack_face(face, self.n_exp)
        exp = exp * self.intensity
        n = face.shape[0]
        if body_n is None:
            body, hands, ok = (np.zeros((n, 8, 2), np.float32), np.zeros((n, 2, 21, 2), np.float32),
                               np.zeros((n, 2), np.float32))
        else:
            raw = body_n * s["body_std"] + s["body_mean"]
            raw[:, -2:] = body_n[:, -2:] * 0.5 + 0.5
            body, hands, ok = layout.unpack_body(raw)
            hands = hands * ok[:, :, None, None]
        f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
        return MotionFrames(w0, f32(head), f32(exp), f32(eye), f32(body), f32(hands), f32(ok))
