"""The renderer's control points: semantic groups of the renderer keypoints.

The renderer keypoints (``chatanyone.spec.keypoint_layout``: a face-mesh subset, 8 upper-body pose
points, 21 + 21 hand points) are many; a dense-motion network wants few. Each
control point is the mean of the visible keypoints of one group: 19 facial regions (lips outer/inner
upper/lower, mouth corners, lids, irises, brows, nose, forehead, jaw sides, chin), the 8 body
points, and per hand the palm and the fingers. Facial groups are the paper's explicit face
keypoints (the face refine network adds learned offsets to them); body groups get a learned
per-frame offset (our stand-in for the paper's implicit body keypoints). Groups are defined on
mediapipe face-mesh indices, so they work for any face subset that contains some of each group.
"""
from __future__ import annotations

import functools

import numpy as np

from ..spec import keypoint_layout as KL

# facial regions, mediapipe face mesh (478 with iris) indices; "a" is the image-left side
FACE_GROUPS: dict[str, list[int]] = {
    "lip_upper_outer": [185, 40, 39, 37, 0, 267, 269, 270, 409],
    "lip_lower_outer": [146, 91, 181, 84, 17, 314, 405, 321, 375],
    "lip_upper_inner": [191, 80, 81, 82, 13, 312, 311, 310, 415],
    "lip_lower_inner": [95, 88, 178, 87, 14, 317, 402, 318, 324],
    "mouth_corner_a": [61, 78],
    "mouth_corner_b": [291, 308],
    "eye_a_upper": [246, 161, 160, 159, 158, 157, 173],
    "eye_a_lower": [7, 163, 144, 145, 153, 154, 155],
    "eye_b_upper": [466, 388, 387, 386, 385, 384, 398],
    "eye_b_lower": [249, 390, 373, 374, 380, 381, 382],
    "iris_a": [468, 469, 470, 471, 472],
    "iris_b": [473, 474, 475, 476, 477],
    "brow_a": [70, 63, 105, 66, 107, 55, 65, 52, 53, 46],
    "brow_b": [300, 293, 334, 296, 336, 285, 295, 282, 283, 276],
    "nose": [1, 2, 98, 327, 4, 5, 195, 197, 6, 168],
    "forehead": [10, 338, 297, 109, 67, 151, 108, 337],
    "jaw_a": [234, 93, 132, 58, 172, 136],
    "jaw_b": [454, 323, 361, 288, 397, 365],
    "chin": [152, 148, 176, 149, 150, 377, 400, 378, 379],
}
# one group per body keypoint (KL.KP_BODY_IDX: shoulders, elbows, wrists, hips)
HAND_GROUPS = {"palm": [0, 1, 5, 9, 13, 17], "fingers": [3, 4, 7, 8, 11, 12, 15, 16, 19, 20]}

# counts and slices of control GROUPS (the keypoint counts are KL.N_FACE_KP, KL.N_HAND_POINTS, ...)
N_FACE_GROUPS = len(FACE_GROUPS)          # 19
N_BODY_GROUPS = KL.N_BODY_KP              # 8
N_HAND_GROUPS = 2 * len(HAND_GROUPS)      # 4: palm and fingers of each hand
N_CONTROL = N_FACE_GROUPS + N_BODY_GROUPS + N_HAND_GROUPS  # 31
FACE_GROUP_SLICE = slice(0, N_FACE_GROUPS)
BODY_GROUP_SLICE = slice(N_FACE_GROUPS, N_FACE_GROUPS + N_BODY_GROUPS)
HAND_GROUP_SLICE = slice(N_FACE_GROUPS + N_BODY_GROUPS, N_CONTROL)
MOUTH_GROUPS = [0, 1, 2, 3, 4, 5]  # rows of the lip groups, for the mouth-weighted loss
# Facial groups whose refine offsets are used. Lids, irises and brows are left out: on the dev
# clips and the held-out clip their offsets distorted the eyes (identity CSIM 0.926 with them,
# 0.942 without, FID 53.7 against 52.7; PSNR 22.34 against 22.27; render/design.md).
REFINE_GROUPS = [i for i, n in enumerate(FACE_GROUPS) if not n.startswith(("eye", "iris", "brow"))]


