"""The geometry-first renderer: the user's photo, moved by the tracked face mesh, pasted back.

Per frame (:meth:`GeomRenderer.render`), for one motion frame:

1. **Driving mesh.** The avatar's neutral canonical face (its photo's expression removed, see
   :func:`neutral_face`) plus the motion's expression (PCA basis), posed with the photo's head pose
   plus the motion's head change (:func:`chatanyone.spec.head.pose_points`): 478 points. A
   driving video's motion (``exp_ref_gap``, reenactment) instead adds its expression, relative to
   its first frame, to the photo's own face with the lips set to that frame's gap
   (:meth:`GeomRenderer.relative_base`; the eyes as before).
2. **Coarse mesh.** Two rings around the face oval (hair, ears, neck) that move with the head (the
   outer ring only partly); the shoulders, and arms that cannot be layered, bone by bone
   (:class:`~chatanyone.render.limbs.Limbs`); points on the region's border that never move. Delaunay-triangulated once, on the photo.
   Motion from a driving video may carry the body's and the hair's own motion, registered on
   its frames (``torso`` and ``hair`` maps, :func:`chatanyone.reenact.body_motion`): then the
   chest, a grid of body vertices, the resting arms and the border below the chin move by the
   torso's map, the rings and the border above the chin by the hair's (render/design.md); a
   ``face`` map (the upper face, registered) moves the driving face part way to where the video's
   face went (:data:`FACE_REG`). A Session's motion has no such maps and renders as before.
3. **Flow.** The face triangles (852, the eye holes closed by lid strips; a closing eye is drawn
   with the lid's skin over it, :meth:`GeomRenderer._lid_mesh`) and the coarse triangles
   are rasterized into a backward flow over the animated region (``chatanyone.ops.mesh_flow``); the
   face wins where they overlap (nearer depth); the coarse mesh lies behind it.
4. **Warp.** The region of the photo, at output resolution, with the person's alpha as a fourth
   channel (:func:`person_layers`: selfie segmentation of the photo, grown a little), is sampled
   along the flow (``chatanyone.ops.warp``) and composited over a still background plate (the
   photo, inpainted behind the person): the background stays where it is while the head moves,
   instead of being stretched with it.
   Where arms are layered, the photo under them has those arms filled, and they are drawn over
   the result as a layer of their own, moved by forward kinematics (:mod:`chatanyone.render.limbs`).
5. **Mouth.** A strip of triangles between the inner lips maps the photo's own mouth into the
   driven opening: where the photo shows its teeth (lips apart by ``PHOTO_MOUTH_GAP`` of the mouth
   width or more) that is all. Where the photo's lips are closed there is nothing to map, so the
   opening is painted: a dark interior with a shaded band of upper teeth (lower teeth when it opens
   wide), blended with soft edges.
6. **Paste-back.** The region is blended into the photo (resized to the output size) through a
   feathered border; every pixel outside the region is the resized photo's, bit for bit.

No network runs: a frame costs a few milliseconds of native kernels and numpy. Coordinates: the
avatar's landmarks are in its crop coordinates (the 2:3 motion box ``Avatar.box``), mapped
affinely to the region's normalized coordinates (``align_corners=False``).
"""
from __future__ import annotations

import functools
import itertools
import logging
import time

import numpy as np

from . import mesh as M
from .handmesh import palm_similarity
from .limbs import ARM_MODES, Limbs as _Limbs, _get  # noqa: F401  (ARM_MODES: re-exported)
from .region import letterbox
from ..spec import keypoint_layout as L
from ..spec.presets import PRESET_LONG_SIDE

log = logging.getLogger("chatanyone")

COARSE_DEPTH = 10.0          # depth of the coarse mesh: behind every face triangle
# inner-lip gap / mouth width of the neutral face the motion is relative to: the motion model
# closes it by about this much in silence (measured on its output), so silence closes the lips
NEUTRAL_GAP = 0.05
GAP_TOLERANCE = 0.01         # a photo whose gap is this close to NEUTRAL_GAP is left as it is
# a photo whose lips are at least this far apart (inner gap / mouth width) shows its own mouth's
# inside (teeth, tongue): the mouth strip maps it into the driven opening instead of painting one
PHOTO_MOUTH_GAP = 0.1
# the photo's teeth (mouth="rigid"): the row between its upper and lower teeth is the darkest of the
# inside's middle columns within this range (0 the upper inner lip, 1 the lower); the gap between
# the driven teeth takes the mean colour of the inside's darker half, at most this luminance (0-1),
# with a little of the tongue's colour at its bottom (chosen on the dev clips: mouth-box PSNR
# 24.34 against 23.91 for the darkest tenth at most 0.15, amplitude 0.93 against 0.91)
TEETH_SPLIT_RANGE = (0.2, 0.8)
TEETH_GAP_SHARE = 0.5
TEETH_GAP_MAX_LUM = 0.35
TEETH_TONGUE = 0.5
# a narrow opening is in the lips' shadow: the teeth's light ramps from none at this opening (gap
# over mouth width) to full at that one (chosen on the dev clips: a mouth barely apart reads closed)
TEETH_SHADOW = (0.06, 0.2)
# the painted mouth (a photo with closed lips): its teeth take the same shadow (PAINT_SHADOW; before
# session 10 a narrow opening showed a full-bright teeth band with a black outline, and face mesh read
# a still one unsteadily), and the painted interior is blurred by PAINT_SOFT px (Gaussian sigma) where
# it meets the lips, as soft as the warped photo around it (0: crisp edges, as before). Chosen on DEV
# and training clips with pauses whose photos get a painted mouth (motion/design.md, "Session 10")
PAINT_SHADOW = True
PAINT_SOFT = 0.8
PHOTO_SOFT = 0.0
FEATHER = 0.04               # paste-back feather width, fraction of the region's shorter side
# the person layer (see person_layers): the selfie segmentation's mask (probability > PERSON_P),
# grown by PLATE_DILATE of the region's shorter side; its alpha falls to 0 over ALPHA_FALLOFF px
PERSON_P = 0.5
PLATE_DILATE = 0.01
ALPHA_FALLOFF = 2.0
# how much of the head's motion the outer ring round the face follows: above the head, below it
RING2_FOLLOW = (0.6, 0.3)
TORSO_DOWN = (0.15, 0.45)    # chest vertices: shoulder widths below the shoulders' midpoint
TORSO_SIDE = 0.3             # and this many shoulder widths either side of it
# the body's registered motion (frames with a "torso" map, see GeomRenderer._registered_mesh), in
# face heights: grid spacing, where the grid starts below the chin, its clearance from other
# coarse vertices, and the rise of the map's weight below the chin (chosen on the DEV clips)
BODY_GRID = 0.6
BODY_FROM = 0.6
BODY_CLEAR = 0.3
BODY_RAMP = 0.1
# frames with a "hair" map: each ring round the face (inner, outer) moves by this blend of the
# mesh's head pose (1) and the registered map (0), and follows it by this weight (None: the
# ring's usual weight, RING2_FOLLOW for the outer one)
HAIR_MESH = (0.0, 0.0)
HAIR_FOLLOW = (None, None)
# ... the rings' upper part only: the hair map's weight falls from 1 where a ring vertex lies at or
# above this first height to 0 at the second (its direction from the face oval's centre, -1 up,
# +1 down); the rest (the neck) keeps the head pose
HAIR_DY = (1.0, 1.01)
# ... and the outer ring's weight by the region's kind, overriding the above (None: keep it): in a
# region without arms the whole head, hair and ears, rides with the hair's map; with arms the
# outer ring lies on shoulders and arms and keeps its partial weight (session 10, render/design.md)
HAIR_OUTER = {"head": 1.0, "head_shoulders": 1.0, "upper_body": None}
# frames with a "face" map: how far the driving face (and the rings with it) is moved to where the
# driving video's upper face moved (registered), from where the motion's head pose puts it
FACE_REG = 0.5
# frames with a "torso" map: how far the rings' vertices below the chin (the neck) follow it
NECK_TORSO = 1.0
# frames with a "hair" map: how far the region's border above the chin follows it (0: pinned)
BORDER_HAIR = 1.0
# frames with a registered map: how far a border point may move along its side, as a fraction of
# the border points' spacing (neighbours never cross: an affine map keeps their order and the clamp
# is monotone); it never moves into the region (GeomRenderer._hold_border: a point moved inward
# left pixels no triangle covers, issue #11). 0.45 held the body back on a panning or zooming
# camera; 0.9 chosen in session 11 (render/design.md)
BORDER_SLIDE = 0.9
# frames with a "torso" map: how the arms move ("pose": by the pose's offsets, as without a map;
# "shoulders": the shoulders by the map, elbows and wrists by the pose; "torso": all by the map)
BODY_ARMS = "gated"
# "gated": an arm whose elbow or wrist the pose moves this far (face heights) beyond the body's map
# starts to follow the pose, fully at the second figure
ARM_GATE = (0.3, 0.6)
# ... for an arm drawn as a layer (limbs.ArmLayer: what it uncovers is the fill, the torso is not
# stretched)
ARM_GATE_LAYER = (0.25, 0.5)
# ... and below its gate a wrist rides the torso's map only as far as the driving pose's wrist has
# ridden it so far: the wrist's pose offsets regressed on the map's (least squares through 0 over
# the frames rendered, clipped to [0, 1]), starting from a ride of 1 worth WRIST_RIDE_PRIOR frames
# of a WRIST_RIDE_SCALE face heights' move. A hand resting on the lap stays while the chest leans;
# one on the body rides with it (the elbow, between the two, rides the map as before). None: the
# wrist rides the whole map (before session 15; render/design.md "Session 15")
WRIST_RIDE_PRIOR = 10.0
WRIST_RIDE_SCALE = 0.05
# a letterbox bar's edge (photo pixels) left out of the region with the bar: a video's bar edge is
# blurred over a line or two (compression, resizing), and a warp that samples beyond the region's
# edge repeats its outermost line (a dark notch where the forehead reached the bar)
BAR_EDGE = 2
# frames with a "background" map (the driving scene's registered motion: a camera's pan or zoom)
# move the plate under the person by it (layered renderers only; session 11, render/design.md)
BACKGROUND_MOVES = True
# frames with registered maps (layered renderers, regions without arms: SIL_KINDS): vertices along
# the person's outline, on the background SIL_MARGIN face heights beyond the person layer's alpha,
# SIL_STEP apart, at least SIL_CLEAR from the mesh's other vertices and the region's border, moved by
# the hair's map above the chin and the torso's below it (cross-faded over BODY_RAMP round it): the
# person moves whole and the stretch towards a pinned border or a ring that moves otherwise falls on
# the background (alpha 0, the plate shows), not on the hair or the shoulders (session 12)
SILHOUETTE = True
SIL_MARGIN = 0.03
SIL_STEP = 0.15
SIL_CLEAR = 0.06
SIL_KINDS = ("head", "head_shoulders")
PLATE_SCALE = 4              # the plate is inpainted at 1/PLATE_SCALE of the region's size (speed)
HAND_MODES = ("articulated", "similarity")   # how hands move (see _Limbs)
MOUTH_MODES = ("rigid", "previous")          # how the mouth's inside is drawn (see GeomRenderer)
LID_MODES = ("skin", "strip")                # how a closing eye is drawn (see GeomRenderer)


# --- absolute expression --------------------------------------------------------------------

# The photo's expression beyond the mouth: brows, lip corners, mouth width, eye opening. Each is
# linear in the canonical face (face height 1) and compared with the basis's canonical face; its
# unit is its spread under expression (sigma: the basis's coefficient spreads through it). Over the
# neutral (median) faces of the 56 training-corpus clips these features lie within (5th..95th
# percentile, sigmas): brows -4.6..+6.1, lip-corner lift -2.5..+1.7, width -1.6..+2.4, eyes
# -1.6..+1.2, medians within 0.6 of the canonical face: identity (and how a speaker talks) moves
# them too, brows most. So only what lies beyond a band (low, high) is corrected, to the band's
# edge, by at most a cap (sigmas; one sigma of brow height is 0.55 % of the face height).
BROW_RIGHT = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
BROW_LEFT = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
EXPRESSION_BANDS = {"brow": (-3.5, 2.0, 6.0), "lift": (-2.0, 1.5, 3.5), "width": (-1.5, 1.5, 2.5),
                    "eye": (-1.5, 1.5, 1.0)}


