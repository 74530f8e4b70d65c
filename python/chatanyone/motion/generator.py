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
from ..spec.timeline import SAMPLES_PER_FRAME
from .blink import BlinkSchedule, lid_basis
from .frontend import AudioFrontEnd
from .sampler import cosine_alphas_cumprod, ddim_timesteps
from .scheduler import WindowScheduler
from .vad import SpeechGate, frame_levels
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
            ``None``: the average style. Besides conditioning the face model, its mouth-opening,
            head-rotation and expression spreads set the generated ones (:meth:`set_style`).
        intensity: expression-intensity scale, 1.0 = as the reference (or the average speaker);
            0.5 calmer, 2.0 more expressive, 0 a neutral face. Must be >= 0. The model is conditioned on the style
            reference's own intensity; this scale then multiplies the expression coefficients
            (relative to the neutral face: lips, jaw, brows, cheeks, the mouth's resting shape
            included), so it is an exact, explicit control; head pose, eyes and body are unchanged.
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
        # where nobody speaks the mouth rests: "speech" (the speech-activity gate), "digital" (only in
        # digital silence) or None (never); the last two for ablations
        self.mouth_gate: str | None = "speech"
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
        # mouth mode: the stream's own mouth amplitude from its audio (mouth.SpeakerAmplitude), where
        # the weights folder has it; used while no style reference sets the amplitude (SPEAKER_AMP)
        self.speaker_amp = None
        ap = wd / "mouth_amp.npz"
        if self.mouth is not None and ap.is_file():
            from .mouth import SpeakerAmplitude
            self.speaker_amp = SpeakerAmplitude(ap)
        # mouth mode: the speech-activity gate's running levels (a new one per stream: reset())
        self._gate = self._new_gate()
        self._mouth_shift = self._open_shift() if self.mouth is not None else None
        self._lids = lid_basis(*((None, None) if self.mouth is None else (self.mouth.open_vec, self.mouth.A)))
        if self._lids[0].shape[1] != self.n_exp:  # a model on another basis (tests' tiny models): no lids
            self._lids = None
        self._blinks = BlinkSchedule(self.seed)
        # the expression outside the mouth: exp @ _upper (all of it without the mouth predictor)
        self._upper = (np.eye(self.n_exp, dtype=np.float32) - self.mouth.A) if self.mouth is not None \
            else np.eye(self.n_exp, dtype=np.float32)
        self.set_style(style, hands=hands)
        # compute time of the last 1000 generated windows (bounded: a long session stays flat)
        self.window_ms: collections.deque[float] = collections.deque(maxlen=1000)
        self._pending: MotionFrames | None = None  # mouth mode: the face model's frames not yet released
        self._next = 0                              # mouth mode: first frame not yet released
        self._mouth_ema = None                      # mouth mode: (next frame, last smoothed output)
        self._calm = None                           # mouth mode: the head's calm in pauses (_calm_head)
        self._style_mean = None
        self._silence_tokens: np.ndarray | None = None  # mouth mode: prime()'s prefix tokens

    # ---------------------------------------------------------------------------------- controls
    def set_style(self, style=None, *, hands: float | None = None) -> None:
        """Change the style reference (takes effect from the next window). Blocks for the style
        encoder (a few ms per 256 frames of reference)."""
        s = self.stats
        self.style_log_intensity = 0.0
        self.mouth_gain = 1.0
        self.head_gain = 1.0  # with a style reference: the head and expression gains now (_style_scale)
        self.exp_gain = 1.0
        self._style_ref: tuple[float, float] | None = None
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
            exp_ref = np.asarray(clip["exp"], np.float32)
            if self.mouth is not None:  # the reference speaker's mouth amplitude (the predictor's is the median's)
                amp = float(np.std(exp_ref @ self.mouth.open_vec))
                self.mouth_gain = float(np.clip(amp / self.mouth.ref_amp, 0.5, 2.0)) if amp > 0 else 1.0
            if self.cfg.get("style_amplitude") and len(exp_ref) >= 2:
                # the reference's head rotation and expression spread (outside the mouth, which has its
                # own gain), matched by _style_scale
                head_amp = float(np.mean(np.std(np.asarray(clip["head"], np.float64)[:, :3], 0)))
                exp_amp = float(np.sqrt(np.mean(np.var(exp_ref.astype(np.float64) @ self._upper, 0))))
                if head_amp > 0 and exp_amp > 0:
                    self._style_ref = (head_amp, exp_amp)
        self.hands_rate = float(hands if hands is not None else hands_rate)
        if getattr(self, "_next", None) == 0 and getattr(self, "_pending", None) is not None:
            # a primed first window (prime()) had the old style: sample it again, at frame 0 (the
            # scheduler had moved past it; nothing was released yet)
            self.scheduler.reset()
            self._pending = None
            self._style_mean = None

    def set_intensity(self, intensity: float) -> None:
        """Expression-intensity scale (>= 0; 0 = neutral face) from the next window on."""
        if not intensity >= 0:
            raise ValueError(f"intensity must be >= 0, got {intensity!r}")
        self.intensity = float(intensity)

    def reset(self) -> None:
        """Forget all audio and motion (a new stream at frame 0; style and settings kept)."""
        self.frontend.reset()
        self.scheduler.reset()
        self._gate = self._new_gate()
        if getattr(self, "speaker_amp", None) is not None:
            self.speaker_amp.reset()
        self._style_mean = None  # running means of head and expression that the style gains scale about
        self._blinks = BlinkSchedule(self.seed)
        self._pending: MotionFrames | None = None  # mouth mode: the face model's frames not yet released
        self._next = 0                              # mouth mode: first frame not yet released
        self._mouth_ema = None                      # mouth mode: (next frame, last smoothed output)
        self._calm = None                           # mouth mode: the head's calm in pauses (_calm_head)

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
        With the mouth predictor (the default when shipped): ``(mouth.hop - 1 + mouth.look) * 640``
        = 2560 (160 ms; the first frame after 200 ms of speech: the second chunk of a 100 ms feed). Without it (``mouth=False``):
        ``(hop - 1 + L) * 640`` = 8960 (560 ms) with the config's hop 10 and L 5, 5120 (320 ms)
        with hop=4. A log-mel model adds its front end's right context (160 samples,
        :attr:`~.frontend.AudioFrontEnd.right_context`); Whisper segments read nothing past their
        end. After :meth:`flush` nothing more is needed."""
        rc = self.frontend.right_context
        if self.mouth is not None:
            return (self.mouth.hop - 1 + self.mouth.look) * SAMPLES_PER_FRAME + rc
        return (self.hop - 1 + self.L) * SAMPLES_PER_FRAME + rc

    @property
    def frames_generated(self) -> int:
        """Index of the first frame not yet generated."""
        return self._next if self.mouth is not None else self.scheduler.next

    def window_ready(self) -> bool:
        """Whether :meth:`generate_window` would produce frames now."""
        if self.mouth is not None:
            return bool(self._plan_chunks(1))
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
            return self._generate_chunks()
        t0 = time.perf_counter()
        sch, fe = self.scheduler, self.frontend
        w0, n_out = sch.plan(fe.eos)
        frames = self._sample_window(w0, n_out, fe.tokens(w0, n_out), fe.known_positions(w0, n_out),
                                     self.intensity)
        self._eyes(frames)
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
        # the join: the window's first frames are led from where the last window was going
        lead_f, lead_b, lead_w = sch.lead()
        cond = WindowConditions(
            audio=audio, known=known, prefix_face=prefix_f, prefix_face_keep=pk, prefix_body=prefix_b,
            prefix_body_keep=pkb, style=self.style_vec, style_keep=self.style_keep,
            style_log_intensity=self.style_log_intensity, hands_rate=self.hands_rate,
            lead_face=lead_f, lead_body=lead_b, lead_weight=lead_w)
        face_n, body_n = sample_window(self.face_net, self.body_net, cond, self.sampling,
                                       window=self.T, seed=[self.seed, w0])
        face_n, body_n = sch.commit(face_n[0], None if body_n is None else body_n[0], n_out,
                                    skip_body=layout.HANDS_OK_DIM, led=lead_f is not None,
                                    led_body=lead_b is not None)
        frames = to_motion_frames(w0, face_n, body_n, self.stats, self.n_exp, intensity)
        self._style_scale(frames)
        return frames

    STYLE_GAIN_RANGE = (0.5, 2.0)  # limits of the style reference's head and expression gains
    STYLE_MEAN_FRAMES = 50.0       # time constant (frames) of the running mean the gains scale about
    STYLE_SPREAD_FRAMES = 75.0     # ... and of the running spread they compare with the reference's

    def _style_scale(self, fr: MotionFrames) -> None:
        """With a style reference: bring the sampled head pose and the expression outside the mouth
        to the reference's spread. Each is scaled about its running mean (time constant
        :attr:`STYLE_MEAN_FRAMES`) by the reference's spread over the running spread of what the
        model samples (:attr:`STYLE_SPREAD_FRAMES`; it starts at the model's typical spread,
        ``motion_config.json`` ``style_amplitude``), within :attr:`STYLE_GAIN_RANGE`. The model's
        style conditioning alone moved the amplitude little or the wrong way (issue 12: r 0.23 for
        the expression, -0.21 for the head across held-out references). Causal, in place, frames in
        stream order (chunking independent)."""
        if self._style_ref is None:
            return
        ref_h, ref_e = self._style_ref
        lo, hi = self.STYLE_GAIN_RANGE
        up = self._upper
        st = self._style_mean
        if st is None:
            typ = self.cfg["style_amplitude"]
            e_typ = typ["exp_upper"] if self.mouth is not None else typ["exp"]
            st = (fr.head[0].astype(np.float64), fr.exp[0].astype(np.float64),
                  float(typ["head_rot"]) ** 2, float(e_typ) ** 2)
        mh, me, vh, ve = st
        am, av = 1.0 / self.STYLE_MEAN_FRAMES, 1.0 / self.STYLE_SPREAD_FRAMES
        for i in range(len(fr)):
            mh = mh + am * (fr.head[i] - mh)
            me = me + am * (fr.exp[i] - me)
            dh, de = fr.head[i] - mh, fr.exp[i] - me
            vh += av * (float(np.mean(dh[:3] ** 2)) - vh)
            ve += av * (float(np.mean((de @ up) ** 2)) - ve)
            self.head_gain = float(np.clip(ref_h / max(np.sqrt(vh), 1e-9), lo, hi))
            self.exp_gain = float(np.clip(ref_e / max(np.sqrt(ve), 1e-9), lo, hi))
            fr.head[i] = mh + self.head_gain * dh
            fr.exp[i] = me + self.exp_gain * de
        self._style_mean = (mh, me, vh, ve)

    # ------------------------------------------------------------------------------ mouth mode
    MAX_BATCH = 8  # mouth mode: segments encoded in one Whisper call when several chunks are ready

    def prime(self) -> MotionFrames | None:
        """Mouth mode: sample the stream's first face window (head, eyes, brows, body of frames
        ``0 .. FIRST_RELEASE - 1``, a whole hop by default) now, if it is not yet; returns those
        frames (None without the mouth predictor, or once the stream has released frames). That
        window hears only the silence before the stream (its ``P`` prefix tokens; the rest "not
        heard yet"), so it needs no audio, and a Session computes it when it is created or reset:
        the stream's first frame then waits only for its Whisper segment and the mouth predictor,
        not for the face model (issue 12's first-frame latency). The next window and every later
        one (a hop each) hear their audio up to their first frame plus the predictor's lookahead,
        led from where the last one was going (``WindowScheduler.lead``). Called lazily by the
        first chunk otherwise, with the same result: deterministic for a seed, whatever the timing
        or chunking. Blocks for one window's compute (``steps`` face + body evaluations) and, the
        first time, a Whisper encode of silence."""
        if self.mouth is None or self._next != 0:
            return None
        if self._pending is None:
            from ..audio.whisper import FEAT_DIM
            if self._silence_tokens is None:  # features of the silence before any stream (constant)
                f = self.frontend.segment_features([0], self.mouth.seg, self.P)[0]
                self._silence_tokens = ((f - self.stats["wfeat_mean"]) / self.stats["wfeat_std"]).astype(np.float32)
            audio = np.zeros((1, self.spec.tokens, FEAT_DIM), np.float32)
            audio[0, :self.P] = self._silence_tokens
            # frames 0 .. FIRST_RELEASE - 1 (a hop), whole whatever the utterance's length
            self._pending = self._sample_window(0, self._first_release(), audio, self.P, 1.0)
        return self._pending

    # mouth mode: frames the stream's first (primed, speech-deaf) face window releases (None: a
    # whole hop); the window after it hears the speech. Measured at 5 (motion/design.md, "Joins"):
    # the head follows speech from frame 6 instead of 11 and the joins stay seamless, but a real-time
    # Session's mouth region moved more in the silence before speech (tests/test_serve_live.py's
    # speech/quiet ratio 1.25 against 1.68), so it is not the default; kept for ablations
    FIRST_RELEASE: int | None = None

    def _first_release(self) -> int:
        return self.hop if self.FIRST_RELEASE is None else max(1, min(int(self.FIRST_RELEASE), self.hop))

    def _plan_chunks(self, limit: int) -> list[tuple[int, int, bool]]:
        """Mouth mode: ``(first frame, frames, starts a face window)`` of up to ``limit`` next
        chunks whose audio (plus the predictor's lookahead) is in. A chunk is the predictor's hop,
        cut at the face window's end (windows of ``hop`` frames from the first frame released) and
        at a flushed end."""
        fe, m = self.frontend, self.mouth
        eos = fe.eos
        c = self._next
        p_end = None if self._pending is None else self._pending.start + len(self._pending)
        out: list[tuple[int, int, bool]] = []
        while len(out) < limit:
            new = p_end is None or c >= p_end
            # a stream's first window is always whole (it is computed before any audio: prime()); the
            # next ones start where the last released its frames, hop frames each
            w_end = ((c + self._first_release()) if c == 0 else
                     (c + self.hop if eos is None else min(c + self.hop, eos))) if new else p_end
            n = max(min(m.hop, w_end - c, (eos - c) if eos is not None else m.hop), 0)
            if n == 0 or (eos is None and fe.frames_ready < c + n + m.look):
                break
            out.append((c, n, new))
            if new:
                p_end = w_end
            c += n
        return out

    def _generate_chunks(self) -> MotionFrames | None:
        """Mouth mode: release every chunk whose audio is in (at most :attr:`MAX_BATCH`), in order.
        Each chunk's audio segment (``seg`` frames up to ``look`` frames past the chunk) is encoded,
        all of them in one batched encoder call; a segment gives the mouth predictor its tokens and,
        at the start of a face window (every ``hop`` frames), the face model its audio, heard up to
        the same point (the rest of the window is "not heard yet"). Head, eyes, brows and body come
        from that window; the lips and jaw from the predictor (:func:`~.mouth.blend`), pulled to
        rest where nobody speaks (:meth:`_speech_weights`). Returns the released frames."""
        from ..audio.whisper import FEAT_DIM
        from .mouth import blend, open_gain
        # a stream's first frame goes out alone: its latency is the encode of one segment, not of a
        # batch (a 100 ms feed has two chunks ready when frame 0's lookahead arrives)
        chunks = self._plan_chunks(1 if self._next == 0 else self.MAX_BATCH)
        if not chunks:
            return None
        t0 = time.perf_counter()
        m, sch, fe = self.mouth, self.scheduler, self.frontend
        base = max(self.P, m.past) + m.look
        n_tok = base + max(n for _, n, _ in chunks)
        feats_all = fe.segment_features([c0 + n + m.look for c0, n, _ in chunks], m.seg, n_tok)
        c_first, c_end = chunks[0][0], chunks[-1][0] + chunks[-1][1]
        w_all, settle_all = self._speech_weights(c_first, c_end - c_first)
        parts = []
        for (c0, n, new), feats in zip(chunks, feats_all):
            feats = feats[n_tok - (base + n):]  # [base + n, 768]: the tokens this chunk's layout reads
            if new and c0 == 0:
                self.prime()  # the stream's first window hears only the silence before the stream
            elif new:
                w0, n_out = sch.plan(fe.eos)  # w0 == c0: face windows start where the released frames are
                heard = self.P + n + m.look
                audio = np.zeros((1, self.spec.tokens, FEAT_DIM), np.float32)
                audio[0, :heard] = (feats[-heard:] - self.stats["wfeat_mean"]) / self.stats["wfeat_std"]
                self._pending = self._sample_window(w0, n_out, audio, heard, 1.0)
            p = self._pending
            part = p[c0 - p.start:c0 - p.start + n]
            mouth_exp = m.predict_segment(feats, n)
            # the predictor's own output smoothing (MouthPredictor.smooth), carried across chunks in
            # frame order (a stream that does not continue where the last chunk ended starts afresh)
            prev = self._mouth_ema[1] if self._mouth_ema is not None and self._mouth_ema[0] == c0 else None
            mouth_exp, last = m.smooth_frames(mouth_exp, prev)
            self._mouth_ema = (c0 + n, last)
            w = w_all[c0 - c_first:c0 - c_first + n]
            # the opening only, about the predictor's mean (as its gain): the renderer's loss and, without
            # a style reference, the speaker's own amplitude heard so far (each frame's own token)
            gain = np.full(n, self.MOUTH_RENDER_GAIN, np.float32)
            if self.speaker_amp is not None and self.SPEAKER_AMP and self.style_keep == 0.0:
                gain = gain * self.speaker_amp.update(feats[base - m.look:base - m.look + n], w)
            if np.any(gain != 1.0):  # along the predictor's open_dir: the jaw and lips move with it
                mouth_exp = open_gain(mouth_exp, m.center, gain, m.open_vec, m.open_dir)
            # where nobody speaks the mouth is still (closing in digital silence); a style reference
            # scales the motion
            if self.GATE_POWER != 1.0:  # 0 and 1 stay where they are; partial weights move towards 0
                w = w ** self.GATE_POWER
            close = self.PAUSE_CLOSE + (1.0 - self.PAUSE_CLOSE) * settle_all[c0 - c_first:c0 - c_first + n, None]
            rest = m.center + close * (m.rest - m.center)
            # relative to the avatar's neutral face (MOUTH_OPEN_SHIFT); in digital silence, as the
            # mouth settles, the shift fades so that the idle mouth closes
            settle = settle_all[c0 - c_first:c0 - c_first + n]
            seal = self.PAUSE_SEAL + (1.0 - self.PAUSE_SEAL) * settle  # how much of the shift a pause takes away
            opened = (1.0 - seal * (1.0 - w))[:, None]
            mouth_exp = rest + (w * self.mouth_gain)[:, None] * (mouth_exp - rest)
            # intensity scales the motion about the speaker's reference face; the shift moves that
            # reference onto the avatar's neutral face and is not scaled
            part.exp = np.ascontiguousarray(blend(part.exp, mouth_exp, m.A) * self.intensity
                                            + opened * (self._mouth_shift @ m.A)[None], np.float32)
            self._eyes(part)
            self._calm_head(part, w_all[c0 - c_first:c0 - c_first + n])
            parts.append(part)
        self._next = c_end
        fe.trim(self._next, back=m.seg)
        out = MotionFrames.concat(parts) if len(parts) > 1 else parts[0]
        sch.queue.append(out)
        ms = (time.perf_counter() - t0) * 1000.0
        self.window_ms.extend([ms / len(chunks)] * len(chunks))
        return out

    # mouth mode: how much further apart (canonical units, face height 1) the predictor's reference
    # face holds the lips than the avatar's neutral face does. The predictor's expression is relative
    # to a speaker's median face, whose inner lips are 0.18 of the mouth width apart at the middle
    # (the median of the five dev clips of eval/split.py; 0.07-0.27); the renderer's neutral face
    # (render/geometry.py NEUTRAL_GAP) holds them 0.074 apart. Without this the predicted closures
    # (up to 0.19 widths below the reference) crossed the lips on 9-20 % of frames and the renderer's
    # close_lips cut 6-19 % of the opening's spread (dev clips). (0.18 - 0.074) x the canonical mouth
    # width 0.258 (motion/design.md).
    MOUTH_OPEN_SHIFT = 0.027

    def _open_shift(self) -> np.ndarray:
        """``[E]``: the lower-face expression that opens the inner lips by :attr:`MOUTH_OPEN_SHIFT`,
        the smallest change in units of each coefficient's spread (as ``neutral_face`` solves)."""
        from ..spec.head import load_basis
        m = self.mouth
        std = np.asarray(load_basis().std, np.float64)
        ov = m.open_vec.astype(np.float64)
        v = (std ** 2 * ov) @ m.A.astype(np.float64)
        return (self.MOUTH_OPEN_SHIFT * v / max(float(v @ ov), 1e-12)).astype(np.float32)

    # mouth mode: a factor on the predicted mouth opening's motion (about the predictor's mean, as its
    # gain, along its open_dir) for what the renderer and the face mesh that measures it lose. Until
    # session 10 the gains opened the inner lips alone (the lips thinned to a ring round the hole) and
    # the rendered opening (face mesh) kept 0.63-0.98 of the motion's (DEV and training clips); 1.15
    # made up for it. Since the gains open along open_dir (the jaw and both lips together, session
    # 11) the renderer keeps 0.81-1.04 of it (mean 0.96): no make-up is needed (motion/design.md,
    # "The gains open the jaw").
    MOUTH_RENDER_GAIN = 1.0
    # mouth mode: scale the opening by the speaker's amplitude estimated from the stream's audio
    # (mouth.SpeakerAmplitude, weights/mouth_amp.npz; not with a style reference). Off: leave-one-
    # speaker-out over the training clips it narrows the first 10 s's log amplitude spread across
    # clips (0.375 -> 0.319, mouth r unchanged), but on DEV (eval lipsync, rendered, 10 s) it did
    # not (r 0.4628 -> 0.4625, amplitude 1.025 -> 1.007, per-clip spread unchanged, rest 0.173 ->
    # 0.176). Its first version (without the small-sample bias correction) gave every stream a
    # 1.1-1.2x gain in its first seconds: DEV r 0.4694, amplitude 1.067, and was on in 30374c1
    # (motion/design.md, "The speaker's amplitude from the audio")
    SPEAKER_AMP = False

    # mouth mode: the still mouth in a real pause, from the average speaking shape (0) to the closed
    # mouth of digital silence (1); chosen on the dev and training clips (design.md). PAUSE_SEAL: how
    # much of MOUTH_OPEN_SHIFT (what parts the avatar's lips in speech) a real pause takes away, 0..1
    # (1 with PAUSE_CLOSE 1: the lips meet in every pause, as in digital silence); PAUSE_SETTLE_FRAMES:
    # time constant of a slow close in a real pause (0: none; vad.SpeechGate pause_settle_frames).
    # Session 8 measured both against the default on DEV and training clips: sealed pauses lowered
    # mouth r where speakers keep their lips apart in pauses, and a slow close moved the mouth in the
    # pauses (motion/design.md, "Session 8"); kept for ablations. Session 9: 0.55-0.65 raised DEV r
    # (0.65: 0.4673 against 0.4629 at 0.5, rest 0.167 against 0.169) but lowered it on four training
    # clips with pauses (0.4491 against 0.4620), whose real speakers keep their lips apart in
    # pauses, as most do (motion/design.md, "Session 9"): 0.5 stays.
    PAUSE_CLOSE = 0.5
    PAUSE_SEAL = 0.0
    PAUSE_SETTLE_FRAMES = 0.0
    VOICED_DBFS = (-70.0, -55.0)  # mouth_gate "digital": silent below the first level, voiced above the second

    # mouth mode: the speech gate's edges (frames; vad.SpeechGate hold / release / onset / bridge).
    # The gate before session 7 (PREVIOUS_GATE: the mouth keeps going 2 frames after speech, comes to
    # rest over 3 more and starts 3 frames before a word) moved the mouth five frames into every
    # pause: most of what moved in pauses. The default (hold 1, release 2, onset 2, gaps of up to 4
    # frames between words bridged) was chosen on the DEV clips with the viseme-input predictor: mouth
    # r 0.408 vs 0.407, rendered rest in pauses 0.156 vs 0.312 (FAST_REST_GATE, hold 0: 0.405 / 0.138)
    # (motion/design.md, session 7). Session 8's predictor at 160 ms lookahead (look 4) eases further
    # into pauses with hold 1 (DEV rendered rest 0.236 against 0.199 for the 120 ms one): hold 0
    # (FAST_REST_GATE) brings it back to 0.198 for mouth r 0.467 against 0.470 (dev).
    FAST_REST_GATE = (0, 2, 2, 4)
    PREVIOUS_GATE = (2, 3, None, 0)
    GATE_HOLD, GATE_RELEASE, GATE_ONSET, GATE_BRIDGE = FAST_REST_GATE
    # mouth mode: where the gate's activity starts, relative to the stream's running speech level
    # (dB; vad.SpeechGate rel_db), and a power on its weights (> 1: partly active frames, the gate's
    # edges and quiet stretches inside speech, move the mouth less; 1: the weights as they are).
    # -24 dB (was -25, the SpeechGate default): the running speech level, a peak tracker that takes
    # 30 % of each step up and decays through pauses, sat 3 dB below the 95th-percentile frame level
    # on deepavsr_lrs2_00016 (DEV), so at -25 quiet stretches that eval lipsync calls pauses (25 dB
    # below that percentile) kept partial weights and moved the mouth there. DEV
    # (eval lipsync, same run): rendered rest in pauses 0.169 against 0.198, mouth r 0.4629 against
    # 0.4650; four training clips with pauses: r 0.4620 against 0.4623 (motion/design.md, "Session
    # 9"). Further (-22, -23.5) or GATE_POWER 1.3-2 bought less rest per r lost; kept for ablations.
    GATE_REL_DB = -24.0
    GATE_POWER = 1.0
    # mouth mode: the gate's running speech level before the stream's first word (dBFS; vad.SpeechGate
    # init_db), and whether (near) digital silence leaves its noise floor alone (noise_skips_silence).
    # Before the first word the threshold is GATE_INIT_DB + GATE_REL_DB (-59 dBFS), under the room
    # noise of some recordings (-60 to -55), which then moves the mouth at a third to a half of its
    # speech where a decoder's near-silent first frame has pulled the noise floor down. Session 11
    # (DEV + 13 training clips, eval lipsync): -32 / -30 lower rest on 14 clips with pauses 0.1685
    # -> 0.1615 / 0.1603 but cut speech that starts quietly (r 0.5441 -> 0.5433 / 0.5431) and not
    # DEV's rest, so -35 stays (motion/design.md, "Session 11"); ablations: eval lipsync gate_init,
    # noise_skip
    GATE_INIT_DB = -35.0
    GATE_NOISE_SKIPS_SILENCE = False

    def _new_gate(self) -> SpeechGate | None:
        """A fresh speech gate for a new stream (mouth mode), with :attr:`GATE_HOLD` etc."""
        if self.mouth is None:
            return None
        return SpeechGate(self.mouth.look, hold=self.GATE_HOLD, release=self.GATE_RELEASE,
                          onset=self.GATE_ONSET, bridge=self.GATE_BRIDGE, rel_db=self.GATE_REL_DB,
                          pause_settle_frames=self.PAUSE_SETTLE_FRAMES, init_db=self.GATE_INIT_DB,
                          noise_skips_silence=self.GATE_NOISE_SKIPS_SILENCE)

    def _speech_weights(self, c0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``([n] weight, [n] settle)`` in [0, 1] for frames ``c0 .. c0+n-1`` (each asked once, in
        order). The weight says how much the predicted mouth moves (0: still); settle how far the
        still mouth has gone from its pause shape (:attr:`PAUSE_CLOSE`) to the closed mouth (1). ``mouth_gate``:
        ``"speech"`` (default) the speech-activity gate (:class:`~.vad.SpeechGate`: level against
        the stream's running speech level and noise floor, so real pauses rest too; the mouth
        closes in digital silence only); ``"digital"``: only (near) digital silence rests, on the
        closed mouth (the gate before; ablations); ``None``: no gate. Samples not pushed yet or
        after a flushed end count as silent."""
        if self.mouth_gate is None or self.mouth_gate is False:
            return np.ones(n, np.float32), np.ones(n, np.float32)
        look = self.mouth.look
        if self.mouth_gate == "digital":
            lo_f, hi_f = max(c0 - 1, 0), c0 + n + look
            db = frame_levels(self.frontend.samples(lo_f, hi_f))
            s0, s1 = self.VOICED_DBFS
            w = [np.clip((db[max(t - 1, 0) - lo_f:t + look + 1 - lo_f].max() - s0) / (s1 - s0), 0, 1)
                 for t in range(c0, c0 + n)]
            return np.array(w, np.float32), np.ones(n, np.float32)
        g = self._gate
        lo_f = c0 - g.back
        db = frame_levels(self.frontend.samples(lo_f, c0 + n + look))
        db[:max(-lo_f, 0)] = -200.0  # before the stream
        k = g.taper.size
        out = np.zeros((2, n), np.float32)
        for i in range(n):
            out[0, i] = g.step(db[i:i + k])
            out[1, i] = g.settle
        return out[0], out[1]

    # mouth mode: in a pause (speech gate 0) the head moves HEAD_PAUSE_CALM times as much about its
    # running pose (an EMA, HEAD_CALM_MEAN of the way per frame, about 1 s), the factor following the
    # gate's weight HEAD_CALM_RATE of the way per frame (no step). Face mesh reads a still, narrow
    # mouth opening differently as the head turns (0.5-9 px for a steady 11 px opening on a training
    # clip), which was most of what moved in pauses; real heads move 0.77x as much in pauses as in
    # speech (median of 11 DEV and training clips), the model's 0.89x. Chosen on DEV and training
    # clips (motion/design.md, "Session 10"). 1: as sampled. The model's own prefix is not changed.
    HEAD_PAUSE_CALM = 0.5
    HEAD_CALM_MEAN = 0.04
    HEAD_CALM_RATE = 0.3

    def _calm_head(self, fr: MotionFrames, w: np.ndarray) -> None:
        """Frames ``fr``'s head pose (in place, stream order) calmed where the speech gate's weight
        ``w [len(fr)]`` is low: ``mean + f (head - mean)`` with ``mean`` the running pose and ``f``
        following ``HEAD_PAUSE_CALM + (1 - HEAD_PAUSE_CALM) w`` (see :attr:`HEAD_PAUSE_CALM`)."""
        if self.HEAD_PAUSE_CALM == 1.0 or not len(fr):
            return
        head = fr.head.astype(np.float64)
        mean, f = (head[0].copy(), 1.0) if self._calm is None else self._calm
        out = np.empty_like(head)
        k, a, b = float(self.HEAD_PAUSE_CALM), float(self.HEAD_CALM_MEAN), float(self.HEAD_CALM_RATE)
        for t in range(len(head)):
            mean = mean + a * (head[t] - mean)
            f = f + b * (k + (1.0 - k) * float(w[t]) - f)
            out[t] = mean + f * (head[t] - mean)
        self._calm = (mean, f)
        fr.head = np.ascontiguousarray(out, np.float32)

    # ------------------------------------------------------------------------------------ eyes
    # The lids (blink.py): the face model's own lid motion is taken out of the expression (times
    # LID_KEEP is kept) and blinks of a fixed shape at a natural rate are added, closing the canonical
    # lid gap BLINK_DEPTH times (> 1: an avatar whose eyes are open wider closes too; the renderer's
    # close_lids meets lids that cross). In silence the face model half-closed the lids and its dips
    # did not close them on rendered frames (motion/design.md, "Eyes").
    BLINK_DEPTH = 1.15
    LID_KEEP = 0.0

    def _eyes(self, fr: MotionFrames) -> None:
        """The lids of frames ``fr`` (in place, stream order): the face model's lid motion scaled
        by :attr:`LID_KEEP`, blinks (:class:`~.blink.BlinkSchedule`, a function of the seed and the
        frame) added; the eye-openness channel (``eye[:, :2]``, not rendered) says the same: 1 open,
        0 closed."""
        if not len(fr) or self._lids is None:
            return
        e = fr.exp.astype(np.float64)
        vecs, rows, gap0 = self._lids
        d = e @ rows.T.astype(np.float64)                               # [n, 2] the lid gaps' changes
        closing = self._blinks.closing(fr.start, len(fr)).astype(np.float64)
        want = self.LID_KEEP * d - (self.BLINK_DEPTH * gap0 * closing)[:, None]
        fr.exp = np.ascontiguousarray(e + (want - d) @ vecs.astype(np.float64), np.float32)
        eye = np.array(fr.eye, np.float32)
        eye[:, :2] = (self.LID_KEEP * eye[:, :2] + (1.0 - self.LID_KEEP)) * (1.0 - closing[:, None])
        fr.eye = eye

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
