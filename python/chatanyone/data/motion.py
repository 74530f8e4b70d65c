"""Motion features from landmark tracks: head pose, expression, eyes, body, hands (see docs/design.md).

Geometry. Face landmarks in crop coordinates are first made isotropic: ``(x, 1.5 * y, z)`` (a crop
is 1.5 times as tall as wide, and x, z are in half crop widths). A similarity transform
``p = s R c + t`` maps the canonical face ``c`` (478 points, face height 1, frontal, centred on its
rigid points) onto each frame, fitted on :data:`~.landmarks.RIGID_IDX` (points that do not move with
expression) by Umeyama's method. ``R = Ry(yaw) Rx(pitch) Rz(roll)`` in the camera frame x right,
y down, z away from the camera. The canonical-space face of a frame is ``R^T (p - t) / s``.

Expression. Canonical-space face minus the clip's neutral shape (its per-point median over the clip),
the 468 mesh points (the irises are left to the gaze), flattened to 1404 values and projected on an
orthonormal PCA basis (``E`` components, no mean: coefficient 0 is the neutral face) fitted on the
training clips and shipped in ``chatanyone/weights/face_basis.npz`` with the canonical face.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import io
import logging

import numpy as np

from . import landmarks as L

log = logging.getLogger("chatanyone")

Y_SCALE = 1.5          # crop height / width: y crop units * 1.5 = isotropic units
N_MESH = 468           # mesh points in the expression (without the 10 iris points)
E_DEFAULT = 32         # expression coefficients
RIGHT_EYE_LIDS = [(159, 145), (158, 153), (160, 144)]   # upper, lower pairs
LEFT_EYE_LIDS = [(386, 374), (385, 380), (387, 373)]
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)


@dataclasses.dataclass
class FaceBasis:
    """Canonical face and expression basis (``chatanyone/weights/face_basis.npz``)."""
    canonical: np.ndarray   # [478, 3] float32 frontal mean face, face height 1, centred on RIGID_IDX
    components: np.ndarray  # [E, 1404] float32 orthonormal rows over the 468 mesh points (x, y, z)
    std: np.ndarray         # [E] float32 std of each coefficient over the training frames
    explained: np.ndarray   # [E] float32 fraction of the expression variance each explains
    rigid_idx: np.ndarray   # [R] int32 points used for the rigid fit

    @property
    def n_exp(self) -> int:
        return int(self.components.shape[0])

    @property
    def fingerprint(self) -> str:
        """A short hash of the canonical face and components (which basis made a motion.npz)."""
        import hashlib
        h = hashlib.sha1(np.ascontiguousarray(self.canonical).tobytes())
        h.update(np.ascontiguousarray(self.components).tobytes())
        return h.hexdigest()[:12]

    def save(self, path) -> None:
        np.savez(path, canonical=self.canonical, components=self.components, std=self.std,
                 explained=self.explained, rigid_idx=self.rigid_idx)

    @classmethod
    def load(cls, path) -> "FaceBasis":
        with np.load(path, allow_pickle=False) as z:
            return cls(**{f.name: z[f.name] for f in dataclasses.fields(cls)})


_BASIS: FaceBasis | None = None


def load_basis() -> FaceBasis:
    """The packaged basis (cached). Raises FileNotFoundError if the package has none yet."""
    global _BASIS
    if _BASIS is None:
        ref = importlib.resources.files("chatanyone.weights").joinpath("face_basis.npz")
        if not ref.is_file():
            raise FileNotFoundError("chatanyone/weights/face_basis.npz is missing; build it with "
                                    "chatanyone.data.motion.fit_basis over a corpus")
        _BASIS = FaceBasis.load(io.BytesIO(ref.read_bytes()))
    return _BASIS


# --- geometry ---------------------------------------------------------------------------------

def isotropic(face_crop: np.ndarray) -> np.ndarray:
    """Crop coordinates ``[..., 3]`` -> isotropic (x, 1.5 y, z)."""
    p = np.array(face_crop, np.float64, copy=True)
    p[..., 1] *= Y_SCALE
    return p


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``dst ≈ s R src + t`` (least squares, Umeyama 1991) for ``[N, 3]`` point sets.

    Returns ``(s, R [3, 3], t [3])`` with ``det R = +1``.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sgn = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sgn[2] = -1
    r = u @ np.diag(sgn) @ vt
    var = (a ** 2).sum() / len(src)
    s = float((d * sgn).sum() / var)
    t = mu_d - s * r @ mu_s
    return s, r, t


def euler_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``Ry(yaw) Rx(pitch) Rz(roll)`` (radians)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def matrix_to_euler(r: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`euler_to_matrix`: ``(yaw, pitch, roll)``."""
    pitch = float(np.arcsin(np.clip(-r[1, 2], -1, 1)))
    yaw = float(np.arctan2(r[0, 2], r[2, 2]))
    roll = float(np.arctan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


@dataclasses.dataclass
class HeadFit:
    """Rigid fits of a track of faces."""
    head: np.ndarray       # [T, 6] yaw, pitch, roll, tx, ty (crop units), log s; NaN where no face
    canon: np.ndarray      # [T, 478, 3] canonical-space faces; NaN where no face
    residual: np.ndarray   # [T] RMS of the rigid-point fit residual (canonical units)


def fit_head(face_crop: np.ndarray, face_ok: np.ndarray, canonical: np.ndarray,
             rigid_idx=L.RIGID_IDX) -> HeadFit:
    """Fit the canonical face to every frame of ``face_crop [T, 478, 3]`` (crop coordinates)."""
    face_crop = np.asarray(face_crop)
    T = face_crop.shape[0]
    head = np.full((T, 6), np.nan)
    canon = np.full((T, 478, 3), np.nan)
    res = np.full(T, np.nan)
    c_r = canonical[rigid_idx].astype(np.float64)
    for t in range(T):
        if not face_ok[t] or not np.all(np.isfinite(face_crop[t])):
            continue
        p = isotropic(face_crop[t])
        s, r, tr = umeyama(c_r, p[rigid_idx])
        yaw, pitch, roll = matrix_to_euler(r)
        head[t] = [yaw, pitch, roll, tr[0], tr[1] / Y_SCALE, np.log(s)]
        q = (p - tr) @ r / s  # R^T (p - t) / s, row vectors
        canon[t] = q
        res[t] = np.sqrt(np.mean(((q[rigid_idx] - c_r) ** 2).sum(-1)))
    return HeadFit(head.astype(np.float32), canon.astype(np.float32), res.astype(np.float32))


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


def eye_widths(canon_one: np.ndarray) -> tuple[float, float]:
    """Eye widths (right, left) of one canonical face ``[478, 3]``."""
    return (float(np.linalg.norm(canon_one[RIGHT_EYE_CORNERS[0]] - canon_one[RIGHT_EYE_CORNERS[1]])),
            float(np.linalg.norm(canon_one[LEFT_EYE_CORNERS[0]] - canon_one[LEFT_EYE_CORNERS[1]])))


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


def pose_points(canon_face: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Pose a canonical face ``[N, 3]`` with an absolute ``head [6]`` (yaw, pitch, roll, tx, ty, log s)
    -> crop coordinates ``[N, 3]`` (x, y in crop units, z in the unit of x). Inverse of :func:`fit_head`."""
    r = euler_to_matrix(float(head[0]), float(head[1]), float(head[2]))
    p = float(np.exp(head[5])) * np.asarray(canon_face, np.float64) @ r.T
    p[:, 0] += head[3]
    p[:, 1] += head[4] * Y_SCALE
    p[:, 1] /= Y_SCALE
    return p
