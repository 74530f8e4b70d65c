"""Decode any common video with PyAV into frames at a fixed rate and 16 kHz mono audio.

Timing rule (the corpus and the tests rely on it):

- Time 0 is the presentation time of the first decoded video frame.
- The video's duration is ``pts(last) - pts(first) + duration(last frame)``; the last frame's duration
  is its own ``duration`` field, or the median interval between frames where that field is missing
  or shorter than half the median.
- The clip has ``T = floor(duration * fps)`` output frames (a 1e-6 tolerance absorbs rounding).
- Output frame ``t`` shows the source frame on screen at the centre of its interval, ``(t + 0.5) / fps``:
  the last source frame whose time is <= that instant. Variable frame rate needs nothing special.
- Audio is cut to the same timeline: output frame ``t`` owns the 16 kHz samples
  ``[t * 16000 / fps, (t + 1) * 16000 / fps)``, so the audio has exactly ``T * 16000 / fps`` samples
  (zero-padded where the track is shorter or starts late, trimmed where it is longer).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Iterator

import numpy as np

from ..audio.features import SAMPLE_RATE, to_mono_16k

log = logging.getLogger("chatanyone")

_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a file before decoding it fully."""
    path: str          # the file
    width: int         # frame width in pixels after rotation metadata is applied
    height: int        # frame height in pixels after rotation
    codec: str         # video codec name, e.g. "h264", "hevc"
    rotation: int      # display rotation in degrees (0, 90, 180, 270) applied to decoded frames
    has_audio: bool    # an audio stream exists
    audio_rate: int    # its sample rate (0 without audio)
    audio_channels: int  # its channel count (0 without audio)
    nominal_fps: float   # the container's average frame rate (informative only)


class VideoError(ValueError):
    """The file cannot be decoded as a video (unreadable, no video stream, no frames)."""


