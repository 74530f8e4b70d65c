"""Arms and hands for the geometry renderer: bone by bone, as a layer over the body.

Two ways to move an arm the photo shows (:class:`Limbs`, ``arms=``):

- ``"layer"`` (the default, where the photo shows the arm's shoulder, elbow and wrist inside the
  animated region and its hands are not clasped): the arm is a layer of its own
  (:class:`ArmLayer`). Its texture is the photo's arm: capsules round the upper arm and the forearm
  and the hand's own silhouette (:func:`hand_silhouette`), cut to the person (selfie segmentation
  of the region) and kept off the face, the upper arm fading in from the shoulder. Under it the photo's arm is filled from what
  surrounds it (:func:`fill_masked`: the texture beside the arm mirrored across its edge), so what
  a moving arm uncovers is torso and background, never a stretched arm or a tear. The arm
  moves by forward kinematics: the shoulder by the motion's body offset (clamped, as the torso
  moves little), then the upper arm and the forearm each turned to the driving bone's direction,
  their lengths kept within :data:`BONE_SCALE` of the photo's (foreshortening, not stretch). So the
  wrist travels as far as the driving arm swings it, an arm's length at most. The hand rides on
  the driven wrist: the hand mesh (:class:`~chatanyone.render.handmesh.HandMesh`) bone by bone,
  the similarity fallback, or rigidly with the forearm where the motion shows no hand.
- ``"mesh"`` (the renderer before the layer; also every arm that cannot be layered): the joints
  and the hand are vertices of the coarse mesh, each joint's move clamped (:attr:`Limbs.MAX_MOVE`)
  because the coarse mesh stretches the texture between the arm and the body.

Work is in region pixels (isotropic). Pure numpy at preparation (one segmentation call, a fill);
per frame a few small matrix products, and for a layer one mesh flow and one warp over the
layer's bounding box (:meth:`ArmLayer.composite`).
"""
from __future__ import annotations

import logging

import numpy as np

from .handmesh import palm_similarity, unfolded
from ..spec import keypoint_layout as L

log = logging.getLogger("chatanyone")

HAND_MODES = ("articulated", "similarity")   # how hands move
ARM_MODES = ("layer", "mesh")                # how arms move
# a driven bone's length: from BONE_SCALE[0] of the photo's to the larger of BONE_SCALE[1] of it and
# the bone's typical length (BONE_LENGTH, face heights: upper arm, forearm): a bone the photo shows
# foreshortened (pointing at the camera) may turn into the image plane and lengthen
BONE_SCALE = (0.5, 1.2)
BONE_LENGTH = (1.4, 1.2)
SHOULDER_MAX_MOVE = 0.15     # face heights a layered arm's shoulder may move (the torso's)
UPPER_ARM_RADIUS = 0.2      # capsule radii of the layer's texture, face heights
FOREARM_RADIUS = 0.16
HAND_STUB = 0.3              # an unseen hand: the forearm's capsule goes on this far, face heights
HAND_DISC = 0.8              # an unseen hand: skin-coloured pixels this near the wrist (face heights)
N_HAND_RING = 12             # ... are carried by a fan of triangles round the wrist, this many
SKIN_SIGMAS = 3.0            # skin: within this many standard deviations of the face's chroma
SKIN_MIN_LUMA = 0.4          # an unseen hand's skin: at least this share of the face's median luminance
HAND_MAX_AREA = 0.8          # an unseen hand's skin: at most this many square face heights, else not a hand
STRIP_WIDTH = 1.7            # the layer's triangles reach this many capsule radii from the bone
SHOULDER_FADE = (0.12, 0.45)  # the upper arm's texture fades in over this span from the shoulder
ALPHA_BLUR = 1.5             # px: the layer's soft edge
N_STRIP_TRIANGLES = 12       # an arm's bones (upper arm, forearm, the cap beyond the wrist): 4 each
N_UPPER_TRIANGLES = 4        # ... the first of them the upper arm's
# each bone's strip carries only the photo's pixels of its own bone where the capsules overlap (a
# folded arm: the forearm in front; session 12, render/design.md); False: both carry all of them
BONE_ALPHAS = True
WRISTS_TOGETHER = 1.0        # face heights: wrists nearer than this hold their hands together
FILL_BLUR = 10.0             # px: the fill's smoothing (the mirror's seams, and its texture misaligned with the hidden one)
FILL_THRESHOLD = 0.5         # the photo's pixels under a layer alpha above this are filled
FINGER_RADIUS = 0.2          # the hand's silhouette (:func:`hand_silhouette`): a finger's radius, palm lengths
TIP_SKIN = 0.12              # ... and its skin beyond the fingertip point, palm lengths
TIP_FILL = 0.3               # the photo's fingertips are filled this far beyond their points, palm lengths


def _get(frame, key, default=None):
    """A motion frame's field: a dict key or an attribute (typed frames)."""
    if isinstance(frame, dict):
        return frame.get(key, default)
    v = getattr(frame, key, None)
    if v is None:
        try:
            v = frame[key]
        except (KeyError, TypeError, IndexError):
            v = None
    return default if v is None else v


def _rot(th: float) -> np.ndarray:
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