def expression_features() -> list[tuple[str, str, np.ndarray]]:
    """``[(name, kind, W [468, 3])]``: the expression features beyond the mouth's gap, each
    ``sum(W * face[:468])`` of a canonical face (kind: the key of :data:`EXPRESSION_BANDS`)."""
    out = []

    def w(pairs):
        m = np.zeros((468, 3))
        for idx, axis, c in pairs:
            for i in idx:
                m[i, axis] += c / len(idx)
        return m

    for side, brow, eye in (("right", BROW_RIGHT, (33, 133)), ("left", BROW_LEFT, (263, 362))):
        out.append((f"brow_{side}", "brow", w([(eye, 1, 1.0), (brow, 1, -1.0)])))     # eye line - brow
    out.append(("lift_right", "lift", w([((0,), 1, 1.0), ((61,), 1, -1.0)])))         # corner above lip top
    out.append(("lift_left", "lift", w([((0,), 1, 1.0), ((291,), 1, -1.0)])))
    out.append(("width", "width", w([((291,), 0, 1.0), ((61,), 0, -1.0)])))
    out.append(("eye_right", "eye", w([((145,), 1, 1.0), ((159,), 1, -1.0)])))        # lower - upper lid
    out.append(("eye_left", "eye", w([((374,), 1, 1.0), ((386,), 1, -1.0)])))
    return out


def expression_offsets(canon_face: np.ndarray, basis) -> dict[str, float]:
    """Each expression feature of a canonical face ``[478, 3]`` minus the basis's canonical face's,
    in sigmas (see :data:`EXPRESSION_BANDS`)."""
    c = np.asarray(canon_face, np.float64)[:468]
    can = basis.canonical.astype(np.float64)[:468]
    comp = basis.components.astype(np.float64).reshape(basis.n_exp, 468, 3)
    out = {}
    for name, _, wt in expression_features():
        sig = float(np.sqrt(((np.einsum("eij,ij->e", comp, wt) * basis.std) ** 2).sum()))
        out[name] = float((wt * (c - can)).sum()) / max(sig, 1e-12)
    return out


# reenactment's expression relative to the driving first frame (``exp_ref_gap``): the eyes (lids)
# "median": relative to the driving video's median face on the photo's neutral face, as before
# session 12 (a first frame caught mid-blink would open the photo's eyes wider for the whole video);
# "first": relative to the first frame like the rest of the face
EYES_REF = "median"
EYE_ZONE = (0.6, 1.0)      # eye widths from an eye's centre: fully the eyes' reference, then none


@functools.lru_cache(maxsize=4)
def _eye_weights_cached(key: bytes, shape) -> np.ndarray:
    can = np.frombuffer(key, np.float32).reshape(shape).astype(np.float64)
    w = np.zeros(len(can))
    for upper, lower in ((M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER), (M.LEFT_EYE_UPPER, M.LEFT_EYE_LOWER)):
        pts = can[upper + lower, :2]
        cen = pts.mean(0)
        ew = float(np.linalg.norm(can[upper[0], :2] - can[upper[-1], :2]))
        d = np.linalg.norm(can[:, :2] - cen, axis=1) / max(ew, 1e-9)
        w = np.maximum(w, np.clip((EYE_ZONE[1] - d) / (EYE_ZONE[1] - EYE_ZONE[0]), 0.0, 1.0))
    return w


def _eye_weights(canonical: np.ndarray) -> np.ndarray:
    """``[478]`` weights of the eye zones (1 within ``EYE_ZONE[0]`` eye widths of an eye's centre,
    falling to 0 at ``EYE_ZONE[1]``), from the canonical face."""
    c = np.ascontiguousarray(canonical, np.float32)
    return _eye_weights_cached(c.tobytes(), c.shape)


LIP_GAP_UPPER, LIP_GAP_LOWER = M.LIP_UPPER_INNER[1:-1], M.LIP_LOWER_INNER[1:-1]


def lip_gap(canon_face: np.ndarray) -> float:
    """The inner lips' mean gap over the mouth's width, of a canonical face ``[478, 3]`` (the gap
    :func:`neutral_face` sets)."""
    c = np.asarray(canon_face, np.float64)
    width = float(np.linalg.norm(c[78] - c[308]))
    return float(np.mean(c[LIP_GAP_LOWER, 1] - c[LIP_GAP_UPPER, 1])) / max(width, 1e-6)


