"""Video-driven reenactment: a photo driven by the face, head, body and hand motion of a real video.

>>> from chatanyone.reenact import reenact
>>> result = reenact("me.jpg", "driving.mp4", "out.mp4")   # H.264 + the driving audio as AAC
>>> result.frames, result.has_audio

The driving video is prepared with the data pipeline (:mod:`chatanyone.eval.prepare`: 25 fps
timeline, face mesh, pose and hands per frame, cached) and turned into motion frames
(:func:`chatanyone.data.motion.clip_motion` on the smoothed landmarks in the driving video's 2:3
upper-body crop). Head pose, gaze and body are relative, as in LivePortrait: by default each
frame's change from the driving video's first frame with a face is applied to the photo's own pose
(``reference="first"``; ``"median"``: from the video's median pose). The expression is
relative to the same first face frame and added to the photo's own face, whose inner lips the
renderer sets as far apart as that frame's, so an open mouth in the first driving frame does not
close the photo's mouth below closed; the eyes keep the reference of the motion model's output
(the video's median face on the photo's neutral face). ``driving_motion(expression="median")``:
all of the expression relative to the median, on the photo's neutral face (before session 12).
The photo's avatar is rendered
through :class:`chatanyone.pipeline.Pipeline`'s render interface, the same path a Session's frames
take, so the output has the size and framing the renderer gives the photo.

Output: one frame per 40 ms of the driving video (``floor(duration * 25)`` frames), H.264, with the
driving video's audio as AAC on the same timeline; silent when the driving video has no audio
track. Uses no PyTorch.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Callable

import numpy as np

from .spec.motion_layout import MotionFrames
from .spec.timeline import MOTION_FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger("chatanyone")

FPS = float(MOTION_FPS)
# expression="first": the reference frames, as a slice of the frames with a face (the first one;
# the first tracked frames 1 or 1-3 instead lost on 7 dev and training clips, render/design.md)
EXP_REF = (0, 1)
MIN_FACE_FRACTION = 0.2   # below this fraction of driving frames with a face: warn (frames hold the last face)


@dataclasses.dataclass
class ReenactResult:
    """What :func:`reenact` wrote."""
    output: str | None       # the MP4, or None when no file was written
    frames: int              # frames rendered (= the driving video's frames on the 25 fps timeline)
    fps: float               # 25
    size: tuple[int, int]    # (width, height) of the frames
    has_audio: bool          # the output carries the driving audio
    seconds: float           # duration of the output
    wall_s: float            # time taken (preparation included)
    face_fraction: float     # driving frames where a face was found
    render_ms: float | None = None   # mean milliseconds of one frame's render call
    register_s: float = 0.0  # seconds the driving motion and the body registration took (cached: ms)


@dataclasses.dataclass
class DrivingFrames(MotionFrames):
    """Motion frames of a driving video: :class:`~chatanyone.spec.motion_layout.MotionFrames` plus
    ``torso [T, 2, 3]`` (or None): the body's registered motion (:func:`body_motion`), an affine map
    of the driving crop's coordinates from the reference frame to frame t. The geometry renderer
    moves what lies below the chin by it (``GeomRenderer(register=True)``); motion without it (a
    Session's) renders exactly as before. ``hair [T, 2, 3]`` (or None): likewise for the head
    outside the face oval (hair, ears, outline), which then moves the rings round the face.
    ``face [T, 2, 3]`` (or None): likewise for the upper face (inside the face oval, above the upper
    lip), which then corrects where the driving face mesh is placed. ``background [T, 2, 3]`` (or
    None): likewise for the scene behind the person (a camera that pans or zooms, a face-tracked
    crop), which then moves the background plate the person is drawn over."""
    torso: np.ndarray | None = None
    hair: np.ndarray | None = None
    face: np.ndarray | None = None
    background: np.ndarray | None = None
    exp_ref_gap: np.ndarray | None = None
    exp_ref: np.ndarray | None = None

    # per-frame fields beside the motion's; ``exp_ref_gap [T]`` (or None): the expression is
    # relative to the driving video's first face frame, not to a neutral face
    # (:func:`driving_motion` ``expression="first"``): the renderer adds it to the photo's own face
    # with the inner lips set this far apart (that frame's gap, in mouth widths;
    # :meth:`chatanyone.render.geometry.GeomRenderer.relative_base`); ``exp_ref [T, E]``: that
    # frame's expression relative to the median face with the median's mouth (what the eyes' zone
    # is drawn from, on the photo's neutral face, render.geometry.EYES_REF)
    MAPS = ("torso", "hair", "face", "background", "exp_ref_gap", "exp_ref")

    @classmethod
    def of(cls, motion: MotionFrames, **maps) -> "DrivingFrames":
        """``motion``'s frames with the registered ``maps`` (``torso=``, ``hair=``) beside them."""
        return cls(*(getattr(motion, f.name) for f in dataclasses.fields(MotionFrames)), **maps)

    def _base(self) -> MotionFrames:
        return MotionFrames(*(getattr(self, f.name) for f in dataclasses.fields(MotionFrames)))

    def __getitem__(self, key):
        if isinstance(key, slice):
            return DrivingFrames.of(self._base()[key], **{
                k: None if getattr(self, k) is None else getattr(self, k)[key] for k in self.MAPS})
        return super().__getitem__(key)

    def frame(self, i: int) -> dict[str, np.ndarray]:
        out = self._base().frame(i)
        for k in self.MAPS:
            v = getattr(self, k)
            if v is not None:
                out[k] = v[i]
        return out


def driving_motion(prepared, *, reference: str = "first", mouth: str = "neutral", expression: str = "first"):
    """Per-frame motion of a prepared driving video (:class:`chatanyone.eval.prepare.PreparedVideo`).

    Returns a :class:`~chatanyone.spec.motion_layout.MotionFrames` of ``n`` frames (``head [n, 6]``,
    ``exp [n, E]``, ``eye [n, 4]``, ``body [n, 8, 2]``, ``hands [n, 2, 21, 2]``, ``hands_ok [n, 2]``): head, gaze
    and body relative to the ``reference`` frame (``"first"``: the first frame with a face;
    ``"median"``: the clip's median), the expression relative to the clip's neutral (median) face.
    ``mouth="neutral"`` (default) adds the median face's own mouth to the expression, so that it sets
    the photo's neutralized face (lips ``NEUTRAL_GAP`` apart) absolutely: the driving lips close
    where the video's do; ``"median"`` leaves the expression relative to the median face (lips that
    close further than the median's cross and are clamped shut by the renderer: the mouth opens
    about a third less; kept for the ablation).
    ``expression="first"`` (default, session 12): the expression is relative to the first frame
    with a face instead (as head, gaze and body are with ``reference="first"``), and the returned
    :class:`DrivingFrames` carries ``exp_ref_gap`` (that frame's inner-lip gap over the mouth's
    width, every frame): the renderer adds the expression to the photo's own face, its
    expression kept, with only its lips set that far apart
    (:meth:`~chatanyone.render.geometry.GeomRenderer.relative_base`), so the mouth still opens
    and closes as far as the video's whatever the photo shows. Relative to the median face
    (``"median"``, ``mouth`` applies), the photo's own expression was counted twice: a photo
    taken from the driving video itself kept its frame's offset from the median (lips, brows,
    jaw) on every frame (render/design.md, "Session 12").
    Frames without a face hold the nearest face frame's head, expression and eyes.
    Raises ValueError when no frame shows a face. Pure numpy; about 1 ms per frame.
    """
    from .vision import framing
    from .data.corpus import smooth_landmarks
    from .vision.framing import to_crop_space
    from .data.motion_features import clip_motion
    if reference not in ("first", "median"):
        raise ValueError(f"reference must be 'first' or 'median', got {reference!r}")
    if mouth not in ("neutral", "median"):
        raise ValueError(f"mouth must be 'neutral' or 'median', got {mouth!r}")
    if expression not in ("first", "median"):
        raise ValueError(f"expression must be 'first' or 'median', got {expression!r}")
    ok = np.asarray(prepared.face_ok, bool)
    if not ok.any():
        raise ValueError(f"no face found in the driving video {prepared.path}: it must show one "
                         "person's face")
    if ok.mean() < MIN_FACE_FRACTION:
        log.warning("reenact: a face was found in only %.0f%% of the driving frames", 100 * ok.mean())
    wh = (prepared.width, prepared.height)
    face_px = prepared.face[..., :2] * np.array(wh, np.float32)
    box = framing.upper_body_box(face_px, face_ok=ok)
    raw = dict(face=to_crop_space(prepared.face, wh, box), face_ok=ok,
               pose=to_crop_space(prepared.pose, wh, box), pose_ok=np.asarray(prepared.pose_ok, bool),
               hands=to_crop_space(prepared.hands, wh, box), hands_ok=np.asarray(prepared.hands_ok, bool))
    sm = smooth_landmarks(raw, prepared.fps)
    fit: list = []
    try:
        m = clip_motion(sm, fit=fit)
    except ValueError as exc:
        raise ValueError(f"no usable face in the driving video {prepared.path}: {exc}") from None
    n = len(m["head"])
    fok = m["face_ok"].astype(bool)
    # frames without a face: hold the nearest frame with one (not the clip's median pose)
    idx = np.flatnonzero(fok)
    ar = np.arange(n)
    if len(idx) > 1:
        j = np.clip(np.searchsorted(idx, ar), 1, len(idx) - 1)
        left, right = idx[j - 1], idx[j]
        near = np.where(np.abs(ar - left) <= np.abs(right - ar), left, right)
    else:
        near = np.full(n, idx[0])
    # the expression is relative to the clip's median face, whose lips are often apart (a speaker's
    # median mouth during speech); the renderer applies it to the photo's neutral face, whose lips
    # are NEUTRAL_GAP apart. Add the median face's own mouth (its expression over its neutralized
    # self): driving lips then close where the video's close, instead of crossing and being clamped
    # shut whenever the video's mouth is less open than its median (that cost a third of the mouth
    # amplitude on the dev clips)
    f0 = int(idx[0])
    ref_gap = ref_exp = None
    if expression == "first" or mouth == "neutral":
        from .render.geometry import neutral_face
        from .spec.head import load_basis
        _, exp_median = neutral_face(m["ref_face"], load_basis(), expression=False)   # the mouth only (as measured)
        exp_neutral = m["exp"] + exp_median[None].astype(m["exp"].dtype)
    if expression == "first":      # relative to the first face frame; its lips' gap set on the photo
        from .render.geometry import lip_gap
        rf = idx[EXP_REF[0]:EXP_REF[1]] if len(idx) > EXP_REF[0] else idx[:1]
        ref_exp = exp_neutral[rf].mean(0)
        m["exp"] = m["exp"] - m["exp"][rf].mean(0)[None]
        ref_gap = float(np.mean([lip_gap(fit[0].canon[i]) for i in rf]))
    elif mouth == "neutral":
        m["exp"] = exp_neutral
    for k in ("head", "exp", "eye"):
        m[k] = m[k][near]
    bok = m["body_ok"].astype(bool)
    if reference == "first":
        m["head"] = m["head"] - m["head"][f0]
        m["eye"] = m["eye"].copy()
        m["eye"][:, 2:] -= m["eye"][f0, 2:]
        m["eye"][:, :2] /= np.maximum(m["eye"][f0, :2], 1e-6)
        if bok.any():
            b0 = int(np.flatnonzero(bok)[0])
            m["body"] = np.where(bok[:, None, None], m["body"] - m["body"][b0], 0.0).astype(np.float32)
    from .spec.motion_layout import MotionFrames
    f32 = np.float32
    out = MotionFrames(0, head=m["head"].astype(f32), exp=m["exp"].astype(f32), eye=m["eye"].astype(f32),
                       body=np.asarray(m["body"], f32), hands=m["hands"].astype(f32),
                       hands_ok=m["hands_ok"].astype(f32))
    if ref_gap is None:
        return out
    return DrivingFrames.of(out, exp_ref_gap=np.full(n, ref_gap, f32),
                            exp_ref=np.repeat(ref_exp[None].astype(f32), n, 0))


# the body's registration (body_motion): chosen on the DEV clips (render/design.md "Error budget")
# the parts registered and the kind of map fitted to each (render.register.MOTIONS): the torso's
# affine map (a lean scales and shears the chest) needs the finer analysis size below: at 48 px
# face height it lost to a translation on the dev clips (render/design.md); the hair's affine map
# (its outline grows with a head coming nearer, a camera zooming) beat a turn and shift on 8 of 10
# dev and training clips in session 10 (render/design.md "Session 10")
# the background's similarity (a camera's pan and zoom: a face-tracked crop moves the whole scene
# with the head) moves the plate the person is drawn over (session 11, render/design.md)
REGISTER_PARTS = {"torso": "affine", "hair": "affine", "face": "euclidean", "background": "similarity"}
# the parts reenact registers and the renderer moves by their maps
REGISTER_USE = ("torso", "hair", "face", "background")
HAIR_EDGE = 0.05                  # the hair mask is the person grown by this many face heights
REGISTER_FACE_PX = 144.0          # frames are downscaled so the face is this tall (px) for ECC (96 before
                                  # session 12: the maps were off by up to 0.7 frame px; render/design.md)
REGISTER_BELOW = 0.05             # the body mask starts this many face heights below the chin
REGISTER_MARGIN = 0.6            # ECC runs on the mask's bounding box grown by this many face heights
REGISTER_SIGMA = 1.0              # Gaussian smoothing over time (frames)
REGISTER_VERSION = 1              # bump when the cached registration changes meaning
# each frame's own arms and hands (pose capsules, hand hulls, grown by REGISTER_OCCLUDER_GROW) are
# left out of the torso's and hair's masks in that frame; a frame that hides more than
# 1 - REGISTER_MIN_LEFT of the mask takes its neighbours' map
REGISTER_OCCLUDERS = True
REGISTER_OCCLUDER_GROW = 1.2
REGISTER_MIN_LEFT = 0.35
REGISTER_OCCLUDER_MOVE = 0.1      # ... only an arm or hand this far (face heights) from its reference place
# the background's mask: the reference frame's scene, clear of the person by BG_CLEAR face heights
# (and of letterbox bars); in each frame, that frame's own person (selfie segmentation) grown by as
# much is left out too. A map that scales by more than BG_MAX_SCALE or shifts by more than
# BG_MAX_SHIFT of the frame is not taken (a flat wall, a screen): the neighbours' map
BG_CLEAR = 0.05
BG_MIN_SHARE = 0.05               # less of the frame than this shows the scene: not registered
BG_EXPLAIN = 0.9                  # a map is taken only where it leaves at most this share of the
                                  # scene's change (mean grey difference) against no move
BG_MAX_SCALE = 0.15
BG_MAX_SHIFT = 0.15


def _limbs_mask(hw: tuple[int, int], pose_px: np.ndarray, hands_px: list, fh: float,
                grow: float = 1.0) -> np.ndarray:
    """``[H, W] uint8``: a frame's arms and hands (capsules round the pose's upper arms and
    forearms, the hands' hulls grown by 0.2 face heights; radii times ``grow``), 1 inside."""
    import cv2
    h, w = hw
    arms = np.zeros((h, w), np.uint8)
    p = np.asarray(pose_px, np.float64)
    for a, b, r in ((11, 13, 0.25), (13, 15, 0.22), (12, 14, 0.25), (14, 16, 0.22)):
        if np.all(np.isfinite(p[[a, b], :2])) and min(np.nan_to_num(p[a, 3]), np.nan_to_num(p[b, 3])) >= 0.5:
            cv2.line(arms, tuple(int(v) for v in np.round(p[a, :2])), tuple(int(v) for v in np.round(p[b, :2])),
                     1, max(1, int(round(2 * r * grow * fh))))
    for hp in hands_px:
        if np.all(np.isfinite(hp[:, :2])):
            hull = cv2.convexHull(np.round(hp[:, :2]).astype(np.int32))
            m = np.zeros((h, w), np.uint8)
            cv2.fillConvexPoly(m, hull, 1)
            r = max(1, int(round(0.2 * grow * fh)))
            arms |= cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return arms


def _body_mask(ref_rgb: np.ndarray, face_px: np.ndarray, pose_px: np.ndarray, hands_px: list,
               below: float, part: str = "torso") -> np.ndarray:
    """``[H, W] bool``: the reference frame's pixels to register. ``part="torso"``: its person
    below the chin (``below`` face heights under it); ``"hair"``: its person above the chin
    outside the face oval (hair, ears, the head's outline), grown by :data:`HAIR_EDGE` face heights
    so that the outline against the background counts. Arms and hands are left out of both
    (capsules round the pose's arms, hulls round the hands, grown)."""
    import cv2
    from .render import mesh as M
    from .vision.landmarks import SelfieSegmentation
    h, w = ref_rgb.shape[:2]
    person = SelfieSegmentation()(np.ascontiguousarray(ref_rgb)) > 0.5
    chin, top = face_px[152, :2], face_px[10, :2]
    fh = float(np.linalg.norm(chin - top))
    if part == "background":   # the scene: clear of the person, letterbox bars left out
        from .render.region import letterbox
        r = max(1, int(round(BG_CLEAR * fh)))
        grown = cv2.dilate(person.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).astype(bool)
        top, bottom, left, right = letterbox(ref_rgb, face_px[:468])
        keep = np.zeros((h, w), bool)
        keep[top + 2: h - bottom - 2, left + 2: w - right - 2] = True
        return keep & ~grown
    if part == "face":     # the upper face: inside the oval, above the upper lip (no jaw, no mouth)
        oval = np.zeros((h, w), np.uint8)
        cv2.fillPoly(oval, [np.round(face_px[M.FACE_OVAL, :2]).astype(np.int32)], 1)
        return oval.astype(bool) & (np.arange(h)[:, None] < face_px[0, 1] - 0.02 * fh)
    if part == "torso":
        rows = np.arange(h)[:, None] > chin[1] + below * fh
    else:
        r = max(1, int(round(HAIR_EDGE * fh)))
        person = cv2.dilate(person.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).astype(bool)
        oval = np.zeros((h, w), np.uint8)
        cv2.fillPoly(oval, [np.round(face_px[M.FACE_OVAL, :2]).astype(np.int32)], 1)
        rows = (np.arange(h)[:, None] < chin[1]) & ~oval.astype(bool)
    arms = _limbs_mask((h, w), pose_px, hands_px, fh)
    return person & rows & ~arms.astype(bool)


def _occluded(m_win: np.ndarray, prepared, t: int, s: float, win, o: np.ndarray, prev, fh: float,
              f0: int | None = None) -> np.ndarray:
    """The template's mask ``m_win`` (analysis window) less frame ``t``'s own arms and hands,
    taken back to the template by the previous frame's map ``prev`` (window pixels). With ``f0``
    (the reference frame) only an arm whose elbow or wrist (or hand) lies more than
    :data:`REGISTER_OCCLUDER_MOVE` face heights from its place in ``f0`` is left out: an arm at rest
    is already left out of the template's mask, and its pose's jitter would only shrink it."""
    import cv2
    if not (prepared.pose_ok[t] or prepared.hands_ok[t].any()):
        return m_win
    pose = prepared.to_pixels(prepared.pose[t]) if prepared.pose_ok[t] else np.full((33, 4), np.nan)
    hands = [prepared.to_pixels(prepared.hands[t, k, :, :2]) if prepared.hands_ok[t, k] else None for k in range(2)]
    if f0 is not None:
        ref = prepared.to_pixels(prepared.pose[f0]) if prepared.pose_ok[f0] else np.full((33, 4), np.nan)
        lim = REGISTER_OCCLUDER_MOVE * fh
        for side, (sh, el, wr) in enumerate(((11, 13, 15), (12, 14, 16))):
            d = np.linalg.norm(pose[[el, wr], :2] - ref[[el, wr], :2], axis=1)
            moved = bool(np.any(~np.isfinite(d)) or np.any(d > lim))
            hp = hands[side]
            if hp is not None and not moved:
                if prepared.hands_ok[f0, side]:
                    hr = prepared.to_pixels(prepared.hands[f0, side, :, :2])
                    moved = float(np.max(np.linalg.norm(hp - hr, axis=1))) > lim
                else:
                    moved = True
            if not moved:       # at rest: left out of the template's mask already
                pose[[sh, el, wr]] = np.nan
                hands[side] = None
    pose[:, :2] = pose[:, :2] * s - o
    hands = [h * s - o for h in hands if h is not None]
    hh, ww = m_win.shape
    occ = _limbs_mask((hh, ww), pose, hands, fh * s, REGISTER_OCCLUDER_GROW)
    if not occ.any():
        return m_win
    if prev is not None:     # frame pixels -> template pixels: occ(prev @ x)
        occ = cv2.warpAffine(occ, np.asarray(prev, np.float32), (ww, hh),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    return (m_win != 0) & (occ == 0)


def body_motion(prepared, *, part: str = "torso", motion: str | None = None, sigma: float | None = None,
                below: float = REGISTER_BELOW, face_px: float | None = None,
                cache=None) -> tuple[np.ndarray, np.ndarray]:
    """The driving body's own motion, registered on the driving frames.

    The reference frame is the first frame with a face (as :func:`driving_motion`'s
    ``reference="first"``). Its ``part`` (``"torso"``: the person below the chin; ``"hair"``: the
    head outside the face oval, outline included; ``"face"``: the face oval above the upper lip;
    arms and hands left out, :func:`_body_mask`; ``"background"``: the scene, clear of the person
    in the reference frame and in each frame)
    is registered in every frame by ECC on grey levels (:func:`chatanyone.render.register.register`,
    frames downscaled so the face is ``face_px`` tall, each frame started from the previous one's
    map), then smoothed over time (Gaussian, ``sigma`` frames). One map per frame: a handful of
    numbers, not a dense flow.

    Returns:
        ``(torso [n, 2, 3] float32, ok [n] bool)``: for each frame, the map from the reference
        frame to it in the driving video's crop coordinates (the 2:3 box :func:`driving_motion`
        uses), and whether ECC converged there (failed frames take their neighbours' maps).
        ``ok`` all False (and identities) when the body mask is too small (a face filling the
        frame): the renderer then moves the body as without registration.
    Cached beside the prepared clip (``cache`` as :func:`chatanyone.eval.prepare.prepare`).
    Blocks: decodes the clip again, a few ms per frame.
    """
    import cv2
    import hashlib
    import json
    from pathlib import Path
    from .render import register as R
    from .vision import framing
    n = prepared.n
    ok_face = np.asarray(prepared.face_ok, bool)
    if not ok_face.any():
        raise ValueError(f"no face found in the driving video {prepared.path}: it must show one person's face")
    if part not in REGISTER_PARTS:
        raise ValueError(f"part must be one of {tuple(REGISTER_PARTS)}, got {part!r}")
    motion = motion or REGISTER_PARTS[part]
    # the module's settings as they are at the call (not at import: a setting changed for an
    # experiment is then in the cache's key and in the maps alike)
    face_px = REGISTER_FACE_PX if face_px is None else face_px
    sigma = REGISTER_SIGMA if sigma is None else sigma
    settings = dict(version=REGISTER_VERSION, part=part, motion=motion, sigma=float(sigma), below=float(below),
                    margin=REGISTER_MARGIN, hair_edge=HAIR_EDGE,
                    occluders=(REGISTER_OCCLUDER_GROW, REGISTER_MIN_LEFT, REGISTER_OCCLUDER_MOVE) if REGISTER_OCCLUDERS and part != "face" else None,
                    face_px=float(face_px), n=int(n))
    if part == "background":
        settings["background"] = (BG_CLEAR, BG_MIN_SHARE, BG_MAX_SCALE, BG_MAX_SHIFT, BG_EXPLAIN)
    path = None
    if cache is not False:
        from .eval.prepare import cache_dir
        root = Path(cache) if cache not in (None, True) else cache_dir()
        tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        path = root / prepared.key / f"register_{tag}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    torso, ok = z["torso"], z["ok"].astype(bool)
                if torso.shape == (n, 2, 3):
                    return torso, ok
            except (OSError, ValueError, KeyError) as exc:
                log.warning("reenact: registration cache %s unreadable (%s)", path, exc)
    t0 = time.perf_counter()
    fpx = prepared.face_px()
    box = framing.upper_body_box(fpx[..., :2], face_ok=ok_face)
    f0 = int(np.flatnonzero(ok_face)[0])
    ref = prepared.frame(f0)
    pose = prepared.to_pixels(prepared.pose[f0])      # [33, 4]: x, y (px), z, visibility
    hands = [prepared.to_pixels(prepared.hands[f0, k, :, :2]) for k in range(2) if prepared.hands_ok[f0, k]]
    mask = _body_mask(ref, fpx[f0], pose, hands, below, part)
    fh = float(np.linalg.norm(fpx[f0, 152, :2] - fpx[f0, 10, :2]))
    s = min(1.0, face_px / max(fh, 1e-6))
    size = (max(8, int(round(ref.shape[1] * s))), max(8, int(round(ref.shape[0] * s))))
    sx, sy = size[0] / ref.shape[1], size[1] / ref.shape[0]

    def small(rgb):
        return cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)

    m_small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    maps = np.repeat(R.identity()[None], n, 0)
    ok = np.zeros(n, bool)
    need = 4 * R.MIN_MASK_PIXELS
    seg = None
    if part == "background":
        need = max(need, BG_MIN_SHARE * size[0] * size[1])
        from .vision.landmarks import SelfieSegmentation
        seg = SelfieSegmentation()
        rc = max(1, int(round(BG_CLEAR * face_px)))
        clear = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rc + 1, 2 * rc + 1))
    if int(m_small.sum()) >= need:
        # ECC over the mask's bounding box and a margin only (the part moves by a fraction of it)
        ys, xs = np.nonzero(m_small)
        mg = int(np.ceil(REGISTER_MARGIN * face_px))
        x0, y0 = max(0, xs.min() - mg), max(0, ys.min() - mg)
        x1, y1 = min(size[0], xs.max() + 1 + mg), min(size[1], ys.max() + 1 + mg)
        win = np.s_[y0:y1, x0:x1]
        o = np.array([x0, y0], np.float64)
        tmpl = small(ref)[win]
        m_win = m_small[win]
        prev = None
        n_win = int(m_win.sum())
        cw = np.array([x1 - x0, y1 - y0], np.float64) / 2       # the window's centre
        for t, img in prepared.frames():
            if t == f0:
                ok[t], prev = True, R.identity()
                continue
            m_t = m_win
            if seg is not None:
                # this frame's own person (it moves over the scene) is left out, grown as the
                # template's; the map is near the identity, so frame pixels stand for template ones
                rgb = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                here = cv2.dilate((seg(rgb) > 0.5).astype(np.uint8), clear)
                m_t = (m_win != 0) & (here[win] == 0)
                if int(m_t.sum()) < max(R.MIN_MASK_PIXELS, REGISTER_MIN_LEFT * n_win):
                    continue
            if REGISTER_OCCLUDERS and part != "face":
                # this frame's own arms and hands, where they cover the part, are left out: a
                # hand moving over the chest is not the chest moving (issue #11)
                m_t = _occluded(m_win, prepared, t, s, win, o, prev, fh, f0)
                if int(m_t.sum()) < max(R.MIN_MASK_PIXELS, REGISTER_MIN_LEFT * n_win):
                    continue        # too much of the part hidden: the neighbours' map
            a = R.register(tmpl, small(img)[win], m_t, motion=motion, init=prev)
            if a is not None and seg is not None:
                if (abs(np.sqrt(abs(np.linalg.det(a[:, :2]))) - 1) > BG_MAX_SCALE
                        or np.any(np.abs(a[:, :2] @ cw + a[:, 2] - cw) > BG_MAX_SHIFT * np.array(size))):
                    a = None        # beyond a camera's move between two frames of a clip
                else:
                    # the map must explain the change: a flat wall lets ECC drift anywhere
                    cur = small(img)[win].astype(np.float32)
                    back = cv2.warpAffine(cur, a.astype(np.float32), (cur.shape[1], cur.shape[0]),
                                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                          borderMode=cv2.BORDER_REPLICATE)
                    mt = m_t != 0
                    e_map = float(np.abs(back[mt] - tmpl[mt]).mean())
                    e_still = float(np.abs(cur[mt] - tmpl[mt]).mean())
                    if e_map > BG_EXPLAIN * e_still:
                        a = R.identity()        # the scene did not move (or cannot tell)
            if a is not None and np.all(np.abs(a[:, :2] - np.eye(2)) < 0.3) and np.all(np.abs(a[:, 2]) < 0.25 * size[0]):
                prev = a
                a = a.copy()
                a[:, 2] += o - a[:, :2] @ o            # window pixels -> analysis pixels
                maps[t], ok[t] = a, True
    else:
        log.info("reenact: %s shows too little of the %s to register (%d px): it keeps today's "
                 "motion", prepared.name, part, int(m_small.sum()))
        ok[:] = False
    maps = R.smooth(maps, ok, sigma) if ok.any() else maps
    # analysis pixels -> frame pixels -> the crop's normalized coordinates
    sc = np.diag([1 / sx, 1 / sy, 1.0])
    sci = np.diag([sx, sy, 1.0])
    full = np.zeros((n, 3, 3))
    full[:, :2] = maps
    full[:, 2, 2] = 1
    px = (sc @ full @ sci)[:, :2]
    torso = R.compose_crop(px, (box.x0, box.y0, box.w, box.h)).astype(np.float32)
    log.info("reenact: %s registered on %d of %d frames (%s) in %.1f s", part, int(ok.sum()), n, motion,
             time.perf_counter() - t0)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, torso=torso, ok=ok)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("reenact: could not cache the registration (%s)", exc)
    return torso, ok


