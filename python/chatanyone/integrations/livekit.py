"""LiveKit Agents avatar integration: a chatanyone :class:`~chatanyone.Session` as the
``VideoGenerator`` of ``livekit.agents.voice.avatar.AvatarRunner``, and a worker entry point.

Install with ``pip install 'chatanyone[livekit]'``. The worker renders from an avatar file made by
``Avatar.save`` (prepare the photo once, anywhere chatanyone's photo preparation is installed): a
running session needs no landmark detector, so this module never imports mediapipe.

How the pieces meet (see README, "LiveKit"):

- the agent process (your ``AgentSession``) sends its TTS audio to the avatar participant with
  ``DataStreamAudioOutput(room, destination_identity=...)``;
- the avatar worker (:func:`run_worker`, ``python -m chatanyone.integrations.livekit``) joins the
  room, receives that audio with ``DataStreamAudioReceiver``, and runs ``AvatarRunner`` over
  :class:`ChatAnyoneVideoGenerator`, which publishes the avatar's video and its audio.

Timeline: one ``rtc.VideoFrame`` per Session frame, each speech frame followed by the
``rtc.AudioFrame`` holding exactly that frame's audio (16 kHz mono, ``16000 / fps`` samples), so
audio and video leave paired on one timeline. Idle frames (no speech) carry no audio frame, so the
agent's playback position counts speech only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time

import numpy as np

from ..session import BRIDGE_MAX_S, BRIDGE_WAIT_S  # noqa: F401  (BRIDGE_MAX_S: re-exported)
from ..spec.presets import PRESET_LONG_SIDE

try:
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator
except ImportError as exc:  # pragma: no cover - exercised where the extra is absent
    raise ImportError("chatanyone.integrations.livekit needs the [livekit] extra: "
                      "pip install 'chatanyone[livekit]'") from exc

log = logging.getLogger("chatanyone")

AUDIO_RATE = 16000   # the Session's own rate: no resampling, exact pairing
# after clear_buffer, a frame slot the Session has not filled BRIDGE_WAIT_S after it (or one period
# after the last frame) gets the last image held, no audio ("bridge" frame; chatanyone.session)
POLL_S = 0.02        # the generator's longest wait for the Session before it looks again


class ChatAnyoneVideoGenerator(VideoGenerator):
    """``VideoGenerator`` over a real-time Session.

    Args:
        session: a :class:`~chatanyone.Session` made with ``SessionConfig(realtime=True)`` (its idle
            motion fills the gaps between utterances). The generator owns it: :meth:`aclose`
            closes it.

    ``push_audio`` never blocks on rendering; iteration (``async for``) waits for rendered frames
    in a worker thread and yields ``rtc.VideoFrame``, ``rtc.AudioFrame`` and ``AudioSegmentEnd``.
    ``clear_buffer`` drops the queued speech: no audio frame of the interrupted utterance is yielded
    after it returns, and an ``AudioSegmentEnd`` is yielded next; with :meth:`attach` it also
    empties the ``AVSynchronizer``'s queues (audio already captured but not played, video not yet
    shown). While the Session renders its cut, the last image is yielded again (bridge frames) so the
    first frame after the interrupt does not wait for it; ``interrupts`` records, per
    ``clear_buffer``, when it came and when the first frame after it was yielded
    (``time.monotonic()``) and how many bridges were yielded.
    """

    def __init__(self, session):
        self.session = session
        self.fps = float(session.fps)
        self._lock = threading.Lock()
        self._in_segment = False     # speech pushed since the last segment end
        self._mute = False           # after clear_buffer: until the Session's cut
        self._end_pending = False    # yield AudioSegmentEnd before the next frame
        self._epoch = 0
        self._closed = False
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatanyone-lk")
        self._av_sync = None
        self._next_index: int | None = None     # next Session frame index to yield
        self._last_video = None                 # the last rtc.VideoFrame yielded
        self._last_yield = 0.0
        self._bridge: dict | None = None        # after clear_buffer: {"at", "left"}
        self.video_frames = 0
        self.audio_frames = 0
        self.bridged = 0                        # bridge frames yielded
        self.discarded = 0                      # Session frames whose slot a bridge took
        self.interrupts: list[dict] = []        # per clear_buffer: {"at", "first_at", "bridged"}
        self.frame_size: tuple[int, int] | None = None   # (width, height) of the last frame

    def attach(self, av_sync) -> None:
        """Let :meth:`clear_buffer` also empty ``av_sync`` (the ``rtc.AVSynchronizer`` the frames
        go to, ``AvatarRunner.av_sync``): up to its queue of captured audio (100 ms in
        ``AvatarRunner``) would otherwise still play after the interrupt."""
        self._av_sync = av_sync

    # ------------------------------------------------------------------ VideoGenerator
    async def push_audio(self, frame) -> None:
        """Queue one ``rtc.AudioFrame`` (any rate, int16, interleaved channels), or end the
        segment with ``AudioSegmentEnd``. Returns at once."""
        if isinstance(frame, AudioSegmentEnd):
            with self._lock:
                speaking = self._in_segment
            if speaking:
                self.session.flush()
            return
        if not isinstance(frame, rtc.AudioFrame):
            raise TypeError(f"push_audio takes rtc.AudioFrame or AudioSegmentEnd, got {type(frame).__name__}")
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels)
        if pcm.size == 0:
            return
        with self._lock:
            self._in_segment = True
            # new speech after clear_buffer: the Session dropped everything of the old one that had
            # not been handed out, so only a frame in flight (older epoch) still needs muting
            self._mute = False
        self.session.feed_audio(pcm, int(frame.sample_rate))

    def clear_buffer(self) -> None:
        """Interrupt: queued speech is dropped (``Session.interrupt``), frames of it still being
        rendered lose their audio, and an ``AudioSegmentEnd`` is yielded next. Non-blocking."""
        now = time.monotonic()
        with self._lock:
            was = self._in_segment
            self._epoch += 1
            self._mute = True
            self._in_segment = False
            if was:
                self._end_pending = True
            self._bridge = {"at": now, "left": max(1, int(round(BRIDGE_MAX_S * self.fps)))}
            self.interrupts.append({"at": now, "first_at": None, "bridged": 0})
            del self.interrupts[:-64]
        try:
            self.session.interrupt()
        except RuntimeError:
            pass
        if self._av_sync is not None:
            try:   # its audio source is emptied when the task runs, at the loop's next turn
                asyncio.get_running_loop().create_task(self._av_sync.clear_queue())
            except RuntimeError:
                pass  # not on the event loop (no running loop): nothing queued to clear from here

    def __aiter__(self):
        return self._frames()

    async def _frames(self):
        loop = asyncio.get_running_loop()
        pending = None      # the worker thread's next_frame call, and the epoch it was made in
        epoch = 0
        try:
            while not self._closed:
                with self._lock:
                    end, self._end_pending = self._end_pending, False
                if end:
                    yield AudioSegmentEnd()
                    continue
                if pending is None:
                    with self._lock:
                        epoch = self._epoch
                    pending = loop.run_in_executor(self._pool, self._next_frame)
                # short waits: a clear_buffer while the Session has no frame for us is seen at once
                deadline = self._bridge_deadline()
                wait_s = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
                done, _ = await asyncio.wait({pending}, timeout=wait_s)
                if not done:
                    if deadline is not None and time.monotonic() >= deadline - 1e-6:
                        yield self._yield_bridge()
                    continue
                fut, pending = pending, None
                try:
                    f = fut.result()
                except RuntimeError:
                    if self._closed:
                        return
                    raise
                if f is _TIMEOUT:
                    continue
                if f is None:                       # the Session ended an utterance
                    with self._lock:
                        was_muted, self._mute = self._mute, False
                        speaking, self._in_segment = self._in_segment, False
                        self._bridge = None
                    if speaking and not was_muted:
                        yield AudioSegmentEnd()
                    continue
                with self._lock:
                    if self._mute and not np.any(np.abs(f.audio) > 1e-6):
                        self._mute = False       # the Session's cut: it eases to idle over silence
                    with_audio = self._in_segment and not self._mute and epoch == self._epoch
                if self._next_index is not None and f.index < self._next_index:
                    self.discarded += 1          # a bridge frame took its slot (silent: see BRIDGE_MAX_S)
                    continue
                self._next_index = f.index + 1
                yield self._mark(self._video_frame(f.image))
                if with_audio:
                    yield self._audio_frame(f.audio)
        finally:
            if pending is not None:
                pending.cancel()

    def _bridge_deadline(self) -> float | None:
        """After clear_buffer: when the next frame slot gets a bridge frame if the Session has not
        filled it; None when no bridge is due (none pending, or none yielded yet to hold)."""
        with self._lock:
            b = self._bridge
            if b is not None and b["left"] <= 0:
                b = self._bridge = None
        if b is None or self._last_video is None or self._next_index is None:
            return None
        return max(b["at"] + BRIDGE_WAIT_S, self._last_yield + 1.0 / self.fps)

    def _yield_bridge(self):
        with self._lock:
            if self._bridge is not None:
                self._bridge["left"] -= 1
            if self.interrupts:
                self.interrupts[-1]["bridged"] += 1
        self.bridged += 1
        self._next_index += 1
        v = self._last_video
        self.video_frames += 1
        return self._mark(rtc.VideoFrame(v.width, v.height, v.type, v.data))

    def _mark(self, video):
        """Bookkeeping of a video frame about to be yielded: the time, and the first one after an
        interrupt."""
        self._last_yield = time.monotonic()
        self._last_video = video
        with self._lock:
            if self.interrupts and self.interrupts[-1]["first_at"] is None:
                self.interrupts[-1]["first_at"] = self._last_yield
        return video

    def _next_frame(self):
        try:
            return self.session.next_frame(timeout=0.2)
        except TimeoutError:
            return _TIMEOUT

    # ------------------------------------------------------------------ conversions
    def _video_frame(self, image: np.ndarray):
        img = np.asarray(image)
        h, w = img.shape[:2]
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[..., :3] = img
        rgba[..., 3] = 255
        self.video_frames += 1
        self.frame_size = (w, h)
        return rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, rgba.tobytes())

    def _audio_frame(self, audio16k: np.ndarray):
        a = np.clip(np.round(np.asarray(audio16k, np.float32) * 32767.0), -32768, 32767).astype(np.int16)
        self.audio_frames += 1
        return rtc.AudioFrame(a.tobytes(), AUDIO_RATE, 1, a.size)

    async def aclose(self) -> None:
        """Close the Session and the worker thread."""
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self.session.close)
        self._pool.shutdown(wait=False, cancel_futures=True)


_TIMEOUT = object()


def avatar_options(session):
    """``AvatarOptions`` matching a Session's frames (``Session.frame_size``)."""
    from livekit.agents.voice.avatar import AvatarOptions

    w, h = (int(v) for v in session.frame_size)
    return AvatarOptions(video_width=w, video_height=h, video_fps=float(session.fps),
                         audio_sample_rate=AUDIO_RATE, audio_channels=1)


