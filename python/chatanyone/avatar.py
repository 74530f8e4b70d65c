"""One portrait photo made ready to animate: the photo, its animated region, landmarks, source state.

>>> av = Avatar.prepare("me.jpg")          # detects face, body and hands; chooses the region
>>> av.region_kind, av.region              # 'head_shoulders', [x0, y0, x1, y1] in the photo's pixels
>>> av.save("me.avatar.npz"); av = Avatar.load("me.avatar.npz")

The frames a Session renders are the photo itself (at its aspect ratio) with the region animated
(:mod:`chatanyone.render.geometry`). Landmarks are kept in the coordinates of the 2:3 motion box
``box`` (the frame the motion model works in; it may extend beyond the photo, it is never shown).
``crop``/``crop_hq`` are that box cut out of the photo, for the older neural renderer.

The renderer caches its appearance features of the avatar in ``features`` (saved with it).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from .inputs import AvatarError, image_rgb8  # noqa: F401  (AvatarError: re-exported)
from .spec import keypoint_layout as L
from .spec.driving import SourceState
from .vision import framing

log = logging.getLogger("chatanyone")

FORMAT_VERSION = 2        # 2: the photo and its animated region are stored
MAX_PHOTO_SIDE = 2048     # larger photos are downsized to this long side when prepared
MIN_FACE_PX = 48          # face height (forehead to chin) below this: too small
MAX_OUTSIDE = 0.05        # more than this fraction of face points outside the photo: cut off
SECOND_FACE_RATIO = 0.5   # another face at least this large (relative height): several faces
DETECT_MAX_SIDE = 1280    # photos are downsized to this for detection


def load_image(image: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A path or an array -> RGB ``[H, W, 3]`` uint8 (:func:`chatanyone.inputs.image_rgb8`: files
    decoded by content with their EXIF orientation, truncated files refused; uint8, uint16 or
    float in [0, 1]; RGBA composited over white)."""
    return image_rgb8(image)


