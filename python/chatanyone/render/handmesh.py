"""An articulated hand for the geometry renderer: a small mesh over the hand, moved bone by bone.

The 21 mediapipe hand points of the photo give the mesh's vertices (:class:`HandMesh`), in region
pixels:

- the 21 points themselves;
- two vertices across every finger joint and fingertip (half a finger's width either side of the
  bone that ends there), one beyond each fingertip, and two at the palm's outer edges;
- a margin ring round the hand (:data:`MARGIN` palm lengths out), so the skin and the background
  between and around the fingers follow the fingers instead of tearing.

Each vertex is attached to a part: the palm or one finger bone. For a driving hand (its 21 points)
the palm moves by a similarity fitted on the palm points (turn and scale clamped), and each finger
bone by a rotation to the driving bone's direction with its length scaled (clamped; a bent finger
foreshortens) and its width scaled like the palm. Bones are chained from the palm out, so a finger
stays attached to its palm whatever the driving points say. Margin vertices move with the part of
the hand vertex they are nearest to.

:meth:`HandMesh.plausible` refuses driving points that no hand of this photo could show (palm
size off by more than 2x, a finger bone more than :data:`MAX_BONE_STRETCH` times its photo length;
the wrist-to-knuckle lines are the palm's, which the similarity fits: a photo's palm seen end-on
has them short, and a driving palm that is not would be refused for nothing), and
:meth:`HandMesh.drive` refuses a driven mesh that folds over (more than :data:`MAX_FOLD` of its
area turned over: a hand turned or closed beyond what the photo's hand can show); the caller then
falls back to one similarity for the whole hand. A driven mesh folded less than that still has
turned-over triangles (a fingertip bent back over the margin ring); :func:`unfolded` leaves them
out where the hand is drawn, as warped they carry the photo's fingertip mirrored, a sliver
detached from the hand. Pure numpy, ~0.1 ms per hand.
"""
from __future__ import annotations

import numpy as np

# mediapipe hand: fingers from their base (thumb CMC, finger MCPs) to their tips; the palm's points
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
PALM = (0, 1, 5, 9, 13, 17)
PARENT = {f[i]: (0 if i == 0 else f[i - 1]) for f in FINGERS for i in range(4)}

HALF_WIDTH = 0.1        # a finger's half width, in palm lengths (:func:`hand_size`)
THUMB_HALF_WIDTH = 0.12
TIP_BEYOND = 0.08       # the fingertip's skin beyond its point, palm lengths
MARGIN = 0.3            # the margin ring's distance from the hand, palm lengths
N_RING = 16             # margin ring vertices
PALM_MAX_TURN = 0.8     # radians the palm may turn against the photo
PALM_SCALE = (0.8, 1.25)
# the palm's similarity keeps the wrist on the driving wrist (session 12): fitted on the palm's
# centre, a photo's palm seen end-on was carried off its forearm by a driving palm seen face-on
PALM_AT_WRIST = True
BONE_LENGTH = (0.3, 1.5)  # a bone's length against its photo length (foreshortening, stretch)
MAX_BONE_STRETCH = 2.5  # a driving bone longer than this times its photo bone is implausible
PALM_RATIO = (0.5, 2.0)  # driving palm length against the photo's: outside, implausible
MAX_FOLD = 0.1           # share of the hand mesh's area that may turn over before the fallback


def hand_size(p: np.ndarray) -> float:
    """A hand's scale in pixels, robust to foreshortening: the larger of its palm length (wrist to
    middle-finger base) and 1.2 times its knuckle width (index to little-finger base)."""
    return max(float(np.linalg.norm(p[9] - p[0])), 1.2 * float(np.linalg.norm(p[17] - p[5])))


def _rot(th: float) -> np.ndarray:
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


def _angle(v: np.ndarray) -> float:
    return float(np.arctan2(v[1], v[0]))