def driving_frames(prepared, *, reference: str = "first", register: bool = True, cache=None):
    """:func:`driving_motion` plus, with ``register``, the body's registered motion
    (:func:`body_motion`, each part of :data:`REGISTER_USE`) as the ``torso``, ``hair`` and
    ``face`` fields of a :class:`DrivingFrames` (each left out where no frame could be
    registered). What :func:`reenact` renders."""
    motion = driving_motion(prepared, reference=reference)
    if not register:
        return motion
    maps = {} if not isinstance(motion, DrivingFrames) else \
        {k: getattr(motion, k) for k in DrivingFrames.MAPS if getattr(motion, k) is not None}
    for part in REGISTER_USE:
        m, ok = body_motion(prepared, part=part, cache=cache)
        if ok.any():
            maps[part] = m
    if not maps:
        return motion
    return DrivingFrames.of(motion._base() if isinstance(motion, DrivingFrames) else motion, **maps)


def _even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % 2, : w - w % 2]


def reenact(photo, driving_video, output: str | os.PathLike | None = None, *, config=None,
            reference: str = "first", register: bool = True, max_seconds: float | None = None, cache=None,
            on_frame: Callable[[int, np.ndarray], None] | None = None,
            progress: bool = False) -> ReenactResult:
    """Drive ``photo`` with the motion of ``driving_video`` and write ``output`` (MP4).

    Args:
        photo: a path, an RGB array or a prepared :class:`~chatanyone.Avatar`.
        driving_video: a video file with one person's face (any format FFmpeg reads).
        output: the ``.mp4`` to write (H.264 + AAC), or None to write nothing (``on_frame`` only).
        config: a :class:`~chatanyone.SessionConfig` (preset, providers, output size); fps is
            always the driving timeline's 25.
        reference: ``"first"`` or ``"median"`` (see :func:`driving_motion`).
        register: move the photo's body (below the chin) by the driving body's own motion,
            registered on the driving frames (:func:`body_motion`; cached with the prepared clip);
            False: the body follows the pose's shoulders, as before session 8.
        max_seconds: use only the first seconds of the driving video.
        cache: the preparation cache folder (None: the default one; False: none).
        on_frame: called with ``(index, image [H, W, 3] uint8)`` for every rendered frame.
        progress: show progress bars.
    Returns:
        a :class:`ReenactResult`.
    Raises:
        FileNotFoundError: a missing photo or driving video.
        ValueError: the driving file has no video stream, is shorter than one frame, or shows no
            face; the photo cannot become an avatar (:class:`~chatanyone.avatar.AvatarError`).
    Blocks until the whole video is written (about the renderer's time per frame, plus the
    driving video's preparation the first time: ~0.1 s per frame).
    """
    from .avatar import Avatar
    from .config import SessionConfig
    from .eval.prepare import prepare
    from .pipeline import Pipeline
    t0 = time.perf_counter()
    if output is not None:
        output = os.fspath(output)
        if not output.lower().endswith((".mp4", ".m4v", ".mov")):
            raise ValueError(f"output must be an .mp4 file, got {output!r}")
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"output folder does not exist: {parent!r}")
    if config is None:
        config = SessionConfig()
    if not isinstance(config, SessionConfig):
        raise TypeError(f"config must be a SessionConfig, got {type(config).__name__}")
    if isinstance(driving_video, (str, os.PathLike)) and not os.path.isfile(driving_video):
        raise FileNotFoundError(f"driving video not found: {os.fspath(driving_video)!r}")
    if isinstance(photo, (str, os.PathLike)) and not os.path.isfile(photo):
        raise FileNotFoundError(f"photo not found: {os.fspath(photo)!r}")
    pv = prepare(driving_video, fps=FPS, max_seconds=max_seconds, cache=cache, progress=progress)
    tr0 = time.perf_counter()
    motion = driving_frames(pv, reference=reference, register=register, cache=cache)   # errors before the photo's
    register_s = time.perf_counter() - tr0
    avatar = photo if isinstance(photo, Avatar) else Avatar.prepare(photo)
    pipe = Pipeline(avatar, config, video_driven=True)
    writer = None
    size = None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=pv.n, unit="frame", desc="reenact")
    render_s = 0.0
    try:
        for t in range(len(motion)):
            tr = time.perf_counter()
            img = _even(np.asarray(pipe.render(motion[t:t + 1])))
            render_s += time.perf_counter() - tr
            if writer is None and output is not None:
                from .media import VideoWriter
                writer = VideoWriter(output, img.shape[1], img.shape[0], FPS,
                                     audio_rate=SAMPLE_RATE if pv.has_audio else None)
            size = (img.shape[1], img.shape[0])
            if writer is not None:
                spf = SAMPLES_PER_FRAME
                writer.write(img, pv.audio[t * spf:(t + 1) * spf] if pv.has_audio else None)
            if on_frame is not None:
                on_frame(t, img)
            if bar is not None:
                bar.update(1)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    log.info("reenact: %d frames (%.2f s) in %.1f s%s", pv.n, pv.n / FPS, wall,
             f" -> {output}" if output else "")
    return ReenactResult(output=output, frames=len(motion), fps=FPS, size=size or (0, 0),
                         has_audio=bool(pv.has_audio and output is not None), seconds=pv.n / FPS,
                         wall_s=wall, face_fraction=float(np.mean(pv.face_ok)),
                         render_ms=1000 * render_s / max(len(motion), 1), register_s=register_s)