@dataclasses.dataclass
class Avatar:
    """A prepared portrait. Landmark coordinates are normalized crop coordinates of ``box``
    (docs/design.md); ``photo`` and ``region`` are in the photo's pixels."""
    crop: np.ndarray          # [384, 256, 3] uint8 the fast preset's 2:3 upper-body crop
    crop_hq: np.ndarray       # [768, 512, 3] uint8 the quality preset's crop (same box)
    box: np.ndarray           # [4] float64 x0, y0, w, h of the crop in the photo's pixels
    image_size: tuple[int, int]  # (W, H) of the photo
    kp: np.ndarray            # [K, 2] float32 source keypoints (renderer order)
    vis: np.ndarray           # [K] float32 1 where the keypoint was detected
    face: np.ndarray          # [478, 3] float32 face mesh in crop coordinates
    pose: np.ndarray          # [33, 4] float32 pose (x, y, z, visibility); NaN where no body
    hands: np.ndarray         # [2, 21, 3] float32 person's left, right hand; NaN where not seen
    hands_ok: np.ndarray      # [2] bool
    source: SourceState       # what spec.driving.driving_keypoints needs
    photo: np.ndarray = None  # [H, W, 3] uint8 the photo (long side at most MAX_PHOTO_SIDE)
    region: np.ndarray = None  # [4] float64 x0, y0, x1, y1: the animated region, inside the photo
    region_kind: str = ""     # "head", "head_shoulders" or "upper_body" (render.region)
    # renderer's cache; "person": the photo's person probability [h, w] float32 at the segmentation
    # model's resolution (the whole photo stretched onto it), made by prepare
    features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    name: str = ""            # where it came from (file name), informative

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def prepare(cls, image: str | os.PathLike | np.ndarray, *, min_face_px: int = MIN_FACE_PX,
                name: str | None = None) -> "Avatar":
        """Detect face, body and hands in one photo and frame it (blocks ~0.1-0.5 s).

        Args:
            image: a path (JPEG, PNG, ...) or an array ``[H, W]``, ``[H, W, 3]`` (RGB) or
                ``[H, W, 4]`` (RGBA), uint8 or float in [0, 1]; any size.
            min_face_px: the smallest face height (forehead to chin, in the photo's pixels) accepted.
            name: a label kept with the avatar (default: the file name).
        Raises:
            FileNotFoundError: no such file.
            AvatarError (a ValueError): unreadable image, no face, several faces, face too small,
                face cut off by the photo's border; the message says what to do.
        """
        from .spec.head import fit_head, load_basis
        from .vision.detect import Detector, plausible_hands
        from .vision.framing import to_crop_space
        if name is None:
            name = Path(image).name if isinstance(image, (str, os.PathLike)) else ""
        rgb = load_image(image)
        H, W = rgb.shape[:2]
        if max(H, W) > MAX_PHOTO_SIDE:
            import cv2
            s = MAX_PHOTO_SIDE / max(H, W)
            rgb = cv2.resize(rgb, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA)
            H, W = rgb.shape[:2]
        det_img = rgb
        if max(H, W) > DETECT_MAX_SIDE:
            import cv2
            s = DETECT_MAX_SIDE / max(H, W)
            det_img = cv2.resize(rgb, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA)
        with Detector(video=False, max_faces=4) as det:
            r = det(det_img)
        from .vision.landmarks import SelfieSegmentation
        # the person's mask, kept with the avatar: a Session renders from a saved avatar without
        # any landmark or segmentation model (the LiveKit worker needs no detector)
        person = SelfieSegmentation().raw(det_img)
        faces = list(r.faces or [])
        if not faces:
            faces = _faces_from_pose_head(det_img, r)
        if not faces:
            raise AvatarError("no face found in the photo: use a photo where one person's face is "
                              "clearly visible and roughly frontal")
        wh = np.array([W, H], np.float64)
        heights = [np.linalg.norm((f[152, :2] - f[10, :2]) * wh) for f in faces]
        order = np.argsort(heights)[::-1]
        big = order[0]
        if len(faces) > 1 and heights[order[1]] >= SECOND_FACE_RATIO * heights[big]:
            raise AvatarError(f"{len(faces)} faces found in the photo: use a photo of one person, or "
                              "crop it to the person to animate")
        face = faces[big]
        if heights[big] < min_face_px:
            raise AvatarError(f"the face is too small: {heights[big]:.0f} px tall (forehead to chin); at least "
                              f"{min_face_px} px are needed: use a larger photo or crop closer to the person")
        out = np.mean((face[:468, 0] < 0) | (face[:468, 0] > 1) | (face[:468, 1] < 0) | (face[:468, 1] > 1))
        if out > MAX_OUTSIDE:
            raise AvatarError(f"the face is cut off by the photo's border ({100 * out:.0f}% of it lies "
                              "outside): use a photo that shows the whole head")
        box = framing.upper_body_box(face[:, :2] * wh.astype(np.float32))
        crop = framing.crop(rgb, box, framing.FAST_SIZE)
        crop_hq = framing.crop(rgb, box, framing.QUALITY_SIZE)
        face_c = to_crop_space(face, (W, H), box)
        pose_c = to_crop_space(r.pose, (W, H), box)
        hands_c = to_crop_space(r.hands, (W, H), box)
        hands_ok = plausible_hands(face_c[None], np.ones(1, bool), pose_c[None], hands_c[None],
                                     r.hands_ok[None])[0]
        hands_c[~hands_ok] = np.nan
        kp, vis = L.renderer_keypoints(face_c, pose_c if r.pose_ok else None, hands_c, hands_ok=hands_ok)
        from .render.region import choose_region
        pose_px = np.array(r.pose, np.float64)
        pose_px[:, :2] *= wh
        hands_px = np.array(r.hands, np.float64)[..., :2] * wh
        region = choose_region(face[:, :2] * wh, pose_px if r.pose_ok else None, hands_px, hands_ok,
                               (W, H))
        hf = fit_head(face_c[None], np.ones(1, bool), load_basis().canonical)
        body = np.nan_to_num(pose_c[L.KP_BODY_IDX, :2]).astype(np.float32)
        body_vis = (np.nan_to_num(pose_c[L.KP_BODY_IDX, 3]) >= L.POSE_VIS_MIN).astype(np.float32)
        src = SourceState(canon_face=hf.canon[0], head=hf.head[0], body=body, body_vis=body_vis,
                          hands=np.nan_to_num(hands_c[..., :2]).astype(np.float32),
                          hands_ok=hands_ok.copy(), face_ok=True)
        log.debug("avatar %s: face %.0f px, box %s", name, heights[big], box)
        return cls(crop=crop, crop_hq=crop_hq, box=box.as_array(), image_size=(W, H), kp=kp, vis=vis,
                   face=face_c.astype(np.float32), pose=pose_c.astype(np.float32),
                   hands=hands_c.astype(np.float32), hands_ok=hands_ok, source=src, name=name,
                   photo=rgb, region=region.as_array(), region_kind=region.kind,
                   features={"person": person})

    def driving_keypoints(self, motion_frame, *, basis=None) -> tuple[np.ndarray, np.ndarray]:
        """The renderer's driving keypoints ``(kp [K, 2], vis [K])`` for one frame of motion
        (see :func:`chatanyone.spec.driving.driving_keypoints`). Pure numpy, ~0.2 ms."""
        from .spec.driving import driving_keypoints
        return driving_keypoints(self.source, motion_frame, basis=basis)

    # --- files ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write a compressed ``.npz`` (plain arrays, no pickle); ``features`` are saved too."""
        arrays = dict(
            format_version=np.int32(FORMAT_VERSION), crop=self.crop, crop_hq=self.crop_hq, box=self.box,
            image_size=np.asarray(self.image_size, np.int64), kp=self.kp, vis=self.vis, face=self.face,
            pose=self.pose, hands=self.hands, hands_ok=self.hands_ok, name=np.str_(self.name),
            photo=self.photo, region=self.region, region_kind=np.str_(self.region_kind))
        arrays.update(self.source.as_arrays("src_"))
        for k, v in self.features.items():
            arrays["feat_" + k] = np.asarray(v)
        path = str(path)
        if not path.endswith(".npz"):
            log.debug("np.savez appends .npz to %s", path)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Avatar":
        """Read a file written by :meth:`save` (blocks while reading, ~10 ms).

        Raises:
            FileNotFoundError: no such file.
            AvatarError (a ValueError): anything else, whatever the corruption: an empty, truncated
                or renamed file, another kind of ``.npz`` (a style/motion file), missing or
                malformed arrays, a newer format version.
        """
        p = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        if p is None:
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not os.path.exists(p):
            raise FileNotFoundError(f"avatar file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                files = set(z.files)
                if "format_version" not in files:
                    what = "a motion/style file" if {"head", "exp"} <= files else "not an avatar file"
                    raise AvatarError(f"{p} is {what} (no format_version): give an avatar file "
                                      "written by Avatar.save or `chatanyone inspect`")
                a = {k: z[k] for k in z.files}
        except AvatarError:
            raise
        except Exception as exc:  # BadZipFile, EOFError, OSError, ValueError, zlib.error, ...
            raise AvatarError(f"cannot read {p} as an avatar file ({type(exc).__name__}: {exc}); "
                              "it is empty, truncated or not an avatar file") from None
        try:
            ver = int(np.asarray(a["format_version"]).reshape(()))
        except (TypeError, ValueError):
            raise AvatarError(f"{p}: malformed format_version") from None
        if ver > FORMAT_VERSION:
            raise AvatarError(f"{p} has avatar format {ver}; this chatanyone reads up to "
                              f"{FORMAT_VERSION}: upgrade chatanyone")
        if ver < 1:
            raise AvatarError(f"{p}: bad avatar format version {ver}")
        if ver < 2:
            raise AvatarError(f"{p} was prepared by an older chatanyone (avatar format {ver}, "
                              "without the photo): prepare it again from the photo")
        _check_avatar_arrays(a, p)
        try:
            src = SourceState.from_arrays(a, "src_")
            feats = {k[5:]: v for k, v in a.items() if k.startswith("feat_")}
            return cls(crop=a["crop"], crop_hq=a["crop_hq"], box=a["box"].astype(np.float64),
                       image_size=tuple(int(x) for x in a["image_size"]), kp=a["kp"].astype(np.float32),
                       vis=a["vis"].astype(np.float32), face=a["face"].astype(np.float32),
                       pose=a["pose"].astype(np.float32), hands=a["hands"].astype(np.float32),
                       hands_ok=a["hands_ok"].astype(bool), source=src, features=feats,
                       name=str(a["name"]) if "name" in a else "", photo=a["photo"],
                       region=a["region"].astype(np.float64), region_kind=str(a["region_kind"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AvatarError(f"{p} is a malformed avatar file ({type(exc).__name__}: {exc})") from None


# name: (shape with None for any size, kind: "u8" uint8, "f" finite float, "fn" float (NaN allowed),
# "i" integer, "b" bool or 0/1)
_AVATAR_ARRAYS = {
    "crop": ((None, None, 3), "u8"), "crop_hq": ((None, None, 3), "u8"), "box": ((4,), "f"),
    "image_size": ((2,), "i"), "kp": ((None, 2), "f"), "vis": ((None,), "f"),
    "face": ((478, 3), "f"), "pose": ((33, 4), "fn"), "hands": ((2, 21, 3), "fn"),
    "hands_ok": ((2,), "b"), "src_canon_face": ((478, 3), "f"), "src_head": ((6,), "f"),
    "src_body": ((8, 2), "f"), "src_body_vis": ((8,), "f"), "src_hands": ((2, 21, 2), "f"),
    "src_hands_ok": ((2,), "b"), "src_face_ok": ((), "b"),
    "photo": ((None, None, 3), "u8"), "region": ((4,), "f"),
}


def _check_avatar_arrays(a: dict, p: str) -> None:
    """Every array an Avatar needs, with its shape and a dtype it can be; AvatarError otherwise."""
    for key, (shape, kind) in _AVATAR_ARRAYS.items():
        if key not in a:
            raise AvatarError(f"{p} is not a complete avatar file: no {key!r} array")
        v = a[key]
        ok_shape = v.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, v.shape))
        if not ok_shape:
            want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
            raise AvatarError(f"{p}: array {key!r} has shape {list(v.shape)}, expected {want}")
        if kind == "u8" and v.dtype != np.uint8:
            raise AvatarError(f"{p}: array {key!r} must be uint8, got {v.dtype}")
        if kind in ("f", "fn") and v.dtype.kind not in "fiu":
            raise AvatarError(f"{p}: array {key!r} must be numeric, got {v.dtype}")
        if kind == "f" and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise AvatarError(f"{p}: array {key!r} holds NaN or infinite values")
        if kind == "i" and (v.dtype.kind not in "iu" or np.any(v <= 0)):
            raise AvatarError(f"{p}: array {key!r} must be positive integers, got {v}")
        if kind == "b" and v.dtype != bool and (v.dtype.kind not in "iuf" or not np.all((v == 0) | (v == 1))):
            raise AvatarError(f"{p}: array {key!r} must be booleans, got {v.dtype}")
    if a["kp"].shape[0] != a["vis"].shape[0]:
        raise AvatarError(f"{p}: kp and vis disagree ({a['kp'].shape[0]} vs {a['vis'].shape[0]} keypoints)")
    if min(a["crop"].shape[:2]) < 16 or min(a["crop_hq"].shape[:2]) < 16:
        raise AvatarError(f"{p}: crops are too small")
    for k, v in a.items():
        if k.startswith("feat_") and (v.dtype.kind not in "fiub" or v.dtype == object):
            raise AvatarError(f"{p}: renderer cache {k!r} has dtype {v.dtype}")
    if "name" in a and a["name"].dtype.kind not in "US":
        raise AvatarError(f"{p}: 'name' must be a string")
    if "region_kind" not in a or a["region_kind"].dtype.kind not in "US":
        raise AvatarError(f"{p}: 'region_kind' must be a string")
    ph, pw = a["photo"].shape[:2]
    x0, y0, x1, y1 = a["region"]
    if min(ph, pw) < 16 or not (0 <= x0 < x1 <= pw and 0 <= y0 < y1 <= ph):
        raise AvatarError(f"{p}: the region {a['region'].tolist()} does not lie inside the "
                          f"{pw}x{ph} photo")


def _faces_from_pose_head(rgb: np.ndarray, r) -> list[np.ndarray]:
    """Second chance for a small face in a large photo: crop around the pose model's head points
    and run face mesh on the enlarged crop. Returns faces in the photo's normalized coordinates."""
    if not r.pose_ok:
        return []
    H, W = rgb.shape[:2]
    head = r.pose[:11]  # nose, eyes, ears, mouth
    good = head[:, 3] > 0.5
    if good.sum() < 3:
        return []
    xy = head[good, :2] * [W, H]
    c = xy.mean(0)
    size = max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 8.0) * 3.0
    box = framing.Box(c[0] - size / 2, c[1] - size / 2, size, size)
    patch = framing.crop(rgb, box, (384, 384))
    from .vision.detect import Detector
    with Detector(video=False, max_faces=2, pose=False, hands=False) as det:
        rr = det(patch)
    out = []
    for f in rr.faces or []:
        g = f.copy()
        g[:, 0] = (box.x0 + f[:, 0] * box.w) / W
        g[:, 1] = (box.y0 + f[:, 1] * box.h) / H
        g[:, 2] = f[:, 2] * box.w / W
        out.append(g)
    return out