@functools.lru_cache(maxsize=None)
def _group_matrix(face_idx: tuple[int, ...]) -> np.ndarray:
    """``[N_CONTROL, K]`` 0/1 membership of keypoint k (face subset, 8 body, 21+21 hands) in group g."""
    nf = len(face_idx)
    K = nf + KL.N_BODY_KP + KL.N_HAND_KP
    A = np.zeros((N_CONTROL, K), np.float32)
    pos = {m: i for i, m in enumerate(face_idx)}
    for g, members in enumerate(FACE_GROUPS.values()):
        cols = [pos[m] for m in members if m in pos]
        if not cols:
            raise ValueError(f"renderer keypoint layout has no point of face group {list(FACE_GROUPS)[g]!r}")
        A[g, cols] = 1.0
    for j in range(KL.N_BODY_KP):
        A[N_FACE_GROUPS + j, nf + j] = 1.0
    for h in range(2):
        for gi, members in enumerate(HAND_GROUPS.values()):
            A[N_FACE_GROUPS + N_BODY_GROUPS + 2 * h + gi,
              [nf + KL.N_BODY_KP + KL.N_HAND_POINTS * h + m for m in members]] = 1.0
    return A


def group_matrix(num_keypoints: int | None = None) -> np.ndarray:
    """Membership matrix for the renderer keypoint layout (``spec.keypoint_layout``), ``[N_CONTROL, K]``;
    ``num_keypoints`` may also be the full-mesh layout's count (478 face points first)."""
    A = _group_matrix(tuple(KL.KP_FACE_IDX))
    if num_keypoints is not None and A.shape[1] != num_keypoints:
        full = KL.N_MESH_POINTS + KL.N_BODY_KP + KL.N_HAND_KP
        if num_keypoints == full:
            return _group_matrix(tuple(range(KL.N_MESH_POINTS)))
        raise ValueError(f"kp: expected {A.shape[1]} renderer keypoints (or {full} with "
                         f"the full face mesh), got {num_keypoints}")
    return A


