"""The renderer's keypoints: a fixed subset of face-mesh, pose and hand landmarks.

Order (``K = len(KP_FACE_IDX) + 8 + 2 * 21``): the face points ``KP_FACE_IDX`` (indices into the 478
face-mesh points), the pose points ``KP_BODY_IDX``, then 21 points of the person's left hand and 21 of
the right hand (mediapipe hand order, wrist first).

Mediapipe's face-mesh sides are the person's: 33/133 are the corners of the person's right eye (on
the image's left in a non-mirrored photo), 263/362 of the left eye; 468 is the right iris centre,
473 the left one.
"""
from __future__ import annotations

import numpy as np

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
N_HAND = 21

N_FACE_KP = len(KP_FACE_IDX)            # 59
N_BODY_KP = len(KP_BODY_IDX)            # 8
N_KP = N_FACE_KP + N_BODY_KP + 2 * N_HAND  # 109
FACE_SLICE = slice(0, N_FACE_KP)
BODY_SLICE = slice(N_FACE_KP, N_FACE_KP + N_BODY_KP)
LEFT_HAND_SLICE = slice(N_FACE_KP + N_BODY_KP, N_FACE_KP + N_BODY_KP + N_HAND)
RIGHT_HAND_SLICE = slice(N_FACE_KP + N_BODY_KP + N_HAND, N_KP)

POSE_VIS_MIN = 0.5  # a pose point with lower visibility gets vis 0

# landmark groups used by the motion features (face-mesh indices)
MOUTH_UPPER_INNER = 13
MOUTH_LOWER_INNER = 14
RIGHT_IRIS = list(range(468, 473))
LEFT_IRIS = list(range(473, 478))
# points that hardly move with expression: forehead, nose bridge, eye corners, temples, cheekbones.
# The rigid head-pose fit uses only these.
RIGID_IDX: list[int] = [10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 33, 133, 263, 362, 127, 356, 234, 454,
                        116, 345, 123, 352, 109, 338, 67, 297, 103, 332, 54, 284, 21, 251, 162, 389,
                        143, 372, 35, 265, 114, 343, 188, 412, 122, 351]

assert len(set(KP_FACE_IDX)) == len(KP_FACE_IDX)


def renderer_keypoints(face: np.ndarray | None, pose: np.ndarray | None, hands: np.ndarray | None, *,
                       face_ok: bool = True, hands_ok: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Select the renderer's keypoints from full landmark sets (one frame, crop coordinates).

    Args:
        face: ``[478, >=2]`` face mesh (x, y first) or None.
        pose: ``[33, 4]`` pose (x, y, z, visibility) or None; a point with visibility below
            ``POSE_VIS_MIN`` gets vis 0.
        hands: ``[2, 21, >=2]`` (person's left, right) or None.
        face_ok: False marks all face points invisible.
        hands_ok: ``[2]`` bool, which hands were seen (default: the finite ones).
    Returns:
        ``(kp [K, 2] float32, vis [K] float32 in {0, 1})``; an invisible point has kp 0.
    """
    kp = np.zeros((N_KP, 2), np.float32)
    vis = np.zeros(N_KP, np.float32)
    if face is not None and face_ok:
        f = np.asarray(face, np.float32)[KP_FACE_IDX, :2]
        good = np.all(np.isfinite(f), axis=1)
        kp[FACE_SLICE][good] = f[good]
        vis[FACE_SLICE] = good
    if pose is not None:
        p = np.asarray(pose, np.float32)[KP_BODY_IDX]
        good = np.all(np.isfinite(p[:, :2]), axis=1) & (np.nan_to_num(p[:, 3]) >= POSE_VIS_MIN)
        kp[BODY_SLICE][good] = p[good, :2]
        vis[BODY_SLICE] = good
    if hands is not None:
        h = np.asarray(hands, np.float32)[..., :2]
        hok = (np.all(np.isfinite(h), axis=(1, 2)) if hands_ok is None
               else np.asarray(hands_ok, bool) & np.all(np.isfinite(h), axis=(1, 2)))
        for side, sl in ((0, LEFT_HAND_SLICE), (1, RIGHT_HAND_SLICE)):
            if hok[side]:
                kp[sl] = h[side]
                vis[sl] = 1
    return kp, vis


def plausible_hands(face: np.ndarray, face_ok: np.ndarray, pose: np.ndarray, hands: np.ndarray,
                    hands_ok: np.ndarray) -> np.ndarray:
    """Drop the hand detector's false positives (a "hand" found on an ear, a cheek or a neck).

    All inputs in crop coordinates, over ``T`` frames: ``face [T,478,>=2]``, ``face_ok [T]``,
    ``pose [T,33,4]``, ``hands [T,2,21,>=2]``, ``hands_ok [T,2]``. A detected hand is kept only when
    the pose model sees the arm it belongs to: that side's wrist and elbow visibilities multiply to
    at least 0.5 and the pose wrist lies within 0.8 face heights of the hand's wrist. (On the
    corpus: of 389 hand detections in head-only clips, all false, 19 remain; 98 % of the 2399 in
    upper-body clips are kept.)
    Returns the filtered ``hands_ok [T, 2]`` bool.
    """
    iso = np.array([1.0, 1.5])  # crop units -> isotropic
    ok = np.asarray(hands_ok, bool).copy()
    pose = np.asarray(pose)
    f = np.asarray(face)[..., :2]
    fh = np.linalg.norm((f[:, 152] - f[:, 10]) * iso, axis=-1)  # [T] face height
    fh = np.where(np.asarray(face_ok, bool) & np.isfinite(fh), fh, np.nan)
    fh = np.where(np.isfinite(fh), fh, np.nanmedian(fh) if np.isfinite(fh).any() else 0.2)
    for s, (wrist, elbow) in enumerate(((15, 13), (16, 14))):
        h = np.asarray(hands)[:, s, :, :2]
        arm = np.nan_to_num(pose[:, wrist, 3]) * np.nan_to_num(pose[:, elbow, 3])
        wd = np.linalg.norm((h[:, 0] - pose[:, wrist, :2]) * iso, axis=-1)
        ok[:, s] &= (arm >= 0.5) & (np.nan_to_num(wd, nan=np.inf) < 0.8 * fh)
    return ok
