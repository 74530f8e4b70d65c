"""How per-frame motion (``motion.npz`` keys, design.md) is packed into the diffusion vectors.

Shared by training and run time, so both agree on the order of every channel:

- face vector ``[6 + E + 4]``: ``head`` (yaw, pitch, roll, tx, ty, log scale) | ``exp`` | ``eye``
- body vector ``[16 + 84 + 2]``: ``body`` (8 points x, y) | ``hands`` (2 x 21 x (x, y), wrist
  relative) | ``hands_ok`` (0/1, generated as a channel and thresholded at 0.5)
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

HEAD_DIM = 6
EYE_DIM = 4
BODY_DIM = 16          # 8 upper-body points x (x, y)
HANDS_DIM = 2 * 21 * 2
HANDS_OK_DIM = 2
BODY_VEC_DIM = BODY_DIM + HANDS_DIM + HANDS_OK_DIM  # 102


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
    t = body.shape[0]
    return np.concatenate([np.asarray(body, np.float32).reshape(t, BODY_DIM),
                           np.asarray(hands, np.float32).reshape(t, HANDS_DIM),
                           np.asarray(hands_ok, np.float32).reshape(t, HANDS_OK_DIM)], axis=-1)


def unpack_body(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_body`; ``hands_ok`` is thresholded to float32 0/1."""
    lead = x.shape[:-1]
    body = x[..., :BODY_DIM].reshape(*lead, 8, 2)
    hands = x[..., BODY_DIM:BODY_DIM + HANDS_DIM].reshape(*lead, 2, 21, 2)
    ok = (x[..., BODY_DIM + HANDS_DIM:] > 0.5).astype(np.float32)
    return body, hands, ok


@dataclass
class MotionFrames:
    """Per-frame motion, relative to the avatar's neutral state (design.md ``motion.npz``).

    Attributes (``T`` frames at 25 fps):
        start: index of the first frame in the stream (frame ``t`` owns audio samples
            ``[t*640, (t+1)*640)``).
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

    @staticmethod
    def concat(parts: "list[MotionFrames]") -> "MotionFrames":
        if not parts:
            raise ValueError("MotionFrames.concat needs at least one part")
        return MotionFrames(parts[0].start, *(np.concatenate([getattr(p, f.name) for p in parts])
                                              for f in fields(MotionFrames)[1:]))