def control_points(kp: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group means of visible keypoints.

    Args:
        kp: ``[..., K, 2]`` renderer keypoints, normalized crop coordinates.
        vis: ``[..., K]`` visibility in {0, 1} (or [0, 1]).
    Returns:
        ``(ctrl [..., G, 2] float32, w [..., G] float32)``; ``w`` is 1 where the group has a visible
        point, else 0 (and ``ctrl`` is then 0).
    """
    kp = np.asarray(kp, np.float32)
    vis = np.asarray(vis, np.float32)
    bad = ~np.all(np.isfinite(kp), -1)
    if bad.any():  # a NaN point is an unseen point
        vis = np.where(bad, 0.0, vis).astype(np.float32)
        kp = np.where(bad[..., None], 0.0, kp).astype(np.float32)
    A = group_matrix(kp.shape[-2])
    wv = A * vis[..., None, :]                                  # [..., G, K]
    cnt = wv.sum(-1)                                            # [..., G]
    ctrl = np.einsum("...gk,...kc->...gc", wv, kp) / np.maximum(cnt, 1e-6)[..., None]
    w = (cnt > 0).astype(np.float32)
    return (ctrl * w[..., None]).astype(np.float32), w


def pair_controls(c_src: np.ndarray, w_src: np.ndarray, c_drv: np.ndarray, w_drv: np.ndarray):
    """Make source and driving control points usable together.

    A group seen on one side only takes the other side's position (no motion for it); a group seen
    on neither side is parked outside the crop. Returns ``(c_src, c_drv, w)`` with
    ``w = w_src * w_drv`` the heatmap weight.
    """
    ws = w_src[..., None] > 0
    wd = w_drv[..., None] > 0
    park = np.array([0.0, 3.0], np.float32)
    cs = np.where(ws, c_src, np.where(wd, c_drv, park))
    cd = np.where(wd, c_drv, cs)
    return cs.astype(np.float32), cd.astype(np.float32), (w_src * w_drv).astype(np.float32)


def from_landmarks(face: np.ndarray, face_ok: np.ndarray, pose: np.ndarray, hands: np.ndarray,
                   hands_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renderer keypoints from corpus landmark arrays of one or T frames: the contract's
    :func:`chatanyone.spec.keypoint_layout.select_keypoints` (one visibility rule everywhere).

    ``face [...,478,>=2]``, ``face_ok [...]``, ``pose [...,33,4]`` (visibility in the last column),
    ``hands [...,2,21,>=2]``, ``hands_ok [...,2]``. Returns ``(kp [..., K, 2], vis [..., K])``.
    """
    return KL.select_keypoints(face, face_ok, pose, hands, hands_ok)


AFFINE_MIN_POINTS = 3     # a group needs this many points seen in both frames for a linear map
AFFINE_RIDGE = 0.1        # ridge towards the identity, relative to the group's driving spread
AFFINE_LIMIT = 0.5        # |A - I| entries are clipped to this (no folds, no wild stretches)


def group_affines(kp_src: np.ndarray, vis_src: np.ndarray, kp_drv: np.ndarray, vis_drv: np.ndarray) -> np.ndarray:
    """Per control group, the 2x2 linear map ``A`` with ``src - c_src ~ A (drv - c_drv)`` over the
    group's keypoints seen in both frames (least squares, ridge towards the identity, entries of
    ``A - I`` clipped to ``AFFINE_LIMIT``): the local affine motion of the group, so a turning hand
    or head is rotated and scaled, not only shifted. Groups with fewer than ``AFFINE_MIN_POINTS``
    shared points (the single body points, unseen groups) get the identity.

    ``kp_* [..., K, 2]``, ``vis_* [..., K]`` -> ``[..., G, 2, 2]`` float32.
    """
    kp_s = np.nan_to_num(np.asarray(kp_src, np.float64))
    kp_d = np.nan_to_num(np.asarray(kp_drv, np.float64))
    both = np.asarray(vis_src, np.float64) * np.asarray(vis_drv, np.float64)
    both = np.where(np.all(np.isfinite(kp_src), -1) & np.all(np.isfinite(kp_drv), -1), both, 0.0)
    wv = group_matrix(kp_s.shape[-2]) * both[..., None, :]                          # [..., G, K]
    cnt = wv.sum(-1)
    cs = np.einsum("...gk,...kc->...gc", wv, kp_s) / np.maximum(cnt, 1e-9)[..., None]
    cd = np.einsum("...gk,...kc->...gc", wv, kp_d) / np.maximum(cnt, 1e-9)[..., None]
    s = kp_s[..., None, :, :] - cs[..., :, None, :]                                  # [..., G, K, 2]
    d = kp_d[..., None, :, :] - cd[..., :, None, :]
    c_sd = np.einsum("...gk,...gki,...gkj->...gij", wv, s, d)                        # [..., G, 2, 2]
    c_dd = np.einsum("...gk,...gki,...gkj->...gij", wv, d, d)
    eye = np.eye(2)
    lam = AFFINE_RIDGE * np.trace(c_dd, axis1=-2, axis2=-1)[..., None, None] / 2 + 1e-9
    a = (c_sd + lam * eye) @ np.linalg.inv(c_dd + lam * eye)
    a = eye + np.clip(a - eye, -AFFINE_LIMIT, AFFINE_LIMIT)
    a = np.where((cnt >= AFFINE_MIN_POINTS)[..., None, None], a, eye)
    return a.astype(np.float32)
