"""Checks on what a browser uploads to ``chatanyone serve``: photos and speech files.

Everything here is judged by content, never by a file name or extension: the first bytes say
what a file is, and an image's header says its pixel size before a single pixel is decoded (so a
20000x20000 PNG "bomb" is refused after reading 24 bytes). Nothing here touches the filesystem.
"""
from __future__ import annotations

import io
import struct

import numpy as np

MAX_IMAGE_BYTES = 10 * 1024 * 1024     # a phone photo is 2-6 MB
MAX_IMAGE_PIXELS = 40_000_000          # 40 megapixels
MAX_IMAGE_SIDE = 12_000
MAX_AUDIO_BYTES = 20 * 1024 * 1024
MAX_AUDIO_SECONDS = 120.0


class UploadError(ValueError):
    """A refused upload. ``status`` is the HTTP status to answer with (400, 413 or 415)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def sniff_image(data: bytes) -> str:
    """``"png"`` or ``"jpeg"`` from the first bytes, else UploadError(415)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    raise UploadError("the upload is not a PNG or JPEG image (judged by its content)", 415)


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` read from a PNG or JPEG header, without decoding pixels.

    Raises UploadError for a truncated or malformed header.
    """
    kind = sniff_image(data)
    if kind == "png":
        # the IHDR chunk must come first: length 13, type, width, height (big-endian)
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise UploadError("malformed PNG: no IHDR header")
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    # JPEG: walk the markers to the first start-of-frame (SOF0..SOF15 except DHT/JPG/DAC)
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise UploadError("malformed JPEG: bad marker")
        marker = data[i + 1]
        if marker == 0xFF:           # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
        if seg_len < 2:
            raise UploadError("malformed JPEG: bad segment length")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        if marker == 0xDA:          # start of scan before any frame header
            break
        i += 2 + seg_len
    raise UploadError("malformed JPEG: no frame header")


def decode_image(data: bytes) -> np.ndarray:
    """Check and decode an uploaded photo to RGB ``[H, W, 3]`` uint8.

    Checks, in order: size in bytes, content type by magic bytes, pixel size from the header; only
    then the pixels are decoded (OpenCV, from memory). Raises UploadError (400/413/415).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_IMAGE_BYTES:
        raise UploadError(f"the photo is {len(data) / 1e6:.1f} MB; at most "
                          f"{MAX_IMAGE_BYTES / 1e6:.0f} MB are accepted", 413)
    if not data:
        raise UploadError("empty upload")
    w, h = image_size(data)
    if w <= 0 or h <= 0 or w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
        raise UploadError(f"the photo is {w}x{h} pixels; at most {MAX_IMAGE_SIDE} px a side and "
                          f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted", 413)
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.shape[1] != w or img.shape[0] != h:
        raise UploadError("the photo could not be decoded (corrupt or truncated image)")
    return np.ascontiguousarray(img[:, :, ::-1])


def sniff_audio(data: bytes) -> str:
    """``"wav"``, ``"flac"``, ``"ogg"``, ``"webm"`` or ``"mp3"`` from the first bytes, else UploadError(415)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
        return "mp3"
    raise UploadError("the upload is not a WAV, FLAC, Ogg, WebM or MP3 audio file (judged by its content)",
                      415)


_FORMATS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "webm": "matroska,webm", "mp3": "mp3"}


def decode_audio(data: bytes, rate: int = 16000) -> np.ndarray:
    """Check and decode an uploaded speech file to float32 mono ``[S]`` at ``rate`` Hz.

    The container format is forced to the one its magic bytes name (FFmpeg does not probe), and
    decoding stops at ``MAX_AUDIO_SECONDS``. Raises UploadError (400/413/415).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_AUDIO_BYTES:
        raise UploadError(f"the audio file is {len(data) / 1e6:.1f} MB; at most "
                          f"{MAX_AUDIO_BYTES / 1e6:.0f} MB are accepted", 413)
    kind = sniff_audio(data)
    import av

    limit = int(MAX_AUDIO_SECONDS * rate)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=_FORMATS[kind]) as c:
            if not c.streams.audio:
                raise UploadError("the file has no audio stream")
            rs = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in c.decode(c.streams.audio[0]):
                for out in rs.resample(frame):
                    a = out.to_ndarray().reshape(-1)
                    chunks.append(a)
                    total += a.size
                if total > limit:
                    raise UploadError(f"the audio is longer than {MAX_AUDIO_SECONDS:.0f} s", 413)
            for out in rs.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except UploadError:
        raise
    except (av.error.FFmpegError, ValueError, EOFError) as exc:  # corrupt file
        raise UploadError(f"the audio file could not be decoded: {exc}") from None
    pcm = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if pcm.size == 0:
        raise UploadError("the audio file holds no samples")
    return pcm