def _angle(v) -> float:
    return float(np.arctan2(v[1], v[0]))


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def hand_silhouette(points: np.ndarray, shape, *, radius: float = FINGER_RADIUS,
                    beyond: float = TIP_SKIN) -> np.ndarray:
    """The hand's own silhouette ``[h, w]`` uint8 (1 inside) for its 21 points ``[21, 2]`` (region px,
    pixel centres at +0.5) in an image of ``shape (h, w)``: the palm's polygon (the hull of the
    wrist, the finger bases and the thumb's first joint) and a capsule of ``radius`` palm lengths
    along every finger bone, the last one reaching ``beyond`` palm lengths past the fingertip. Unlike the hand's hull it
    leaves out what lies between spread fingers (background, the torso), which a hand mesh moving
    its fingers apart would otherwise carry along as slivers."""
    import cv2
    from .handmesh import FINGERS, PALM, hand_size
    h, w = int(shape[0]), int(shape[1])
    p = np.asarray(points, np.float64).reshape(21, 2)
    out = np.zeros((h, w), np.uint8)
    if not np.all(np.isfinite(p)):
        return out
    lp = hand_size(p)
    fx = lambda q: tuple(int(v) for v in np.round((np.asarray(q) - 0.5) * 16).astype(int))   # noqa: E731
    palm = np.round((p[list(PALM) + [2]] - 0.5) * 16).astype(np.int32)     # with the thumb's web
    cv2.fillConvexPoly(out, cv2.convexHull(palm), 1, lineType=cv2.LINE_8, shift=4)
    th = max(1, int(round(2 * radius * lp)))
    for f in FINGERS:
        chain = [p[j] for j in f]
        d = chain[-1] - chain[-2]
        tip = chain[-1] + beyond * lp * d / max(float(np.linalg.norm(d)), 1e-9)
        chain = chain + [tip]      # from the finger's base to beyond its tip
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(out, fx(a), fx(b), 1, thickness=th, lineType=cv2.LINE_8, shift=4)
    return out


def fill_masked(img: np.ndarray, mask: np.ndarray, person: np.ndarray | None = None, *,
                return_source: bool = False):
    """``img [H, W, C]`` with the pixels where ``mask [H, W]`` (bool) is set filled from around them:
    each such pixel takes the pixel mirrored across the mask's edge (its nearest unmasked pixel
    ``q``, read at ``2 q - p``: the texture beside the arm continues under it, mirrored), or ``q``
    itself where the mirror falls outside the image or inside the mask, or (``person [H, W]``
    bool) on the other side of the person's outline than ``q``; the filled pixels are then
    smoothed (:data:`FILL_BLUR`: the mirror's seam, and its texture, which lies misaligned with
    whatever the mask hides: the colour continues, not the pattern). Returns float32
    ``[H, W, C]`` (with ``return_source`` also ``[H, W]`` bool: the filled pixels whose nearest
    unmasked pixel ``q`` is not the person's); a few ms for a region."""
    import cv2
    from scipy.ndimage import distance_transform_edt
    img = np.asarray(img, np.float32)
    m = np.asarray(mask, bool)
    if img.ndim != 3 or m.shape != img.shape[:2]:
        raise ValueError(f"fill_masked: img must be [H, W, C] and mask [H, W], got {img.shape} and {m.shape}")
    if person is not None and np.shape(person) != m.shape:
        raise ValueError(f"fill_masked: person must be [H, W] like mask, got {np.shape(person)}")
    out = img.copy()
    bg = np.zeros(m.shape, bool)
    if not m.any() or m.all():
        if m.all():
            out[:] = img.reshape(-1, img.shape[-1]).mean(0)
        return (out, bg) if return_source else out
    h, w = m.shape
    iy, ix = distance_transform_edt(m, return_distances=False, return_indices=True)
    py, px = np.nonzero(m)
    qy, qx = iy[py, px], ix[py, px]
    ry, rx = 2 * qy - py, 2 * qx - px
    ok = (ry >= 0) & (ry < h) & (rx >= 0) & (rx < w)
    ok[ok] = ~m[ry[ok], rx[ok]]
    if person is not None:
        pm = np.asarray(person, bool)
        ok[ok] = pm[ry[ok], rx[ok]] == pm[qy[ok], qx[ok]]
    sy, sx = np.where(ok, ry, qy), np.where(ok, rx, qx)
    out[py, px] = img[sy, sx]
    soft = cv2.GaussianBlur(out, (0, 0), FILL_BLUR)
    out[py, px] = soft[py, px]
    if person is not None:
        bg[py, px] = ~np.asarray(person, bool)[qy, qx]
    return (out, bg) if return_source else out


