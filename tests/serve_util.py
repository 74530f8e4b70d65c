"""Helpers for the serve tests: a server on a loopback port in a background thread, bounded."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np


class ServerThread:
    """``chatanyone serve`` on 127.0.0.1 (an ephemeral port) in a thread; ``stop()`` shuts it down
    gracefully and joins (bounded)."""

    def __init__(self, options):
        from chatanyone.serve import run_server

        self.url = None
        self.server = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop = None
        self.error = None

        async def main():
            self._stop = asyncio.Event()
            await run_server(options, "127.0.0.1", 0, stop=self._stop, ready=self._on_ready)

        def target():
            try:
                self._loop.run_until_complete(main())
            except BaseException as exc:  # noqa: BLE001
                self.error = exc
                self._ready.set()

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self.error is not None:
            raise RuntimeError(f"server did not start: {self.error}")

    def _on_ready(self, url, server):
        self.url, self.server = url, server
        self._ready.set()

    def call(self, coro, timeout=60):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self):
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def speech_with_pauses(seconds_speech=3.0, seconds_silence=3.0, lead=0.5):
    """The built-in speech clip cut to ``seconds_speech`` with silence around: float32 16 kHz."""
    from chatanyone.assets import demo_speech

    pcm, rate = demo_speech()
    assert rate == 16000
    sp = pcm[: int(seconds_speech * rate)].astype(np.float32)
    sp = sp / max(1e-6, float(np.abs(sp).max())) * 0.5
    z = lambda s: np.zeros(int(s * rate), np.float32)  # noqa: E731
    return np.concatenate([z(lead), sp, z(seconds_silence)])


def write_wav(path, pcm16k, rate_out=48000):
    """16-bit PCM WAV (Chromium's fake audio capture reads these)."""
    import wave

    x = np.repeat(np.asarray(pcm16k, np.float32), rate_out // 16000)
    x = np.clip(x * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_out)
        w.writeframes(x.tobytes())
    return path


def timeline(a, b):
    """A deterministic 16 kHz signal: sample i of the session's timeline."""
    i = np.arange(a, b)
    return (0.3 * np.sin(2 * np.pi * 220 * i / 16000) + 0.1 * np.sin(2 * np.pi * 1234 * i / 16000)).astype(np.float32)


def timeline_session(config):
    """A :class:`TimelineSession` for a worker process's start command (``_factory``)."""
    return TimelineSession(config.fps, 10 ** 6)


class TimelineSession:
    """Follows the Session contract (fps, feed_audio, flush, interrupt, next_frame, close): frame k
    carries the samples [round(k*16000/fps), round((k+1)*16000/fps)) of ``timeline``; ``frames``
    frames, then TimeoutError. ``interrupt`` ends the utterance after ``lag`` more frames."""

    def __init__(self, fps, frames, lag=3):
        from chatanyone import Frame
        self.Frame = Frame
        self.fps, self.n, self.k, self.lag = fps, frames, 0, lag
        self.cut = None
        self.closed = False
        self.fed = []

    def _start(self, k):
        return int(round(k * 16000 / self.fps))

    def feed_audio(self, pcm, rate):
        self.fed.append((np.asarray(pcm).size, rate))

    def flush(self):
        pass

    def interrupt(self):
        self.cut = self.k + self.lag

    def next_frame(self, timeout=None):
        if self.closed:
            raise RuntimeError("closed")
        if self.cut is not None and self.k >= self.cut:
            self.cut = None
            return None
        if self.k >= self.n:
            time.sleep(0.01)
            raise TimeoutError
        k = self.k
        self.k += 1
        img = np.full((8, 6, 3), k % 251, np.uint8)
        return self.Frame(image=img, index=k, timestamp=k / self.fps,
                          audio=timeline(self._start(k), self._start(k + 1)))

    def close(self):
        self.closed = True




# ---------------------------------------------------------------------- headless Chromium
def wait_for(pred, timeout, step=0.1):
    """Poll ``pred()`` every ``step`` s until it is truthy or ``timeout`` s pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def chromium_paths():
    """(chromium, chromedriver) executables, or (None, None) where either is missing."""
    import shutil

    c = shutil.which("chromium") or shutil.which("chromium-browser")
    d = shutil.which("chromedriver")
    return (c, d) if c and d else (None, None)


def chromium_driver(mic_wav, *, script_timeout=20):
    """A selenium driver for Debian's headless Chromium whose microphone is ``mic_wav`` (looped by
    Chromium's fake capture) and that may autoplay audio. The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={mic_wav}", "--autoplay-policy=no-user-gesture-required",
              "--disable-features=WebRtcHideLocalIpsWithMdns", "--window-size=1280,800"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_script_timeout(script_timeout)
    return driver


# the displayed video frame's mean colour over its central box (the face): [R, G, B]
GRAB_CENTER_RGB = """
const v = document.getElementById('avatar'); const w = v.videoWidth, h = v.videoHeight;
if (!w || !h) return null;
const c = document.createElement('canvas'); c.width = w; c.height = h;
const g = c.getContext('2d'); g.drawImage(v, 0, 0, w, h);
const x0 = Math.floor(w * 0.3), y0 = Math.floor(h * 0.25), cw = Math.floor(w * 0.4), ch = Math.floor(h * 0.4);
const d = g.getImageData(x0, y0, cw, ch).data; const s = [0, 0, 0];
for (let i = 0; i < d.length; i += 4) { s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
const n = d.length / 4; return [s[0] / n, s[1] / n, s[2] / n];
"""


def media_seconds(r, r0, m0):
    """Stream time between a start (RTP timestamp ``r0`` / media time ``m0``) and the latest frame
    of the page's ``rvfc`` record: from the RTP timestamps (the server's own 90 kHz stream time)
    when the browser gives them, else from ``mediaTime`` (which for WebRTC Chromium derives from
    arrival, so it follows the wall clock)."""
    if r.get("r1") is not None and r0 is not None:
        return (r["r1"] + r.get("rtpWraps", 0) * 2 ** 32 - r0) / 90000.0
    return (r["m1"] - m0) if r.get("m1") is not None and m0 is not None else None


def browser_fps(live):
    """Frame-rate figures of the page's ``window.__live``: presented frames (requestVideoFrameCallback)
    per second of media time and per wall second, and getVideoPlaybackQuality's totals."""
    r = live["rvfc"]
    out = {"presented": r["n"]}
    media = media_seconds(r, r["r0"], r["m0"])
    if r["n"] >= 2 and media:
        out["per_media_s"] = (r["n"] - 1) / media
    if r["n"] >= 2 and r["t1"] > r["t0"]:
        out["per_wall_s"] = 1000.0 * (r["n"] - 1) / (r["t1"] - r["t0"])
    q = live.get("quality")
    if q:
        out["quality_total"], out["quality_dropped"] = q["total"], q["dropped"]
        if media and q["total"] >= 2:
            # frames that reached the video element (decoded; presented or dropped) per second of
            # stream time: what arrives, whether or not a starved compositor showed each one
            out["arrived_per_media_s"] = (q["total"] - 1) / media
    return out


# the page's figures with the element's playback quality read at the same instant
SNAPSHOT = """
const v = document.getElementById('avatar'); const live = window.__live;
if (v.getVideoPlaybackQuality) { const q = v.getVideoPlaybackQuality();
  live.quality = { total: q.totalVideoFrames, dropped: q.droppedVideoFrames, at: performance.now() }; }
return live;
"""
