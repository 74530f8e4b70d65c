"""Motion features of a corpus clip (offline): head pose, expression, eyes, body, hands
(``motion.npz``; see docs/design.md), and fitting the canonical face and expression basis.

The geometry (isotropic crop units, the rigid head fit, the basis) is the run-time contract's:
:mod:`chatanyone.spec.head`. This module adds what only the corpus needs: the generalized-Procrustes
canonical face and the PCA basis over training clips, per-clip neutral shapes, eye features and
camera cuts.

Expression. Canonical-space face minus the clip's neutral shape (its per-point median over the clip),
the 468 mesh points (the irises are left to the gaze), flattened to 1404 values and projected on an
orthonormal PCA basis (``E`` components, no mean: coefficient 0 is the neutral face) fitted on the
training clips and shipped in ``chatanyone/weights/face_basis.npz`` with the canonical face.
"""
from __future__ import annotations


import numpy as np

from ..spec import keypoint_layout as L
from ..spec.head import (E_DEFAULT, LEFT_EYE_CORNERS, LEFT_EYE_LIDS, N_MESH, RIGHT_EYE_CORNERS,
                         RIGHT_EYE_LIDS, Y_SCALE, FaceBasis, fit_head, isotropic, load_basis, umeyama)



# --- canonical face and basis fitting ---------------------------------------------------------

def _normalize_canonical(c: np.ndarray, rigid_idx) -> np.ndarray:
    """Orient (x from the right eye to the left, y from forehead to chin, z = x × y), centre on the
    rigid points, scale to face height 1."""
    re = c[list(RIGHT_EYE_CORNERS)].mean(0)
    le = c[list(LEFT_EYE_CORNERS)].mean(0)
    x = le - re
    x /= np.linalg.norm(x)
    y = c[152] - c[10]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    rot = np.stack([x, y, z])          # rows: new axes
    c = (c - c[rigid_idx].mean(0)) @ rot.T
    return c / np.linalg.norm(c[152] - c[10])


def fit_canonical(faces_iso: np.ndarray, rigid_idx=L.RIGID_IDX, iters: int = 10) -> np.ndarray:
    """Generalized Procrustes mean of ``faces_iso [N, 478, 3]`` (isotropic units) -> ``[478, 3]``.

    Each face is aligned on the rigid points; the mean over all 478 points is the canonical face,
    then oriented and scaled by :func:`_normalize_canonical`.
    """
    f = np.asarray(faces_iso, np.float64)
    ref = _normalize_canonical(np.median(f - f[:, rigid_idx].mean(1, keepdims=True), 0), rigid_idx)
    for _ in range(iters):
        al = np.empty_like(f)
        for i in range(len(f)):
            s, r, t = umeyama(f[i, rigid_idx], ref[rigid_idx])
            al[i] = s * f[i] @ r.T + t
        new = _normalize_canonical(al.mean(0), rigid_idx)
        delta = np.abs(new - ref).max()
        ref = new
        if delta < 1e-6:
            break
    return ref.astype(np.float32)