class ArmLayer:
    """The arms of a photo as a layer (see the module docstring): its texture, the photo filled
    under it, its triangles, and its compositing.

    Args:
        reg_img: ``[rh, rw, 3]`` uint8 the region of the photo at output size.
        arms: per layered arm ``(shoulder, elbow, wrist, hand_vertices or None)`` in region px; the
            hand vertices' first 21 are the hand's points (their :func:`hand_silhouette` is the
            texture the hand carries; the vertices' hull, and the fingertips :data:`TIP_FILL`
            further, is what is filled under it).
        face_hull: ``[N, 2]`` region px, the face's outline (kept out of the layer).
        fh: the face height in region px.
        person: ``[rh, rw]`` float person probability, or None (no cut to the person).

    Attributes:
        alpha: ``[rh, rw]`` float32 the layer's opacity in the photo (the arms' and the hands').
        base: ``[rh, rw, 3]`` float32 the photo with the layer's pixels filled.
        fill_background: ``[rh, rw]`` bool, the filled pixels taken from beside the person.
    """

    def __init__(self, reg_img: np.ndarray, arms, face_hull: np.ndarray, fh: float, person=None,
                 skin_pts: np.ndarray | None = None):
        import cv2
        rh, rw = reg_img.shape[:2]
        skin = _skin_mask(reg_img, skin_pts) if skin_pts is not None else None
        # an unseen hand's skin (below): not the dark pixels (a fingertip in shadow still counts
        # where the segmentation misses a seen hand's finger)
        bright = _skin_mask(reg_img, skin_pts, SKIN_MIN_LUMA) if skin_pts is not None else None
        alpha = np.zeros((rh, rw), np.float32)
        hand_area = np.zeros((rh, rw), np.uint8)     # filled under the layer: the hand's hull
        hand_sil = np.zeros((rh, rw), np.uint8)      # carried by the hand: its own silhouette
        tips = np.zeros((rh, rw), np.uint8)          # beyond the fingertips: filled where skin the person misses

        def capsule(a, b, rad):
            m = np.zeros((rh, rw), np.uint8)
            # pixel centres at +0.5: cv2 draws on integer coordinates (shift 4: 1/16 px)
            p0, p1 = (np.round((a - 0.5) * 16).astype(int), np.round((b - 0.5) * 16).astype(int))
            cv2.line(m, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1,
                     thickness=max(1, int(round(2 * rad))), lineType=cv2.LINE_8, shift=4)
            return m

        yy, xx = np.mgrid[0:rh, 0:rw].astype(np.float32)
        # which bone a pixel of the photo belongs to, where both bones' capsules hold it (an arm
        # folded, its forearm raised in front of the upper arm): the forearm's (the forearm's
        # capsule from the elbow's line on, and on to the hand), else the upper arm's (its capsule
        # up to the elbow's line). Each bone's strip carries only its own: before, the upper arm's
        # strip carried the raised forearm's pixels too, a ghost forearm left where it was
        fore_own = np.zeros((rh, rw), bool)
        upper_own = np.zeros((rh, rw), bool)

        def beyond(a, b):
            d = (b - a).astype(np.float32)
            return ((xx + 0.5 - a[0]) * d[0] + (yy + 0.5 - a[1]) * d[1]) / max(float(d @ d), 1e-9)

        for sh, el, wr, hand in arms:
            t_u = beyond(sh, el)
            fade = np.clip((t_u - SHOULDER_FADE[0]) / (SHOULDER_FADE[1] - SHOULDER_FADE[0]), 0, 1)
            fade = fade * fade * (3 - 2 * fade)
            up = capsule(sh, el, UPPER_ARM_RADIUS * fh)
            alpha = np.maximum(alpha, up * fade)
            upper_own |= (up > 0) & (t_u <= 1.0)
            fore = capsule(el, wr, FOREARM_RADIUS * fh)
            alpha = np.maximum(alpha, fore.astype(np.float32))
            fore_own |= (fore > 0) & (beyond(el, wr) >= 0.0)
            if hand is not None:
                hull = cv2.convexHull(np.round(hand).astype(np.int32))
                cv2.fillConvexPoly(hand_area, hull, 1)
                pts = np.asarray(hand, np.float64)[:21]
                # the forearm reaches the hand's own wrist point (the pose's wrist may stop short:
                # the skin between, left in the photo, was smeared into the fill as a ghost hand)
                reach = capsule(wr, pts[0], FOREARM_RADIUS * fh)
                alpha = np.maximum(alpha, reach.astype(np.float32))
                fore_own |= reach > 0
                cv2.bitwise_or(hand_sil, hand_silhouette(pts, (rh, rw)), dst=hand_sil)
                cv2.bitwise_or(tips, hand_silhouette(pts, (rh, rw), beyond=TIP_FILL), dst=tips)
            else:
                u = (wr - el) / max(float(np.linalg.norm(wr - el)), 1e-9)
                stub = capsule(wr, wr + HAND_STUB * fh * u, FOREARM_RADIUS * fh)
                alpha = np.maximum(alpha, stub.astype(np.float32))
                fore_own |= stub > 0
                if skin is not None:   # the hand the detector missed: skin round the wrist, touching it
                    near = np.zeros((rh, rw), np.uint8)
                    cv2.circle(near, tuple(int(v) for v in np.round((wr - 0.5) * 16).astype(int)),
                               int(round(HAND_DISC * fh * 16)), 1, -1, shift=4)
                    cand = (bright & (near > 0)).astype(np.uint8)
                    k = max(3, int(round(0.03 * fh)) * 2 + 1)
                    cand = cv2.morphologyEx(cand, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
                    n_lab, lab = cv2.connectedComponents(cand)
                    touch = np.unique(lab[(stub > 0) & (cand > 0)])
                    blob = np.isin(lab, touch[touch > 0])
                    # more skin than a hand has is not a hand (a skin-coloured jacket's pattern)
                    if blob.sum() <= HAND_MAX_AREA * fh * fh:
                        cv2.bitwise_or(hand_area, blob.astype(np.uint8), dst=hand_area)
                        cv2.bitwise_or(hand_sil, blob.astype(np.uint8), dst=hand_sil)
        k = max(3, int(round(0.04 * fh)) * 2 + 1)
        if hand_area.any():
            hand_area = cv2.dilate(hand_area, np.ones((k, k), np.uint8))
            hand_sil = cv2.dilate(hand_sil, np.ones((k, k), np.uint8)) & hand_area
            tips = cv2.dilate(tips, np.ones((k, k), np.uint8))
        # two alphas: the arm's (capsules, where no hand is) drawn by the bones' strips, the hands'
        # drawn by the hand meshes: a hand turned against its forearm then carries no sleeve with it.
        # The hand carries only its own silhouette (what lies between spread fingers stays); the
        # fill covers the hand's whole hull
        alpha[hand_area > 0] = 0
        hand_alpha = hand_sil.astype(np.float32)
        fill_hand = hand_area.astype(np.float32)
        face = np.zeros((rh, rw), np.uint8)
        cv2.fillConvexPoly(face, cv2.convexHull(np.round(face_hull).astype(np.int32)), 1)
        alpha[face > 0] = 0
        if person is not None:
            p = (np.asarray(person, np.float32) > 0.5).astype(np.uint8)
            p = cv2.dilate(p, np.ones((5, 5), np.uint8))
            alpha *= p
            # a fingertip the segmentation misses is still the hand's where it is skin-coloured
            hand_alpha *= (p | skin) if skin is not None else p
        if BONE_ALPHAS:
            upper_alpha = alpha * (~fore_own)
            fore_alpha = alpha * ~(upper_own & ~fore_own)
        else:
            upper_alpha = fore_alpha = alpha
        if ALPHA_BLUR > 0:
            alpha = cv2.GaussianBlur(alpha, (0, 0), ALPHA_BLUR)
            upper_alpha = cv2.GaussianBlur(upper_alpha, (0, 0), ALPHA_BLUR)
            fore_alpha = cv2.GaussianBlur(fore_alpha, (0, 0), ALPHA_BLUR)
            hand_alpha = cv2.GaussianBlur(hand_alpha, (0, 0), ALPHA_BLUR)
            fill_hand = cv2.GaussianBlur(fill_hand, (0, 0), ALPHA_BLUR)
        self.arm_alpha = alpha.astype(np.float32)
        self.hand_alpha = hand_alpha.astype(np.float32)
        self.alpha = np.maximum(self.arm_alpha, self.hand_alpha)
        # filled: under the arm, the hand's hull, and the photo's fingers to beyond their tips
        # wherever the segmentation or the skin colour missed them (a raised hand's fingers against
        # the background: left, they stay behind as a fingertip sliver where the hand left)
        fill = np.maximum(self.alpha, fill_hand) > FILL_THRESHOLD
        if person is not None:
            fill |= (tips > 0) & (face == 0) & (p == 0)
        self.base, self.fill_background = fill_masked(
            reg_img, fill, None if person is None else np.asarray(person) > 0.5,
            return_source=True)
        # the texture's alphas: 3 the forearm's strip's (and the cap's beyond the wrist), 4 the
        # hands', 5 the upper arm's strip's
        tex = np.concatenate([np.asarray(reg_img, np.float32).transpose(2, 0, 1), fore_alpha[None],
                              self.hand_alpha[None], upper_alpha[None]], 0)
        self.texture = np.ascontiguousarray(tex[None], np.float32)        # [1, 6, rh, rw]
        self.size = (rh, rw)

    def composite(self, img: np.ndarray, dst: np.ndarray, src_norm: np.ndarray, triangles: np.ndarray,
                  depth: np.ndarray, hand: bool = False, upper: bool = False) -> None:
        """Draw one part of the layer into ``img [rh, rw, 3]`` float32 (in place): the triangles
        ``triangles [T, 3]`` of driven vertices ``dst [V, 2]`` (region px; ``src_norm``: the same
        vertices in the photo, region-normalized; only those the triangles use count), blended by
        the forearm's alpha, (``upper``) the upper arm's or (``hand``) the hands'. Only the part's
        bounding box is rasterized and warped."""
        import cv2
        from chatanyone import ops
        rh, rw = self.size
        if hand:
            # a hand's triangles that the driven hand turns over (a finger bent back across the
            # margin ring) would carry the photo's pixels mirrored, as a fingertip sliver floating
            # beside the hand: left out, the filled photo shows there instead
            triangles = np.ascontiguousarray(unfolded(triangles, src_norm, dst), np.int32)
            if not len(triangles):
                return
        used = dst[np.unique(triangles)]
        x0 = int(max(0, np.floor(used[:, 0].min())))
        y0 = int(max(0, np.floor(used[:, 1].min())))
        x1 = int(min(rw, np.ceil(used[:, 0].max()) + 1))
        y1 = int(min(rh, np.ceil(used[:, 1].max()) + 1))
        if x1 - x0 < 1 or y1 - y0 < 1:
            return
        bw, bh = x1 - x0, y1 - y0
        dn = np.empty(dst.shape, np.float32)
        dn[:, 0] = (dst[:, 0] - x0) * (2.0 / bw) - 1
        dn[:, 1] = (dst[:, 1] - y0) * (2.0 / bh) - 1
        grid, mask = ops.mesh_flow(dn, src_norm, triangles, (bh, bw), depth=depth)
        out = ops.warp(self.texture, grid[None], padding="zeros", mask=mask[None])[0]   # [6, bh, bw]
        a = out[4 if hand else (5 if upper else 3)]
        patch = img[y0:y1, x0:x1]
        col = cv2.merge((out[0], out[1], out[2]))
        cv2.subtract(col, patch, dst=col)
        patch += col * a[..., None]


class Limbs:
    """Arms and hands moved bone by bone (see the module docstring).

    For each arm seen in the photo (shoulder, then elbow, then wrist, as far as the pose sees
    them inside the region): a vertex on every joint and two beside it across the limb. In the
    coarse mesh (``arms="mesh"``, or an arm that cannot be layered) a joint moves by the motion's
    body offset, clamped, and the vertices beside it turn with the bones that meet there; a layered
    arm leaves only its shoulder in the coarse mesh (moved, not turned) and its joints go into
    :attr:`layer`'s mesh, moved by forward kinematics.

    A hand seen in the photo (``hands="articulated"``, the default): a small mesh over it
    (:class:`~chatanyone.render.handmesh.HandMesh`: the 21 points, vertices across each finger
    bone, a margin ring), its palm and each finger bone moved to the driving hand (the motion's
    wrist-relative points at the driven wrist). Where the driving points are implausible for this
    hand, or with ``hands="similarity"``, the hand moves by one similarity from the photo's hand to
    the driving hand, the turn clamped to 20 degrees and the scale to [0.9, 1.1]
    (``"similarity"``, and two hands that overlap in the photo, clasped, keep the older ring of 8
    vertices round the hull: two meshes over the same pixels would fold into each other; clasped
    hands are never layered, as the two arms would pull them apart). A hand the motion does not
    show follows the forearm.

    ``person [rh, rw]``: the region's person probability (from the avatar's stored mask), which
    cuts the arms' layer to the person; None segments ``reg_img`` now.

    Attributes:
        src: ``[N, 2]`` the coarse mesh's limb vertices, region-normalized.
        layer: the :class:`ArmLayer`, or None where no arm is layered.
        layered_sides: the sides (0, 1) whose arm is in :attr:`layer`.
    """

    ARM_HALF_WIDTH = 0.22   # face heights from a joint to the vertices beside it
    # how far each joint may move in the coarse mesh, in face heights (shoulder, elbow, wrist): the
    # motion's gestures come from other people's arms; a photo's arm stretched further than this
    # tears its texture
    MAX_MOVE = (0.15, 0.2, 0.25)
    HAND_MAX_TURN = 0.35    # radians a hand may turn against its photo (the similarity fallback)
    HAND_OVERLAP = 0.2      # the photo's hands overlap (clasped) beyond this share of the smaller box
    HAND_MIN_PX = 6.0       # a palm shorter than this (region px) gets no hand mesh

    def __init__(self, avatar, r, *, hands: str = "articulated", arms: str = "layer", reg_img=None,
                 person=None):
        if hands not in HAND_MODES:
            raise ValueError(f"hands must be one of {HAND_MODES}, got {hands!r}")
        if arms not in ARM_MODES:
            raise ValueError(f"arms must be one of {ARM_MODES}, got {arms!r}")
        articulated = hands == "articulated"
        self._r = r
        pose = np.asarray(avatar.pose, np.float64)
        face = np.asarray(avatar.face, np.float64)
        fpx = r._crop_px(face[:, :2])
        fh = float(np.linalg.norm(fpx[152] - fpx[10]))
        w = self.ARM_HALF_WIDTH * fh
        self._fh = fh
        size = 2 * r._px
        margin = 0.03 * size

        def inside(p):
            return bool(np.all(p > margin) and np.all(p < size - margin))

        clasped = self._hands_overlap(avatar)
        # wrists together (hands clasped or resting on each other, seen or not): moving one arm on
        # its own would pull the hands apart, so neither is layered
        wrists = [pose[L.KP_BODY_IDX[4 + s]] for s in (0, 1)]
        together = (all(np.all(np.isfinite(q[:2])) and np.nan_to_num(q[3]) >= L.POSE_VIS_MIN for q in wrists)
                    and np.linalg.norm(r._crop_px(wrists[0][:2]) - r._crop_px(wrists[1][:2])) < WRISTS_TOGETHER * fh)
        hands_all = np.asarray(avatar.hands, np.float64)
        src, self._parts = [], []
        lsrc, ltri, ldepth, self._lparts, layer_arms = [], [], [], [], []
        for side in (0, 1):
            chain = {}
            for k, j in enumerate((side, 2 + side, 4 + side)):   # KP_BODY_IDX: shoulder, elbow, wrist
                p = pose[L.KP_BODY_IDX[j]]
                if np.all(np.isfinite(p[:2])) and np.nan_to_num(p[3]) >= L.POSE_VIS_MIN:
                    q = r._crop_px(p[:2])
                    if inside(q):
                        chain[k] = (j, q)
            hand_seen = (bool(np.asarray(avatar.hands_ok)[side]) and np.all(np.isfinite(hands_all[side, :, :2])))
            h = r._crop_px(hands_all[side, :, :2]) if hand_seen else None
            layered = (arms == "layer" and reg_img is not None and len(chain) == 3 and not clasped and not together
                       and np.linalg.norm(chain[1][1] - chain[0][1]) > 0.1 * fh
                       and np.linalg.norm(chain[2][1] - chain[1][1]) > 0.1 * fh)
            if layered:
                hand_v = self._add_layer_arm(side, chain, h, articulated, inside, lsrc, ltri, ldepth)
                layer_arms.append((chain[0][1], chain[1][1], chain[2][1], hand_v))
                # the shoulder stays in the coarse mesh: the torso moves with it
                q = chain[0][1]
                d = chain[1][1] - q
                d = d / max(np.linalg.norm(d), 1e-9)
                n = np.array([-d[1], d[0]])
                start = len(src)
                src += [q, q + w * n, q - w * n]
                self._parts.append(("shoulder", side, 0, chain[0][0], start, None))
                continue
            for k, (j, q) in chain.items():
                dirs = []
                if k - 1 in chain:
                    dirs.append(q - chain[k - 1][1])
                if k + 1 in chain:
                    dirs.append(chain[k + 1][1] - q)
                d = np.mean([v / max(np.linalg.norm(v), 1e-9) for v in dirs], 0) if dirs else np.array([0.0, 1.0])
                n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-9)
                start = len(src)
                src += [q, q + w * n, q - w * n]
                self._parts.append(("joint", side, k, j, start, None))
            if 2 in chain and hand_seen:
                hm = self._hand_mesh(h, inside, clasped) if articulated else None
                if hm is not None:
                    mesh, idx = hm
                    start = len(src)
                    src += list(mesh.vertices[idx])
                    self._parts.append(("hand_mesh", side, h, start, len(idx), mesh, idx))
                    continue
                ring = self._ring(h)
                if all(inside(x) for x in ring):
                    start = len(src)
                    src += list(ring)
                    self._parts.append(("hand", side, h, start, len(ring)))
        src = np.array(src, np.float64).reshape(-1, 2)
        # drop vertices that fall on top of earlier ones (Delaunay needs distinct points)
        keep = np.ones(len(src), bool)
        for i in range(len(src)):
            if keep[i] and i:
                dd = np.linalg.norm(src[:i][keep[:i]] - src[i], axis=1)
                keep[i] = not (dd.size and dd.min() < 2.0)
        self._keep = keep
        self._src_px = src
        self.src = r._px_norm(src[keep]) if len(src) else np.zeros((0, 2))
        self.layer = None
        # how each driven hand moved, counted over the frames: "mesh", "implausible" / "folded"
        # (the hand mesh refused: the similarity instead), "similarity" (no mesh), "unseen"
        self.hand_counts: dict[str, int] = {}
        self.layer_dst: np.ndarray | None = None    # the last frame's driven layer vertices, region px
        self.layered_sides = frozenset(p["side"] for p in self._lparts) if layer_arms else frozenset()
        if layer_arms:
            face_hull = fpx[[10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
                             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
                             54, 103, 67, 109]]
            if person is None:     # the region's person probability, segmented now if not given
                person = _person_mask(reg_img)
            skin_pts = fpx[[50, 280, 101, 330, 205, 425, 36, 266, 151, 9]]   # cheeks, forehead
            self.layer = ArmLayer(reg_img, layer_arms, face_hull, fh, person, skin_pts)
            self._lsrc_px = np.array(lsrc, np.float64)
            self.layer_src = r._px_norm(self._lsrc_px).astype(np.float32)
            self.layer_triangles = np.ascontiguousarray(np.array(ltri, np.int32).reshape(-1, 3))
            self.layer_depth = np.array(ldepth, np.float32)
            self._layer_src_arm = {p["side"]: np.ascontiguousarray(self.layer_src[p["v0"]:p["v1"]])
                                   for p in self._lparts}
            self._layer_tri_arm = {p["side"]: np.ascontiguousarray(self.layer_triangles[p["t0"]:p["t1"]] - p["v0"])
                                   for p in self._lparts}

    @staticmethod
    def _ring(h: np.ndarray) -> np.ndarray:
        ring = h[[4, 8, 12, 16, 20, 5, 17, 1]]
        return h.mean(0) + 1.15 * (ring - h.mean(0))

    def _add_layer_arm(self, side, chain, h, articulated, inside, lsrc, ltri, ldepth):
        """Add one arm's vertices and triangles to the layer's mesh; returns the hand's outline
        vertices (region px) for the layer's texture, or None where the photo shows no hand."""
        fh = self._fh
        sh, el, wr = (chain[k][1] for k in range(3))
        u1 = (el - sh) / max(np.linalg.norm(el - sh), 1e-9)
        u2 = (wr - el) / max(np.linalg.norm(wr - el), 1e-9)
        cap = wr + HAND_STUB * fh * u2
        ids = {}
        # each bone's strip ends across its own bone, a capsule's radius beyond the elbow (the
        # elbow's round end). Before session 12 the two strips shared a pair of vertices across the
        # bisector of the bones, which for a folded arm (bones pointing back at each other) lies
        # along them: the forearm's strip collapsed into a fan of slivers
        joints = (("sh", sh, u1, UPPER_ARM_RADIUS), ("elu", el + UPPER_ARM_RADIUS * fh * u1, u1, UPPER_ARM_RADIUS),
                  ("elf", el - FOREARM_RADIUS * fh * u2, u2, FOREARM_RADIUS),
                  ("wr", wr, u2, FOREARM_RADIUS), ("cap", cap, u2, FOREARM_RADIUS))
        bones = (("sh", "elu"), ("elf", "wr"), ("wr", "cap"))
        for name, q, d, rad in joints:
            d = d / max(np.linalg.norm(d), 1e-9)
            n = np.array([-d[1], d[0]])
            wv = STRIP_WIDTH * rad * fh
            ids[name] = len(lsrc)
            lsrc += [q, q + wv * n, q - wv * n]
            ldepth += [1.0 + 0.1 * side] * 3
        for a, b in bones:
            i, j = ids[a], ids[b]
            # (a, a+, b+, b) and (a, b, b-, a-): four triangles per bone
            ltri += [(i + 1, j + 1, j), (i + 1, j, i), (i, j, j + 2), (i, j + 2, i + 2)]
        part = {"side": side, "ids": ids, "src": (sh, el, wr, cap), "chain": tuple(chain[k][0] for k in range(3)),
                "v0": ids["sh"], "t0": len(ltri) - N_STRIP_TRIANGLES}
        if h is None:     # a fan round the wrist carries the hand the detector missed (skin, see ArmLayer)
            start = len(lsrc)
            th = np.linspace(0, 2 * np.pi, N_HAND_RING, endpoint=False)
            lsrc += list(wr + 1.1 * HAND_DISC * fh * np.stack([np.cos(th), np.sin(th)], 1))
            ldepth += [0.9 + 0.1 * side] * N_HAND_RING
            c = ids["wr"]
            ltri += [(c, start + i, start + (i + 1) % N_HAND_RING) for i in range(N_HAND_RING)]
            part.update(ring_start=start)
        hand_v = None
        if h is not None:
            mesh = None
            if articulated:
                from .handmesh import HandMesh
                m = HandMesh(h)
                if m.palm_length >= self.HAND_MIN_PX and len(m._tri):
                    mesh = m
            if mesh is not None:
                verts, tri = mesh.vertices, mesh._tri
                hand_v = mesh.vertices[:mesh.n_core]
            else:
                from scipy.spatial import Delaunay
                verts = np.concatenate([h, self._ring(h)])
                try:
                    tri = Delaunay(verts).simplices
                except Exception:
                    tri = np.zeros((0, 3), np.int64)
                hand_v = verts
            start = len(lsrc)
            lsrc += list(verts)
            ldepth += [0.5 + 0.1 * side] * len(verts)
            ltri += [tuple(int(x) + start for x in t) for t in tri]
            part.update(hand=h, hand_start=start, hand_n=len(verts), mesh=mesh)
        part.update(v1=len(lsrc), t1=len(ltri))
        self._lparts.append(part)
        return hand_v

    def _hands_overlap(self, avatar) -> bool:
        """Whether the photo's two hands overlap (their boxes share more than :attr:`HAND_OVERLAP`
        of the smaller one)."""
        ok = np.asarray(avatar.hands_ok).astype(bool)
        hp = np.asarray(avatar.hands, np.float64)[:, :, :2]
        if not (ok.all() and np.all(np.isfinite(hp))):
            return False
        a, b = self._r._crop_px(hp[0]), self._r._crop_px(hp[1])
        lo, hi = np.maximum(a.min(0), b.min(0)), np.minimum(a.max(0), b.max(0))
        inter = float(np.prod(np.maximum(hi - lo, 0)))
        smaller = min(float(np.prod(np.ptp(a, 0))), float(np.prod(np.ptp(b, 0))))
        return inter > self.HAND_OVERLAP * max(smaller, 1e-9)

    def _hand_mesh(self, h: np.ndarray, inside, clasped: bool):
        """``(HandMesh, indices of its vertices kept)`` for the photo's hand (region px), or None:
        too small, a hand point outside the region, or overlapping the other hand (two meshes over
        the same pixels would fold into each other)."""
        from .handmesh import HandMesh
        if clasped:
            return None
        mesh = HandMesh(h)
        if mesh.palm_length < self.HAND_MIN_PX or not all(inside(x) for x in h):
            return None
        # vertices too near the region's pinned border are left out (the hand points are inside)
        idx = np.array([i for i, x in enumerate(mesh.vertices) if i < 21 or inside(x)], np.int64)
        return mesh, idx

    def _offsets(self, motion_frame) -> np.ndarray:
        r = self._r
        body = _get(motion_frame, "body")
        return np.zeros((8, 2)) if body is None else np.asarray(body, np.float64).reshape(8, 2) * r._ax * r._px

    def _shown_hand(self, motion_frame, side: int):
        """The motion's wrist-relative hand ``[21, 2]`` (region px) for ``side``, or None."""
        hands = _get(motion_frame, "hands")
        hok = _get(motion_frame, "hands_ok")
        if hands is None or (hok is not None and not bool(np.asarray(hok).reshape(2)[side] > 0.5)):
            return None
        return np.asarray(hands, np.float64).reshape(2, L.N_HAND_POINTS, 2)[side] * self._r._ax * self._r._px

    def _drive_hand(self, mesh, idx, h, verts, rel, s_wr, d_wr, t: float) -> np.ndarray:
        """Driven positions of a hand's vertices ``verts`` (region px; ``mesh.vertices[idx]`` where
        ``mesh`` is given, all of them where ``idx`` is None). The motion's hand ``rel`` (wrist-
        relative, region px; None: not shown), turned back by ``t``, drives the photo's hand where
        it is: the hand mesh bone by bone, else one similarity (its turn clamped to
        :attr:`HAND_MAX_TURN` about the wrist); then the hand is turned by ``t`` about the photo's
        wrist ``s_wr`` and carried to the driven wrist ``d_wr``. ``t``: the forearm's turn for a
        layered arm; in the coarse mesh 0, or (no hand shown) the arm's clamped turn."""
        local = verts
        how = "unseen"
        if rel is not None:
            r0 = (rel - rel[0]) @ _rot(-t).T
            v = None
            how = "similarity"
            if mesh is not None:
                drv = r0 + h[0]
                if not mesh.plausible(drv):
                    how = "implausible"
                else:
                    v = mesh.drive(drv)
                    how = "mesh" if v is not None else "folded"
            if v is not None:
                local = v if idx is None else v[idx]
            else:
                m = palm_similarity(h - h[0], r0, self.HAND_MAX_TURN, (0.9, 1.1))
                local = (verts - h[0]) @ m[:, :2].T + h[0]
        self.hand_counts[how] = self.hand_counts.get(how, 0) + 1
        return (local - s_wr) @ _rot(t).T + d_wr

    def driving(self, motion_frame) -> np.ndarray:
        """Driving positions of :attr:`src` (region-normalized ``[N, 2]``) for one motion frame;
        the layer's driven vertices (region px) are left in :attr:`layer_dst`."""
        r = self._r
        src = self._src_px
        out = src.copy()
        off = self._offsets(motion_frame)
        joints = {}       # (side, k) -> (source point, driven point)
        for part in self._parts:
            if part[0] in ("joint", "shoulder"):
                _, side, k, j, start, _ = part
                o = off[j]
                lim = self.MAX_MOVE[k] * self._fh
                norm = float(np.hypot(*o))
                if norm > lim:
                    o = o * (lim / norm)
                joints[(side, k)] = (src[start], src[start] + o)

        def turn(side, k):
            """Mean turn of the bones meeting at joint k."""
            t = []
            for a, b in ((k - 1, k), (k, k + 1)):
                if (side, a) in joints and (side, b) in joints:
                    (sa, da), (sb, db) = joints[(side, a)], joints[(side, b)]
                    t.append(_wrap(_angle(db - da) - _angle(sb - sa)))
            return float(np.mean(t)) if t else 0.0

        for part in self._parts:
            if part[0] == "shoulder":
                _, side, k, j, start, _ = part
                s0, d0 = joints[(side, k)]
                out[start:start + 3] = src[start:start + 3] + (d0 - s0)
            elif part[0] == "joint":
                _, side, k, j, start, _ = part
                s0, d0 = joints[(side, k)]
                th = np.clip(turn(side, k), -1.2, 1.2)
                out[start] = d0
                out[start + 1] = d0 + _rot(th) @ (src[start + 1] - s0)
                out[start + 2] = d0 + _rot(th) @ (src[start + 2] - s0)
            else:
                _, side, h, start, n = part[:5]
                s_wr, d_wr = joints[(side, 2)]
                mesh, idx = (part[5], part[6]) if part[0] == "hand_mesh" else (None, None)
                rel = self._shown_hand(motion_frame, side)
                t = 0.0 if rel is not None else float(np.clip(turn(side, 2), -self.HAND_MAX_TURN, self.HAND_MAX_TURN))
                out[start:start + n] = self._drive_hand(mesh, idx, h, src[start:start + n], rel, s_wr, d_wr, t)
        if self.layer is not None:
            self.layer_dst = self._drive_layer(motion_frame, off)
        return r._px_norm(out[self._keep])

    def _drive_layer(self, motion_frame, off: np.ndarray) -> np.ndarray:
        """The layer's driven vertices (region px): forward kinematics from the shoulder."""
        fh = self._fh
        src = self._lsrc_px
        out = src.copy()
        for part in self._lparts:
            side, ids = part["side"], part["ids"]
            sh, el, wr, cap = part["src"]
            j_sh, j_el, j_wr = part["chain"]
            o = off[j_sh]
            lim = SHOULDER_MAX_MOVE * fh
            if np.hypot(*o) > lim:
                o = o * (lim / float(np.hypot(*o)))
            d_sh = sh + o
            # each bone turned to the driving bone (its target: the photo's joints moved by the motion)
            d_joint = [d_sh]
            turns = []
            for (a, b), (ja, jb), typical in (((sh, el), (j_sh, j_el), BONE_LENGTH[0]),
                                              ((el, wr), (j_el, j_wr), BONE_LENGTH[1])):
                vs = b - a
                ls = max(float(np.linalg.norm(vs)), 1e-9)
                vt = (b + off[jb]) - (a + off[ja])
                lt = float(np.linalg.norm(vt))
                if lt < 1e-6:
                    vt, lt = vs, ls
                k = float(np.clip(lt / ls, BONE_SCALE[0], max(BONE_SCALE[1], typical * fh / ls)))
                turns.append(_wrap(_angle(vt) - _angle(vs)))
                d_joint.append(d_joint[-1] + k * ls * vt / lt)
            d_el, d_wr = d_joint[1], d_joint[2]
            # vertices: each joint's pair turned with its bone (the elbow's by the mean of its two)
            k_f = float(np.linalg.norm(d_wr - d_el)) / max(float(np.linalg.norm(wr - el)), 1e-9)
            d_cap = d_wr + _rot(turns[1]) @ (cap - wr) * k_f
            moved = [("sh", sh, d_sh, turns[0]), ("wr", wr, d_wr, turns[1]), ("cap", cap, d_cap, turns[1])]
            for name, th in (("elu", turns[0]), ("elf", turns[1])):    # each bone's own end at the elbow
                s0 = src[ids[name]]
                moved.append((name, s0, d_el + _rot(th) @ (s0 - el), th))
            for name, s0, d0, th in moved:
                i = ids[name]
                out[i] = d0
                out[i + 1] = d0 + _rot(th) @ (src[i + 1] - s0)
                out[i + 2] = d0 + _rot(th) @ (src[i + 2] - s0)
            if "ring_start" in part:
                st = part["ring_start"]
                out[st:st + N_HAND_RING] = (src[st:st + N_HAND_RING] - wr) @ _rot(turns[1]).T + d_wr
            if "hand" in part:
                h, st, n, mesh = part["hand"], part["hand_start"], part["hand_n"], part["mesh"]
                rel = self._shown_hand(motion_frame, side)
                out[st:st + n] = self._drive_hand(mesh, None, h, src[st:st + n], rel, wr, d_wr, turns[1])
        return out

    def composite(self, img: np.ndarray) -> None:
        """Draw the layered arms of the last :meth:`driving` call into ``img [rh, rw, 3]`` float32."""
        if self.layer is None or self.layer_dst is None:
            return
        for p in self._lparts:
            v0, v1 = p["v0"], p["v1"]
            tri = self._layer_tri_arm[p["side"]]
            # the upper arm's strip, then the forearm's (and the cap beyond the wrist) over it, each
            # with its own alpha (where a folded arm's strips overlap, both show), then the hand
            for hand, upper, t in ((False, True, tri[:N_UPPER_TRIANGLES]),
                                   (False, False, tri[N_UPPER_TRIANGLES:N_STRIP_TRIANGLES]),
                                   (True, False, tri[N_STRIP_TRIANGLES:])):
                if len(t):
                    self.layer.composite(img, self.layer_dst[v0:v1], self._layer_src_arm[p["side"]],
                                         t, self.layer_depth[v0:v1], hand=hand, upper=upper)