def neutral_face(canon_face: np.ndarray, basis, *, mu: float = 1e4, expression: bool = True,
                 mu_feature: float = 1e3, gap: float = NEUTRAL_GAP) -> tuple[np.ndarray, np.ndarray]:
    """The photo's face with a neutral expression: ``(neutral [478, 3], exp_photo [E])``.

    The motion's expression is relative to a speaker's neutral face (the clip's median), whose lips
    are slightly apart: the motion model closes them in silence by about ``NEUTRAL_GAP`` of the mouth
    width. So the photo's inner lips are set to that gap, whatever the photo shows (an open mouth
    is closed to it, pressed lips part to it); a driving mouth then closes in silence and opens
    with speech like any other.

    The photo's expression cannot be read off the PCA basis directly (a face's own shape projects
    onto it too), so only a few measures are imposed: the lips' gap, and (``expression``) the
    brows, the lip corners' lift, the mouth's width and the eyes' opening where they lie beyond
    the band of neutral faces (:data:`EXPRESSION_BANDS`): those are brought to the band's edge, by
    at most the cap; features inside their band are held where they are. The smallest expression
    change (in units of each coefficient's spread) that meets these is solved in closed form
    (ridge least squares), so the face's own shape outside the basis is kept; what the basis
    cannot reach (a wide "oh") is closed geometrically by moving the lower face (lower lip, jaw,
    chin) by the remaining gap. ``exp_photo`` is minus that change: the photo's expression relative
    to its neutral face.

    Args:
        canon_face: ``[478, 3]`` the photo's canonical-space face (``SourceState.canon_face``).
        basis: the :class:`~chatanyone.spec.head.FaceBasis`.
        expression: False imposes the lips' gap only (the renderer before the other features).
        gap: the inner lips' gap to set, in mouth widths (default :data:`NEUTRAL_GAP`; a
            driving video's expression relative to its first frame sets the photo's lips as far
            apart as that frame's, :meth:`GeomRenderer.relative_base`).
    """
    c = np.asarray(canon_face, np.float64)
    n_exp = basis.n_exp
    comp = basis.components.astype(np.float64).reshape(n_exp, 468, 3)
    up, lo = LIP_GAP_UPPER, LIP_GAP_LOWER
    width = float(np.linalg.norm(c[78] - c[308]))
    # the gap's profile along the mouth (wider in the middle), from the canonical face
    can = basis.canonical.astype(np.float64)
    prof = np.maximum(can[lo, 1] - can[up, 1], 0.0)
    prof = prof / max(float(prof.mean()), 1e-9)
    target = np.zeros((len(up), 3))
    target[:, 1] = gap * width * prof
    gap_now = lip_gap(c)
    # the other features: rows J [F, E] (in sigmas per coefficient) and the change wanted r [F]
    rows, want = [], []
    if expression:
        offs = expression_offsets(c, basis)
        for name, kind, wt in expression_features():
            j = np.einsum("eij,ij->e", comp, wt)
            sig = float(np.sqrt(((j * basis.std) ** 2).sum()))
            low, high, cap = EXPRESSION_BANDS[kind]
            o = offs[name]
            rows.append(j / max(sig, 1e-12))
            want.append(float(np.clip(np.clip(o, low, high) - o, -cap, cap)))
    want = np.asarray(want)
    delta = np.zeros(n_exp)
    out = c.copy()
    if abs(gap_now - gap) > GAP_TOLERANCE or np.any(want != 0):
        g0 = ((c[lo] - c[up]) - target).reshape(-1)
        jac = (comp[:, lo] - comp[:, up]).reshape(n_exp, -1).T
        a = np.diag(1.0 / np.maximum(basis.std.astype(np.float64), 1e-6) ** 2) + mu * jac.T @ jac
        rhs = -mu * jac.T @ g0
        if rows:
            jf = np.asarray(rows)
            a += mu_feature * jf.T @ jf
            rhs += mu_feature * jf.T @ want
        delta = np.linalg.solve(a, rhs)
        out[:468] += (delta @ comp.reshape(n_exp, -1)).reshape(468, 3)
        rest = float(out[14, 1] - out[13, 1]) - gap * width * float(prof[len(prof) // 2])
        if abs(rest) > 0.005 * width:
            _close_jaw(out, rest)
    return out.astype(np.float32), (-delta).astype(np.float32)


def _gap_ratio(face: np.ndarray) -> float:
    """Inner-lip gap at the mouth's middle over the mouth's width, of one face ``[478, >=2]``."""
    return float((face[14, 1] - face[13, 1]) / max(np.linalg.norm(face[308, :2] - face[78, :2]), 1e-9))


def _close_jaw(face: np.ndarray, rest: float) -> None:
    """Move the lower face up by ``rest`` (canonical units) without folding the mesh (in place).

    Vertically, a monotonic map per point: above the upper inner lip nothing moves; between the
    inner lips the face is compressed so that the lower inner lip moves up by ``rest``; below, the
    shift fades out towards the neck. Sideways the shift fades from the mouth's width to 2.5 of its
    half-widths. Its gradient stays below 1, so no triangle turns over."""
    y_u, y_l = float(face[13, 1]), float(face[14, 1])
    x_m = 0.5 * float(face[78, 0] + face[308, 0])
    hw = 0.5 * abs(float(face[308, 0] - face[78, 0]))
    span = max(y_l - y_u, 1e-6)
    rest = float(np.clip(rest, -0.5 * span, span))
    y = face[:, 1]
    y_end = float(face[152, 1]) + 0.4
    dy = np.where(y <= y_u, 0.0,
                  np.where(y < y_l, -(y - y_u) / span * rest,
                           -rest * np.clip((y_end - y) / max(y_end - y_l, 1e-6), 0.0, 1.0)))
    wx = np.clip((2.5 * hw - np.abs(face[:, 0] - x_m)) / (1.3 * hw), 0.0, 1.0)
    face[:, 1] += wx * dy


def _chin_patch(can: np.ndarray) -> list[int]:
    """Face-mesh points between the lower lip's outer contour and the jaw line, near the mouth."""
    lip = set(M.LIP_LOWER_OUTER) | set(M.LIP_LOWER_INNER) | set(M.LIP_UPPER_OUTER) | set(M.LIP_UPPER_INNER)
    fixed = lip | set(M.FACE_OVAL)
    x_m, hw = 0.5 * (can[61, 0] + can[291, 0]), 0.5 * abs(can[291, 0] - can[61, 0])
    return [i for i in range(468) if i not in fixed and can[i, 1] > can[17, 1] - 0.02
            and abs(can[i, 0] - x_m) < 1.6 * hw]


def repair_chin(src_xy: np.ndarray, canonical: np.ndarray, open_gap: float) -> np.ndarray:
    """The photo's mesh below a wide-open mouth, re-placed where the chin's skin is (``[478, 2]``).

    On a wide-open mouth the face-mesh model squeezes the lower lip and the chin crease into a thin
    ring under the opening, or folds it (points of the crease above the lip). Moving such a mesh
    stretches the lip's texture over the chin. When the photo's inner-lip gap (over mouth width)
    exceeds 0.25 or a triangle there is folded, the points between the lower lip and the jaw are
    re-placed by a thin-plate spline from the canonical face to the photo, fitted on every other
    point of the lower face: a smooth, unfolded chin that samples the skin below the lip. Other
    photos are returned unchanged (a copy)."""
    from scipy.interpolate import RBFInterpolator
    p = np.array(src_xy, np.float64, copy=True)
    can = np.asarray(canonical, np.float64)[:, :2]
    patch = _chin_patch(can)
    tri = M.face_triangles()
    pset = set(patch)
    t = tri[[any(v in pset for v in tr) for tr in tri]]

    def signed(q):
        a, b, c = q[t[:, 0]], q[t[:, 1]], q[t[:, 2]]
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    folded = bool(np.any(np.sign(signed(p)) != np.sign(signed(can))))
    if open_gap <= 0.25 and not folded:
        return p
    lower = [i for i in range(468) if i not in pset and can[i, 1] > can[1, 1]]
    f = RBFInterpolator(can[lower], p[lower], kernel="thin_plate_spline", smoothing=1e-6)
    p[patch] = f(can[patch])
    return p


def close_lips(face: np.ndarray) -> None:
    """Where a driving expression pushes the lower inner lip above the upper one (lips pressed
    harder than the neutral face allows), meet them in the middle (in place, ``[478, >=2]``)."""
    up, lo = M.LIP_UPPER_INNER[1:-1], M.LIP_LOWER_INNER[1:-1]
    cross = face[lo, 1] < face[up, 1]
    if cross.any():
        u, l_ = np.asarray(up)[cross], np.asarray(lo)[cross]
        mid = 0.5 * (face[u, 1] + face[l_, 1])
        face[u, 1] = mid
        face[l_, 1] = mid


def close_lids(face: np.ndarray) -> None:
    """Where a driving expression pushes a lower lid above its upper lid (a blink closing a little
    further than this face's eyes are open), meet them in the middle (in place, ``[478, >=2]``)."""
    for upper, lower in EYES:
        up, lo = np.asarray(upper[1:-1]), np.asarray(lower[1:-1])
        cross = face[lo, 1] < face[up, 1]
        if cross.any():
            u, l_ = up[cross], lo[cross]
            mid = 0.5 * (face[u, 1] + face[l_, 1])
            face[u, 1] = mid
            face[l_, 1] = mid


# --- closed eyes: lid skin over the eye ---------------------------------------------------------
# A blink used to collapse the eye's strip of triangles (the lids' contours meet): the skin above
# the upper lid stretched down with the lashes at its bottom, so a closed eye showed a thick dark
# band where the eye was (face mesh read it 0.52-0.58 of open; real closed eyes 0.2-0.4). Now, in a
# frame where an eye closes (lid_closing > 0), the upper lid's skin comes down without its lashes
# like a curtain (GeomRenderer._lid_mesh): the upper lid's vertices sample the photo the lashes' band
# (lash_band) higher, times the closing; below the lid the lashes follow (closing x LASH_LINE of
# that band's height), then the part of the eye the lid leaves uncovered; a closed eye is lid skin
# over a thin lash line. Frames without a closing eye use the mesh as before, bit for bit.
EYES = ((M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER), (M.LEFT_EYE_UPPER, M.LEFT_EYE_LOWER))
EYE_MID = (3, 4, 5)          # the contours' middle columns (160/144, 159/145, 158/153 and mirrored)
LASH_FRAC = 0.2              # the upper lashes' band above the lid: at least this much of the lid gap,
LASH_MAX = 0.8               # at most this much of the way to the mesh's next points above the lid,
LASH_SKIN = 0.8              # ending where the photo is this bright (0 its darkest there, 1 brightest)
LASH_LINE = 0.5              # how much of that band's height the closed eye's lash line keeps
CLOSING_MIN = 0.02           # an eye closing less than this renders as open (the mesh as before)
CLOSING_FULL = (0.6, 0.85)   # closing drawn as it is up to the first, fully closed from the second


@functools.lru_cache(maxsize=1)
def _upper_neighbours() -> dict[int, list[int]]:
    """Each upper lid point's neighbours in the face mesh that are not on the eye's contours (the
    mesh's topology: computed once per process; read only)."""
    tri = M.face_triangles()
    out = {}
    for upper, lower in EYES:
        eye = set(upper) | set(lower)
        for v in upper[1:-1]:
            out[v] = sorted({int(w) for t in tri if v in t for w in t} - eye)
    return out


def lash_band(lum: np.ndarray, fpx: np.ndarray, upper: np.ndarray, lower: np.ndarray,
              up: np.ndarray) -> np.ndarray:
    """``[n]`` height (px) of the upper lashes' band above each upper lid point ``upper`` of one
    eye in a photo: along ``up`` from the lid, how far the dark of the lashes (and the lid's
    shadow) reaches before the skin (luminance ``lum`` ``[H, W]`` back to :data:`LASH_SKIN` of the
    way from the darkest to the brightest within the lid's skin, which ends at the mesh's next
    points above the lid), at least :data:`LASH_FRAC` of the lid gap, at most
    :data:`LASH_MAX` of the way to those points, smoothed over the columns."""
    import cv2
    nb = _upper_neighbours()
    gap = np.maximum((fpx[upper] - fpx[lower]) @ up, 0.0)
    out = np.zeros(len(upper))
    for i, v in enumerate(upper):
        reach = max([float((fpx[w] - fpx[v]) @ up) for w in nb[int(v)]] + [0.0])
        if reach < 1.0:
            continue
        ts = np.linspace(0.0, reach, max(int(np.ceil(4 * reach)), 2))
        pts = (fpx[v][None] + ts[:, None] * up[None] - 0.5).astype(np.float32)   # px centres
        prof = cv2.remap(lum, pts[:, 0].reshape(1, -1), pts[:, 1].reshape(1, -1), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)[0]
        lo, hi = float(prof.min()), float(prof.max())
        k = int(np.argmax(prof >= lo + LASH_SKIN * (hi - lo))) if hi > lo else 0
        out[i] = np.clip(ts[k], LASH_FRAC * gap[i], LASH_MAX * reach)
    if len(out) > 2:       # smoothed over neighbouring columns
        out = np.convolve(np.pad(out, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    return out


def full_closing(c):
    """The closing drawn for a closing ``c`` (0..1): as it is up to ``CLOSING_FULL[0]``, then rising
    faster to 1 (lids met) at ``CLOSING_FULL[1]``. A blink made for the canonical face leaves an
    avatar with wider eyes 0.83-0.94 closed; it closes."""
    lo, hi = CLOSING_FULL
    return np.where(np.asarray(c) <= lo, c, np.minimum(lo + (np.asarray(c) - lo) * (1 - lo) / (hi - lo), 1.0)) + 0.0


def lid_closing(face: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``[2]`` closing of each eye (right, left) of ``face`` against ``ref`` (canonical faces
    ``[478, >=2]``): 1 minus the lid gap of the middle columns over ``ref``'s, in 0..1 (0 open as
    wide as ``ref`` or wider, 1 lids met)."""
    out = np.zeros(2)
    for k, (upper, lower) in enumerate(EYES):
        u, l_ = [upper[i] for i in EYE_MID], [lower[i] for i in EYE_MID]
        g = float(np.mean(face[l_, 1] - face[u, 1]))
        g0 = float(np.mean(ref[l_, 1] - ref[u, 1]))
        out[k] = np.clip(1.0 - g / max(g0, 1e-9), 0.0, 1.0) if g0 > 1e-9 else 0.0
    return out


# the painted teeth: where the gaps between teeth lie on the dental arch, as the angle (radians)
# from the middle, the arch seen from the front (x = sin(angle)); upper incisors are widest
TOOTH_EDGES_UPPER = (0.0, 0.24, 0.44)
TOOTH_EDGES_LOWER = (0.0, 0.16)


def _tooth_gaps(xs: np.ndarray, xc: float, half: float, edges, width: float) -> np.ndarray:
    """``[len(xs)]`` brightness factors of painted teeth across the mouth: darker lines about a
    pixel wide at the gaps between teeth, faded out on mouths under 24 px wide (their teeth would
    be lines only)."""
    strength = 0.14 * float(np.clip((width - 24.0) / 24.0, 0.0, 1.0))
    if strength <= 0:
        return np.ones_like(xs)
    e = np.asarray(edges, np.float64)
    xb = xc + 1.05 * half * np.sin(np.concatenate([-e[1:], e]))
    d = np.abs(xs[:, None] - xb[None, :]).min(1)
    return 1.0 - strength * np.clip(1.0 - d / 0.8, 0.0, 1.0)


def _composite(patch: np.ndarray, a: np.ndarray, col: np.ndarray, soft: float) -> None:
    """``patch [h, w, 3]`` float32 (in place) over ``col [h, w, 3]`` by coverage ``a [h, w]``; with
    ``soft`` > 0 (px) the result is blurred (Gaussian sigma ``soft``) where ``a`` reaches, widened
    by the blur: the mouth's inside meets the lips as softly as the warped photo's edges."""
    a = a.astype(np.float32)
    new = patch + a[..., None] * (col.astype(np.float32) - patch)
    if soft > 0:
        import cv2
        blurred = cv2.GaussianBlur(new, (0, 0), soft, borderType=cv2.BORDER_REPLICATE)
        m = np.clip(2.0 * cv2.GaussianBlur(a, (0, 0), soft, borderType=cv2.BORDER_REPLICATE), 0, 1)
        new += m[..., None] * (blurred - new)
    patch[:] = new


# --- the renderer ---------------------------------------------------------------------------

def frame_size(image_wh: tuple[int, int], output_size: int) -> tuple[int, int]:
    """``(W, H)`` of the frames for a photo of ``image_wh``: long side ``output_size``, the photo's
    aspect ratio, both even (video encoders need it)."""
    w, h = image_wh
    s = output_size / max(w, h)
    ow = max(2, int(round(w * s / 2)) * 2)
    oh = max(2, int(round(h * s / 2)) * 2)
    return ow, oh


def person_probability(avatar, size_wh: tuple[int, int]) -> np.ndarray | None:
    """The avatar photo's person probability ``[h, w] float32`` at ``size_wh = (w, h)``.

    From the mask :meth:`Avatar.prepare <chatanyone.Avatar.prepare>` stored in
    ``avatar.features["person"]``, so rendering a saved avatar runs no segmentation model. An
    avatar without one (made by hand, or by an older chatanyone) is segmented now, which needs the
    landmark runtime; where that is missing, None with a warning (the renderer then warps the
    region as one sheet). Raises ValueError for a stored mask that is not a 2-D array."""
    import cv2
    raw = (avatar.features or {}).get("person")
    if raw is None:
        try:
            from ..vision.landmarks import SelfieSegmentation
            raw = SelfieSegmentation().raw(np.ascontiguousarray(avatar.photo))
        except (ImportError, OSError) as exc:
            log.warning("no person mask in the avatar and no segmentation model here (%s): the region "
                        "is warped as one sheet; prepare the avatar again to keep the background still", exc)
            return None
    raw = np.asarray(raw, np.float32)
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise ValueError(f"avatar.features['person']: expected a 2-D probability map, got shape {list(raw.shape)}")
    return cv2.resize(raw, tuple(int(v) for v in size_wh), interpolation=cv2.INTER_LINEAR)


def person_layers(frame: np.ndarray, rect: tuple[int, int, int, int],
                  prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The animated region of a frame split into a person layer over a background plate.

    The person is ``prob [H, W]``, the frame's person probability (:func:`person_probability`),
    or where None, MediaPipe's selfie segmentation (the landscape model shipped with the landmark
    models) run now on the whole ``frame [H, W, 3] uint8``; ``rect = (x0, y0, x1, y1)`` is the
    region. The layer is the person's mask (probability over :data:`PERSON_P`) grown by
    :data:`PLATE_DILATE` of the region's shorter side, alpha 1 there, falling to 0 over
    :data:`ALPHA_FALLOFF` pixels outside. Under the grown mask the background is unknown: the plate
    is inpainted there (OpenCV's Telea method at 1/:data:`PLATE_SCALE` of the size: only what a
    moving person uncovers shows it, a strip a few pixels wide); elsewhere the plate is the region
    itself. So compositing the unmoved layer over the plate gives the region back bit for bit, and a
    thin band of the photo's background next to the person travels with the person (no halo of
    unmixed colours).

    Returns ``(alpha [h, w] float32 in [0, 1], plate [h, w, 3] float32 0..255)`` over the region
    (``h, w``: its size). Blocks ~20-100 ms (once per renderer).
    """
    import cv2

    x0, y0, x1, y1 = rect
    reg = np.ascontiguousarray(frame[y0:y1, x0:x1])
    if prob is None:
        from ..vision.landmarks import SelfieSegmentation
        prob = SelfieSegmentation()(np.ascontiguousarray(frame))
    elif np.shape(prob) != frame.shape[:2]:
        raise ValueError(f"person_layers: prob must be [H, W] like the frame, got {list(np.shape(prob))}")
    p = np.asarray(prob, np.float32)[y0:y1, x0:x1]
    h, w = p.shape
    d = max(1, int(round(PLATE_DILATE * min(h, w))))
    hole = cv2.dilate((p > PERSON_P).astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1)))
    # alpha: 1 on the grown mask, falling off outside it (distance to the mask, in pixels)
    dist = cv2.distanceTransform((1 - hole).astype(np.uint8), cv2.DIST_L2, 3)
    alpha = np.clip(1.0 - dist / ALPHA_FALLOFF, 0.0, 1.0).astype(np.float32)
    regf = reg.astype(np.float32)
    if not hole.any():
        return alpha, regf
    if hole.all():          # no background seen in the region: the plate is the region's mean colour
        return alpha, np.broadcast_to(regf.reshape(-1, 3).mean(0), regf.shape).astype(np.float32)
    sw, sh = max(1, w // PLATE_SCALE), max(1, h // PLATE_SCALE)
    small = cv2.resize(reg, (sw, sh), interpolation=cv2.INTER_AREA)
    small_hole = (cv2.resize(hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    if small_hole.all():
        small_hole[0, 0] = 0
    filled = cv2.inpaint(small, small_hole, 3, cv2.INPAINT_TELEA)
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    return alpha, np.ascontiguousarray(np.where(hole[..., None] > 0, up, regf), np.float32)


def _mesh_flow():
    from chatanyone import ops
    return ops.mesh_flow


class GeomRenderer:
    """Renders an avatar's photo driven by motion frames (see the module docstring).

    Args:
        avatar: a prepared :class:`~chatanyone.Avatar` (it carries its photo and region).
        output_size: long side of the frames in pixels.
        basis: the expression basis (default: the packaged one).
        hands: ``"articulated"`` (a mesh per hand, moved bone by bone) or ``"similarity"`` (each
            hand moved rigidly: the renderer before the hand mesh, kept for evaluation).
        arms: ``"layer"`` (arms the photo shows whole move as a layer over the body, by forward
            kinematics, see :mod:`chatanyone.render.limbs`) or ``"mesh"`` (the joints in the
            coarse mesh, clamped: the renderer before the layer, kept for evaluation).
        expression: False neutralizes only the photo's lips (:func:`neutral_face`; for evaluation).
        layered: the person warped over a still background plate (:func:`person_layers`);
            False: the whole region warped as one sheet, the background near the head stretched
            with it (the renderer before the layers, kept for evaluation).
        torso: the chest moves with the shoulders (:meth:`_torso`); False: it is only
            interpolated between the shoulders and the still border (for evaluation).
        register: frames that carry ``torso``/``hair`` maps (video-driven reenactment) move the
            body and hair by them; False ignores them (the renderer before session 8, for
            ``eval render --variants unregistered``).
        mouth: ``"rigid"``: where the photo shows its mouth's inside, its upper teeth move with the
            head and its lower teeth with the jaw, the gap between them dark
            (:meth:`_fill_photo_mouth`); where it does not, a painted inside with textured teeth.
            ``"previous"``: the photo's inside stretched between the driven lips, or the flat
            painted band (the renderer before session 6; for evaluation).
        refine_mouth: run the learned mouth refiner (:mod:`chatanyone.render.refine`) where its
            weights are installed; ``refine_preset``: whose (:func:`chatanyone.render.refine.attach`:
            fast a 64 px mouth crop, quality a 128 px one).
        refine_region: run the learned region refiner (:mod:`chatanyone.render.region_refine`)
            where its weights are installed.
        lids: ``"skin"``: a closing eye is drawn with the lid's skin over it (:meth:`_lid_mesh`);
            ``"strip"``: the eye's strip squeezed (the renderer before session 9, for evaluation).

    Thread safety: one frame at a time per instance.
    """

    def __init__(self, avatar, output_size: int = PRESET_LONG_SIDE["fast"], *, basis=None,
                 refine_mouth: bool = False, hands: str = "articulated", expression: bool = True,
                 layered: bool = True, torso: bool = True, arms: str = "layer",
                 mouth: str = "rigid", register: bool = True, lids: str = "skin",
                 refine_preset: str = "fast", refine_region: bool = False):
        import cv2
        from scipy.spatial import Delaunay

        from ..vision.framing import Box
        from ..spec.head import load_basis
        if mouth not in MOUTH_MODES:
            raise ValueError(f"mouth must be one of {MOUTH_MODES}, got {mouth!r}")
        if lids not in LID_MODES:
            raise ValueError(f"lids must be one of {LID_MODES}, got {lids!r}")
        self.basis = basis or load_basis()
        photo = np.asarray(avatar.photo)
        ph, pw = photo.shape[:2]
        self.size = frame_size((pw, ph), output_size)           # (W, H)
        ow, oh = self.size
        interp = cv2.INTER_AREA if ow < pw else cv2.INTER_LINEAR
        self.background = cv2.resize(photo, (ow, oh), interpolation=interp)
        self.background.flags.writeable = False
        sx, sy = ow / pw, oh / ph
        reg = np.asarray(avatar.region, np.float64)
        rx0, ry0 = int(np.floor(reg[0] * sx)), int(np.floor(reg[1] * sy))
        rx1, ry1 = int(np.ceil(reg[2] * sx)), int(np.ceil(reg[3] * sy))
        # a letterboxed photo's bars are no part of the scene: never warped (region.letterbox)
        box = Box.from_array(avatar.box)
        face_ph = (np.asarray(avatar.face, np.float64)[:, :2] + 1) * np.array([box.w, box.h]) / 2 \
            + np.array([box.x0, box.y0])
        bars = [b + BAR_EDGE if b else 0 for b in letterbox(photo, face_ph[:468])]   # top, bottom, left, right
        self.picture = (int(np.ceil(bars[2] * sx)), int(np.ceil(bars[0] * sy)),
                        ow - int(np.ceil(bars[3] * sx)), oh - int(np.ceil(bars[1] * sy)))   # inside the bars
        px0, py0, px1, py1 = self.picture
        rx0, ry0, rx1, ry1 = max(px0, rx0), max(py0, ry0), min(px1, rx1), min(py1, ry1)
        if rx1 - rx0 < 8 or ry1 - ry0 < 8:
            raise ValueError(f"the animated region is too small at output size {output_size}: "
                             f"{rx1 - rx0}x{ry1 - ry0} px")
        self.rect = (rx0, ry0, rx1, ry1)                          # in output pixels, end exclusive
        rw, rh = rx1 - rx0, ry1 - ry0
        reg_img = self.background[ry0:ry1, rx0:rx1]
        self._base = reg_img.astype(np.float32)
        person = person_probability(avatar, (ow, oh)) if (layered or arms == "layer") else None
        self.layered = bool(layered) and person is not None
        self._plate_full = None     # the whole frame's plate, made on the first background map
        if self.layered:    # the person (colours and alpha) warped, composited over a still plate
            alpha, self._plate = person_layers(self.background, self.rect, person)
            self._src = np.ascontiguousarray(np.concatenate([self._base, alpha[..., None]], 2).transpose(2, 0, 1)[None])
        else:
            self._src = np.ascontiguousarray(reg_img.transpose(2, 0, 1)[None], np.float32)  # 1,3,rh,rw
        # crop coordinates (the motion box) -> region-normalized coordinates
        self._ax = np.array([box.w * sx / rw, box.h * sy / rh])
        self._bx = np.array([((box.x0 + box.w / 2) * sx - rx0) * 2 / rw - 1,
                             ((box.y0 + box.h / 2) * sy - ry0) * 2 / rh - 1])
        self._px = np.array([rw / 2, rh / 2])      # region-normalized -> region pixels: (u + 1) * px
        src = avatar.source
        self._head = np.asarray(src.head, np.float64)
        self._canon_src = np.asarray(src.canon_face, np.float64)
        self.neutral, self.exp_photo = neutral_face(self._canon_src, self.basis, expression=expression)
        self._neutral = self.neutral.astype(np.float64)
        self._rel_base: dict[float, np.ndarray] = {}    # relative_base's faces, per gap
        self._comp = self.basis.components.astype(np.float64)
        # source vertices: the photo's own landmarks
        face_src = self._to_region(np.asarray(avatar.face, np.float64)[:, :2])
        face_src = repair_chin(face_src, self.basis.canonical, _gap_ratio(self._canon_src))
        # coarse rings around the face oval, in canonical space (offsets from the oval points)
        oval = np.asarray(M.FACE_OVAL)
        cen = self._canon_src[oval, :2].mean(0)
        d = self._canon_src[oval, :2] - cen
        dy = d[:, 1] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        k1 = 1.38 - 0.18 * dy
        k2 = 1.0 + 2.1 * (k1 - 1.0)
        self._ring_off = []
        self._ring_w = []
        self._ring_dy = dy          # -1 above the face's centre, +1 below it
        w2 = RING2_FOLLOW[0] + (RING2_FOLLOW[1] - RING2_FOLLOW[0]) * (dy + 1) / 2
        for k, w in ((k1, np.ones_like(dy)), (k2, w2)):
            off = np.zeros((len(oval), 3))
            off[:, :2] = (k - 1.0)[:, None] * d
            off[:, 2] = 0.3 * (k - 1.0)
            self._ring_off.append(off)
            self._ring_w.append(w)
        rings_src = [self._to_region(self._pose(self._canon_src[oval] + off, self._head)[:, :2])
                     for off in self._ring_off]
        self._rings_src = rings_src
        self._region_kind = str(getattr(avatar, "region_kind", ""))
        self._outer_follow = HAIR_OUTER.get(self._region_kind, None)
        # arms and hands, bone by bone (pose 11..16 and the hands seen in the photo)
        self._ride: dict = {}      # side -> (sum of pose . map, sum of map . map): _wrist_ride
        self._limbs = _Limbs(avatar, self, hands=hands, arms=arms, reg_img=reg_img,
                             person=None if person is None else person[ry0:ry1, rx0:rx1])
        if self._limbs.layer is not None:     # under the arms' layer: the photo, the arms filled
            src = self._src.copy()
            src[0, :3] = self._limbs.layer.base.transpose(2, 0, 1)
            if self.layered:    # filled from the background beside the arm: the still plate shows there
                src[0, 3][self._limbs.layer.fill_background] = 0.0
            self._src = np.ascontiguousarray(src)
        body_src = self._limbs.src
        # border: corners and points along each side, pinned
        n_side = 6
        t = np.linspace(-1, 1, n_side + 1)
        border = np.concatenate([np.stack([t, -np.ones_like(t)], 1), np.stack([t, np.ones_like(t)], 1),
                                 np.stack([-np.ones_like(t[1:-1]), t[1:-1]], 1),
                                 np.stack([np.ones_like(t[1:-1]), t[1:-1]], 1)])
        # keep moving points well inside the region (a margin from the pinned border)
        keep = [np.all(np.abs(r) < 0.97, axis=1) for r in rings_src]
        self._ring_keep = keep
        # the chest below the shoulders, moved with them (see _torso)
        self._torso_src, self._torso_lim = self._torso(avatar, face_src) if torso else (np.zeros((0, 2)), 0.0)
        extra = [rings_src[0][keep[0]], rings_src[1][keep[1]], body_src, self._torso_src, border]
        self._n_extra = [len(e) for e in extra]
        self._face_src = face_src
        self.src_vertices, self.triangles = self._mesh(face_src, extra)
        self._lid_geo = self._lid_geometry(face_src) if lids == "skin" else []
        self._eye_rows: dict = {}
        self.lid_closing = np.zeros(2)      # the last frame's closing of each eye (lid_closing)
        self._depth = np.full(len(self.src_vertices), COARSE_DEPTH, np.float32)
        self._border = border.astype(np.float32)
        self._border_sides = n_side
        # the body's registered motion (motion frames with a "torso" map: video-driven reenactment)
        self.register = bool(register)
        self._body_crop = np.asarray(avatar.pose, np.float64)[L.KP_BODY_IDX, :2]   # crop units
        fc = np.asarray(avatar.face, np.float64)[:, :2]
        self._fh_crop = np.array([1.0, 1.0]) * float(np.linalg.norm(
            (fc[152] - fc[10]) * self._ax * self._px)) / (self._ax * self._px)   # a face height, crop units (x, y)
        self._reg: dict | None = None       # its mesh, made on the first frame that carries a map
        self._bh_w: np.ndarray | None = None  # the border's weights of the hair's map (on first use)
        fpx = (face_src + 1) * self._px
        self._chin_y = float(fpx[152, 1])                          # the photo's chin, region px
        self._fh_px = float(np.linalg.norm(fpx[152] - fpx[10]))    # its face height, region px
        # paste-back feather
        f = max(2.0, FEATHER * min(rw, rh))
        yy = np.minimum(np.arange(rh) + 0.5, rh - np.arange(rh) - 0.5)
        xx = np.minimum(np.arange(rw) + 0.5, rw - np.arange(rw) - 0.5)
        # sides that are not the photo's own border (or a letterbox bar's edge)
        edge = [ry0 > py0, ry1 < py1, rx0 > px0, rx1 < px1]
        ay = np.clip(yy / f, 0, 1)
        ax = np.clip(xx / f, 0, 1)
        if not edge[0]:
            ay[: rh // 2] = 1
        if not edge[1]:
            ay[rh // 2:] = 1
        if not edge[2]:
            ax[: rw // 2] = 1
        if not edge[3]:
            ax[rw // 2:] = 1
        alpha = (ay[:, None] * ax[None, :])[..., None].astype(np.float32)
        fi = int(np.ceil(f))
        if 2 * fi >= min(rw, rh):
            self._band = [(np.s_[:, :], alpha)]
        else:   # four disjoint strips cover every pixel with alpha < 1
            strips = [np.s_[:fi, :], np.s_[rh - fi:, :], np.s_[fi:rh - fi, :fi], np.s_[fi:rh - fi, rw - fi:]]
            self._band = [(sl, np.ascontiguousarray(alpha[sl])) for sl in strips if alpha[sl].min() < 1]
        # the mouth's inside: the photo's own where it shows one, else painted in the photo's colours
        self.paints_mouth = _gap_ratio(self._canon_src) < PHOTO_MOUTH_GAP
        self._mouth_colors(face_src, reg_img)
        self.mouth = mouth
        self.paint_shadow, self.paint_soft = bool(PAINT_SHADOW), float(PAINT_SOFT)   # (eval variants)
        self.photo_soft = float(PHOTO_SOFT)
        self.rigid_teeth = mouth == "rigid" and not self.paints_mouth
        if self.rigid_teeth:
            self._photo_teeth(face_src, reg_img)
        # the photo's face mesh in region pixel centres; the learned mouth refiner (render/refine.py)
        # where its weights are installed and ``refine_mouth`` is set
        self.src_face_px = ((face_src + 1) * self._px - 0.5).astype(np.float64)
        self.face_px: np.ndarray | None = None     # the last frame's driving face, region pixel centres
        self.refiner = None
        if refine_mouth:
            from . import refine
            refine.attach(self, refine_preset)
        # the learned region refiner (render/region_refine.py) where ``refine_region`` is set
        self.region_refiner = None
        if refine_region:
            from . import region_refine
            if region_refine.available():
                self.region_refiner = region_refine.RegionRefiner(scale=region_refine.scale_for(max(self.size)))
            else:
                log.warning("region refiner not installed (%s): the region is shown as the geometry "
                            "renderer draws it", region_refine.default_path())
        self.times: dict[str, float] = {}
        self.frames = 0
        log.debug("geometry renderer: frame %dx%d, region %s (%s), %d vertices, %d triangles",
                  ow, oh, self.rect, getattr(avatar, "region_kind", "?"), len(self.src_vertices),
                  len(self.triangles))

    # --- coordinates ------------------------------------------------------------------------

    @staticmethod
    def _mesh(face_src: np.ndarray, extra: list) -> tuple[np.ndarray, np.ndarray]:
        """Source vertices ``[V, 2] float32`` (the face, then ``extra`` in order) and triangles: the
        face's, the eye and mouth strips, and the coarse mesh (Delaunay over the face oval and
        ``extra``, none across the face)."""
        from scipy.spatial import Delaunay
        oval = np.asarray(M.FACE_OVAL)
        n_extra = sum(len(e) for e in extra)
        coarse_src = np.concatenate([face_src[oval]] + extra)
        coarse_ids = np.concatenate([oval, M.N_FACE + np.arange(n_extra)])
        tri = Delaunay(coarse_src).simplices
        tri = tri[(tri >= len(oval)).any(axis=1)]     # not across the face (the face mesh covers it)
        coarse_tri = coarse_ids[tri]
        src = np.concatenate([face_src, np.concatenate(extra)]).astype(np.float32)
        tris = np.ascontiguousarray(np.concatenate(
            [M.face_triangles(), M.eye_fill_triangles(), M.mouth_fill_triangles(), coarse_tri]).astype(np.int32))
        return src, tris

    def _lid_geometry(self, face_src: np.ndarray) -> list:
        """Per eye: its contours' interior points (upper, lower), the photo's "up" across the eye
        (unit, region px: perpendicular to the corner line, towards the upper lid), the upper
        lashes' band per column (region px, :func:`lash_band`) and the eye's width (px)."""
        fpx = (face_src.astype(np.float64) + 1) * self._px
        lum = self._base @ np.array([0.299, 0.587, 0.114], np.float32)
        out = []
        for upper, lower in EYES:
            u, l_ = np.asarray(upper[1:-1]), np.asarray(lower[1:-1])
            a, b = fpx[upper[0]], fpx[upper[-1]]
            t = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9)
            up = np.array([t[1], -t[0]])
            if float(np.mean((fpx[u] - fpx[l_]) @ up)) < 0:
                up = -up
            lam = lash_band(lum, fpx, u, l_, up)
            out.append((u, l_, up, lam, float(np.linalg.norm(b - a))))
        return out

    def _strip_rows(self, tris: np.ndarray) -> list[np.ndarray]:
        """Row indices of each eye's strip triangles in ``tris`` (cached per array)."""
        key = id(tris)
        hit = self._eye_rows.get(key)
        if hit is not None and hit[0] is tris:
            return hit[1]
        rows = []
        for upper, lower in EYES:
            ids = np.asarray(sorted(set(upper) | set(lower)))
            rows.append(np.nonzero(np.isin(tris, ids).all(axis=1))[0])
        self._eye_rows[key] = (tris, rows)
        return rows

    def _lid_mesh(self, dst, depth, src_v, tris):
        """The mesh of a frame where an eye closes (see :data:`LASH_FRAC`), for each closing eye
        (closing ``c`` after :func:`full_closing`): the upper lid's vertices sample the photo
        ``c x`` the lash band higher (the lid's skin comes down without its lashes); the eye's strip
        is replaced by two, meeting at a row of vertices of their own just below the lid: above it
        the lashes (the photo's band between the lid's new and old sampling points, ``c x``
        :data:`LASH_LINE` of its height drawn), below it the part of the eye the lid leaves
        uncovered (the photo's eye from ``c`` of the way down to the lower lid), so a half-closed
        eye shows the lower part of its eye under the lashes, and a closed one a thin lash line.
        Returns new ``(dst, depth, src_v, tris)``; the inputs are not changed."""
        px = self._px
        strip_rows = self._strip_rows(tris)
        src = np.array(src_v, np.float64)
        dst = np.array(dst, np.float64)
        depth = np.asarray(depth, np.float32)
        n = len(src)
        add_src, add_dst, add_depth, add_tris, drop = [], [], [], [], []
        for k, ((u, l_, up, lam, w_src), rows) in enumerate(zip(self._lid_geo, strip_rows)):
            c0 = float(self.lid_closing[k])
            if c0 <= CLOSING_MIN:
                continue
            c = float(full_closing(c0))
            su, sl = (src[u] + 1) * px, (src[l_] + 1) * px
            src[u] = (su + (c * lam)[:, None] * up) / px - 1       # up is towards the upper lid
            # the destination: a nearly closed eye closes; the lash line stays open
            du, dl = (dst[u] + 1) * px, (dst[l_] + 1) * px
            du = dl + (du - dl) * ((1.0 - c) / max(1.0 - c0, 1e-9))
            a, b = (dst[EYES[k][0][0]] + 1) * px, (dst[EYES[k][0][-1]] + 1) * px
            w = max(float(np.linalg.norm(b - a)), 1e-9)
            t = (b - a) / w
            dup = np.array([t[1], -t[0]]) * (1.0 if up @ np.array([t[1], -t[0]]) >= 0 else -1.0)
            lash = c * LASH_LINE * lam * (w / max(w_src, 1e-9))         # the lashes' drawn height
            g = (du - dl) @ dup
            du = du + np.maximum(lash - g, 0.0)[:, None] * dup
            dst[u] = du / px - 1
            h = np.minimum(lash, np.maximum((du - dl) @ dup, 0.0))
            mid = du - h[:, None] * dup                                  # below the lashes
            i1 = n + sum(len(x) for x in add_src) + np.arange(len(u))   # the lashes' lower edge
            i2 = i1 + len(u)                                             # the uncovered eye's upper edge
            add_src += [su / px - 1, (su + c * (sl - su)) / px - 1]
            add_dst += [mid / px - 1, mid / px - 1]
            add_depth += [depth[u], depth[u]]
            upper, lower = EYES[k]
            c_a, c_b = upper[0], upper[-1]
            add_tris += M._strip([c_a, *u, c_b], [c_a, *i1, c_b]) + M._strip([c_a, *i2, c_b], [c_a, *l_, c_b])
            drop.append(rows)
        keep = np.ones(len(tris), bool)
        for r in drop:
            keep[r] = False
        tris = np.concatenate([np.asarray(tris)[keep], np.asarray(add_tris, np.int32).reshape(-1, 3)])
        src = np.concatenate([src] + add_src).astype(np.float32)
        dst = np.concatenate([dst] + add_dst).astype(np.float32)
        depth = np.concatenate([depth] + add_depth)
        return dst, depth, src, np.ascontiguousarray(tris, np.int32)

    def _registered_mesh(self) -> dict:
        """The mesh for frames that carry the body's registered motion (made once, on first use):
        today's vertices plus a grid of body vertices below the chin (:data:`BODY_GRID` face
        heights apart, from :data:`BODY_FROM` below the chin, clear of the other coarse vertices),
        and each coarse vertex's weight of the body's map (1 for the chest, the grid and the border
        well below the chin, rising from 0 at the chin over :data:`BODY_RAMP` face heights)."""
        if self._reg is not None:
            return self._reg
        fpx = (self._face_src + 1) * self._px
        fh, chin = self._fh_px, self._chin_y
        size = 2 * self._px
        n_face = M.N_FACE
        coarse = self.src_vertices[n_face:].astype(np.float64)
        cpx = (coarse + 1) * self._px
        step = BODY_GRID * fh
        margin = 0.5 * size / 6
        xs = np.arange(margin[0], size[0] - margin[0] + 1e-6, step)
        ys = np.arange(chin + BODY_FROM * fh, size[1] - margin[1] + 1e-6, step)
        grid = np.array([(x, y) for y in ys for x in xs]) if len(xs) and len(ys) else np.zeros((0, 2))
        if len(grid):
            others = np.concatenate([cpx, fpx[:n_face]])
            d = np.min(np.linalg.norm(grid[:, None] - others[None], axis=-1), axis=1)
            grid = grid[d > BODY_CLEAR * fh]
        grid_n = self._px_norm(grid) if len(grid) else np.zeros((0, 2))
        sil = self._silhouette(np.concatenate([cpx, fpx[:n_face]] + ([grid] if len(grid) else []))) \
            if (SILHOUETTE and self.layered and self._region_kind in SIL_KINDS) else np.zeros((0, 2))
        sil_n = self._px_norm(sil) if len(sil) else np.zeros((0, 2))
        extra = [coarse] + [e for e in (grid_n, sil_n) if len(e)]
        src, tris = self._mesh(self._face_src, extra)
        ypx = (src[n_face:, 1].astype(np.float64) + 1) * self._px[1]
        w = np.clip((ypx - chin) / (BODY_RAMP * fh), 0.0, 1.0)
        # the rings (hair, ears, neck) and the limbs keep their own motion; the chest follows fully
        n_rings = sum(self._n_extra[:2])
        n_limbs = self._n_extra[2]
        w[:n_rings + n_limbs] = 0.0
        w[n_rings + n_limbs: n_rings + n_limbs + self._n_extra[3]] = 1.0
        w[len(coarse):len(coarse) + len(grid_n)] = 1.0
        # the outline's vertices: the torso's map below the chin, the hair's above it (driving_vertices)
        y_sil = sil[:, 1] if len(sil) else np.zeros(0)
        # (the two maps cross-fade over the ramp round the chin: none is left still)
        w_sil_t = np.clip(0.5 + (y_sil - chin) / (2 * BODY_RAMP * fh), 0.0, 1.0)
        w_sil_h = 1.0 - w_sil_t
        w[len(coarse) + len(grid_n):] = 0.0
        self._reg = dict(src=src, tris=tris, w=w, n_grid=len(grid_n), n_sil=len(sil_n),
                         w_sil_t=w_sil_t, w_sil_h=w_sil_h,
                         depth=np.full(len(src), COARSE_DEPTH, np.float32))
        log.debug("geometry renderer: registered body mesh, %d grid vertices, %d on the outline",
                  len(grid_n), len(sil_n))
        return self._reg

    def _silhouette(self, others: np.ndarray) -> np.ndarray:
        """``[N, 2]`` region pixels: points along the person layer's outline, :data:`SIL_MARGIN`
        face heights outside its alpha, :data:`SIL_STEP` apart, each at least :data:`SIL_CLEAR`
        from ``others`` (region px: the mesh's other vertices) and from the region's border."""
        import cv2
        fh = self._fh_px
        rh, rw = self._src.shape[2:]
        layer = (self._src[0, 3] > 0).astype(np.uint8)
        m = max(1, int(round(SIL_MARGIN * fh)))
        grown = cv2.dilate(layer, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * m + 1, 2 * m + 1)))
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        step, clear = SIL_STEP * fh, SIL_CLEAR * fh
        pts = []
        for c in contours:
            c = c[:, 0, :].astype(np.float64)
            seg = np.linalg.norm(np.diff(np.concatenate([c, c[:1]]), axis=0), axis=1)
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            if arc[-1] < 2 * step:
                continue
            at = np.arange(0.0, arc[-1] - 0.5 * step, step)
            i = np.clip(np.searchsorted(arc, at, side="right") - 1, 0, len(c) - 1)
            pts.append(c[i] + 0.5)      # pixel centres
        if not pts:
            return np.zeros((0, 2))
        p = np.concatenate(pts)
        keep = (p[:, 0] > clear) & (p[:, 0] < rw - clear) & (p[:, 1] > clear) & (p[:, 1] < rh - clear)
        p = p[keep]
        if len(p) and len(others):
            d = np.min(np.linalg.norm(p[:, None] - np.asarray(others)[None], axis=-1), axis=1)
            p = p[d > clear]
        return p

    def _below_chin(self, pts: np.ndarray) -> np.ndarray:
        """``[N]`` in [0, 1]: how far region-normalized points lie below the photo's chin, rising
        from 0 at the chin to 1 at :data:`BODY_RAMP` face heights below it."""
        y = (np.asarray(pts, np.float64)[:, 1] + 1) * self._px[1]
        return np.clip((y - self._chin_y) / (BODY_RAMP * self._fh_px), 0.0, 1.0)

    def _border_hair_weights(self) -> np.ndarray:
        """``[coarse vertices]``: how far each follows the hair's map: :data:`BORDER_HAIR` for the
        region's border points above the chin (falling to 0 at it over :data:`BODY_RAMP` face
        heights), 0 for every other coarse vertex."""
        if self._bh_w is None:
            coarse = self.src_vertices[M.N_FACE:].astype(np.float64)
            y = (coarse[:, 1] + 1) * self._px[1]
            w = BORDER_HAIR * np.clip((self._chin_y - y) / (BODY_RAMP * self._fh_px), 0.0, 1.0)
            w[: len(coarse) - len(self._border)] = 0.0
            self._bh_w = w
        return self._bh_w

    def _arms_by_torso(self, motion_frame, torso) -> dict:
        """The motion frame with the body points' offsets (``body``) taken from the torso's map
        (:data:`BODY_ARMS`: ``"torso"``: all of them, the arms move as the body does;
        ``"shoulders"``: the shoulders only, elbows and wrists keep the pose's offsets; ``"gated"``:
        an arm the pose moves well beyond the map follows the pose, one below the gate rides the
        map, its wrist only as far as the pose's wrist has ridden it so far, :meth:`_wrist_ride`)."""
        a = np.asarray(torso, np.float64)
        src = self._body_crop
        moved = np.nan_to_num(src @ a[:, :2].T + a[:, 2] - src)
        body = _get(motion_frame, "body")
        body = np.zeros((8, 2)) if body is None else np.array(body, np.float64).reshape(8, 2)
        if BODY_ARMS == "torso":
            body = moved
        elif BODY_ARMS == "shoulders":
            body[:2] = moved[:2]
        else:           # "gated": an arm the pose moves well beyond the body follows the pose
            fh = self._fh_crop
            gated = moved.copy()
            layered = self._limbs.layered_sides
            for side in (0, 1):
                joints = [2 + side, 4 + side]              # elbow, wrist
                d = body[joints] - moved[joints]
                far = float(np.max(np.hypot(d[:, 0] / fh[0], d[:, 1] / fh[1])))
                gate = ARM_GATE_LAYER if side in layered else ARM_GATE
                g = float(np.clip((far - gate[0]) / (gate[1] - gate[0]), 0.0, 1.0))
                base = moved[joints].copy()
                if WRIST_RIDE_PRIOR is not None:
                    base[1] *= self._wrist_ride(side, body[joints[1]] / fh, moved[joints[1]] / fh)
                gated[joints] = base + g * (body[joints] - base)
            body = gated
        out = dict(motion_frame) if isinstance(motion_frame, dict) else \
            {k: _get(motion_frame, k) for k in ("head", "exp", "eye", "hands", "hands_ok")}
        out["body"] = body.astype(np.float32)
        return out

    def _wrist_ride(self, side: int, pose: np.ndarray, mapped: np.ndarray) -> float:
        """How far (0..1) ``side``'s wrist rides the torso's map: the least-squares slope of the
        pose's wrist offsets on the map's (face heights) over every frame with a map this renderer
        has drawn, this one included, with :data:`WRIST_RIDE_PRIOR` frames of a full ride to start."""
        st = self._ride.setdefault(side, np.zeros(2))
        st += (float(np.dot(pose, mapped)), float(np.dot(mapped, mapped)))
        p = WRIST_RIDE_PRIOR * WRIST_RIDE_SCALE ** 2
        return float(np.clip((st[0] + p) / (st[1] + p), 0.0, 1.0))

    def _face_corrected(self, posed: np.ndarray, fmap: np.ndarray) -> np.ndarray:
        """``posed [N, 2]`` (region-normalized: the driving face, then the rings) moved by the
        turn and shift (region px) that takes the driving face's rigid points to where the face's
        registered map ``fmap`` takes the photo's, by :data:`FACE_REG` of it."""
        from ..spec.keypoint_layout import RIGID_IDX
        idx = np.asarray(RIGID_IDX)
        cur = (posed[idx] + 1) * self._px
        tgt = (self._face_src[idx] @ fmap[:, :2].T + fmap[:, 2] + 1) * self._px
        mc, mt = cur.mean(0), tgt.mean(0)
        a, b = cur - mc, tgt - mt
        th = np.arctan2((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum(), (a * b).sum()) * FACE_REG
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        p = (posed + 1) * self._px
        p = (p - mc) @ rot.T + mc + FACE_REG * (mt - mc)
        return p / self._px - 1

    def _body_map(self, torso) -> np.ndarray:
        """A motion's registered map (``torso`` or ``hair``: driving crop coordinates) in
        region-normalized coordinates."""
        a = np.asarray(torso, np.float64)
        if a.shape != (2, 3) or not np.all(np.isfinite(a)):
            raise ValueError(f"a motion frame's torso/hair map must be a finite [2, 3] map, got shape {a.shape}")
        # u = c * ax + bx  =>  u' = ax * (A (u - bx) / ax) + bx
        lin = a[:, :2] * self._ax[:, None] / self._ax[None, :]
        t = self._ax * a[:, 2] + self._bx - lin @ self._bx
        return np.concatenate([lin, t[:, None]], 1)

    def _to_region(self, xy_crop: np.ndarray) -> np.ndarray:
        return np.asarray(xy_crop, np.float64)[..., :2] * self._ax + self._bx

    def _crop_px(self, xy_crop: np.ndarray) -> np.ndarray:
        """Crop coordinates -> region pixels (x right, y down, isotropic)."""
        return (self._to_region(xy_crop) + 1) * self._px

    def _px_norm(self, px: np.ndarray) -> np.ndarray:
        return np.asarray(px, np.float64) / self._px - 1

    @staticmethod
    def _pose(canon: np.ndarray, head: np.ndarray) -> np.ndarray:
        from ..spec.head import pose_points
        return pose_points(canon, head)

    def _torso(self, avatar, face_src: np.ndarray) -> tuple[np.ndarray, float]:
        """Chest vertices (region-normalized ``[N, 2]``) and how far they may move (region px).

        With both shoulders seen in the photo: two rows of three points :data:`TORSO_DOWN`
        shoulder widths below the shoulders' midpoint (below it and :data:`TORSO_SIDE` of the width
        either side), kept where they lie inside the region, clear of its pinned border and below
        the face. They move by the mean of the two shoulders'
        offsets, clamped like the shoulders (:attr:`_Limbs.MAX_MOVE`): before them the chest was
        only interpolated between the shoulders and the still border."""
        none = (np.zeros((0, 2)), 0.0)
        pose = np.asarray(avatar.pose, np.float64)
        pts = []
        for j in (0, 1):
            p = pose[L.KP_BODY_IDX[j]]
            if not (np.all(np.isfinite(p[:2])) and np.nan_to_num(p[3]) >= L.POSE_VIS_MIN):
                return none
            pts.append(self._crop_px(p[:2]))
        size = 2 * self._px
        fpx = (face_src + 1) * self._px
        fh = float(np.linalg.norm(fpx[152] - fpx[10]))
        sw = float(np.linalg.norm(pts[0] - pts[1]))
        if sw < 4:
            return none
        mid = 0.5 * (pts[0] + pts[1])
        out = []
        for dx, dy in itertools.product((-TORSO_SIDE, 0.0, TORSO_SIDE), TORSO_DOWN):
            q = mid + np.array([dx * sw, dy * sw])
            margin = 0.5 * size / 6           # half the spacing of the pinned border points
            if np.all(q > margin) and np.all(q < size - margin) and q[1] > fpx[152, 1] + 0.4 * fh:
                out.append(q)
        if not out:
            return none
        return self._px_norm(np.array(out)), _Limbs.MAX_MOVE[0] * fh

    def _torso_driving(self, motion_frame) -> np.ndarray:
        body = _get(motion_frame, "body")
        if body is None:
            return self._torso_src.copy()
        off = np.asarray(body, np.float64).reshape(8, 2)[:2] * self._ax * self._px     # region px
        n = np.hypot(off[:, 0], off[:, 1])[:, None]
        off = np.where(n > self._torso_lim, off * (self._torso_lim / np.maximum(n, 1e-9)), off).mean(0)
        return self._torso_src + off / self._px

    def _mouth_colors(self, face_src: np.ndarray, reg_img: np.ndarray) -> None:
        px = (face_src + 1) * self._px
        h, w = reg_img.shape[:2]

        def sample(ids):
            p = np.clip(np.round(px[ids] - 0.5).astype(int), 0, [w - 1, h - 1])
            return reg_img[p[:, 1], p[:, 0]].astype(np.float32) / 255.0

        lip_ids = [(a, b) for a, b in zip(M.LIP_UPPER_OUTER[2:-2] + M.LIP_LOWER_OUTER[2:-2],
                                          M.LIP_UPPER_INNER[2:-2] + M.LIP_LOWER_INNER[2:-2])]
        mid = np.array([(face_src[a] + face_src[b]) / 2 for a, b in lip_ids])
        p = np.clip(np.round((mid + 1) * self._px - 0.5).astype(int), 0, [w - 1, h - 1])
        lip = np.median(reg_img[p[:, 1], p[:, 0]].astype(np.float32) / 255.0, axis=0)
        skin = np.median(sample([50, 280, 101, 330, 205, 425]), axis=0)
        lum = float(skin @ [0.299, 0.587, 0.114])
        self._col_dark = (0.22 * lip + 0.02).astype(np.float32)
        self._col_tongue = (0.5 * lip).astype(np.float32)
        bright = float(np.clip(0.68 + 0.5 * lum, 0.8, 0.96))
        # teeth take the photo's light: a warm white tinted a little by the skin
        tint = skin / max(float(skin.max()), 1e-3)
        self._col_teeth = (bright * (0.8 * np.array([0.97, 0.91, 0.80]) + 0.2 * tint)).astype(np.float32)
        bright0 = float(np.clip(0.6 + 0.5 * lum, 0.72, 0.95))
        self._col_teeth_previous = (bright0 * (0.8 * np.array([0.97, 0.91, 0.80]) + 0.2 * tint)).astype(np.float32)

    # --- per frame --------------------------------------------------------------------------

    def driving_vertices(self, motion_frame) -> tuple[np.ndarray, np.ndarray]:
        """``(dst_vertices [V, 2] float32, depth [V] float32)`` in region-normalized coordinates for
        one motion frame. Pure numpy, well under a millisecond."""
        exp = _get(motion_frame, "exp")
        gap = _get(motion_frame, "exp_ref_gap")
        base = lid_ref = self._neutral
        if gap is not None:
            ref = _get(motion_frame, "exp_ref") if EYES_REF == "median" else None
            base = self.relative_base(float(np.asarray(gap).reshape(-1)[0]), ref)
            lid_ref = base if ref is None else self._neutral
        c = base.copy()
        if exp is not None:
            e = np.asarray(exp, np.float64).reshape(-1)
            if e.shape[0] != self._comp.shape[0]:
                raise ValueError(f"motion_frame exp has {e.shape[0]} coefficients, the basis {self._comp.shape[0]}")
            c[:468] += (e @ self._comp).reshape(468, 3)
            close_lips(c)
            close_lids(c)
            self.lid_closing = lid_closing(c, lid_ref) if self._lid_geo else np.zeros(2)
        else:
            self.lid_closing = np.zeros(2)
        head = self._head.copy()
        dh = _get(motion_frame, "head")
        if dh is not None:
            head += np.asarray(dh, np.float64).reshape(6)
        oval = M.FACE_OVAL
        n_oval = len(oval)
        posed3 = self._pose(np.concatenate([c] + [c[oval] + off for off in self._ring_off]), head)
        posed = self._to_region(posed3[:, :2])
        fmap = _get(motion_frame, "face") if (self.register and FACE_REG > 0) else None
        if fmap is not None:    # the face placed where the driving video's upper face moved
            posed = self._face_corrected(posed, self._body_map(fmap))
        dst = [posed[:478]]
        depth = [posed3[:478, 2]]
        hair = _get(motion_frame, "hair") if self.register else None
        hmap = None if hair is None else self._body_map(hair)
        torso = _get(motion_frame, "torso") if self.register else None
        tmap = None if torso is None else self._body_map(torso)      # (checks the map)
        for k, (w, keep, src_r) in enumerate(zip(self._ring_w, self._ring_keep, self._rings_src)):
            drv_r = posed[478 + k * n_oval: 478 + (k + 1) * n_oval]
            if hmap is not None:    # the head outside the face moved by its registered map
                reg_r = src_r @ hmap[:, :2].T + hmap[:, 2]
                lo, hi = HAIR_DY
                hw = (1 - HAIR_MESH[k]) * np.clip((hi - self._ring_dy) / max(hi - lo, 1e-9), 0.0, 1.0)
                drv_r = drv_r + hw[:, None] * (reg_r - drv_r)
                w = w if HAIR_FOLLOW[k] is None else np.full_like(w, HAIR_FOLLOW[k])
                if k == 1 and self._outer_follow is not None:   # no arms in the region: fully
                    w = np.full_like(w, self._outer_follow)
            ring = src_r + w[:, None] * (drv_r - src_r)
            if tmap is not None and NECK_TORSO > 0:   # the ring below the chin (the neck): the torso's map
                wn = NECK_TORSO * self._below_chin(src_r)[:, None]
                ring = ring + wn * (src_r @ tmap[:, :2].T + tmap[:, 2] - ring)
            dst.append(ring[keep])
        n_ring = sum(self._n_extra[:2])
        depth.append(np.full(n_ring, COARSE_DEPTH))
        if torso is not None and BODY_ARMS != "pose":   # the arms carried by the body's map
            motion_frame = self._arms_by_torso(motion_frame, torso)
        if len(self._limbs.src):
            dst.append(self._limbs.driving(motion_frame))
            depth.append(np.full(len(self._limbs.src), COARSE_DEPTH))
        if len(self._torso_src):
            dst.append(self._torso_driving(motion_frame))
            depth.append(np.full(len(self._torso_src), COARSE_DEPTH))
        dst.append(self._border)
        depth.append(np.full(len(self._border), COARSE_DEPTH))
        dst = np.concatenate(dst)
        if hmap is not None and BORDER_HAIR > 0:   # the region's border above the chin: the hair's map
            src = self.src_vertices[M.N_FACE:].astype(np.float64)
            wh = self._border_hair_weights()[:, None]
            dst[M.N_FACE:] += wh * (src @ hmap[:, :2].T + hmap[:, 2] - dst[M.N_FACE:])
        if torso is not None:     # the body below the chin moved by its registered map
            reg = self._registered_mesh()
            amap = tmap
            src = reg["src"][M.N_FACE:].astype(np.float64)
            n_old = len(dst) - M.N_FACE
            cur = np.concatenate([dst[M.N_FACE:], src[n_old:]])
            w = reg["w"][:, None]
            moved = src @ amap[:, :2].T + amap[:, 2]
            cur = (1 - w) * cur + w * moved
            n_sil = reg["n_sil"]
            if n_sil:       # the person's outline: the hair's map above the chin, the torso's below
                k = len(cur) - n_sil
                s_src = src[k:]
                sil = s_src + reg["w_sil_t"][:, None] * (moved[k:] - s_src)
                if hmap is not None:
                    sil += reg["w_sil_h"][:, None] * (s_src @ hmap[:, :2].T + hmap[:, 2] - s_src)
                cur[k:] = sil
            dst = np.concatenate([dst[:M.N_FACE], cur])
            depth.append(np.full(reg["n_grid"] + n_sil, COARSE_DEPTH))
        if torso is not None or (hmap is not None and BORDER_HAIR > 0):
            self._hold_border(dst)
        return (dst.astype(np.float32), np.concatenate(depth).astype(np.float32))

    def relative_base(self, gap: float, ref=None) -> np.ndarray:
        """The face a driving video's expression relative to its first frame is added to
        (``exp_ref_gap`` in a motion frame, :func:`chatanyone.reenact.driving_motion`): the photo's
        own canonical face, its expression kept, with only its inner lips set ``gap`` mouth widths
        apart (the driving first frame's gap, :func:`neutral_face` with ``expression=False``), so
        the driving mouth opens and closes as far as the video's whatever the photo shows. Cached
        per gap (float64 ``[478, 3]``)."""
        if not np.isfinite(gap):
            raise ValueError(f"a motion frame's exp_ref_gap must be finite, got {gap}")
        key = (round(float(gap), 6), None if ref is None else np.asarray(ref, np.float32).tobytes())
        base = self._rel_base.get(key)
        if base is None:
            base = neutral_face(self._canon_src, self.basis, expression=False, gap=key[0])[0].astype(np.float64)
            if ref is not None:     # the eyes: as the neutral face with the first frame's expression
                old = self._neutral.copy()
                old[:468] += (np.asarray(ref, np.float64).reshape(-1) @ self._comp).reshape(468, 3)
                base = base + _eye_weights(self.basis.canonical)[:, None] * (old - base)
            if len(self._rel_base) > 16:
                self._rel_base.clear()
            self._rel_base[key] = base
        return base

    def _hold_border(self, dst: np.ndarray) -> None:
        """Keeps the region's border from moving into the region (in place, ``dst [V, 2]``
        region-normalized) after a registered map moved it (issue #11). A border point moved inward
        left pixels that no triangle covers: the flow is the identity there, so the still photo
        showed beside the moved body (a hard step, a sliver of the photo's own shoulder). Each point
        may move outward from its side (the body leaving the frame or the region: cut at its edge)
        but not inward; along its side it moves by at most :data:`BORDER_SLIDE` of the points'
        spacing (a clamp keeps their order, so neighbours never cross). Every pixel of the region
        is then covered and sampled from inside the photo."""
        b0 = M.N_FACE + sum(self._n_extra[:4])
        src = self._border.astype(np.float64)
        out = np.array(dst[b0: b0 + len(src)], np.float64)
        lim = BORDER_SLIDE * 2.0 / self._border_sides
        out = src + np.clip(out - src, -lim, lim)
        for axis in (0, 1):
            lo, hi = src[:, axis] == -1.0, src[:, axis] == 1.0
            out[lo, axis] = np.minimum(out[lo, axis], -1.0)      # left / top: not right / down of it
            out[hi, axis] = np.maximum(out[hi, axis], 1.0)
        dst[b0: b0 + len(src)] = out

    def render(self, motion_frame) -> np.ndarray:
        """One motion frame -> one frame ``[H, W, 3]`` uint8 RGB (the whole photo, resized). Blocks
        until done (a few ms on a CPU)."""
        import cv2

        from chatanyone import ops
        t0 = time.perf_counter()
        dst, depth = self.driving_vertices(motion_frame)
        rx0, ry0, rx1, ry1 = self.rect
        rh, rw = ry1 - ry0, rx1 - rx0
        t1 = self._tick("geometry", t0)
        if len(dst) == len(self.src_vertices):
            src_v, tris = self.src_vertices, self.triangles
        else:       # a frame with the body's registered motion: its own mesh
            src_v, tris = self._reg["src"], self._reg["tris"]
        if self.lid_closing.max() > CLOSING_MIN:     # an eye closing: lid skin over it
            dst, depth, src_v, tris = self._lid_mesh(dst, depth, src_v, tris)
        grid, _mask = _mesh_flow()(dst, src_v, tris, (rh, rw), depth=depth)
        t1 = self._tick("mesh_flow", t1)
        warped = ops.warp(self._src, grid[None], padding="border")[0]
        t1 = self._tick("warp", t1)
        img = cv2.merge((warped[0], warped[1], warped[2]))       # [rh, rw, 3] float32
        if self.layered:    # the person over the still plate: a F + (1 - a) plate
            a = warped[3]
            bg = _get(motion_frame, "background") if (self.register and BACKGROUND_MOVES) else None
            plate = self._plate if bg is None else self._moved_plate(bg)
            img = cv2.blendLinear(img, plate, a, 1.0 - a)
        if self._limbs.layer is not None:
            self._limbs.composite(img)
            t1 = self._tick("arms", t1)
        for sl, a in self._band:            # the feathered border: back to the photo at its edge
            b = self._base[sl]
            img[sl] = b + a * (img[sl] - b)
        if self.paints_mouth:
            self._fill_mouth(img, dst)
        elif self.rigid_teeth:
            self._fill_photo_mouth(img, dst)
        self.face_px = (dst[:M.N_FACE].astype(np.float64) + 1) * self._px - 0.5
        t1 = self._tick("mouth", t1)
        if self.refiner is not None:
            self.refiner(img, self.face_px)
            t1 = self._tick("refine", t1)
        if self.region_refiner is not None:
            self.region_refiner(img, grid, warped[3] if self.layered else None)
            t1 = self._tick("refine_region", t1)
        out = self.background.copy()
        out[ry0:ry1, rx0:rx1] = cv2.convertScaleAbs(img)       # rounds and saturates to uint8
        self._tick("paste", t1)
        self.frames += 1
        return out

    def _moved_plate(self, bg) -> np.ndarray:
        """The background plate ``[rh, rw, 3] float32`` moved by a motion frame's registered
        ``background`` map (driving crop coordinates; a camera's pan or zoom): sampled from the
        whole frame's plate (the photo with the region's plate in it), so a zoom out or a pan
        brings in the photo beyond the region, not a smear of its edge. The identity map returns
        the still plate itself."""
        import cv2
        m = self._body_map(bg)                      # region-normalized: u' = L u + t
        if np.abs(m - np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])).max() < 1e-6:
            return self._plate
        if self._plate_full is None:
            full = self.background.astype(np.float32)
            rx0, ry0, rx1, ry1 = self.rect
            full[ry0:ry1, rx0:rx1] = self._plate
            self._plate_full = full
        px = self._px
        lin = m[:, :2] * px[:, None] / px[None, :]            # region pixels: x = (u + 1) px
        t = px * (m[:, 2] + 1 - m[:, :2].sum(1))
        r0 = np.array(self.rect[:2], np.float64)
        fwd = np.concatenate([lin, (t - lin @ r0)[:, None]], 1)   # whole-frame pixels -> region pixels
        rx0, ry0, rx1, ry1 = self.rect
        return cv2.warpAffine(self._plate_full, fwd, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def _tick(self, name: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + (t1 - t0)
        return t1

    def per_frame_ms(self) -> dict[str, float]:
        return {k: 1000 * v / max(self.frames, 1) for k, v in self.times.items()}

    def _opening(self, img_hw: tuple[int, int], dst: np.ndarray):
        """The driven mouth opening in region pixels, or None where the lips (nearly) meet.

        Returns ``(px, up, lo, width, (x0, y0, x1, y1), xs, ys, yu, yl, xl, xr, a)``: the face's
        pixel-centre coordinates ``px [478, 2]``, the inner lips ``up``/``lo``, the mouth width,
        the opening's box, its columns ``xs [w]`` and rows ``ys [h, 1]``, the lip curves ``yu``,
        ``yl`` over ``xs``, the corners' x, and the opening's coverage ``a [h, w]`` in [0, 1]."""
        px = (dst[:M.N_FACE, :2].astype(np.float64) + 1) * self._px - 0.5   # pixel-centre coordinates
        up = px[M.LIP_UPPER_INNER]
        lo = px[M.LIP_LOWER_INNER]
        width = float(np.linalg.norm(up[-1] - up[0]))
        gap = lo[1:-1, 1] - up[1:-1, 1]
        if width < 2 or gap.max() < 0.3:
            return None
        h, w = img_hw
        x0 = int(max(0, np.floor(min(up[:, 0].min(), lo[:, 0].min())) - 1))
        x1 = int(min(w, np.ceil(max(up[:, 0].max(), lo[:, 0].max())) + 2))
        y0 = int(max(0, np.floor(up[:, 1].min()) - 1))
        y1 = int(min(h, np.ceil(lo[:, 1].max()) + 2))
        if x1 <= x0 or y1 <= y0:
            return None
        xs = np.arange(x0, x1, dtype=np.float64)
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        # lip curves as functions of x (the mouth is roughly horizontal in the image)
        ou, ol = np.argsort(up[:, 0]), np.argsort(lo[:, 0])
        yu = np.interp(xs, up[ou, 0], up[ou, 1])
        yl = np.interp(xs, lo[ol, 0], lo[ol, 1])
        xl, xr = min(up[0, 0], up[-1, 0]), max(up[0, 0], up[-1, 0])
        inside_x = np.clip(xs - xl + 0.5, 0, 1) * np.clip(xr - xs + 0.5, 0, 1)
        a = np.clip(ys - yu + 0.5, 0, 1) * np.clip(yl - ys + 0.5, 0, 1) * inside_x    # [h, w]
        if not a.any():
            return None
        return px, up, lo, width, (x0, y0, x1, y1), xs, ys, yu, yl, xl, xr, a

    def _fill_mouth(self, img: np.ndarray, dst: np.ndarray) -> None:
        """Paint the mouth interior where the driving inner lips part (in place, region pixels)."""
        o = self._opening(img.shape[:2], dst)
        if o is None:
            return
        _, up, lo, width, (x0, y0, x1, y1), xs, ys, yu, yl, xl, xr, a = o
        if self.mouth == "previous":
            self._paint_previous(img, a, xs, ys, yu, yl, xl, xr, width, x0, y0, x1, y1)
            return
        g = np.maximum(yl - yu, 0)                       # opening per column
        xc = 0.5 * (xl + xr)
        half = max(0.5 * (xr - xl), 1.0)
        u = (xs - xc) / half                             # -1 .. 1 across the mouth
        shade = np.clip(1.0 - 0.7 * u ** 2, 0.2, 1.0)    # the teeth recede into the corners' shade
        # the teeth rows are arcs of their own (the dental arch seen from the front: flatter than
        # the lips, rising a little to the sides), set by the opening in the middle; a lip that
        # curves below the upper row's edge (an "oh") hides the teeth there
        ic = len(up) // 2
        g_c = max(float(lo[ic, 1] - up[ic, 1]), 0.0)
        slope = (up[-1, 1] - up[0, 1]) / (up[-1, 0] - up[0, 0]) if abs(up[-1, 0] - up[0, 0]) > 1e-6 else 0.0
        line = (xs - up[ic, 0]) * slope
        teeth_c = min(0.5 * g_c, 0.12 * width)
        teeth_h = np.full_like(xs, teeth_c)
        # (and never deeper than half of a column's opening: some of the dark inside shows across
        # the whole width, as face mesh needs to read a narrow opening as open)
        edge = np.minimum(up[ic, 1] + line + teeth_c * (1.0 - 0.3 * u ** 2), yu + 0.5 * g)
        tu = np.clip((edge - ys) / 1.5 + 0.5, 0, 1) * np.clip(ys - yu + 0.5, 0, 1)
        low_c = float(np.clip(0.35 * (g_c - 0.12 * width), 0, 0.08 * width))
        ledge = np.maximum(lo[ic, 1] + line - low_c * (1.0 - 0.4 * u ** 2), yl - 0.3 * g)
        tl = (np.clip((ys - ledge) / 1.5 + 0.5, 0, 1) * np.clip(yl - ys + 0.5, 0, 1)
              * float(np.clip(low_c - 0.5, 0, 1)))
        depth_t = np.clip((ys - yu) / np.maximum(g, 1.0), 0, 1)
        col = (self._col_dark[None, None] * (1 - 0.5 * depth_t[..., None])
               + (self._col_tongue - self._col_dark)[None, None] * (depth_t[..., None] ** 3) * 0.6)
        # lit from the front: the upper lip shades the teeth's top a little; the gaps between the
        # teeth (on a dental arch seen from the front, incisors widest) are darker lines, drawn
        # only where the mouth is wide enough in pixels for them to read as teeth
        tv = np.clip((ys - yu) / np.maximum(teeth_h, 1.0), 0, 1)
        sep_u = _tooth_gaps(xs, xc, half, TOOTH_EDGES_UPPER, width)
        sep_l = _tooth_gaps(xs, xc, half, TOOTH_EDGES_LOWER, width)
        tcol = self._col_teeth[None, None] * (shade * sep_u)[None, :, None] * (0.82 + 0.18 * np.sqrt(tv))[..., None]
        lcol = 0.8 * self._col_teeth[None, None] * (shade * sep_l)[None, :, None] * np.ones_like(tv)[..., None]
        if self.paint_shadow:    # a narrow opening: its teeth in the lips' shadow (as the photo's teeth)
            lit = np.clip((g / max(width, 1.0) - TEETH_SHADOW[0]) / (TEETH_SHADOW[1] - TEETH_SHADOW[0]), 0, 1)
            dark = self._col_dark[None, None]
            tcol = dark + lit[None, :, None] * (tcol - dark)
            lcol = dark + lit[None, :, None] * (lcol - dark)
        col = col * (1 - tl[..., None]) + lcol * tl[..., None]
        col = col * (1 - tu[..., None]) + tcol * tu[..., None]
        col = col * 255.0
        # blurred as much as the warped photo around it: no crisp pasted-on band
        _composite(img[y0:y1, x0:x1], a, col, self.paint_soft)

    def _paint_previous(self, img, a, xs, ys, yu, yl, xl, xr, width, x0, y0, x1, y1) -> None:
        """The painted interior before session 6 (a flat band of upper teeth; ``mouth="previous"``,
        kept for evaluation)."""
        g = np.maximum(yl - yu, 0)
        xc = 0.5 * (xl + xr)
        half = max(0.5 * (xr - xl), 1.0)
        shade = np.clip(1.0 - 0.6 * ((xs - xc) / half) ** 2, 0.25, 1.0)
        teeth_h = np.minimum(0.55 * g, 0.12 * width)
        tu = np.clip((yu + teeth_h - ys) + 0.5, 0, 1) * np.clip(ys - yu + 0.5, 0, 1)
        low_h = np.clip(0.3 * (g - 0.2 * width), 0, 0.06 * width)
        tl = np.clip((ys - (yl - low_h)) + 0.5, 0, 1) * np.clip(yl - ys + 0.5, 0, 1) * (low_h > 0.5)
        depth_t = np.clip((ys - yu) / np.maximum(g, 1.0), 0, 1)
        col = (self._col_dark[None, None] * (1 - 0.5 * depth_t[..., None])
               + (self._col_tongue - self._col_dark)[None, None] * (depth_t[..., None] ** 3) * 0.6)
        tv = np.clip((ys - yu) / np.maximum(teeth_h, 1.0), 0, 1)
        teeth = self._col_teeth_previous
        tcol = teeth[None, None] * (shade[None, :, None] * (0.7 + 0.3 * np.sqrt(tv))[..., None])
        col = col * (1 - tu[..., None]) + tcol * tu[..., None]
        col = col * (1 - tl[..., None]) + 0.75 * tcol * tl[..., None]
        col = col * 255.0
        patch = img[y0:y1, x0:x1]
        patch += a[..., None] * (col.astype(np.float32) - patch)

    # --- the photo's own teeth, rigid ----------------------------------------------------------

    def _photo_teeth(self, face_src: np.ndarray, reg_img: np.ndarray) -> None:
        """Where the photo shows its mouth's inside: the curves that bound its upper teeth (from the
        upper inner lip down to the darkest row between the lips) and its lower teeth (from there
        to the lower inner lip), and the colour of its darkest inside (region pixel centres)."""
        import cv2
        p = (np.asarray(face_src, np.float64) + 1) * self._px - 0.5
        up, lo = p[M.LIP_UPPER_INNER], p[M.LIP_LOWER_INNER]
        n_t = 25
        t = np.linspace(0.0, 1.0, n_t)
        cols = range(2, len(up) - 2)                    # the inner columns (the corners pinch)
        pts = np.array([[up[i] + tt * (lo[i] - up[i]) for tt in t] for i in cols], np.float32)  # [C, T, 2]
        base = reg_img.astype(np.float32) / 255.0
        smp = cv2.remap(base, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lum = smp @ np.array([0.299, 0.587, 0.114], np.float32)          # [C, T]
        sm = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 1, mode="edge"), [0.25, 0.5, 0.25], "valid"), 1, lum)
        mid = (t >= TEETH_SPLIT_RANGE[0]) & (t <= TEETH_SPLIT_RANGE[1])
        split = float(np.median(t[mid][np.argmin(sm[:, mid], axis=1)]))
        self.teeth_split = split
        self._t_up = up
        self._t_mid = up + split * (lo - up)
        self._t_lo = lo
        # the mean of the inside's darkest part (TEETH_GAP_SHARE of it), at most TEETH_GAP_MAX_LUM
        flat = smp.reshape(-1, 3)
        k = max(1, int(len(flat) * TEETH_GAP_SHARE))
        dark = flat[np.argsort(flat @ np.array([0.299, 0.587, 0.114]))[:k]].mean(0)
        lum_d = float(dark @ [0.299, 0.587, 0.114])
        if lum_d > TEETH_GAP_MAX_LUM:
            dark = dark * (TEETH_GAP_MAX_LUM / lum_d)
        self._col_gap = dark.astype(np.float32)

    def _fill_photo_mouth(self, img: np.ndarray, dst: np.ndarray) -> None:
        """Fill the driven opening with the photo's own teeth, kept rigid (in place, region pixels).

        The upper teeth move with the head (a 2-D similarity fitted on the face mesh's rigid
        points, photo to driving), the lower teeth with the jaw (that similarity plus the lower
        lip's shift); the upper ones lie in front. What neither covers is the mouth's dark inside.
        So an opening wider than the photo's grows a dark gap between the teeth instead of
        stretching them, and a narrower one hides them behind the lips."""
        import cv2
        from ..spec.keypoint_layout import RIGID_IDX
        o = self._opening(img.shape[:2], dst)
        if o is None:
            return
        px, up, lo, width, (x0, y0, x1, y1), xs, ys, yu, yl, xl, xr, a = o
        src = self.src_face_px
        m_up = palm_similarity(src[RIGID_IDX], px[RIGID_IDX], np.pi, (0.2, 5.0))
        jaw = [14, 87, 317, 17, 84, 314]
        shift = (px[jaw] - (src[jaw] @ m_up[:, :2].T + m_up[:, 2])).mean(0)
        m_lo = m_up.copy()
        m_lo[:, 2] += shift
        # an upper lip raised above the photo's teeth takes them along (no dark band above them)
        top = self._t_up[3:-3] @ m_up[:, :2].T + m_up[:, 2]
        lift = float(np.mean(up[3:-3, 1] - top[:, 1]))
        if lift < 0:
            m_up = m_up.copy()
            m_up[1, 2] += lift
        gx, gy = np.meshgrid(xs, ys[:, 0])
        layers = []
        for m, top, bot in ((m_lo, self._t_mid, self._t_lo), (m_up, self._t_up, self._t_mid)):
            inv = cv2.invertAffineTransform(m)
            qx = (inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]).astype(np.float32)
            qy = (inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]).astype(np.float32)
            ot, ob = np.argsort(top[:, 0]), np.argsort(bot[:, 0])
            yt = np.interp(qx, top[ot, 0], top[ot, 1])
            yb = np.interp(qx, bot[ob, 0], bot[ob, 1])
            sxl, sxr = min(top[0, 0], top[-1, 0]), max(top[0, 0], top[-1, 0])
            cov = (np.clip(qy - yt + 0.5, 0, 1) * np.clip((yb - qy) / 1.5 + 0.5, 0, 1)
                   * np.clip(qx - sxl + 0.5, 0, 1) * np.clip(sxr - qx + 0.5, 0, 1))
            col = cv2.remap(self._base, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            layers.append((cov.astype(np.float32)[..., None], col))
        g = np.maximum(yl - yu, 1.0)
        depth_t = np.clip((ys - yu) / g, 0, 1)
        # dark, darkest in the middle, the tongue's colour showing a little at the bottom
        col = ((255.0 * self._col_gap)[None, None] * (1.0 - 0.35 * np.abs(2 * depth_t - 1))[..., None]
               + (255.0 * (self._col_tongue - self._col_gap))[None, None] * (TEETH_TONGUE * depth_t ** 3)[..., None])
        col = col.astype(np.float32)
        # a narrow opening is in the lips' shadow: its teeth fade into the dark (a mouth barely
        # apart reads as closed, as real ones do)
        lit = np.clip((g / max(width, 1.0) - TEETH_SHADOW[0]) / (TEETH_SHADOW[1] - TEETH_SHADOW[0]), 0, 1)
        lit = lit.astype(np.float32)[None, :, None]
        for cov, c in layers:                 # lower teeth, then the upper ones in front
            col += (lit * cov) * (c - col)
        _composite(img[y0:y1, x0:x1], a, col, self.photo_soft)