def signed_areas(v: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Signed areas ``[T]`` of triangles ``tri [T, 3]`` (vertex indices) over vertices ``v [N, 2]``."""
    v = np.asarray(v, np.float64)
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def unfolded(tri: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The triangles of ``tri [T, 3]`` that keep their orientation from ``src [N, 2]`` to ``dst [N, 2]``
    (``[T', 3]``): a triangle turned over by a driven hand (a finger bent back over the margin ring)
    maps the photo's pixels mirrored, often far from the hand (a fingertip sliver floating beside
    it); left out, the pixels under it show what is beneath the hand instead."""
    tri = np.asarray(tri).reshape(-1, 3)
    if not len(tri):
        return tri
    a0, a1 = signed_areas(src, tri), signed_areas(dst, tri)
    return tri[(np.sign(a0) == np.sign(a1)) & (a0 != 0)]


def palm_similarity(src: np.ndarray, dst: np.ndarray, max_turn: float, scale_range) -> np.ndarray:
    """``[2, 3]`` similarity (rotation, uniform scale, shift) taking ``src [N, 2]`` closest to ``dst``
    (least squares), its turn and scale clamped: a palm here, a whole hand in
    :class:`~chatanyone.render.geometry._Limbs`' fallback."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    den = max(float((a ** 2).sum()), 1e-9)
    c = float((a * b).sum()) / den
    d = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / den
    r = float(np.clip(np.hypot(c, d), *scale_range)) * _rot(float(np.clip(np.arctan2(d, c), -max_turn, max_turn)))
    return np.concatenate([r, (md - r @ ms)[:, None]], 1)


class HandMesh:
    """The mesh of one hand of the photo (see the module docstring).

    Args:
        hand: ``[21, 2]`` the photo's hand points in region pixels (finite).

    Attributes:
        vertices: ``[N, 2]`` source vertices (region pixels); the first 21 are the hand points.
        part: ``[N]`` int, the part each vertex moves with: 0 the palm, ``j`` (1..20, not a palm
            point) the bone from ``PARENT[j]`` to ``j``.
        palm_length: the hand's size (:func:`hand_size`), pixels: the unit of the widths above.
    """

    def __init__(self, hand: np.ndarray):
        h = np.asarray(hand, np.float64).reshape(21, 2)
        if not np.all(np.isfinite(h)):
            raise ValueError("hand: the 21 points must be finite")
        self.hand = h
        lp = hand_size(h)
        self.palm_length = lp
        verts = [p for p in h]
        part = [0 if j in PALM else j for j in range(21)]
        for f in FINGERS:
            w = (THUMB_HALF_WIDTH if f[0] == 1 else HALF_WIDTH) * lp
            for i in range(1, 4):
                j, pj = f[i], f[i - 1]
                d = h[j] - h[pj]
                u = d / max(float(np.linalg.norm(d)), 1e-9)
                n = np.array([-u[1], u[0]])
                verts += [h[j] + w * n, h[j] - w * n]
                part += [j, j]
                if i == 3:
                    verts.append(h[j] + TIP_BEYOND * lp * u)
                    part.append(j)
        # the palm's outer edges: beside the index and little-finger bases, and the wrist
        across = h[17] - h[5]
        across = across / max(float(np.linalg.norm(across)), 1e-9)
        verts += [h[5] - HALF_WIDTH * lp * across, h[17] + HALF_WIDTH * lp * across]
        part += [0, 0]
        core = np.array(verts)
        # margin ring: the hand's support in N_RING directions, pushed out by MARGIN
        c = h[list(PALM)].mean(0)
        ring, ring_part = [], []
        for th in np.linspace(0, 2 * np.pi, N_RING, endpoint=False):
            u = np.array([np.cos(th), np.sin(th)])
            proj = (core - c) @ u
            k = int(np.argmax(proj))
            ring.append(c + (proj[k] + MARGIN * lp) * u)
            ring_part.append(part[k])
        self.n_core = len(core)
        self.vertices = np.concatenate([core, np.array(ring)])
        self.part = np.array(part + ring_part, np.int64)
        # its own triangulation, to see whether a driven hand folds over (see :meth:`drive`)
        from scipy.spatial import Delaunay
        try:
            tri = Delaunay(self.vertices).simplices
        except Exception:      # degenerate (all points on a line): no fold check possible
            tri = np.zeros((0, 3), np.int64)
        self._tri = tri
        self._area0 = self._areas(self.vertices)

    def plausible(self, drv: np.ndarray) -> bool:
        """Whether driving points ``[21, 2]`` (region pixels) can be shown by this photo's hand."""
        d = np.asarray(drv, np.float64)
        if d.shape != (21, 2) or not np.all(np.isfinite(d)):
            return False
        ratio = hand_size(d) / max(self.palm_length, 1e-9)
        if not PALM_RATIO[0] <= ratio <= PALM_RATIO[1]:
            return False
        for j, p in PARENT.items():
            if p == 0:      # wrist to a finger's base: the palm's shape, fitted by the similarity
                continue
            ls = float(np.linalg.norm(self.hand[j] - self.hand[p]))
            ld = float(np.linalg.norm(d[j] - d[p]))
            if ld > MAX_BONE_STRETCH * max(ls, 0.05 * self.palm_length):
                return False
        return True

    def transforms(self, drv: np.ndarray) -> dict[int, np.ndarray]:
        """``{part: [2, 3] affine}`` in region pixels for driving points ``drv [21, 2]``."""
        h = self.hand
        d = np.asarray(drv, np.float64)
        pal = list(PALM)
        palm = palm_similarity(h[pal], d[pal], PALM_MAX_TURN, PALM_SCALE)
        if PALM_AT_WRIST:    # the palm turned and scaled about the wrist: the hand stays on its forearm
            palm[:, 2] = d[0] - palm[:, :2] @ h[0]
        scale = float(np.sqrt(abs(np.linalg.det(palm[:, :2]))))
        out = {0: palm}
        pos = {j: palm[:, :2] @ h[j] + palm[:, 2] for j in pal}       # driven joint positions
        for f in FINGERS:
            for i in range(1, 4):
                j, pj = f[i], f[i - 1]
                vs, vd = h[j] - h[pj], d[j] - d[pj]
                ls = max(float(np.linalg.norm(vs)), 1e-9)
                k = float(np.clip(np.linalg.norm(vd) / ls, *BONE_LENGTH))
                ts, td = _angle(vs), _angle(vd)
                # in the bone's frame: length scaled by k, width like the palm; then turned to td
                a = _rot(td) @ np.diag([k, scale]) @ _rot(-ts)
                b = pos[pj] - a @ h[pj]
                out[j] = np.concatenate([a, b[:, None]], 1)
                pos[j] = a @ h[j] + b
        return out

    def _areas(self, v: np.ndarray) -> np.ndarray:
        return signed_areas(v, self._tri)

    def folded(self, driven: np.ndarray) -> float:
        """The share of the hand mesh's area whose triangles turn over in ``driven [N, 2]``."""
        if not len(self._tri):
            return 0.0
        a1 = self._areas(np.asarray(driven, np.float64))
        flip = np.sign(a1) != np.sign(self._area0)
        return float(np.abs(self._area0[flip]).sum() / max(np.abs(self._area0).sum(), 1e-12))

    def drive(self, drv: np.ndarray) -> np.ndarray | None:
        """Driven vertices ``[N, 2]`` (region pixels) for driving points ``drv [21, 2]``, or None
        where the driven mesh folds over more than :data:`MAX_FOLD` of its area (a hand turned or
        closed so far that the photo's hand cannot show it: warped, it tears into slivers)."""
        tr = self.transforms(drv)
        out = np.empty_like(self.vertices)
        for p, m in tr.items():
            sel = self.part == p
            out[sel] = self.vertices[sel] @ m[:, :2].T + m[:, 2]
        if self.folded(out) > MAX_FOLD:
            return None
        return out

    def move_rigid(self, m: np.ndarray) -> np.ndarray:
        """All vertices moved by one ``[2, 3]`` affine (the fallback)."""
        return self.vertices @ m[:, :2].T + m[:, 2]
