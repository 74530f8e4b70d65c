"""aiortc media tracks over a :class:`~chatanyone.serve.live.LiveStream`: the avatar's video and its
audio leave on one timeline (video pts ``k * 90000 / fps``, audio pts in 48 kHz samples, both
counted from the same frame index), and the client's microphone comes in.

Queues are bounded: a client that stops reading loses the oldest frames, the server's memory does
not grow.
"""
from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import time

import numpy as np

from .live import OUT_RATE

log = logging.getLogger("chatanyone")

AUDIO_PTIME = 0.02                          # 20 ms audio packets
AUDIO_CHUNK = int(OUT_RATE * AUDIO_PTIME)   # 960 samples
MAX_VIDEO_QUEUE = 8                         # frames
MAX_AUDIO_QUEUE = 50                        # 20 ms chunks (1 s)


def _track_base():
    from aiortc import MediaStreamTrack
    return MediaStreamTrack


class AvatarOutput:
    """The two outgoing tracks of one stream, fed from the stream's pacing thread.

    ``deliver`` (thread-safe) hands one frame and its audio to the event loop; ``video`` and
    ``audio`` are aiortc ``MediaStreamTrack`` objects to add to a peer connection.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fps: float):
        base = _track_base()
        self.loop = loop
        self.fps = float(fps)
        self._vq: collections.deque = collections.deque(maxlen=MAX_VIDEO_QUEUE)
        self._aq: collections.deque = collections.deque(maxlen=MAX_AUDIO_QUEUE)
        self._abuf = np.zeros(0, np.int16)
        self._apos = 0                      # 48 kHz samples handed to the audio track so far
        self._v_ev = asyncio.Event()
        self._a_ev = asyncio.Event()
        self._ended = False
        self.video_sent = 0
        self.audio_sent = 0
        self.video_dropped = 0              # frames dropped from the queue by an interrupt
        self._in_encoder: int | None = None  # index of the frame handed to the sender last
        self._sent: collections.deque = collections.deque(maxlen=256)   # (index, monotonic time)
        out = self

        class _Video(base):
            kind = "video"

            async def recv(self):
                return await out._recv_video()

        class _Audio(base):
            kind = "audio"

            async def recv(self):
                return await out._recv_audio()

        self.video = _Video()
        self.audio = _Audio()

    # called from the pacing thread
    def deliver(self, index: int, image: np.ndarray, audio48: np.ndarray) -> None:
        try:
            self.loop.call_soon_threadsafe(self._push, index, image, audio48)
        except RuntimeError:
            pass  # loop closed: shutting down

    def _push(self, index, image, audio48) -> None:
        self._vq.append((index, image))
        self._abuf = np.concatenate([self._abuf, audio48])
        while self._abuf.size >= AUDIO_CHUNK:
            self._aq.append((self._apos, self._abuf[:AUDIO_CHUNK]))
            self._apos += AUDIO_CHUNK
            self._abuf = self._abuf[AUDIO_CHUNK:]
        self._v_ev.set()
        self._a_ev.set()

    def clear_audio(self) -> None:
        """Silence audio queued but not yet sent (interrupt). Call on the event loop."""
        for i, (pos, chunk) in enumerate(self._aq):
            self._aq[i] = (pos, np.zeros_like(chunk))
        self._abuf = np.zeros_like(self._abuf)

    def interrupt(self) -> None:
        """Interrupt: silence the queued audio and drop the video frames still queued for the
        encoder (frames of the speech being cut, which would only delay the next frame; the
        receiver sees a gap in the RTP timestamps, the audio timeline stays whole). Call on the
        event loop."""
        self.clear_audio()
        self.video_dropped += len(self._vq)
        self._vq.clear()

    def sent_at(self, index: int) -> float | None:
        """``time.monotonic()`` when video frame ``index`` had been encoded and its packets sent
        (None if it was not, or long ago). aiortc's sender asks for the next frame right after it
        sent the last one, so that request's time is the send time of the frame before."""
        for k, t in reversed(self._sent):
            if k == index:
                return t
            if k < index:
                break
        return None

    def end(self) -> None:
        self._ended = True
        self._v_ev.set()
        self._a_ev.set()
        for t in (self.video, self.audio):
            try:
                t.stop()
            except Exception:  # noqa: BLE001
                pass

    async def _recv_video(self):
        import av
        from aiortc.mediastreams import MediaStreamError

        if self._in_encoder is not None:      # the sender is back: the last frame went out
            self._sent.append((self._in_encoder, time.monotonic()))
            self._in_encoder = None
        while not self._vq:
            if self._ended:
                raise MediaStreamError
            self._v_ev.clear()
            await self._v_ev.wait()
        index, image = self._vq.popleft()
        self._in_encoder = index
        h, w = image.shape[:2]
        if h % 2 or w % 2:          # 4:2:0 video needs even sides: drop the odd last row/column
            image = image[: h - h % 2, : w - w % 2]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = int(round(index * 90000 / self.fps))
        frame.time_base = fractions.Fraction(1, 90000)
        self.video_sent += 1
        return frame

    async def _recv_audio(self):
        import av
        from aiortc.mediastreams import MediaStreamError

        while not self._aq:
            if self._ended:
                raise MediaStreamError
            self._a_ev.clear()
            await self._a_ev.wait()
        pos, chunk = self._aq.popleft()
        frame = av.AudioFrame(format="s16", layout="mono", samples=chunk.size)
        frame.planes[0].update(chunk.tobytes())
        frame.sample_rate = OUT_RATE
        frame.pts = pos
        frame.time_base = fractions.Fraction(1, OUT_RATE)
        self.audio_sent += 1
        return frame


def audio_frame_to_mono(frame) -> tuple[np.ndarray, int]:
    """An incoming ``av.AudioFrame`` -> (float32 mono ``[n]``, sample rate)."""
    a = frame.to_ndarray()
    ch = len(frame.layout.channels)
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    else:
        a = a.astype(np.float32)
    if frame.format.is_planar:
        a = a.reshape(ch, -1).mean(axis=0)
    else:
        a = a.reshape(-1, ch).mean(axis=1)
    return a, int(frame.sample_rate)
