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