def _open(path):
    import av
    if not os.path.exists(path):
        raise FileNotFoundError(f"video not found: {path}")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:  # InvalidDataError and friends
        raise VideoError(f"cannot open {path} as a video: {exc}") from exc


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the stream headers of ``path`` (fast; decodes one frame for the rotation).

    Raises:
        FileNotFoundError: no such file. VideoError: not a video or no video stream.
    """
    path = str(path)
    with _open(path) as c:
        if not c.streams.video:
            raise VideoError(f"{path} has no video stream")
        v = c.streams.video[0]
        rot = 0
        try:
            for fr in c.decode(v):
                rot = int(round(getattr(fr, "rotation", 0) or 0)) % 360
                break
        except Exception as exc:  # noqa: BLE001 - any FFmpeg failure means the file is unreadable
            raise VideoError(f"cannot decode {path}: {exc}") from exc
        w, h = v.codec_context.width, v.codec_context.height
        if rot in (90, 270):
            w, h = h, w
        a = c.streams.audio[0] if c.streams.audio else None
        fps = float(v.average_rate) if v.average_rate else 0.0
        return VideoInfo(path, int(w), int(h), v.codec_context.name, rot, a is not None,
                         int(a.rate) if a is not None else 0,
                         int(a.channels) if a is not None else 0, fps)


def _rotate(img: np.ndarray, rot: int) -> np.ndarray:
    # FFmpeg's rotation is counter-clockwise in degrees; np.rot90 is counter-clockwise too
    if rot == 0:
        return img
    return np.ascontiguousarray(np.rot90(img, k=rot // 90))


def _last_duration(stated: float, intervals: np.ndarray, fps: float) -> float:
    """The last frame's duration: as stated, unless missing or implausibly short (some muxers write
    1 tick), then the median interval between frames."""
    med = float(np.median(intervals)) if intervals.size else 1.0 / fps
    return stated if stated >= 0.5 * med else med


def iter_frames(path: str | os.PathLike, fps: float = 25.0, *,
                max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Decode ``path`` and yield ``(t, rgb [H, W, 3] uint8)`` for ``t = 0 .. T-1`` at ``fps``.

    Follows the timing rule of this module. Frames that repeat (a lower source rate) are the same
    array object, so a caller may skip re-processing with ``is``. ``max_side`` downsizes frames whose
    longer side exceeds it (area interpolation), keeping the aspect ratio.
    Blocks while decoding; a generator so that long clips need not fit in memory.

    Raises:
        FileNotFoundError, VideoError (unreadable, no video stream, no frame).
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = str(path)
    c = _open(path)
    try:
        if not c.streams.video:
            raise VideoError(f"{path} has no video stream")
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        tb = float(v.time_base) if v.time_base else 1.0 / 90000
        t0 = None
        prev_img = None
        prev_time = None
        intervals: list[float] = []
        last_dur = 0.0
        t = 0
        cache: dict[int, np.ndarray] = {}  # the converted current source frame, by its index
        src_i = 0

        def convert(fr) -> np.ndarray:
            img = fr.to_ndarray(format="rgb24")
            img = _rotate(img, int(round(getattr(fr, "rotation", 0) or 0)) % 360)
            if max_side and max(img.shape[:2]) > max_side:
                import cv2
                s = max_side / max(img.shape[:2])
                img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                                 interpolation=cv2.INTER_AREA)
            return img

        try:
            frames = c.decode(v)
            for fr in frames:
                if fr.pts is None:
                    continue
                time = fr.pts * tb
                if t0 is None:
                    t0 = time
                rel = time - t0
                if prev_time is not None:
                    if rel <= prev_time:  # non-increasing timestamp: drop the duplicate
                        continue
                    intervals.append(rel - prev_time)
                    # emit every output frame whose centre falls before this source frame
                    while (t + 0.5) / fps < rel - _EPS:
                        if src_i not in cache:
                            cache = {src_i: convert(prev_img)}
                        yield t, cache[src_i]
                        t += 1
                prev_img, prev_time = fr, rel
                src_i += 1
                last_dur = (fr.duration or 0) * tb
        except Exception as exc:  # noqa: BLE001 - a corrupt stream part-way: keep what decoded
            if prev_img is None:
                raise VideoError(f"cannot decode {path}: {exc}") from exc
            log.warning("%s: decoding stopped early (%s); keeping %.2f s", path, exc, prev_time)
        if prev_img is None:
            raise VideoError(f"{path} has no decodable video frame")
        last_dur = _last_duration(last_dur, np.asarray(intervals), fps)
        duration = prev_time + last_dur
        n = int(math.floor(duration * fps + _EPS))
        while t < n:
            if src_i not in cache:
                cache = {src_i: convert(prev_img)}
            yield t, cache[src_i]
            t += 1
    finally:
        c.close()


def video_timing(path: str | os.PathLike, fps: float = 25.0) -> tuple[float, float, int]:
    """``(start_time_s, duration_s, T)`` of the first video stream by the module's rule.

    Demuxes packets only (no decoding), so it is fast.
    """
    path = str(path)
    with _open(path) as c:
        if not c.streams.video:
            raise VideoError(f"{path} has no video stream")
        v = c.streams.video[0]
        tb = float(v.time_base)
        pts = []
        durs = {}
        for p in c.demux(v):
            if p.pts is not None:
                pts.append(p.pts)
                durs[p.pts] = p.duration or 0
        if not pts:
            raise VideoError(f"{path} has no video frames")
        pts_sorted = sorted(set(pts))
        start = pts_sorted[0] * tb
        last = pts_sorted[-1]
        iv = np.diff(pts_sorted) * tb
        last_dur = durs.get(last, 0) * tb
        last_dur = _last_duration(last_dur, iv, fps)
        duration = (last - pts_sorted[0]) * tb + last_dur
        return float(start), float(duration), int(math.floor(duration * fps + _EPS))


def read_clip_audio(path: str | os.PathLike, n_frames: int, fps: float = 25.0) -> tuple[np.ndarray, bool]:
    """The audio track of ``path`` as 16 kHz mono float32 aligned to the video's frames.

    Args:
        path: a media file with a video stream (its first frame is time 0).
        n_frames: ``T`` from :func:`video_timing` / :func:`iter_frames`.
        fps: the output frame rate.
    Returns:
        ``(audio [T * 16000 / fps], has_audio)``. Without an audio stream: zeros and False.
    """
    import av
    path = str(path)
    n_out = int(round(n_frames * SAMPLE_RATE / fps))
    with _open(path) as c:
        v0 = video_timing(path, fps)[0] if c.streams.video else 0.0
        if not c.streams.audio:
            return np.zeros(n_out, np.float32), False
        a = c.streams.audio[0]
        rate = int(a.rate)
        res = av.AudioResampler(format="fltp")  # keeps rate and layout, unifies the sample format
        chunks = []
        a_start = None
        try:
            for fr in c.decode(a):
                if a_start is None and fr.pts is not None:
                    a_start = float(fr.pts * fr.time_base)
                for f2 in res.resample(fr):
                    chunks.append(f2.to_ndarray())  # [C, n] planar
            for f2 in res.resample(None):
                chunks.append(f2.to_ndarray())
        except Exception as exc:  # noqa: BLE001 - corrupt audio tail: keep what decoded
            log.warning("%s: audio decoding stopped early (%s)", path, exc)
        if not chunks:
            return np.zeros(n_out, np.float32), False
        pcm = np.concatenate(chunks, axis=1).T  # [S, C]
        mono = to_mono_16k(np.ascontiguousarray(pcm, dtype=np.float32), rate)
        offset = int(round(((a_start or 0.0) - v0) * SAMPLE_RATE))  # audio sample 0 sits here
        out = np.zeros(n_out, np.float32)
        src_lo = max(0, -offset)
        dst_lo = max(0, offset)
        n = min(n_out - dst_lo, mono.size - src_lo)
        if n > 0:
            out[dst_lo:dst_lo + n] = mono[src_lo:src_lo + n]
        return out, True
