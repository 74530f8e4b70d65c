"""The motion contract: what motion is (:class:`MotionFrames`, the typed frames that travel from
the motion generator to the Session and the renderer), how it packs into the diffusion vectors,
and the motion model's layout (:class:`MotionSpec`: rates, window sizes, prediction type, audio
front end), which training writes into ``motion_config.json`` and run time loads from there.

Vectors (shared by training and run time, so both agree on the order of every channel):

- face vector ``[6 + E + 4]``: ``head`` (yaw, pitch, roll, tx, ty, log scale) | ``exp`` | ``eye``
- body vector ``[16 + 84 + 2]``: ``body`` (8 points x, y) | ``hands`` (2 x 21 x (x, y), wrist
  relative) | ``hands_ok`` (0/1, generated as a channel and thresholded at 0.5)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .keypoint_layout import N_BODY_KP, N_HAND_POINTS
from .timeline import MEL_PER_FRAME, MOTION_FPS, N_MELS, SAMPLES_PER_FRAME

HEAD_DIM = 6
EYE_DIM = 4
BODY_DIM = N_BODY_KP * 2              # 8 upper-body points x (x, y)
HANDS_DIM = 2 * N_HAND_POINTS * 2     # 2 hands x 21 points x (x, y)
HANDS_OK_DIM = 2
BODY_VEC_DIM = BODY_DIM + HANDS_DIM + HANDS_OK_DIM  # 102
BODY_SHAPE = (N_BODY_KP, 2)                # one frame of ``body``
HANDS_SHAPE = (2, N_HAND_POINTS, 2)        # one frame of ``hands``


def face_dim(n_exp: int) -> int:
    return HEAD_DIM + n_exp + EYE_DIM


def pack_face(head: np.ndarray, exp: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """``head [T,6]``, ``exp [T,E]``, ``eye [T,4]`` -> ``[T, 6+E+4]`` float32."""
    return np.concatenate([np.asarray(head, np.float32), np.asarray(exp, np.float32),
                           np.asarray(eye, np.float32)], axis=-1)


def unpack_face(x: np.ndarray, n_exp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_face`: ``[..., 6+E+4]`` -> head, exp, eye."""
    return (x[..., :HEAD_DIM], x[..., HEAD_DIM:HEAD_DIM + n_exp],
            x[..., HEAD_DIM + n_exp:HEAD_DIM + n_exp + EYE_DIM])


def pack_body(body: np.ndarray, hands: np.ndarray, hands_ok: np.ndarray) -> np.ndarray:
    """``body [T,8,2]``, ``hands [T,2,21,2]``, ``hands_ok [T,2]`` -> ``[T, 102]`` float32."""
    t = np.asarray(body).shape[0]
    return np.concatenate([np.asarray(body, np.float32).reshape(t, BODY_DIM),
                           np.asarray(hands, np.float32).reshape(t, HANDS_DIM),
                           np.asarray(hands_ok, np.float32).reshape(t, HANDS_OK_DIM)], axis=-1)


