"""Landmark detection: MediaPipe's face mesh (478 points with irises), pose (33 points,
``model_complexity=1``) and hands (21 points each, up to two, ``model_complexity=1``) models, run
by the LiteRT interpreter (:mod:`.landmarks`, :mod:`.litert`; the models ship in
``weights/landmarks``), so preparing a photo needs no mediapipe package (issue #13: mediapipe
0.10.21 pins protobuf<5, LiveKit needs protobuf>=5). :class:`MediapipeDetector` is the same
interface over mediapipe 0.10.21's legacy solutions, kept as the parity reference (tests and
``benchmarks/landmark_parity.py``; it needs ``pip install mediapipe==0.10.21``).

Coordinates are image-normalized: x in [0, 1] left to right, y in [0, 1] top to bottom, z in units
of the image width (mediapipe's convention; smaller is nearer the camera). Points outside the
image keep values outside [0, 1].

Hands are ordered by the *person's* side: index 0 is the left hand, 1 the right hand. The hand
model's handedness assumes a mirrored (selfie) image, so for ordinary video it is swapped; the
nearest pose wrist (15 left, 16 right) decides first, the swapped label only when the pose has no
visible wrist.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import threading

import numpy as np

log = logging.getLogger("chatanyone")

from ..spec.keypoint_layout import N_HAND_POINTS as N_HAND, N_MESH_POINTS as N_FACE, N_POSE_POINTS as N_POSE


@dataclasses.dataclass
class FrameLandmarks:
    """Landmarks of one frame, image-normalized (see the module docstring)."""
    face: np.ndarray       # [478, 3] float32 x, y, z; NaN where no face
    face_ok: bool          # a face was found
    pose: np.ndarray       # [33, 4] float32 x, y, z, visibility; NaN where no body
    pose_ok: bool          # a body was found
    hands: np.ndarray      # [2, 21, 3] float32 (person's left, right); NaN where not found
    hands_ok: np.ndarray   # [2] bool
    hands_score: np.ndarray  # [2] float32 handedness confidence (0 where not found)
    n_faces: int = 0       # how many faces face mesh found (at most max_faces)
    faces: list | None = None  # every face found, [478, 3] each (only with max_faces > 1)


def _empty() -> FrameLandmarks:
    return FrameLandmarks(
        face=np.full((N_FACE, 3), np.nan, np.float32), face_ok=False,
        pose=np.full((N_POSE, 4), np.nan, np.float32), pose_ok=False,
        hands=np.full((2, N_HAND, 3), np.nan, np.float32), hands_ok=np.zeros(2, bool),
        hands_score=np.zeros(2, np.float32))


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextlib.contextmanager
def native_stderr_quiet():
    """Silence what native code (LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate``;
    mediapipe's absl ``W0000 ...`` lines in the reference detector) writes to the process's
    stderr while the block runs, unless the ``chatanyone`` logger is enabled for DEBUG (the CLI's
    ``-v``). Those libraries print
    with C stdio, below Python's logging, so file descriptor 2 is pointed at /dev/null for the
    block (re-entrant; other threads' stderr output in that time is dropped too)."""
    global _quiet_depth, _quiet_saved
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                sys.stderr.flush()
                _quiet_saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:  # no usable fd 2 (embedded interpreters): leave it alone
                _quiet_saved = None
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                os.dup2(_quiet_saved, 2)
                os.close(_quiet_saved)
                _quiet_saved = None


def detector_version() -> str:
    """Version of the landmark detector (models + pre/post-processing): caches of landmarks record
    it (``eval/prepare.py``), so a change re-makes them."""
    from .landmarks import VERSION
    return VERSION


class _ClosingDetector:
    """A ``with`` block closes the detector."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Detector(_ClosingDetector):
    """Face mesh + pose + hands on RGB frames (LiteRT; no mediapipe package).

    Args:
        video: True for tracking mode (mediapipe's ``static_image_mode=False``): consecutive calls
            must be consecutive frames of one clip; each frame's regions come from the previous
            frame's landmarks and the detectors run again only when an object is lost. False for
            independent photos (detectors on every call).
        max_faces: faces face mesh looks for (2 lets :class:`~chatanyone.Avatar` refuse group photos).
        pose / hands: run those models (skipping them saves time where only the face is needed).
        min_confidence: detection confidence for all three detectors.

    Not thread-safe; use one per thread. Close with :meth:`close` or a ``with`` block.
    """

    def __init__(self, *, video: bool = True, max_faces: int = 1, pose: bool = True, hands: bool = True,
                 min_confidence: float = 0.5):
        if not isinstance(max_faces, (int, np.integer)) or isinstance(max_faces, bool) or max_faces < 1:
            raise ValueError(f"max_faces must be an int >= 1, got {max_faces!r}")
        if not 0.0 < float(min_confidence) < 1.0:
            raise ValueError(f"min_confidence must be in (0, 1), got {min_confidence!r}")
        from . import landmarks as L
        with native_stderr_quiet():   # LiteRT prints an XNNPACK INFO line on its first model
            self._face = L.FaceMesh(video=video, max_faces=int(max_faces), min_detection=min_confidence)
            self._pose = L.Pose(video=video, min_detection=min_confidence) if pose else None
            self._hands = L.Hands(video=video, max_hands=2, min_detection=min_confidence) if hands else None
        self.max_faces = int(max_faces)

    def close(self) -> None:
        self._face = self._pose = self._hands = None

    def __call__(self, rgb: np.ndarray) -> FrameLandmarks:
        """Detect on one frame ``rgb [H, W, 3] uint8`` (blocks, ~30-120 ms on a CPU core)."""
        _check_rgb(rgb)
        if self._face is None:
            raise ValueError("this Detector is closed")
        with native_stderr_quiet():
            return self._detect(np.ascontiguousarray(rgb))

    def _detect(self, rgb: np.ndarray) -> FrameLandmarks:
        out = _empty()
        _set_faces(out, self._face(rgb), self.max_faces)
        if self._pose is not None:
            p = self._pose(rgb)
            if p is not None:
                out.pose = p.astype(np.float32)
                out.pose_ok = True
        if self._hands is not None:
            found = [(pts, 1 if left > 0.5 else 0, max(left, 1.0 - left))
                     for pts, left, _ in self._hands(rgb)]
            if found:
                # the model's "Left" (score > 0.5) assumes a mirrored image: the person's right hand
                _assign_hands(out, found, rgb.shape[1] / rgb.shape[0])
        return out


def _check_rgb(rgb) -> None:
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"rgb must be a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"rgb must be at least 2x2 pixels, got {rgb.shape}")


def _set_faces(out: FrameLandmarks, faces: list, max_faces: int) -> None:
    if not faces:
        return
    faces = [np.asarray(f, np.float32) for f in faces]
    # the largest face is "the" face
    sizes = [np.ptp(f[:, 0]) * np.ptp(f[:, 1]) for f in faces]
    out.face = faces[int(np.argmax(sizes))]
    out.face_ok = True
    out.n_faces = len(faces)
    if max_faces > 1:
        out.faces = faces


class MediapipeDetector(_ClosingDetector):
    """The same interface over mediapipe 0.10.21's legacy solutions: the parity reference for
    :class:`Detector` (tests, ``benchmarks/landmark_parity.py``). Needs
    ``pip install mediapipe==0.10.21`` (it pins protobuf<5). Arguments as :class:`Detector`."""

    def __init__(self, *, video: bool = True, max_faces: int = 1, pose: bool = True, hands: bool = True,
                 min_confidence: float = 0.5):
        with native_stderr_quiet():
            self._open(video, max_faces, pose, hands, min_confidence)
        self.max_faces = max_faces

    def _open(self, video, max_faces, pose, hands, min_confidence) -> None:
        import mediapipe as mp  # the reference only; ImportError where it is not installed
        sol = mp.solutions
        static = not video
        self._face = sol.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=max_faces,
                                            refine_landmarks=True, min_detection_confidence=min_confidence,
                                            min_tracking_confidence=0.5)
        self._pose = sol.pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=False,
                                   enable_segmentation=False, min_detection_confidence=min_confidence,
                                   min_tracking_confidence=0.5) if pose else None
        self._hands = sol.hands.Hands(static_image_mode=static, max_num_hands=2, model_complexity=1,
                                      min_detection_confidence=min_confidence,
                                      min_tracking_confidence=0.5) if hands else None

    def close(self) -> None:
        with native_stderr_quiet():
            for m in (self._face, self._pose, self._hands):
                if m is not None:
                    m.close()

    def __call__(self, rgb: np.ndarray) -> FrameLandmarks:
        """Detect on one frame ``rgb [H, W, 3] uint8`` (blocks)."""
        _check_rgb(rgb)
        with native_stderr_quiet():
            return self._detect(np.ascontiguousarray(rgb))

    def _detect(self, rgb: np.ndarray) -> FrameLandmarks:
        out = _empty()
        r = self._face.process(rgb)
        if r.multi_face_landmarks:
            _set_faces(out, [np.array([(p.x, p.y, p.z) for p in f.landmark], np.float32)
                             for f in r.multi_face_landmarks], self.max_faces)
        if self._pose is not None:
            r = self._pose.process(rgb)
            if r.pose_landmarks:
                out.pose = np.array([(p.x, p.y, p.z, p.visibility) for p in r.pose_landmarks.landmark],
                                    np.float32)
                out.pose_ok = True
        if self._hands is not None:
            r = self._hands.process(rgb)
            if r.multi_hand_landmarks:
                found = []
                for lm, hd in zip(r.multi_hand_landmarks, r.multi_handedness):
                    pts = np.array([(p.x, p.y, p.z) for p in lm.landmark], np.float32)
                    c = hd.classification[0]
                    # mediapipe assumes a mirrored image: its "Left" is the person's right hand
                    side = 1 if c.label == "Left" else 0
                    found.append((pts, side, float(c.score)))
                _assign_hands(out, found, rgb.shape[1] / rgb.shape[0])
        return out


def _assign_hands(out: FrameLandmarks, found: list, aspect: float) -> None:
    """Put each found hand in slot 0 (person's left) or 1 (right)."""
    wrists = None
    if out.pose_ok:
        vis = out.pose[[15, 16], 3]
        if np.all(vis > 0.3):
            wrists = out.pose[[15, 16], :2]
    if wrists is not None and found:
        scale = np.array([aspect, 1.0], np.float32)  # isotropic distances
        d = np.array([[np.linalg.norm((h[0][0, :2] - w) * scale) for w in wrists] for h in found])
        if len(found) == 1:
            slots = [int(np.argmin(d[0]))]
        else:  # two hands: the assignment with the smaller total distance
            slots = [0, 1] if d[0, 0] + d[1, 1] <= d[0, 1] + d[1, 0] else [1, 0]
            slots = slots[:len(found)]
    else:
        slots = [h[1] for h in found]
        if len(found) == 2 and slots[0] == slots[1]:  # same label twice: split by image position
            # the person's left hand appears on the image's right
            slots = [0, 1] if found[0][0][0, 0] >= found[1][0][0, 0] else [1, 0]
    for (pts, _, score), s in zip(found, slots):
        if out.hands_ok[s] and out.hands_score[s] >= score:
            continue
        out.hands[s] = pts
        out.hands_ok[s] = True
        out.hands_score[s] = score


def plausible_hands(face: np.ndarray, face_ok: np.ndarray, pose: np.ndarray, hands: np.ndarray,
                    hands_ok: np.ndarray) -> np.ndarray:
    """Drop the hand detector's false positives (a "hand" found on an ear, a cheek or a neck).

    All inputs in crop coordinates, over ``T`` frames: ``face [T,478,>=2]``, ``face_ok [T]``,
    ``pose [T,33,4]``, ``hands [T,2,21,>=2]``, ``hands_ok [T,2]``. A detected hand is kept only when
    the pose model sees the arm it belongs to: that side's wrist and elbow visibilities multiply to
    at least 0.5 and the pose wrist lies within 0.8 face heights of the hand's wrist. (On the
    corpus: of 389 hand detections in head-only clips, all false, 19 remain; 98 % of the 2399 in
    upper-body clips are kept.)
    Returns the filtered ``hands_ok [T, 2]`` bool.
    """
    iso = np.array([1.0, 1.5])  # crop units -> isotropic
    ok = np.asarray(hands_ok, bool).copy()
    pose = np.asarray(pose)
    f = np.asarray(face)[..., :2]
    fh = np.linalg.norm((f[:, 152] - f[:, 10]) * iso, axis=-1)  # [T] face height
    fh = np.where(np.asarray(face_ok, bool) & np.isfinite(fh), fh, np.nan)
    fh = np.where(np.isfinite(fh), fh, np.nanmedian(fh) if np.isfinite(fh).any() else 0.2)
    for s, (wrist, elbow) in enumerate(((15, 13), (16, 14))):
        h = np.asarray(hands)[:, s, :, :2]
        arm = np.nan_to_num(pose[:, wrist, 3]) * np.nan_to_num(pose[:, elbow, 3])
        wd = np.linalg.norm((h[:, 0] - pose[:, wrist, :2]) * iso, axis=-1)
        ok[:, s] &= (arm >= 0.5) & (np.nan_to_num(wd, nan=np.inf) < 0.8 * fh)
    return ok