def _skin_mask(reg_img: np.ndarray, pts: np.ndarray, min_luma: float = 0.0) -> np.ndarray:
    """Skin-coloured pixels of the region ``[rh, rw]`` bool: chroma (YCrCb) within
    :data:`SKIN_SIGMAS` of the face's, sampled in 5x5 patches round ``pts [N, 2]`` (region px)."""
    import cv2
    ycc = cv2.cvtColor(np.ascontiguousarray(reg_img, np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    h, w = ycc.shape[:2]
    samples = []
    for x, y in np.round(np.asarray(pts, np.float64)).astype(int):
        y0, y1, x0, x1 = max(0, y - 2), min(h, y + 3), max(0, x - 2), min(w, x + 3)
        if y1 > y0 and x1 > x0:
            samples.append(ycc[y0:y1, x0:x1, 1:].reshape(-1, 2))
    if not samples:
        return np.zeros((h, w), bool)
    c = np.concatenate(samples)
    mu = c.mean(0)
    cov = np.cov(c.T) + np.eye(2) * 9.0
    d = ycc[..., 1:] - mu
    m = d @ np.linalg.inv(cov)
    skin = (m * d).sum(-1) < SKIN_SIGMAS ** 2
    if min_luma > 0:     # a dark pixel's chroma is noise near grey (a black dress read as skin)
        y = np.concatenate([ycc[max(0, yy - 2):yy + 3, max(0, xx - 2):xx + 3, 0].ravel()
                            for xx, yy in np.round(np.asarray(pts, np.float64)).astype(int)])
        skin &= ycc[..., 0] >= min_luma * float(np.median(y))
    return skin


def _person_mask(reg_img: np.ndarray):
    """Person probability ``[rh, rw]`` of the region (selfie segmentation), or None where the
    model cannot run (the layer is then not cut to the person)."""
    try:
        from ..vision.landmarks import SelfieSegmentation
        return SelfieSegmentation()(np.ascontiguousarray(reg_img))
    except Exception as exc:   # a missing runtime or model: the layer is still drawn, uncut
        log.warning("arm layer: no person segmentation (%s); the arms' layer is not cut to the person", exc)
        return None