def make_session(avatar_path: str, *, preset: str = "fast", fps: float = 25.0):
    """A real-time Session on an avatar file written by ``Avatar.save`` (no landmark detector)."""
    from .. import Avatar, Session, SessionConfig

    avatar = Avatar.load(avatar_path)
    return Session(avatar, SessionConfig(preset=preset, fps=fps, realtime=True, max_ahead_frames=8))


async def run_worker(room, avatar_path: str, *, preset: str = "fast", fps: float = 25.0,
                     sender_identity: str | None = None) -> None:
    """Run the avatar in a connected ``rtc.Room`` until the room closes: ``DataStreamAudioReceiver``
    (the agent's speech) -> :class:`ChatAnyoneVideoGenerator` -> ``AvatarRunner`` (publishes video
    and audio). Blocks (awaits) for the room's lifetime."""
    from livekit.agents.voice.avatar import AvatarRunner, DataStreamAudioReceiver

    loop = asyncio.get_running_loop()
    session = await loop.run_in_executor(None, lambda: make_session(avatar_path, preset=preset, fps=fps))
    gen = ChatAnyoneVideoGenerator(session)
    runner = AvatarRunner(room, audio_recv=DataStreamAudioReceiver(room, sender_identity=sender_identity),
                          video_gen=gen, options=avatar_options(session))
    gen.attach(runner.av_sync)     # clear_buffer also drops the audio and video it has queued
    try:
        await runner.start()
        await runner.wait_for_complete()
    finally:
        await runner.aclose()
        await gen.aclose()


