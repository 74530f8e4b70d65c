"""Streaming audio-to-motion: :class:`MotionGenerator`, the composition of the motion stage.

Audio comes in arbitrary chunks of 16 kHz mono samples; motion comes out at 25 fps, one frame per
640 samples (``spec/timeline.py``). Three parts, one job each:

- :class:`~.frontend.AudioFrontEnd` buffers the audio and makes each window's audio tokens;
- :class:`~.scheduler.WindowScheduler` decides which window is next and what it releases, keeps
  the prefix history and joins windows;
- :func:`~.window.sample_window` samples one window (face, then body conditioned on it), a pure
  function; :func:`~.window.to_motion_frames` makes typed :class:`MotionFrames` of it.

The model's layout (window sizes, prediction type, audio front end, sampling defaults) is read from
``motion_config.json`` as a :class:`~chatanyone.spec.motion_layout.MotionSpec`. See ``design.md``.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ..spec import motion_layout as layout
from ..spec.motion_layout import MotionFrames, MotionSpec
from ..spec.timeline import HOP, SAMPLES_PER_FRAME
from .frontend import AudioFrontEnd
from .sampler import cosine_alphas_cumprod, ddim_timesteps
from .scheduler import WindowScheduler
from .window import SamplingSettings, WindowConditions, sample_window, to_motion_frames

log = logging.getLogger("chatanyone")


def _weights_dir(path=None) -> Path:
    if path is not None:
        return Path(path)
    from ..runners.base import weights_path
    return weights_path("motion_config.json").parent


def load_motion_clip(src) -> dict[str, np.ndarray]:
    """A reference motion clip as a dict of arrays: a ``motion.npz`` path, a corpus clip folder,
    a mapping with ``head``/``exp``/``eye`` (and optionally ``hands_ok``), or :class:`MotionFrames`;
    checked by ``chatanyone.inputs.motion_clip_arrays`` (ValueError naming what is wrong).

    A video is refused with a ``ValueError`` saying how to turn it into a motion clip first
    (``chatanyone.data.corpus.video_motion``, or ``chatanyone render --style VIDEO``, which does
    it): extracting motion runs the offline data pipeline, which the run-time path does not load.
    """
    from ..inputs import motion_clip_arrays  # one check for every style file (ValueError)

    if isinstance(src, MotionFrames):
        return src.as_dict()
    if isinstance(src, Mapping):
        return motion_clip_arrays(None, {k: np.asarray(v) for k, v in src.items()})
    if not isinstance(src, (str, os.PathLike)):
        raise TypeError(f"style must be None, a path, a mapping or MotionFrames, got {type(src).__name__}")
    p = Path(src)
    if p.is_file() and p.suffix.lower() != ".npz":
        raise ValueError(f"style: {src} is not a motion clip (.npz). To use a video as the style "
                         "reference, extract its motion first: chatanyone.data.corpus.video_motion("
                         "video, 'style.npz') (the `chatanyone render --style VIDEO` command does this)")
    if p.is_dir():
        p = p / "motion.npz"
    if not p.is_file():
        raise FileNotFoundError(f"style: no motion clip at {src} (expected a motion.npz or a corpus clip folder)")
    return motion_clip_arrays(p)


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
        mouth: predict the lips and jaw deterministically from the audio (``mouth.py``) and release
            frames one at a time with a short lookahead (see :attr:`lookahead_samples`); the face
            model still samples head, brows, eyes and the rest of the face, a window every ``hop``
            frames. ``None`` (default): when the weights folder has ``motion_mouth.npz``; ``False``:
            the face model's own mouth, released per window as before.

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
                 providers=None, threads: int = 1, body: bool = True, mouth: bool | None = None):
        from ..runners.motion_graphs import BodyDenoiserRunner, FaceDenoiserRunner, StyleEncoderRunner

        if not intensity >= 0:
            raise ValueError(f"intensity must be >= 0, got {intensity!r}")
        wd = _weights_dir(weights_dir)
        self.spec, self.cfg = MotionSpec.load(wd)
        with np.load(wd / "motion_stats.npz") as z:
            self.stats = {k: z[k] for k in z.files}
        spec, sp = self.spec, self.spec.sampling
        self.T, self.P, self.L = spec.window, spec.prefix, spec.lookahead
        self.n_exp = spec.n_exp
        self.df = spec.face_dim
        self.steps = int(steps if steps is not None else sp.steps)
        self.guidance = float(guidance if guidance is not None else sp.guidance)
        self.clip_x0 = sp.clip_x0
        self.temperature = float(temperature if temperature is not None else sp.temperature)
        self.head_temperature = float(head_temperature if head_temperature is not None else sp.head_temperature)
        if not (self.temperature >= 0 and self.head_temperature >= 0):
            raise ValueError(f"temperatures must be >= 0, got {temperature!r}, {head_temperature!r}")
        # start-noise scale per face channel: head | expression | eyes
        face_temp = np.full(self.df, self.head_temperature, np.float32)
        face_temp[layout.HEAD_DIM:layout.HEAD_DIM + self.n_exp] = self.temperature
        self.hop = int(hop if hop is not None else (sp.hop or self.T))
        if not 1 <= self.hop <= self.T:
            raise ValueError(f"hop must be in [1, {self.T}], got {hop!r}")
        self.seed = int(seed)
        self.intensity = float(intensity)
        self.sampling = SamplingSettings(
            timesteps=ddim_timesteps(spec.n_train, self.steps), alphas_cumprod=cosine_alphas_cumprod(spec.n_train),
            prediction=spec.prediction, guidance=self.guidance, clip_x0=self.clip_x0,
            face_temperature=face_temp, body_temperature=self.head_temperature)
        self.audio_kind = spec.audio.kind
        self.C = spec.audio.context
        self.frontend = AudioFrontEnd(spec, self.stats, hop=self.hop, threads=threads)
        self.scheduler = WindowScheduler(self.T, self.P, self.L, self.hop, self.df, layout.BODY_VEC_DIM)
        self.face_net = FaceDenoiserRunner(wd / "motion_face.onnx", providers=providers, threads=threads)
        self.body_net = (BodyDenoiserRunner(wd / "motion_body.onnx", providers=providers, threads=threads)
                         if body and (wd / "motion_body.onnx").is_file() else None)
        self._style_net = StyleEncoderRunner(wd / "motion_style.onnx", providers=providers, threads=threads)
        self.mouth = None
        self.mouth_gate = True  # the mouth rests in digital silence; False only for ablations
        mp = wd / "motion_mouth.npz"
        if mouth or (mouth is None and mp.is_file() and self.audio_kind == "whisper"):
            if self.audio_kind != "whisper" or not mp.is_file():
                raise ValueError(f"mouth=True needs a Whisper motion model and {mp}")
            from .mouth import MouthPredictor
            self.mouth = MouthPredictor(mp)
            if self.mouth.n_exp != self.n_exp:
                raise ValueError(f"{mp}: {self.mouth.n_exp} expression coefficients, the face model has {self.n_exp}")
            if self.mouth.seg < max(self.P, self.mouth.past) + self.mouth.hop + self.mouth.look:
                raise ValueError(f"{mp}: segment of {self.mouth.seg} frames is too short for its layout")
        self.set_style(style, hands=hands)
        # compute time of the last 1000 generated windows (bounded: a long session stays flat)
        self.window_ms: collections.deque[float] = collections.deque(maxlen=1000)
        self._pending: MotionFrames | None = None  # mouth mode: the face model's frames not yet released
        self._next = 0                              # mouth mode: first frame not yet released

    # ---------------------------------------------------------------------------------- controls
    def set_style(self, style=None, *, hands: float | None = None) -> None:
        """Change the style reference (takes effect from the next window). Blocks for the style
        encoder (a few ms per 256 frames of reference)."""
        s = self.stats
        self.style_log_intensity = 0.0
        self.mouth_gain = 1.0
        hands_rate = 1.0
        if style is None:
            self.style_vec, self.style_keep = np.zeros((1, self.spec.d_style), np.float32), 0.0
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
            if self.mouth is not None:  # the reference speaker's mouth amplitude (the predictor's is the median's)
                amp = float(np.std(np.asarray(clip["exp"], np.float32) @ self.mouth.open_vec))
                self.mouth_gain = float(np.clip(amp / self.mouth.ref_amp, 0.5, 2.0)) if amp > 0 else 1.0
        self.hands_rate = float(hands if hands is not None else hands_rate)

    def set_intensity(self, intensity: float) -> None:
        """Expression-intensity scale (>= 0; 0 = neutral face) from the next window on."""
        if not intensity >= 0:
            raise ValueError(f"intensity must be >= 0, got {intensity!r}")
        self.intensity = float(intensity)

    def reset(self) -> None:
        """Forget all audio and motion (a new stream at frame 0; style and settings kept)."""
        self.frontend.reset()
        self.scheduler.reset()
        self._pending: MotionFrames | None = None  # mouth mode: the face model's frames not yet released
        self._next = 0                              # mouth mode: first frame not yet released

    # ------------------------------------------------------------------------------------- input
    def push_audio(self, pcm: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples (any length, ``[S]``). Fast: no network runs here
        (the log-mel front end computes its features). Use
        ``chatanyone.audio.features.to_mono_16k`` for other formats."""
        self.frontend.push_audio(np.asarray(pcm, np.float32).reshape(-1))

    def push_audio_features(self, mel: np.ndarray) -> None:
        """Append precomputed raw log-mel frames ``[n, 80]`` (``chatanyone.audio.features.log_mel``,
        100 Hz; 4 per video frame), e.g. a corpus clip's ``mel.npy`` (log-mel models only)."""
        self.frontend.push_features(np.asarray(mel, np.float32))

    def push_silence(self, n_frames: int) -> None:
        """Append ``n_frames`` video frames of silence (idle motion)."""
        self.frontend.push_silence(n_frames)

    def flush(self) -> None:
        """The audio pushed so far ends here (the end of an utterance, or of a stretch of silence a
        Session filled in): it is padded with zeros to a whole frame and the lookahead beyond it is
        taken as silence, so every pushed sample gets its frames. More audio may follow (it
        continues the same timeline and lifts the end). The end is recorded once, in the audio
        front end (:attr:`~.frontend.AudioFrontEnd.eos`); the scheduler reads it from there."""
        self.frontend.flush()

    # ------------------------------------------------------------------------------------ output
    @property
    def lookahead_samples(self) -> int:
        """Samples needed beyond a frame's own 640 before that frame can be generated (worst case).
        With the mouth predictor (the default when shipped): ``(mouth.hop - 1 + mouth.look) * 640 +
        160`` = 2080 (130 ms; the first frame after 170 ms of speech). Without it (``mouth=False``):
        ``(hop - 1 + L) * 640 + 160`` (the last 160: the audio front end's right context): 9120
        (570 ms) with the config's hop 10 and L 5, 5280 (330 ms) with hop=4. After :meth:`flush`
        nothing more is needed."""
        if self.mouth is not None:
            return (self.mouth.hop - 1 + self.mouth.look) * SAMPLES_PER_FRAME + HOP
        return (self.hop - 1 + self.L) * SAMPLES_PER_FRAME + HOP

    @property
    def frames_generated(self) -> int:
        """Index of the first frame not yet generated."""
        return self._next if self.mouth is not None else self.scheduler.next

    def window_ready(self) -> bool:
        """Whether :meth:`generate_window` would produce frames now."""
        if self.mouth is not None:
            eos = self.frontend.eos
            if eos is not None:
                return self._next < eos
            return self.frontend.frames_ready >= self._next + self._chunk_frames() + self.mouth.look
        return self.scheduler.ready(self.frontend.frames_ready, self.frontend.eos)

    def generate_window(self) -> MotionFrames | None:
        """Generate the next window if its audio (plus lookahead) is in, else return None.

        Blocks for the window's compute (``steps`` face + body network evaluations, a few ms each
        on a CPU core). Returns the window's released frames (``hop``, or fewer at the end of a
        flushed utterance); they are also queued for :meth:`pop_frames`.
        """
        if not self.window_ready():
            return None
        if self.mouth is not None:
            return self._generate_chunk()
        t0 = time.perf_counter()
        sch, fe = self.scheduler, self.frontend
        w0, n_out = sch.plan(fe.eos)
        frames = self._sample_window(w0, n_out, fe.tokens(w0, n_out), fe.known_positions(w0, n_out),
                                     self.intensity)
        fe.trim(sch.next)
        sch.queue.append(frames)
        self.window_ms.append((time.perf_counter() - t0) * 1000.0)
        return frames

    def _sample_window(self, w0: int, n_out: int, audio: np.ndarray, known: int,
                       intensity: float) -> MotionFrames:
        """Sample the window starting at frame ``w0`` from its audio tokens ``[1, P+T+L, D]``
        (``known`` of them heard), the scheduler's prefix and the style, join it to the stream and
        return its first ``n_out`` frames de-normalized (expression scaled by ``intensity``)."""
        sch = self.scheduler
        prefix_f, pk = sch.prefix_face()
        prefix_b, pkb = sch.prefix_body()
        cond = WindowConditions(
            audio=audio, known=known, prefix_face=prefix_f, prefix_face_keep=pk, prefix_body=prefix_b,
            prefix_body_keep=pkb, style=self.style_vec, style_keep=self.style_keep,
            style_log_intensity=self.style_log_intensity, hands_rate=self.hands_rate)
        face_n, body_n = sample_window(self.face_net, self.body_net, cond, self.sampling,
                                       window=self.T, seed=[self.seed, w0])
        face_n, body_n = sch.commit(face_n[0], None if body_n is None else body_n[0], n_out,
                                    skip_body=layout.HANDS_OK_DIM)
        return to_motion_frames(w0, face_n, body_n, self.stats, self.n_exp, intensity)

    # ------------------------------------------------------------------------------ mouth mode
    def _chunk_frames(self) -> int:
        """Mouth mode: frames in the next released chunk (the predictor's hop, cut at the face
        window's end and at a flushed end)."""
        c0, p = self._next, self._pending
        end = c0 + self.hop if p is None or c0 >= p.start + len(p) else p.start + len(p)
        if self.frontend.eos is not None:
            end = min(end, self.frontend.eos)
        return max(min(self.mouth.hop, end - c0), 0)

    def _generate_chunk(self) -> MotionFrames:
        """Mouth mode: release the next ``mouth.hop`` frames. Their audio segment (``seg`` frames up to
        ``look`` frames past the chunk) is encoded once; it gives the mouth predictor its tokens and, at
        the start of a face window (every ``hop`` frames), the face model its audio, heard up to the
        same point (the rest of the window is "not heard yet"). Head, eyes, brows and body come from
        that window; the lips and jaw from the predictor (:func:`~.mouth.blend`)."""
        from ..audio.whisper import FEAT_DIM, segment_features
        from .mouth import blend
        t0 = time.perf_counter()
        m, sch, fe = self.mouth, self.scheduler, self.frontend
        c0 = self._next
        n = self._chunk_frames()
        e = c0 + n + m.look
        n_tok = max(self.P, m.past) + n + m.look
        feats = segment_features(fe._wenc, fe.samples(e - m.seg, e), n_tok)  # [n_tok, 768] raw
        if self._pending is None or c0 >= self._pending.start + len(self._pending):
            w0, n_out = sch.plan(fe.eos)  # w0 == c0: face windows start where the released frames are
            heard = self.P + n + m.look
            audio = np.zeros((1, self.spec.tokens, FEAT_DIM), np.float32)
            audio[0, :heard] = (feats[-heard:] - self.stats["wfeat_mean"]) / self.stats["wfeat_std"]
            self._pending = self._sample_window(w0, n_out, audio, heard, 1.0)
        p = self._pending
        part = p[c0 - p.start:c0 - p.start + n]
        mouth_exp = m.predict_segment(feats, n)
        # digital silence around a frame: the mouth rests; a style reference scales the motion
        w = self._voiced(c0, n, m.look) if self.mouth_gate else np.ones(n, np.float32)
        mouth_exp = m.rest + (w * self.mouth_gain)[:, None] * (mouth_exp - m.rest)
        part.exp = np.ascontiguousarray(blend(part.exp, mouth_exp, m.A) * self.intensity, np.float32)
        self._next = c0 + n
        fe.trim(self._next, back=m.seg)
        sch.queue.append(part)
        self.window_ms.append((time.perf_counter() - t0) * 1000.0)
        return part

    VOICED_DBFS = (-70.0, -55.0)  # frame RMS level: silent below the first, voiced above the second

    def _voiced(self, c0: int, n: int, look: int) -> np.ndarray:
        """``[n]`` in [0, 1] for frames ``c0 .. c0+n-1``: 0 where every frame from one before to
        ``look`` after is (near) digital silence (RMS below -70 dBFS; a quiet room is about -60 to
        -40), 1 where any is louder than -55 dBFS, linear in dB between. Samples not pushed yet or
        after a flushed end count as silent."""
        lo_f, hi_f = max(c0 - 1, 0), c0 + n + look
        x = self.frontend.samples(lo_f, hi_f).reshape(hi_f - lo_f, SAMPLES_PER_FRAME)
        x = x.astype(np.float64)
        db = 10.0 * np.log10(np.mean(x * x, 1) + 1e-20)
        s0, s1 = self.VOICED_DBFS
        out = np.empty(n, np.float32)
        for i in range(n):
            t = c0 + i
            out[i] = np.clip((db[max(t - 1, 0) - lo_f:t + look + 1 - lo_f].max() - s0) / (s1 - s0), 0.0, 1.0)
        return out

    def pop_frames(self, max_frames: int | None = None) -> MotionFrames | None:
        """Up to ``max_frames`` (None: all of the oldest window's) generated frames in order,
        generating a window when none is queued and its audio allows; None when no frame is ready
        yet (push more audio or flush). May block for one window's compute."""
        if not self.scheduler.queue:
            self.generate_window()
        return self.scheduler.pop(max_frames)

    def generate_all(self) -> MotionFrames | None:
        """Every frame the pushed audio allows now, concatenated (offline use, evaluation)."""
        while self.generate_window() is not None:
            pass
        parts = []
        while (f := self.scheduler.pop()) is not None:
            parts.append(f)
        return MotionFrames.concat(parts) if parts else None
