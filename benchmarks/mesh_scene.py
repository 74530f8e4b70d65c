"""A face-mesh warp as the geometry-first renderer does it, for the mesh_flow benchmarks.

The default portrait's 478-point face mesh (chatanyone's landmark detector, run once on the photo)
with the renderer's own triangles (chatanyone.render.mesh: 852), driven by an open mouth and a small head turn,
plus a coarse outer mesh anchored beyond the frame border (Delaunay over a lattice and the face
oval): about 1000 triangles covering the whole frame, the face drawn over the outer mesh by depth.

Also the obvious alternative to mesh_flow + warp: OpenCV per-triangle affine warps
(cv2.getAffineTransform + cv2.warpAffine into the triangle's box, then a triangle mask) composed
in painter's order.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


def face_triangles() -> np.ndarray:
    """[T, 3] int32: the face mesh's triangles as the renderer uses them (shipped with chatanyone)."""
    from chatanyone.render.mesh import face_triangles as shipped

    return np.asarray(shipped(), np.int32)


def face_oval() -> list[int]:
    """The face outline as one closed loop of vertex indices (chatanyone.render.mesh.FACE_OVAL)."""
    from chatanyone.render.mesh import FACE_OVAL

    return list(FACE_OVAL)


@functools.lru_cache(maxsize=1)
def _photo_and_face():
    from chatanyone.assets import default_avatar_image
    from chatanyone.vision.detect import Detector

    img = default_avatar_image()  # [600, 512, 3] uint8
    with Detector(video=False, pose=False, hands=False) as det:
        lm = det(img)
    if not lm.face_ok:
        raise RuntimeError("no face found on the default portrait")
    return img, lm.face


@dataclass
class MeshScene:
    image: np.ndarray  # [H, W, 3] float32 in [0, 1], the source frame
    src: np.ndarray    # [V, 2] float32 normalized (align_corners=False), vertices in the source
    dst: np.ndarray    # [V, 2] float32 normalized, the driven vertices
    depth: np.ndarray  # [V] float32, smaller = nearer (face z; the outer mesh behind it)
    triangles: np.ndarray  # [T, 3] int32: the face's first, then the outer mesh's
    n_face: int        # how many of the triangles are the face's

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


def build_scene(h: int, w: int, *, mouth_open: float = 0.12, turn_deg: float = 4.0) -> MeshScene:
    """The default portrait framed head-and-shoulders at h x w (the face about 40% of the height),
    and its mesh driven with the mouth opened by `mouth_open` face heights and the head turned by
    `turn_deg` degrees and shifted by 2% of the frame."""
    from scipy.spatial import Delaunay

    img, face = _photo_and_face()
    fx, fy = face[:, 0] * img.shape[1], face[:, 1] * img.shape[0]  # photo pixels
    face_h = float(fy.max() - fy.min())
    s = h * 0.4 / face_h
    cx, cy = float(fx.mean()), float(fy.mean()) + 0.3 * face_h
    m = np.array([[s, 0, w / 2 - s * cx], [0, s, h / 2 - s * cy]], np.float64)
    frame = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101)
    px, py = fx * s + m[0, 2], fy * s + m[1, 2]  # frame pixels (cv2: pixel centres at integers)
    src_face = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)  # normalized

    # Driving face: open the jaw below the inner upper lip (13), then turn and shift the head.
    fh = src_face[:, 1].max() - src_face[:, 1].min()
    y13, y14 = src_face[13, 1], src_face[14, 1]
    ramp = np.clip((src_face[:, 1] - y13) / max(y14 - y13, 1e-3), 0, 1)
    lateral = np.exp(-(((src_face[:, 0] - src_face[13, 0]) / (0.35 * np.ptp(src_face[:, 0]))) ** 2))
    dst_face = src_face.copy()
    dst_face[:, 1] += mouth_open * fh * ramp * lateral
    c = dst_face.mean(0)
    a = np.deg2rad(turn_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst_face = (dst_face - c) @ rot.T + c + np.array([0.02, -0.02])

    # Outer mesh: a lattice reaching beyond the border (anchored: dst = src) and the face oval.
    oval = face_oval()
    gx, gy = np.meshgrid(np.linspace(-1.1, 1.1, 7), np.linspace(-1.1, 1.1, 10))
    lattice = np.stack([gx.ravel(), gy.ravel()], -1)
    poly = src_face[oval].astype(np.float32)
    centre = poly.mean(0)
    grown = (centre + 1.3 * (poly - centre)).astype(np.float32)  # keep lattice points off the face
    keep = [cv2.pointPolygonTest(grown, (float(x), float(y)), False) < 0 for x, y in lattice]
    lattice = lattice[np.array(keep)]
    pts = np.concatenate([src_face[oval], lattice])
    ids = np.concatenate([np.array(oval), len(face) + np.arange(len(lattice))])  # vertex indices
    outer = []
    for tri in Delaunay(pts).simplices:
        if (tri < len(oval)).all():  # inside the oval: the face mesh's part
            continue
        outer.append(ids[tri])
    src = np.concatenate([src_face, lattice]).astype(np.float32)
    dst = np.concatenate([dst_face, lattice]).astype(np.float32)
    depth = np.concatenate([face[:, 2], np.full(len(lattice), face[:, 2].max() + 1.0)]).astype(np.float32)
    ftris = face_triangles()
    tris = np.concatenate([ftris, np.array(outer, np.int32)]).astype(np.int32)
    return MeshScene(frame.astype(np.float32) / 255, src, dst, depth, tris, len(ftris))


def to_pixels(v: np.ndarray, h: int, w: int) -> np.ndarray:
    """Normalized (align_corners=False) -> OpenCV pixel coordinates (centres at integers)."""
    return np.stack([(v[:, 0] + 1) * w / 2 - 0.5, (v[:, 1] + 1) * h / 2 - 0.5], -1).astype(np.float32)


def painter_order(scene: MeshScene) -> np.ndarray:
    """Triangles far to near (mean vertex depth), ties by index: what OpenCV draws in order."""
    z = scene.depth[scene.triangles].mean(1)
    return np.lexsort((np.arange(len(z)), -z))


def warp_triangles_cv2(image: np.ndarray, src_px: np.ndarray, dst_px: np.ndarray, triangles: np.ndarray,
                       order: np.ndarray) -> np.ndarray:
    """The OpenCV way: for each triangle, the affine map of its source triangle onto its driven
    one, warped (bilinear) into the driven triangle's bounding box and copied in under a filled
    triangle mask; later triangles overwrite earlier ones. `image` [H, W, C] float32 or uint8."""
    h, w = image.shape[:2]
    out = image.copy()
    for t in order:
        s, d = src_px[triangles[t]], dst_px[triangles[t]]
        x0, y0 = max(int(np.floor(d[:, 0].min())), 0), max(int(np.floor(d[:, 1].min())), 0)
        x1, y1 = min(int(np.ceil(d[:, 0].max())) + 1, w), min(int(np.ceil(d[:, 1].max())) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        local = d - np.array([x0, y0], np.float32)
        m = cv2.getAffineTransform(s, local)
        patch = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(local * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
        region = out[y0:y1, x0:x1]
        np.copyto(region, patch, where=mask[..., None].astype(bool))
    return out
