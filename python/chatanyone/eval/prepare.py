"""A raw video made ready for evaluation, computed once and cached.

:func:`prepare` decodes a video on the 25 fps timeline of :mod:`chatanyone.data.video` (frame ``t``
shows the instant ``(t + 0.5) / 25`` and owns the 16 kHz samples ``[640 t, 640 (t + 1))``), reads its
audio at 16 kHz mono, and runs the data pipeline's detector (:class:`chatanyone.vision.detect.Detector`:
face mesh, pose and hands, tracking mode) on every frame. The result, a :class:`PreparedVideo`, is
cached under :func:`cache_dir` keyed by the file's content hash and the settings, so a second run
over the same clips skips the slow detection (about 50-100 ms per frame on one CPU core).

Frames are not cached (they are large and decoding is fast): :meth:`PreparedVideo.frames` decodes
them again on the same timeline.

Used by ``chatanyone eval lipsync``, ``chatanyone eval render`` and :mod:`chatanyone.reenact`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..data.corpus import DETECT_MAX_SIDE  # frames are downsized to this before detection, as in the corpus
from ..spec.timeline import MOTION_FPS, SAMPLE_RATE

log = logging.getLogger("chatanyone")

FPS = float(MOTION_FPS)
CACHE_VERSION = 1         # bump when what is cached changes meaning
_CACHE_ENV = "CHATANYONE_CACHE"


def cache_dir() -> Path:
    """Where prepared videos are cached: ``$CHATANYONE_CACHE/eval`` when that variable is set,
    else ``~/.cache/chatanyone/eval`` (``$XDG_CACHE_HOME`` respected)."""
    root = os.environ.get(_CACHE_ENV)
    if root:
        return Path(root) / "eval"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "chatanyone" / "eval"


@dataclasses.dataclass
class PreparedVideo:
    """One video on the 25 fps timeline with its landmarks and audio (image-normalized landmarks:
    x, y in [0, 1] of the frame, z in frame widths, as :class:`~chatanyone.vision.detect.Detector`)."""
    path: str                # the video file
    key: str                 # cache key (content hash + settings)
    fps: float               # 25
    n: int                   # frames on the timeline (possibly capped by max_seconds)
    width: int               # frame width in pixels (after rotation)
    height: int              # frame height
    has_audio: bool          # the file has an audio stream
    audio: np.ndarray        # [n * 640] float32 16 kHz mono, aligned to the frames (zeros without audio)
    face: np.ndarray         # [n, 478, 3] float32, NaN where no face
    face_ok: np.ndarray      # [n] bool
    pose: np.ndarray         # [n, 33, 4] float32 x, y, z, visibility; NaN where no body
    pose_ok: np.ndarray      # [n] bool
    hands: np.ndarray        # [n, 2, 21, 3] float32 (person's left, right); NaN where not found
    hands_ok: np.ndarray     # [n, 2] bool
    detect_s: float = 0.0    # seconds the detection took when it ran (0 from the cache)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def seconds(self) -> float:
        return self.n / self.fps

    def to_pixels(self, pts: np.ndarray) -> np.ndarray:
        """Image-normalized points ``[..., >=2]`` -> pixels (x, y; z scaled like x when present)."""
        p = np.array(pts, np.float64, copy=True)
        p[..., 0] *= self.width
        p[..., 1] *= self.height
        if p.shape[-1] >= 3:
            p[..., 2] *= self.width
        return p

    def face_px(self) -> np.ndarray:
        """``[n, 478, 3]`` float64 face mesh in pixels (NaN where no face)."""
        return self.to_pixels(self.face)

    def frames(self, *, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Decode the frames again: yields ``(t, rgb [height, width, 3] uint8)`` for
        ``start <= t < min(stop, n)``. Blocks while decoding (a generator; frames are not kept)."""
        from ..data.video import iter_frames
        stop = self.n if stop is None else min(stop, self.n)
        for t, img in iter_frames(self.path, self.fps):
            if t >= stop:
                break
            if t >= start:
                yield t, img

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as ``[height, width, 3]`` uint8 (decodes from the start: use :meth:`frames`
        for many)."""
        if not 0 <= t < self.n:
            raise ValueError(f"frame index {t} outside the video's {self.n} frames")
        for _, img in self.frames(start=t, stop=t + 1):
            return img
        raise ValueError(f"{self.path}: frame {t} could not be decoded")

    def first_face_frame(self) -> int:
        """Index of the first frame with a face. Raises ValueError when no frame has one."""
        idx = np.flatnonzero(self.face_ok)
        if idx.size == 0:
            raise ValueError(f"{self.path}: no face found in any of its {self.n} frames")
        return int(idx[0])


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _settings(fps: float, max_seconds: float | None, detect_max_side: int) -> dict:
    from ..vision.detect import detector_version
    if max_seconds is not None:  # 10 and 10.0 are the same setting (one cache entry)
        max_seconds = int(max_seconds) if float(max_seconds).is_integer() else round(float(max_seconds), 6)
    return {"version": CACHE_VERSION, "fps": float(fps), "max_seconds": max_seconds,
            "detect_max_side": int(detect_max_side),
            # the landmark detector's version: entries made by another detector (those keyed
            # "mediapipe": "0.10.21" before the LiteRT detector) are not reused but made again
            "detector": detector_version()}


def prepare(path: str | os.PathLike, *, fps: float = FPS, max_seconds: float | None = None,
            cache: str | os.PathLike | None | bool = None, detect_max_side: int = DETECT_MAX_SIDE,
            progress: bool = False) -> PreparedVideo:
    """Decode ``path``, read its audio and detect face, pose and hands on every frame (cached).

    Args:
        path: any video FFmpeg reads (with or without an audio track).
        fps: the timeline's frame rate (25: the motion model's).
        max_seconds: keep only the first this many seconds (None: the whole video).
        cache: the cache folder; None: :func:`cache_dir`; False: no cache.
        detect_max_side: frames are downsized to this longer side before detection.
        progress: show a progress bar while detecting.
    Returns:
        a :class:`PreparedVideo`.
    Raises:
        FileNotFoundError: no such file.
        ValueError (:class:`~chatanyone.data.video.VideoError`): not a video, no video stream, or
            shorter than one frame.
    Blocks: about 50-100 ms per frame the first time; a few ms per clip from the cache.
    """
    from ..data.video import VideoError, probe, read_clip_audio, video_timing
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video not found: {path!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds!r}")
    info = probe(path)                       # VideoError: not a video / no video stream
    _, duration, n = video_timing(path, fps)
    if n < 1:
        raise VideoError(f"{path} is shorter than one frame ({duration * 1000:.1f} ms at {fps:g} fps)")
    if max_seconds is not None:
        n = min(n, int(np.floor(max_seconds * fps + 1e-6)))
    settings = _settings(fps, max_seconds, detect_max_side)
    fhash = file_hash(path)
    key = hashlib.sha256((fhash + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:24]
    root = None if cache is False else Path(cache if cache not in (None, True) else cache_dir())
    folder = None if root is None else root / key
    if folder is not None:
        # this entry, or one of the same file and settings that covers at least these frames
        for cand in [folder] + _covering_entries(root, fhash, settings, n):
            if not (cand / "prepared.npz").is_file():
                continue
            try:
                pv = _load(cand, path)
            except (OSError, ValueError, KeyError) as exc:  # a damaged cache entry: prepare again
                log.warning("eval cache entry %s unreadable (%s)", cand, exc)
                continue
            return pv if pv.n <= n else _head(pv, n)
    t0 = time.perf_counter()
    tracks, n_done = _detect(path, n, fps, detect_max_side, progress)
    detect_s = time.perf_counter() - t0
    if n_done < 1:
        raise VideoError(f"{path}: no frame could be decoded")
    n = n_done
    audio, has_audio = read_clip_audio(path, n, fps)
    pv = PreparedVideo(path=path, key=key, fps=float(fps), n=int(n), width=int(info.width),
                       height=int(info.height), has_audio=bool(has_audio),
                       audio=audio.astype(np.float32), detect_s=detect_s, **tracks)
    log.info("prepared %s: %d frames, faces in %.0f%%, %.1f s", Path(path).name, n,
             100 * float(pv.face_ok.mean()), detect_s)
    if folder is not None:
        _save(folder, pv, settings, fhash)
    return pv


def _detect(path: str, n: int, fps: float, max_side: int, progress: bool) -> tuple[dict, int]:
    """The corpus's detection pass (:func:`chatanyone.data.corpus.detect_clip`) over the first
    ``n`` frames: the raw tracks this module keeps, and how many frames were decoded."""
    from ..data.corpus import detect_clip
    raw, count, _ = detect_clip(path, fps, progress, n=n, max_side=max_side)
    return {k: raw[k] for k in ("face", "face_ok", "pose", "pose_ok", "hands", "hands_ok")}, count


_ARRAYS = ("audio", "face", "face_ok", "pose", "pose_ok", "hands", "hands_ok")


def _covering_entries(root: Path, fhash: str, settings: dict, n: int) -> list[Path]:
    """Cache entries of the same file and settings except ``max_seconds`` that hold >= ``n`` frames."""
    out = []
    want = {k: v for k, v in settings.items() if k != "max_seconds"}
    if not root.is_dir():
        return out
    for meta_path in root.glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        st = dict(meta.get("settings") or {})
        st.pop("max_seconds", None)
        if meta.get("file_hash") == fhash and st == want and int(meta.get("n", 0)) >= n:
            out.append(meta_path.parent)
    return out


def _head(pv: PreparedVideo, n: int) -> PreparedVideo:
    """The first ``n`` frames of a prepared video."""
    cut = {k: getattr(pv, k)[:n] for k in _ARRAYS if k != "audio"}
    return dataclasses.replace(pv, n=n, audio=pv.audio[: n * int(SAMPLE_RATE / pv.fps)], **cut)


def _save(folder: Path, pv: PreparedVideo, settings: dict, fhash: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"prepared.{os.getpid()}.tmp.npz"   # per process: two runs may prepare one clip at once
    np.savez_compressed(tmp, **{k: getattr(pv, k) for k in _ARRAYS})
    meta = {"path": os.path.abspath(pv.path), "file_hash": fhash, "fps": pv.fps, "n": pv.n, "width": pv.width,
            "height": pv.height, "has_audio": pv.has_audio, "detect_s": pv.detect_s, "settings": settings}
    tmp_meta = folder / f"meta.{os.getpid()}.tmp.json"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, folder / "meta.json")
    os.replace(tmp, folder / "prepared.npz")  # last: an entry is complete once this file exists


def _load(folder: Path, path: str) -> PreparedVideo:
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "prepared.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in _ARRAYS}
    for k in ("face_ok", "pose_ok", "hands_ok"):
        arrays[k] = arrays[k].astype(bool)
    if len(arrays["face"]) != meta["n"]:
        raise ValueError("frame count mismatch")
    log.debug("eval cache hit: %s -> %s", path, folder)
    return PreparedVideo(path=path, key=folder.name, fps=float(meta["fps"]), n=int(meta["n"]),
                         width=int(meta["width"]), height=int(meta["height"]),
                         has_audio=bool(meta["has_audio"]), **arrays)
