"""Video-driven reenactment: a photo driven by the face, head, body and hand motion of a real video.

>>> from chatanyone.reenact import reenact
>>> result = reenact("me.jpg", "driving.mp4", "out.mp4")   # H.264 + the driving audio as AAC
>>> result.frames, result.has_audio

The driving video is prepared with the data pipeline (:mod:`chatanyone.eval.prepare`: 25 fps
timeline, face mesh, pose and hands per frame, cached) and turned into motion frames
(:func:`chatanyone.data.motion.clip_motion` on the smoothed landmarks in the driving video's 2:3
upper-body crop). Head pose, gaze and body are relative, as in LivePortrait: by default each
frame's change from the driving video's first frame with a face is applied to the photo's own pose
(``reference="first"``; ``"median"``: from the video's median pose). The expression is always
relative to the driving video's neutral face (its median), like the motion model's output: the
renderer sets the photo's mouth to neutral itself, so an open mouth in the first driving frame does
not close the photo's mouth below neutral. The photo's avatar is rendered
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

from .spec.timeline import MOTION_FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger("chatanyone")

FPS = float(MOTION_FPS)
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


def driving_motion(prepared, *, reference: str = "first", mouth: str = "neutral"):
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
    try:
        m = clip_motion(sm)
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
    if mouth == "neutral":
        from .render.geometry import neutral_face
        from .spec.head import load_basis
        _, exp_median = neutral_face(m["ref_face"], load_basis(), expression=False)   # the mouth only (as measured)
        m["exp"] = m["exp"] + exp_median[None].astype(m["exp"].dtype)
    for k in ("head", "exp", "eye"):
        m[k] = m[k][near]
    bok = m["body_ok"].astype(bool)
    if reference == "first":
        f0 = int(idx[0])
        m["head"] = m["head"] - m["head"][f0]
        m["eye"] = m["eye"].copy()
        m["eye"][:, 2:] -= m["eye"][f0, 2:]
        m["eye"][:, :2] /= np.maximum(m["eye"][f0, :2], 1e-6)
        if bok.any():
            b0 = int(np.flatnonzero(bok)[0])
            m["body"] = np.where(bok[:, None, None], m["body"] - m["body"][b0], 0.0).astype(np.float32)
    from .spec.motion_layout import MotionFrames
    f32 = np.float32
    return MotionFrames(0, head=m["head"].astype(f32), exp=m["exp"].astype(f32), eye=m["eye"].astype(f32),
                        body=np.asarray(m["body"], f32), hands=m["hands"].astype(f32),
                        hands_ok=m["hands_ok"].astype(f32))


def _even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % 2, : w - w % 2]


def reenact(photo, driving_video, output: str | os.PathLike | None = None, *, config=None,
            reference: str = "first", max_seconds: float | None = None, cache=None,
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
    motion = driving_motion(pv, reference=reference)   # the driving video's errors before the photo's
    avatar = photo if isinstance(photo, Avatar) else Avatar.prepare(photo)
    pipe = Pipeline(avatar, config)
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
                         render_ms=1000 * render_s / max(len(motion), 1))
