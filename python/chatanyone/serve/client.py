"""A bounded WebRTC client for ``chatanyone serve``: the load script's and the tests' browser
stand-in (aiortc). It sends speech as its microphone at real-time pace, receives the avatar's video
and audio, and counts what arrives. Loopback servers only.
"""
from __future__ import annotations

import asyncio
import fractions
import ipaddress
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("chatanyone")


@dataclass
class ClientResult:
    """What one client saw. ``status``: "ok", "busy" or "error: ..."."""
    status: str
    session: str | None = None
    video_frames: int = 0
    video_pts: list = field(default_factory=list)      # seconds (from RTP timestamps)
    audio_samples: int = 0
    audio_peak: float = 0.0
    first_frame_s: float | None = None
    wall_s: float = 0.0
    events: list = field(default_factory=list)
    frame_shape: tuple | None = None

    @property
    def media_fps(self) -> float:
        """Frames per second of media time covered (not wall time)."""
        if len(self.video_pts) < 2:
            return 0.0
        span = self.video_pts[-1] - self.video_pts[0]
        return (len(self.video_pts) - 1) / span if span > 0 else 0.0


def check_loopback(url: str) -> str:
    """The URL if its host is a loopback address or ``localhost``; ValueError otherwise."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise ValueError(f"the load client talks to loopback servers only, got {url!r}")


def _speech_track(pcm16k: np.ndarray):
    """An aiortc audio track playing ``pcm16k`` (looped, then silence-free) at real-time pace."""
    import av
    from aiortc import MediaStreamTrack

    rate, chunk = 48000, 960
    x = np.repeat(np.asarray(pcm16k, np.float32), 3)         # crude 16k -> 48k; fine as a mic signal
    x = np.clip(x * 32767, -32768, 32767).astype(np.int16)

    class Speech(MediaStreamTrack):
        kind = "audio"

        def __init__(self):
            super().__init__()
            self.pos = 0
            self.t0 = None

        async def recv(self):
            if self.t0 is None:
                self.t0 = time.monotonic()
            due = self.t0 + self.pos / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            idx = (np.arange(self.pos, self.pos + chunk)) % x.size
            f = av.AudioFrame(format="s16", layout="mono", samples=chunk)
            f.planes[0].update(x[idx].tobytes())
            f.sample_rate = rate
            f.pts = self.pos
            f.time_base = fractions.Fraction(1, rate)
            self.pos += chunk
            return f

    return Speech()


async def run_client(url: str, pcm16k: np.ndarray, seconds: float, *, avatar: str = "builtin",
                     interrupt_at: float | None = None, keep_frames: int = 0) -> ClientResult:
    """Open one session at ``url`` (loopback), speak ``pcm16k`` (looped) for ``seconds``, count the
    media received. Bounded: returns after ``seconds`` plus at most 30 s of setup."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    check_loopback(url)
    t_start = time.monotonic()
    res = ClientResult(status="error: not started")
    pc = RTCPeerConnection()
    chan = pc.createDataChannel("control")
    chan.on("message", lambda m: res.events.append(json.loads(m)) if isinstance(m, str) else None)
    pc.addTrack(_speech_track(pcm16k))
    pc.addTransceiver("video", direction="recvonly")
    tasks = []
    frames_kept = []

    async def read_video(track):
        try:
            while True:
                f = await track.recv()
                if res.first_frame_s is None:
                    res.first_frame_s = time.monotonic() - t_start
                res.video_frames += 1
                res.video_pts.append(float(f.pts * f.time_base))
                if len(frames_kept) < keep_frames:
                    frames_kept.append(f.to_ndarray(format="rgb24"))
                res.frame_shape = (f.height, f.width)
        except MediaStreamError:
            pass

    async def read_audio(track):
        try:
            while True:
                f = await track.recv()
                a = f.to_ndarray()
                res.audio_samples += f.samples
                if a.size:
                    res.audio_peak = max(res.audio_peak, float(np.abs(a.astype(np.float32)).max()) / 32768)
        except MediaStreamError:
            pass

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(read_video(track) if track.kind == "video" else read_audio(track)))

    try:
        await pc.setLocalDescription(await pc.createOffer())
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(url.rstrip("/") + "/api/offer",
                                 json={"sdp": pc.localDescription.sdp, "type": "offer", "avatar": avatar}) as r:
                body = await r.json()
                if r.status == 503 and body.get("error") == "busy":
                    res.status = "busy"
                    return res
                if r.status != 200:
                    res.status = f"error: {r.status} {body.get('message')}"
                    return res
            res.session = body["session"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
            t_media = time.monotonic()
            if interrupt_at is not None:
                await asyncio.sleep(interrupt_at)
                chan.send(json.dumps({"type": "interrupt"}))
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - t_media)))
            res.status = "ok"
            try:
                async with http.delete(url.rstrip("/") + f"/api/session/{res.session}"):
                    pass
            except aiohttp.ClientError:
                pass
    finally:
        res.wall_s = time.monotonic() - t_start
        for t in tasks:
            t.cancel()
        await pc.close()
    res.frames = frames_kept
    return res


async def run_load(url: str, n: int, pcm16k: np.ndarray, seconds: float) -> list[ClientResult]:
    """``n`` clients at once (loopback only); each result says ok/busy and what arrived."""
    check_loopback(url)
    if not 1 <= n <= 64:
        raise ValueError(f"n must be in 1..64, got {n}")
    return await asyncio.gather(*(run_client(url, pcm16k, seconds) for _ in range(n)))
