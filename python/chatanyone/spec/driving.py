"""Driving keypoints: an avatar's source state plus one frame of motion (run-time geometry).

The motion features (``motion.npz``, the motion model's output) are relative to a clip's neutral
state; :func:`driving_keypoints` applies them to the avatar's own state, so any motion drives any
avatar. With a zero motion frame the result is the avatar's source keypoints (up to float error).

- Face: the avatar's canonical-space face plus the expression (PCA reconstruction over the 468 mesh
  points), the irises moved by the gaze change (in eye widths), then posed with the avatar's head
  pose plus the motion's head change (angles added, translation added, scale multiplied) and
  projected orthographically into the crop.
- Body: the avatar's ``KP_BODY_IDX`` points plus the motion's offsets.
- Hands: each hand's points relative to its wrist, placed at the driven pose wrist (15 / 16);
  visible only where the motion has the hand and the avatar's own wrist is visible in its photo.

Eye openness (``eye[:, :2]``) is not applied here: the lids move with the expression coefficients,
which already carry blinks. The openness is a feature for the motion model and for analysis.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from . import keypoint_layout as L
from .head import N_MESH, FaceBasis, eye_widths, load_basis, pose_points


@dataclasses.dataclass
class SourceState:
    """What :func:`driving_keypoints` needs to know about an avatar (all in its crop coordinates)."""
    canon_face: np.ndarray   # [478, 3] the avatar's face in canonical space (its own expression)
    head: np.ndarray         # [6] absolute yaw, pitch, roll (rad), tx, ty (crop units), log scale
    body: np.ndarray         # [8, 2] KP_BODY_IDX points (crop units)
    body_vis: np.ndarray     # [8] float32 in {0, 1}
    hands: np.ndarray        # [2, 21, 2] hand points (person's left, right); zeros where not seen
    hands_ok: np.ndarray     # [2] bool
    face_ok: bool = True     # False: no face (never for a prepared Avatar)

    def as_arrays(self, prefix: str = "src_") -> dict[str, np.ndarray]:
        return {prefix + f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "src_") -> "SourceState":
        kw = {f.name: np.asarray(arrays[prefix + f.name]) for f in dataclasses.fields(cls)}
        kw["face_ok"] = bool(kw["face_ok"])
        kw["hands_ok"] = kw["hands_ok"].astype(bool)
        return cls(**kw)


def driving_keypoints(source: SourceState, motion_frame: Mapping[str, np.ndarray], *,
                      basis: FaceBasis | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The renderer's driving keypoints for one frame.

    Args:
        source: the avatar's :class:`SourceState` (``Avatar.source``).
        motion_frame: one frame of motion, keys as in ``motion.npz`` without the time axis:
            ``head [6]``, ``exp [E]``, ``eye [4]``, ``body [8, 2]``, ``hands [2, 21, 2]``,
            ``hands_ok [2]``. A missing key means "no change" (hands: the avatar's own hands).
        basis: the expression basis (default: the packaged one).
    Returns:
        ``(kp [K, 2] float32, vis [K] float32)`` in the avatar's crop coordinates, ordered as
        :func:`chatanyone.spec.keypoint_layout.renderer_keypoints`.
    """
    m = motion_frame
    face = None
    if source.face_ok:
        basis = basis or load_basis()
        c = np.array(source.canon_face, np.float64, copy=True)
        if "exp" in m:
            exp = np.asarray(m["exp"], np.float64).reshape(-1)
            if exp.shape[0] != basis.n_exp:
                raise ValueError(f"motion_frame['exp'] has {exp.shape[0]} coefficients, the basis {basis.n_exp}")
            c[:N_MESH] += (exp @ basis.components).reshape(N_MESH, 3)
        if "eye" in m:
            g = np.asarray(m["eye"], np.float64)[2:4]
            w_r, w_l = eye_widths(source.canon_face)
            c[L.RIGHT_IRIS, :2] += g * w_r
            c[L.LEFT_IRIS, :2] += g * w_l
        head = np.array(source.head, np.float64, copy=True)
        if "head" in m:
            d = np.asarray(m["head"], np.float64)
            head[:5] += d[:5]
            head[5] += d[5]
        face = pose_points(c, head)
    body = np.array(source.body, np.float64, copy=True)
    if "body" in m:
        body += np.asarray(m["body"], np.float64)
    pose = np.full((33, 4), np.nan)
    pose[L.KP_BODY_IDX, :2] = body
    pose[L.KP_BODY_IDX, 3] = np.asarray(source.body_vis, np.float64)
    if "hands" in m:
        # a hand is drawn only where the avatar's own arm is in the picture (its wrist is visible):
        # an avatar cut at the chest does not grow hands in the padding below the photo
        hok = np.asarray(m.get("hands_ok", np.ones(2)), bool).reshape(2) & (np.asarray(source.body_vis)[L.BODY_WRISTS] > 0)
        rel = np.asarray(m["hands"], np.float64)
        wrists = body[L.BODY_WRISTS]  # KP_BODY_IDX positions of pose 15 (left wrist) and 16 (right wrist)
        hands = rel + wrists[:, None, :]
    else:
        hok = np.asarray(source.hands_ok, bool)
        hands = np.asarray(source.hands, np.float64)
    return L.renderer_keypoints(face, pose, hands, face_ok=source.face_ok, hands_ok=hok)
