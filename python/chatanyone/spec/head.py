"""Head and expression geometry shared by run time and the corpus: the canonical face and
expression basis, the rigid head fit, and posing a canonical face back into a crop.

Face landmarks in crop coordinates are first made isotropic: ``(x, 1.5 * y, z)`` (a crop is 1.5
times as tall as wide, and x, z are in half crop widths). A similarity transform ``p = s R c + t``
maps the canonical face ``c`` (478 points, face height 1, frontal, centred on its rigid points)
onto each frame, fitted on :data:`~.keypoint_layout.RIGID_IDX` (points that do not move with
expression) by Umeyama's method. ``R = Ry(yaw) Rx(pitch) Rz(roll)`` in the camera frame x right, y
down, z away from the camera. The canonical-space face of a frame is ``R^T (p - t) / s``;
:func:`pose_points` is the inverse.

Expression coefficients are the canonical-space face minus a neutral shape over the 468 mesh
points, projected on the orthonormal rows of :class:`FaceBasis` ``components`` (fitted offline by
``chatanyone.data.motion_features.fit_basis``, shipped in ``chatanyone/weights/face_basis.npz``).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import io

import numpy as np

from .keypoint_layout import RIGID_IDX

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
                                    "chatanyone.data.motion_features.fit_basis over a corpus")
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
             rigid_idx=RIGID_IDX) -> HeadFit:
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


def eye_widths(canon_one: np.ndarray) -> tuple[float, float]:
    """Eye widths (right, left) of one canonical face ``[478, 3]``."""
    return (float(np.linalg.norm(canon_one[RIGHT_EYE_CORNERS[0]] - canon_one[RIGHT_EYE_CORNERS[1]])),
            float(np.linalg.norm(canon_one[LEFT_EYE_CORNERS[0]] - canon_one[LEFT_EYE_CORNERS[1]])))


def pose_points(canon_face: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Pose a canonical face ``[N, 3]`` with an absolute ``head [6]`` (yaw, pitch, roll, tx, ty, log s)
    -> crop coordinates ``[N, 3]`` (x, y in crop units, z in the unit of x). Inverse of :func:`fit_head`."""
    r = euler_to_matrix(float(head[0]), float(head[1]), float(head[2]))
    p = float(np.exp(head[5])) * np.asarray(canon_face, np.float64) @ r.T
    p[:, 0] += head[3]
    p[:, 1] += head[4] * Y_SCALE
    p[:, 1] /= Y_SCALE
    return p
