"""The renderer keypoint layout: which landmarks the renderer is driven by, in which order, and
when a point counts as seen. One home for the indices, slices, counts and the visibility rule;
avatar preparation, driving-keypoint composition, training and evaluation all select through
:func:`select_keypoints`.

Order (``K = N_KP = 109``): the face points :data:`KP_FACE_IDX` (59 indices into the 478
face-mesh points), the pose points :data:`KP_BODY_IDX` (8), then 21 points of the person's left
hand and 21 of the right hand (mediapipe hand order, wrist first).

Mediapipe's face-mesh sides are the person's: 33/133 are the corners of the person's right eye (on
the image's left in a non-mirrored photo), 263/362 of the left eye; 468 is the right iris centre,
473 the left one.

Visibility rule: a face point is seen where the face was tracked and the point is finite; a pose
point where it is finite and its pose visibility is at least :data:`POSE_VIS_MIN`; a hand where it
was detected and all 21 of its points are finite. An unseen point has ``vis`` 0 and ``kp`` 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# landmark counts of the detectors (mediapipe face mesh with irises, pose, one hand)
N_MESH_POINTS = 478
N_POSE_POINTS = 33
N_HAND_POINTS = 21

# lips: outer contour (corners, middle, two on each side), inner contour
LIPS_OUTER = [61, 291, 0, 17, 37, 267, 84, 314]
LIPS_INNER = [78, 308, 13, 14, 82, 312, 87, 317]
# eyes: outer corner, inner corner, upper lid, lower lid; then the iris centre
RIGHT_EYE = [33, 133, 159, 145]
LEFT_EYE = [263, 362, 386, 374]
IRIS_CENTERS = [468, 473]       # right, left
RIGHT_BROW = [70, 63, 105, 66, 107]
LEFT_BROW = [300, 293, 334, 296, 336]
NOSE = [1, 4, 6, 98, 327]        # tip, below the bridge, bridge, nostril wings
# face oval from the forehead round the jaw (pairs left/right of the image, then the chin)
OVAL = [10, 109, 338, 234, 454, 93, 323, 132, 361, 58, 288, 172, 397, 150, 379, 176, 400, 152]

KP_FACE_IDX: list[int] = (LIPS_OUTER + LIPS_INNER + RIGHT_EYE + LEFT_EYE + IRIS_CENTERS
                          + RIGHT_BROW + LEFT_BROW + NOSE + OVAL)
# pose: shoulders, elbows, wrists, hips (person's left first in each pair)
KP_BODY_IDX: list[int] = [11, 12, 13, 14, 15, 16, 23, 24]
# positions of the wrists (pose 15, 16) and elbows (13, 14) inside KP_BODY_IDX
BODY_WRISTS = [4, 5]

N_FACE_KP = len(KP_FACE_IDX)            # 59
N_BODY_KP = len(KP_BODY_IDX)            # 8
N_HAND_KP = 2 * N_HAND_POINTS           # 42: both hands
N_KP = N_FACE_KP + N_BODY_KP + N_HAND_KP  # 109
FACE_SLICE = slice(0, N_FACE_KP)
BODY_SLICE = slice(N_FACE_KP, N_FACE_KP + N_BODY_KP)
HANDS_SLICE = slice(N_FACE_KP + N_BODY_KP, N_KP)
LEFT_HAND_SLICE = slice(N_FACE_KP + N_BODY_KP, N_FACE_KP + N_BODY_KP + N_HAND_POINTS)
RIGHT_HAND_SLICE = slice(N_FACE_KP + N_BODY_KP + N_HAND_POINTS, N_KP)

POSE_VIS_MIN = 0.5  # a pose point with lower visibility is not seen

# face-mesh groups used by the head and eye geometry
MOUTH_UPPER_INNER = 13
MOUTH_LOWER_INNER = 14
RIGHT_IRIS = list(range(468, 473))
LEFT_IRIS = list(range(473, 478))
# points that hardly move with expression: forehead, nose bridge, eye corners, temples, cheekbones.
# The rigid head-pose fit uses only these.
RIGID_IDX: list[int] = [10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 33, 133, 263, 362, 127, 356, 234, 454,
                        116, 345, 123, 352, 109, 338, 67, 297, 103, 332, 54, 284, 21, 251, 162, 389,
                        143, 372, 35, 265, 114, 343, 188, 412, 122, 351]

if len(set(KP_FACE_IDX)) != len(KP_FACE_IDX):  # pragma: no cover - a layout edit gone wrong
    raise ImportError("KP_FACE_IDX has repeated indices")


@dataclass(frozen=True)
class KeypointLayout:
    """The layout as one value (what a renderer's weights were trained with; see
    :data:`LAYOUT`). ``as_json()`` is written into ``render_<preset>.json`` by the export, and the
    runtime checks the shipped value against this one."""

    face_idx: tuple[int, ...] = tuple(KP_FACE_IDX)
    body_idx: tuple[int, ...] = tuple(KP_BODY_IDX)
    hand_points: int = N_HAND_POINTS
    pose_vis_min: float = POSE_VIS_MIN

    @property
    def n_kp(self) -> int:
        return len(self.face_idx) + len(self.body_idx) + 2 * self.hand_points

    def as_json(self) -> dict:
        return {"face_idx": list(self.face_idx), "body_idx": list(self.body_idx),
                "hand_points": self.hand_points, "pose_vis_min": self.pose_vis_min}

    @classmethod
    def from_json(cls, d: dict) -> "KeypointLayout":
        return cls(tuple(int(i) for i in d["face_idx"]), tuple(int(i) for i in d["body_idx"]),
                   int(d["hand_points"]), float(d["pose_vis_min"]))


LAYOUT = KeypointLayout()


def select_keypoints(face, face_ok, pose, hands, hands_ok) -> tuple[np.ndarray, np.ndarray]:
    """The renderer keypoints of one frame or of many (any leading shape ``...``).

    Args:
        face: ``[..., 478, >=2]`` face mesh (x, y first, crop coordinates) or None.
        face_ok: ``[...]`` whether the face was tracked (bool or 0/1).
        pose: ``[..., 33, >=4]`` pose (x, y, z, visibility) or None.
        hands: ``[..., 2, 21, >=2]`` (person's left, right) or None.
        hands_ok: ``[..., 2]`` which hands were detected, or None (the finite ones).
    Returns:
        ``(kp [..., K, 2] float32, vis [..., K] float32 in {0, 1})`` by the visibility rule of
        this module; an unseen point has kp 0.
    """
    arrays = [a for a in (face, pose, hands) if a is not None]
    lead = (np.asarray(arrays[0]).shape[:-3] if arrays and arrays[0] is hands
            else np.asarray(arrays[0]).shape[:-2]) if arrays else ()
    kp = np.zeros(lead + (N_KP, 2), np.float32)
    vis = np.zeros(lead + (N_KP,), np.float32)
    if face is not None:
        f = np.asarray(face, np.float32)[..., KP_FACE_IDX, :2]
        good = np.all(np.isfinite(f), axis=-1) & np.asarray(face_ok, bool)[..., None]
        kp[..., FACE_SLICE, :] = np.where(good[..., None], f, 0.0)
        vis[..., FACE_SLICE] = good
    if pose is not None:
        p = np.asarray(pose, np.float32)[..., KP_BODY_IDX, :]
        good = np.all(np.isfinite(p[..., :2]), axis=-1) & (np.nan_to_num(p[..., 3]) >= POSE_VIS_MIN)
        kp[..., BODY_SLICE, :] = np.where(good[..., None], p[..., :2], 0.0)
        vis[..., BODY_SLICE] = good
    if hands is not None:
        h = np.asarray(hands, np.float32)[..., :2]
        hok = np.all(np.isfinite(h), axis=(-2, -1))                       # [..., 2]
        if hands_ok is not None:
            hok = hok & np.asarray(hands_ok, bool)
        h = np.where(hok[..., None, None], h, 0.0)
        kp[..., HANDS_SLICE, :] = h.reshape(lead + (N_HAND_KP, 2))
        vis[..., HANDS_SLICE] = np.repeat(hok, N_HAND_POINTS, axis=-1)
    return kp, vis


def renderer_keypoints(face: np.ndarray | None, pose: np.ndarray | None, hands: np.ndarray | None, *,
                       face_ok: bool = True, hands_ok: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_keypoints` for one frame, with ``face_ok`` and ``hands_ok`` as keywords.

    ``face [478, >=2] | None``, ``pose [33, 4] | None``, ``hands [2, 21, >=2] | None`` ->
    ``(kp [K, 2] float32, vis [K] float32)``.
    """
    return select_keypoints(face, bool(face_ok), pose, hands, hands_ok)
