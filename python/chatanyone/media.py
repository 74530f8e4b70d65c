"""Reading speech from any file FFmpeg understands, and writing MP4 (H.264 + AAC), through PyAV."""
from __future__ import annotations

import logging
import os
from fractions import Fraction

import numpy as np

log = logging.getLogger("chatanyone")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a file (wav, flac, mp3, ogg, m4a, a video's track, ...).

    The format is judged by content, not by the file's extension. Every PCM width is scaled to
    [-1, 1] by the rules of :mod:`chatanyone.inputs` (8-bit unsigned WAV, 16-, 24- and 32-bit
    integer, 64-bit integer, float and double); a float file holding NaN or infinite samples is
    refused. Blocks while decoding (about 1 s per 10 minutes of compressed audio).

    Returns:
        ``(pcm [S, C] float32 in [-1, 1], sample_rate)``.
    Raises:
        FileNotFoundError: no such file. ValueError: not a media file, no audio stream in it, a
        truncated or corrupt stream, NaN/Inf samples, or an unsupported sample rate.
    """
    import av

    from .inputs import pcm_to_float32, sample_rate_hz

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path!r}")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path!r} is not an audio or video file FFmpeg can read ({exc})") from None
    with container:
        if not container.streams.audio:
            raise ValueError(f"{path!r} has no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        chunks = []
        try:
            for frame in container.decode(stream):
                a = frame.to_ndarray()
                if frame.format.is_planar:
                    a = a.T  # [S, C]
                else:
                    a = a.reshape(-1, len(frame.layout.channels))
                if a.dtype == np.int64:  # s64: no numpy rule for it in inputs; scale here
                    a = (a.astype(np.float64) / 2.0 ** 63).astype(np.float32)
                chunks.append(pcm_to_float32(a, name=f"the audio of {path!r}"))
        except av.error.FFmpegError as exc:
            raise ValueError(f"could not decode the audio of {path!r}: {exc}") from None
    if not chunks:
        raise ValueError(f"{path!r} has an audio stream but no samples")
    try:
        rate = sample_rate_hz(rate, name=f"the sample rate of {path!r}")
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return np.concatenate(chunks, axis=0), rate


class VideoWriter:
    """Write RGB frames and 16 kHz mono audio into an MP4 (H.264 video, AAC audio).

    Args:
        path: output file (``.mp4``).
        width, height: frame size (even numbers, H.264 with yuv420p).
        fps: frames per second.
        audio_rate: sample rate of the audio given to :meth:`write`, or None for a silent video.
        crf: x264 quality (lower = better; 18 is visually lossless).
    """

    def __init__(self, path, width: int, height: int, fps: float, audio_rate: int | None = 16000,
                 crf: int = 20):
        import av

        if width % 2 or height % 2:
            raise ValueError(f"frame size must be even for H.264, got {width}x{height}")
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"output folder does not exist: {parent!r}")
        self._c = av.open(self.path, mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self._v = self._c.add_stream("libx264", rate=rate)
        self._v.width, self._v.height, self._v.pix_fmt = width, height, "yuv420p"
        self._v.options = {"crf": str(crf), "preset": "veryfast"}
        self._a = None
        if audio_rate:
            self._a = self._c.add_stream("aac", rate=audio_rate)
            self._a.layout = "mono"
            self._a_rate = audio_rate
            self._a_pts = 0
        self._size = (width, height)

    def write(self, image: np.ndarray, audio: np.ndarray | None = None) -> None:
        """Append one frame (uint8 ``[H, W, 3]``) and the audio samples that belong to it."""
        import av

        if image.shape != (self._size[1], self._size[0], 3) or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 [{self._size[1]}, {self._size[0]}, 3], "
                             f"got {image.dtype} {list(image.shape)}")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for pkt in self._v.encode(vf):
            self._c.mux(pkt)
        if self._a is not None and audio is not None and len(audio):
            a = np.ascontiguousarray(np.asarray(audio, np.float32).reshape(1, -1))
            af = av.AudioFrame.from_ndarray(a, format="flt", layout="mono")
            af.sample_rate = self._a_rate
            af.pts = self._a_pts
            self._a_pts += a.shape[1]
            for pkt in self._a.encode(af):
                self._c.mux(pkt)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        if self._c is None:
            return
        for pkt in self._v.encode():
            self._c.mux(pkt)
        if self._a is not None:
            for pkt in self._a.encode():
                self._c.mux(pkt)
        self._c.close()
        self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
