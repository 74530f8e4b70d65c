"""Face-mesh topology for the geometry renderer: triangles, holes, rings.

The 478-point mediapipe face mesh comes with its edges (``FACEMESH_TESSELATION``), not its faces.
Its 852 triangles are the 3-cliques of that edge graph less the two "separating" cliques (three
edges that each already border two real triangles: around the nostrils). They are derived once by
:func:`triangles_from_tesselation` and shipped in ``chatanyone/weights/face_mesh.npz`` so that run
time does not import mediapipe's solutions (a test checks the file against the derivation).

The mesh has holes at the eyes and the mouth. :func:`eye_fill_triangles` closes the eye holes with a
strip between the upper and the lower lid, so the eyes move with the face and collapse when the lids
meet. The mouth hole stays open: the renderer fills what the lips uncover (see
:mod:`chatanyone.render.geometry`).
"""
from __future__ import annotations

import collections
import functools
import importlib.resources
import io
import itertools

import numpy as np

# lid contours from the outer to the inner corner (mediapipe FACEMESH_RIGHT_EYE / LEFT_EYE)
RIGHT_EYE_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
RIGHT_EYE_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
LEFT_EYE_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
LEFT_EYE_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
# inner lip contour from the right mouth corner (78) to the left one (308)
LIP_UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIP_LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
# outer lip contour, same corners (61, 291)
LIP_UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIP_LOWER_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
# the face oval, closed, clockwise in the image from the top of the forehead
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
N_FACE = 478


def triangles_from_tesselation(edges) -> np.ndarray:
    """The faces of the mesh whose edge set is ``edges`` (pairs of vertex ids) -> ``[T, 3]`` int32.

    Every 3-clique is a candidate; a clique all of whose edges also border two other cliques is a
    separating triangle, not a face, and is dropped. Sorted, each row ascending.
    """
    adj = collections.defaultdict(set)
    for a, b in edges:
        adj[int(a)].add(int(b))
        adj[int(b)].add(int(a))
    tris = set()
    for a in adj:
        for b in adj[a]:
            if b > a:
                tris.update((a, b, c) for c in adj[a] & adj[b] if c > b)
    use = collections.Counter(e for t in tris for e in itertools.combinations(t, 2))
    faces = [t for t in tris if not all(use[e] > 2 for e in itertools.combinations(t, 2))]
    return np.array(sorted(faces), np.int32)


@functools.lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """The face mesh's 852 triangles ``[T, 3]`` int32 (shipped; read-only)."""
    ref = importlib.resources.files("chatanyone.weights").joinpath("face_mesh.npz")
    with np.load(io.BytesIO(ref.read_bytes()), allow_pickle=False) as z:
        t = z["triangles"].astype(np.int32)
    t.flags.writeable = False
    return t


def _strip(upper: list[int], lower: list[int]) -> list[tuple[int, int, int]]:
    """Triangles between two contours that share their end points."""
    out = [(upper[0], upper[1], lower[1])]
    for i in range(1, len(upper) - 2):
        out.append((upper[i], upper[i + 1], lower[i]))
        out.append((lower[i], upper[i + 1], lower[i + 1]))
    out.append((upper[-2], upper[-1], lower[-2]))
    return out


def eye_fill_triangles() -> np.ndarray:
    """Triangles closing both eye holes: ``[28, 3]`` int32."""
    return np.array(_strip(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER) + _strip(LEFT_EYE_UPPER, LEFT_EYE_LOWER),
                    np.int32)


def mouth_fill_triangles() -> np.ndarray:
    """Triangles closing the mouth hole (a strip between the inner lips): ``[18, 3]`` int32."""
    return np.array(_strip(LIP_UPPER_INNER, LIP_LOWER_INNER), np.int32)


def write_face_mesh(path) -> None:
    """Derive the triangles from mediapipe's tesselation and write ``face_mesh.npz`` (maintainers)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    np.savez(path, triangles=triangles_from_tesselation(FACEMESH_TESSELATION).astype(np.int16))