def unpack_body(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_body`; ``hands_ok`` is thresholded to float32 0/1."""
    lead = x.shape[:-1]
    body = x[..., :BODY_DIM].reshape(*lead, *BODY_SHAPE)
    hands = x[..., BODY_DIM:BODY_DIM + HANDS_DIM].reshape(*lead, *HANDS_SHAPE)
    ok = (x[..., BODY_DIM + HANDS_DIM:] > 0.5).astype(np.float32)
    return body, hands, ok


SPEECH_FIELDS = ("exp",)  # the MotionFrames fields that carry speech (the mouth moves with them)


@dataclass
class MotionFrames:
    """Per-frame motion, relative to the avatar's neutral state (design.md ``motion.npz``).

    Attributes (``T`` frames at 25 fps):
        start: index of the first frame in the stream (frame ``t`` owns audio samples
            ``[t*SAMPLES_PER_FRAME, (t+1)*SAMPLES_PER_FRAME)``, timeline.py).
        head: ``[T, 6]`` yaw, pitch, roll (rad), tx, ty (crop units), log scale.
        exp: ``[T, E]`` expression coefficients on ``face_basis.npz``.
        eye: ``[T, 4]`` left/right eye openness, gaze x, gaze y.
        body: ``[T, 8, 2]`` upper-body points minus their neutral position (crop units).
        hands: ``[T, 2, 21, 2]`` hand points relative to the wrist.
        hands_ok: ``[T, 2]`` 1 where the hand is shown.
    """

    start: int
    head: np.ndarray
    exp: np.ndarray
    eye: np.ndarray
    body: np.ndarray
    hands: np.ndarray
    hands_ok: np.ndarray

    def __len__(self) -> int:
        return int(self.head.shape[0])

    def __getitem__(self, key):
        """``frames["exp"]`` (an array) or ``frames[i:j]`` (a :class:`MotionFrames` slice)."""
        if isinstance(key, str):
            return getattr(self, key)
        if isinstance(key, slice):
            lo, _, _ = key.indices(len(self))
            return MotionFrames(self.start + lo, *(getattr(self, f.name)[key] for f in fields(self)[1:]))
        raise TypeError(f"MotionFrames index must be a key or a slice, got {type(key).__name__}")

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)[1:]}

    def frame(self, i: int) -> dict[str, np.ndarray]:
        """Frame ``i`` (0-based in this object) as a dict of arrays without the time axis (the
        ``motion_frame`` of :func:`chatanyone.spec.driving.driving_keypoints`)."""
        return {f.name: getattr(self, f.name)[i] for f in fields(self)[1:]}

    def ease_from(self, base: "MotionFrames", u_speech: float, u_rest: float) -> "MotionFrames":
        """A smoothstep blend from ``base`` towards ``self``: progress ``u_speech`` (0..1) for the
        fields that carry speech (:data:`SPEECH_FIELDS`, the mouth), ``u_rest`` for the others; a
        field at progress 1 is ``self``'s. (The Session's return to idle after an interrupt.)"""
        out = []
        for f in fields(self)[1:]:
            v, b = getattr(self, f.name), getattr(base, f.name)
            u = u_speech if f.name in SPEECH_FIELDS else u_rest
            w = u * u * (3.0 - 2.0 * u)
            out.append(v if w >= 1.0 or np.shape(b) != np.shape(v) else (1 - w) * np.asarray(b) + w * np.asarray(v))
        return MotionFrames(self.start, *out)

    def lerp(self, other: "MotionFrames", w: float) -> "MotionFrames":
        """``(1 - w) * self + w * other`` field by field (frames of equal length); ``w == 0``
        returns ``self``. The Session uses it to resample motion in time without knowing its
        fields."""
        if w == 0.0 or other is self:
            return self
        return MotionFrames(self.start, *((1 - w) * getattr(self, f.name) + w * getattr(other, f.name)
                                          for f in fields(self)[1:]))

    @staticmethod
    def concat(parts: "list[MotionFrames]") -> "MotionFrames":
        if not parts:
            raise ValueError("MotionFrames.concat needs at least one part")
        return MotionFrames(parts[0].start, *(np.concatenate([getattr(p, f.name) for p in parts])
                                              for f in fields(MotionFrames)[1:]))


PREDICTIONS = ("eps", "v", "x0")
AUDIO_KINDS = ("logmel", "whisper")


@dataclass(frozen=True)
class AudioFrontEndSpec:
    """How audio becomes the model's tokens (``motion_config.json`` ``audio``)."""

    kind: str = "logmel"       # "logmel": MEL_PER_FRAME raw log-mel frames per token; "whisper":
                               # Whisper tiny.en encoder features of one segment per window
    context: int = 0           # whisper: frames of audio before the prefix each segment encodes
    compute_type: str = "int8"  # whisper: CTranslate2 compute type

    def __post_init__(self):
        if self.kind not in AUDIO_KINDS:
            raise ValueError(f"motion_config.json: unknown audio kind {self.kind!r} (expected one of {AUDIO_KINDS})")


@dataclass(frozen=True)
class SamplingSpec:
    """Sampling defaults chosen on the dev clips (``motion_config.json`` ``sampling``)."""

    steps: int = 4
    guidance: float = 1.0
    clip_x0: float | None = None
    hop: int | None = None          # frames released per window (None: the whole window)
    temperature: float = 1.0        # start-noise scale of the expression
    head_temperature: float = 1.0   # start-noise scale of head, eyes and body


@dataclass(frozen=True)
class MotionSpec:
    """The motion model's contract with run time. Training writes these keys into
    ``motion_config.json`` (:meth:`to_config`); :meth:`load` reads them back and refuses a model
    whose rates this runtime does not run."""

    fps: int = MOTION_FPS
    mel_per_frame: int = MEL_PER_FRAME
    n_mels: int = N_MELS
    window: int = 25           # T: frames sampled per window (1 s)
    prefix: int = 8            # P: frames of the previous window given as clean context
    lookahead: int = 5         # L: frames of audio heard past the released frames
    n_train: int = 1000        # diffusion steps of the training schedule (cosine)
    prediction: str = "v"      # what the denoiser predicts: "eps", "v" or "x0"
    n_exp: int = 32            # expression coefficients E
    d_style: int = 64          # style embedding width
    audio: AudioFrontEndSpec = AudioFrontEndSpec()
    sampling: SamplingSpec = SamplingSpec()

    def __post_init__(self):
        if self.fps != MOTION_FPS or self.mel_per_frame != MEL_PER_FRAME or self.n_mels != N_MELS:
            raise ValueError(f"motion model runs at {self.fps} fps with {self.mel_per_frame} x {self.n_mels} "
                             f"log-mel per frame; this runtime runs {MOTION_FPS} fps, {MEL_PER_FRAME} x {N_MELS}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"motion_config.json: prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not (1 <= self.window and 0 <= self.prefix and 0 <= self.lookahead):
            raise ValueError(f"motion_config.json: bad window sizes T={self.window} P={self.prefix} L={self.lookahead}")

    @property
    def face_dim(self) -> int:
        return face_dim(self.n_exp)

    @property
    def tokens(self) -> int:
        """Positions of one window: prefix + window + lookahead."""
        return self.prefix + self.window + self.lookahead

    @property
    def samples_per_frame(self) -> int:
        return SAMPLES_PER_FRAME

    @classmethod
    def from_config(cls, cfg: dict) -> "MotionSpec":
        """From the dict of ``motion_config.json`` (unknown keys, the architecture's, are ignored)."""
        a = dict(cfg.get("audio") or {"kind": "logmel"})
        s = dict(cfg.get("sampling") or {})
        return cls(fps=int(cfg["fps"]), mel_per_frame=int(cfg["mel_per_frame"]), n_mels=int(cfg["n_mels"]),
                   window=int(cfg["window"]), prefix=int(cfg["prefix"]), lookahead=int(cfg["lookahead"]),
                   n_train=int(cfg["n_train"]), prediction=str(cfg["prediction"]), n_exp=int(cfg["n_exp"]),
                   d_style=int(cfg["face"]["d_style"]),
                   audio=AudioFrontEndSpec(kind=a.get("kind", "logmel"), context=int(a.get("context", 0)),
                                           compute_type=a.get("compute_type", "int8")),
                   sampling=SamplingSpec(steps=int(s.get("steps", 4)), guidance=float(s.get("guidance", 1.0)),
                                         clip_x0=s.get("clip_x0"), hop=s.get("hop"),
                                         temperature=float(s.get("temperature", 1.0)),
                                         head_temperature=float(s.get("head_temperature", 1.0))))

    def to_config(self) -> dict:
        """The contract's keys as ``motion_config.json`` holds them (training merges in the
        architecture's own keys; ``face.d_style`` is the architecture's)."""
        d = asdict(self)
        d.pop("d_style")
        d["audio"] = {"kind": self.audio.kind, **({"context": self.audio.context, "hop": self.sampling.hop,
                                                   "compute_type": self.audio.compute_type}
                                                  if self.audio.kind == "whisper" else {})}
        d["sampling"] = {k: v for k, v in asdict(self.sampling).items() if v is not None}
        return d

    @classmethod
    def load(cls, weights_dir) -> tuple["MotionSpec", dict]:
        """``(spec, raw dict)`` of ``weights_dir/motion_config.json``."""
        cfg = json.loads((Path(weights_dir) / "motion_config.json").read_text())
        return cls.from_config(cfg), cfg