def neutral_shape(canon: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The clip's neutral canonical shape: per-point median over frames with a face. ``[478, 3]``."""
    return np.median(canon[ok], axis=0)


def fit_basis(clip_tracks: list[tuple[np.ndarray, np.ndarray]], *, n_exp: int = E_DEFAULT,
              max_frames_canonical: int = 3000, seed: int = 0) -> FaceBasis:
    """Fit the canonical face and the expression PCA on training clips.

    Args:
        clip_tracks: ``[(face_crop [T, 478, 3], face_ok [T]), ...]``, one per training clip (smoothed).
        n_exp: number of expression components ``E``.
    Returns:
        A :class:`FaceBasis`.
    """
    rng = np.random.default_rng(seed)
    rigid = np.asarray(L.RIGID_IDX)
    # 1. canonical face from a sample of frames across all clips (each clip weighted equally)
    per_clip = max(1, max_frames_canonical // max(1, len(clip_tracks)))
    sample = []
    for face, ok in clip_tracks:
        idx = np.flatnonzero(ok)
        if idx.size:
            sample.append(isotropic(face[rng.choice(idx, min(per_clip, idx.size), replace=False)]))
    canonical = fit_canonical(np.concatenate(sample), rigid)
    # 2. expression deltas in canonical space, minus each clip's neutral
    deltas = []
    for face, ok in clip_tracks:
        hf = fit_head(face, ok, canonical, rigid)
        good = ok & np.isfinite(hf.residual)
        if good.sum() < 10:
            continue
        d = hf.canon[good, :N_MESH] - neutral_shape(hf.canon, good)[None, :N_MESH]
        deltas.append(d.reshape(len(d), -1))
    x = np.concatenate(deltas).astype(np.float64)  # [N, 1404]
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    total = (sv ** 2).sum()
    comps = vt[:n_exp]
    coef = x @ comps.T
    for i in range(n_exp):  # sign convention: largest-magnitude loading positive
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] *= -1
            coef[:, i] *= -1
    return FaceBasis(canonical=canonical, components=comps.astype(np.float32),
                     std=coef.std(0).astype(np.float32),
                     explained=((sv[:n_exp] ** 2) / total).astype(np.float32),
                     rigid_idx=rigid.astype(np.int32))


# --- per-frame features -----------------------------------------------------------------------

def eye_features(canon: np.ndarray) -> np.ndarray:
    """``[T, 4]``: right-eye and left-eye openness (lid gap / eye width), gaze x, gaze y (iris
    centre offset from the eye-corner midpoint in eye widths, mean of both eyes), canonical space.

    Note the order of the returned openness: index 0 is the person's LEFT eye, 1 the RIGHT eye,
    matching the rest of the corpus (left before right).
    """
    def eye(lids, corners, iris):
        w = np.linalg.norm(canon[:, corners[0]] - canon[:, corners[1]], axis=-1)
        gap = np.mean([np.linalg.norm(canon[:, a] - canon[:, b], axis=-1) for a, b in lids], axis=0)
        mid = 0.5 * (canon[:, corners[0]] + canon[:, corners[1]])
        off = (canon[:, iris] - mid)[:, :2] / w[:, None]
        return gap / w, off
    o_r, g_r = eye(RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS, 468)
    o_l, g_l = eye(LEFT_EYE_LIDS, LEFT_EYE_CORNERS, 473)
    g = 0.5 * (g_r + g_l)
    return np.stack([o_l, o_r, g[:, 0], g[:, 1]], -1)


def detect_cuts(head_abs: np.ndarray, ok: np.ndarray, *, max_scale_jump: float = 0.15,
                max_move: float = 0.4) -> np.ndarray:
    """Camera cuts and zooms: frames where the face jumps between consecutive frames by more than
    ``max_scale_jump`` in log scale or ``max_move`` face heights. ``head_abs [T, 6]`` -> ``[T]`` uint8."""
    T = len(head_abs)
    cut = np.zeros(T, np.uint8)
    for t in range(1, T):
        if not (ok[t] and ok[t - 1]):
            continue
        a, b = head_abs[t - 1], head_abs[t]
        size = float(np.exp(a[5]))
        move = np.hypot(b[3] - a[3], (b[4] - a[4]) * Y_SCALE) / size
        if abs(b[5] - a[5]) > max_scale_jump or move > max_move:
            cut[t] = 1
    return cut


def clip_motion(lm: dict, basis: FaceBasis | None = None, *, fit: list | None = None) -> dict[str, np.ndarray]:
    """The ``motion.npz`` arrays of one clip from its (smoothed) ``landmarks.npz`` arrays.

    Returns a dict (all float32 unless noted):
        head [T, 6], exp [T, E], eye [T, 4], body [T, 8, 2], hands [T, 2, 21, 2],
        hands_ok [T, 2] (uint8), face_ok [T] (uint8), body_vis [T, 8],
        ref_head [6], ref_face [478, 3], ref_eye [4], ref_body [8, 2],
        cut [T] (uint8, 1 on the first frame of a new camera shot),
        canon_face [T, 478, 3] is NOT stored (it is ``ref_face + reconstruct(exp)`` up to PCA error).
    Frames without a face have zeros in head, exp and eye (and face_ok 0).
    ``fit``: pass a list to receive the clip's :class:`HeadFit` (absolute head pose and
    canonical-space faces) appended to it.
    """
    basis = basis or load_basis()
    face, face_ok = lm["face"], lm["face_ok"].astype(bool)
    T = face.shape[0]
    hf = fit_head(face, face_ok, basis.canonical, basis.rigid_idx)
    if fit is not None:
        fit.append(hf)
    ok = face_ok & np.isfinite(hf.residual)
    if not ok.any():
        raise ValueError("clip has no frame with a face")
    ref_head = np.median(hf.head[ok], 0)
    head = np.zeros((T, 6), np.float32)
    head[ok] = hf.head[ok] - ref_head
    ref_face = neutral_shape(hf.canon, ok)
    d = (hf.canon[ok, :N_MESH] - ref_face[None, :N_MESH]).reshape(int(ok.sum()), -1)
    exp = np.zeros((T, basis.n_exp), np.float32)
    exp[ok] = d @ basis.components.T
    eye_abs = eye_features(hf.canon)
    ref_eye = np.median(eye_abs[ok], 0)
    eye = np.zeros((T, 4), np.float32)
    eye[ok, :2] = eye_abs[ok, :2] / np.maximum(ref_eye[:2], 1e-6)   # 1 = the clip's usual openness
    eye[ok, 2:] = eye_abs[ok, 2:] - ref_eye[2:]
    pose = lm["pose"]
    pose_ok = lm["pose_ok"].astype(bool) & np.all(np.isfinite(pose[:, L.KP_BODY_IDX, :2]), axis=(1, 2))
    bp = pose[:, L.KP_BODY_IDX, :2]
    body_vis = np.zeros((T, len(L.KP_BODY_IDX)), np.float32)
    body_vis[pose_ok] = np.nan_to_num(pose[pose_ok][:, L.KP_BODY_IDX, 3])
    ref_body = np.median(bp[pose_ok], 0) if pose_ok.any() else np.zeros((len(L.KP_BODY_IDX), 2))
    body = np.zeros((T, len(L.KP_BODY_IDX), 2), np.float32)
    body[pose_ok] = bp[pose_ok] - ref_body
    hands_ok = lm["hands_ok"].astype(bool) & np.all(np.isfinite(lm["hands"][..., :2]), axis=(2, 3))
    hands = np.zeros((T, 2, 21, 2), np.float32)
    rel = lm["hands"][..., :2] - lm["hands"][:, :, :1, :2]
    hands[hands_ok] = rel[hands_ok]
    cut = detect_cuts(hf.head, ok)
    return dict(head=head, exp=exp, eye=eye, body=body, hands=hands, cut=cut,
                hands_ok=hands_ok.astype(np.uint8), face_ok=ok.astype(np.uint8),
                body_vis=body_vis, body_ok=pose_ok.astype(np.uint8),
                ref_head=ref_head.astype(np.float32), ref_face=ref_face.astype(np.float32),
                ref_eye=ref_eye.astype(np.float32), ref_body=ref_body.astype(np.float32),
                fit_residual=np.nan_to_num(hf.residual).astype(np.float32))