async def _connect_and_run(url: str, token: str, avatar_path: str, preset: str) -> None:
    room = rtc.Room()
    await room.connect(url, token)
    log.info("chatanyone avatar worker joined room %s", room.name)
    try:
        await run_worker(room, avatar_path, preset=preset)
    finally:
        await room.disconnect()


# ---------------------------------------------------------------------- agent dispatch
DEFAULT_AGENT_NAME = "chatanyone-avatar"
_ENV_AVATAR, _ENV_PRESET = "CHATANYONE_LK_AVATAR", "CHATANYONE_LK_PRESET"


def job_metadata(raw) -> dict:
    """The dispatch's metadata as a dict: JSON ``{"sender": "<agent identity>"}`` (optional) names
    the participant whose speech the avatar plays; anything else (empty, not JSON, not an object)
    gives ``{}``, and the avatar plays whichever participant sends it speech."""
    import json

    if not raw:
        return {}
    try:
        m = json.loads(raw)
    except (TypeError, ValueError):
        log.warning("chatanyone avatar: job metadata is not JSON, ignored")
        return {}
    return m if isinstance(m, dict) else {}


async def dispatch_entrypoint(ctx) -> None:
    """``entrypoint_fnc`` of a dispatched avatar job (``livekit.agents.JobContext``): join the room
    and run the avatar until it ends. Module-level (the job runs in its own process, which finds it
    by name); the avatar file and preset come from the environment :func:`worker_options` set."""
    import os

    meta = job_metadata(getattr(ctx.job, "metadata", ""))
    sender = meta.get("sender") if isinstance(meta.get("sender"), str) else None
    await ctx.connect()
    log.info("chatanyone avatar job in room %s (speech from %s)", ctx.room.name, sender or "any participant")
    await run_worker(ctx.room, os.environ[_ENV_AVATAR], preset=os.environ.get(_ENV_PRESET, "fast"),
                     sender_identity=sender)


def worker_options(avatar_path: str, *, capacity: int, agent_name: str = DEFAULT_AGENT_NAME,
                   preset: str = "fast"):
    """``livekit.agents.WorkerOptions`` for running the avatar under LiveKit's agent dispatch.

    The worker registers with the server as ``agent_name`` (explicit dispatch: the agent asks for
    it with ``CreateAgentDispatchRequest(agent_name=..., room=..., metadata='{"sender": ...}')``);
    livekit-agents runs each job in its own process, so jobs use the cores side by side. The
    worker reports its load as ``running jobs / capacity`` with the threshold half a job below 1,
    so the server sends it at most ``capacity`` rooms (measure it with ``chatanyone serve``'s
    capacity figure) and the next room to another machine. Sets the environment variables the job
    processes read (the avatar file, the preset)."""
    import os

    from livekit.agents import WorkerOptions

    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
    if preset not in PRESET_LONG_SIDE:
        raise ValueError(f"preset must be one of {list(PRESET_LONG_SIDE)}, got {preset!r}")
    if not agent_name or not isinstance(agent_name, str):
        raise ValueError("agent_name must be a non-empty str")
    os.environ[_ENV_AVATAR] = os.path.abspath(os.fspath(avatar_path))
    os.environ[_ENV_PRESET] = preset

    def load(server) -> float:
        return len(server.active_jobs) / capacity

    return WorkerOptions(entrypoint_fnc=dispatch_entrypoint, agent_name=agent_name, load_fnc=load,
                         load_threshold=1.0 - 0.5 / capacity)


def main(argv=None) -> int:
    """Run the avatar in LiveKit rooms. Two ways:

    - ``--url wss://... --token ... --avatar me.avatar.npz``: join one room as the avatar
      participant (the token names it) and run until the room ends;
    - ``--avatar me.avatar.npz --dispatch [--agent-name N] [--capacity K] start``: register with the
      server (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``) as a dispatchable agent
      and take up to K rooms at once; the words after the options go to livekit-agents' own command
      line (``start``, ``dev``)."""
    import argparse
    import os
    import sys

    p = argparse.ArgumentParser(prog="python -m chatanyone.integrations.livekit", description=main.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("LIVEKIT_URL"), help="LiveKit server URL (or $LIVEKIT_URL)")
    p.add_argument("--token", default=os.environ.get("LIVEKIT_TOKEN"),
                   help="access token for the avatar participant (or $LIVEKIT_TOKEN)")
    p.add_argument("--avatar", required=True, help="avatar file written by Avatar.save")
    p.add_argument("--preset", choices=list(PRESET_LONG_SIDE), default="fast")
    p.add_argument("--dispatch", action="store_true", help="run as a dispatchable agent worker")
    p.add_argument("--agent-name", default=DEFAULT_AGENT_NAME, help="name the agent dispatches (--dispatch)")
    p.add_argument("--capacity", type=int, default=None,
                   help="rooms at once (--dispatch; default: measured on this machine at start)")
    args, rest = p.parse_known_args(argv)
    if not os.path.exists(args.avatar):
        p.error(f"no such avatar file: {args.avatar}")
    logging.basicConfig(level=logging.INFO)
    if args.dispatch:
        from livekit.agents import cli

        cap = args.capacity
        if cap is None:
            from .. import Avatar
            from ..serve.capacity import measure_capacity
            cap, fig = measure_capacity(Avatar.load(args.avatar), preset=args.preset)
            log.info("measured: %.1f ms CPU per frame (+ %.1f ms VP8): up to %d rooms at once",
                     1000 * fig["cpu_per_frame"], 1000 * fig["encode_cpu_per_frame"], cap)
        elif cap < 1:
            p.error(f"--capacity must be >= 1, got {cap}")
        opts = worker_options(args.avatar, capacity=cap, agent_name=args.agent_name, preset=args.preset)
        sys.argv = [sys.argv[0]] + (rest or ["start"])
        cli.run_app(opts)
        return 0
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if not args.url or not args.token:
        p.error("--url and --token (or LIVEKIT_URL and LIVEKIT_TOKEN) are required")
    asyncio.run(_connect_and_run(args.url, args.token, args.avatar, args.preset))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
