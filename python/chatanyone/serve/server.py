"""The ``chatanyone serve`` web server: one page, a small JSON API, WebRTC by aiortc.

Routes (no route maps a request to a file; the page is read once from the package):

- ``GET /``                              the page
- ``GET /api/info``                      capacity, sessions in use, preset
- ``POST /api/avatar``                   a photo (body: PNG/JPEG bytes) -> ``{"avatar": id}``
- ``POST /api/offer``                    ``{"sdp", "type", "avatar"}`` -> SDP answer, or 503 busy
- ``POST /api/session/{id}/speech``      an audio file (body bytes) spoken in place of the mic
- ``POST /api/session/{id}/interrupt``   barge-in (the page also sends it on the data channel)
- ``DELETE /api/session/{id}``           end a session

Cross-origin requests are refused (403): a state-changing request whose ``Origin`` is not this
server's own, or that a browser marks ``Sec-Fetch-Site: cross-site``/``same-site``.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from aiohttp import web

from . import uploads
from .live import LiveStream, release_memory
from .rtc import AvatarOutput, audio_frame_to_mono

log = logging.getLogger("chatanyone")

MAX_AVATARS = 16          # uploaded avatars kept (least recently used dropped)
MAX_BODY = max(uploads.MAX_IMAGE_BYTES, uploads.MAX_AUDIO_BYTES) + 4096
MAX_SDP = 64 * 1024


@dataclass
class ServeOptions:
    """Options of a server. ``capacity``: live sessions admitted at once (the next gets "busy");
    ``idle_timeout_s``: a session with no speech and no user action for this long is closed."""
    capacity: int = 1
    preset: str = "fast"
    idle_timeout_s: float = 300.0
    fps: float = 25.0
    intra_op_threads: int = 1
    session_factory: object = None       # (avatar) -> Session, run in this process (tests)
    prepare_builtin: bool = True         # prepare the built-in avatar at start-up
    # each session's Session runs in its own worker process (spawned; one spare kept started), so
    # sessions use the cores side by side; False: in this process (one interpreter lock for all)
    workers: bool = True
    spare_workers: int = 1
    # native threads per session worker; 0: usable cores / (2 * capacity), at least 1
    worker_threads: int = 0
    extra: dict = field(default_factory=dict)


class _Live:
    """One admitted client: peer connection, stream, tracks."""

    def __init__(self, sid, pc, stream, out):
        self.sid, self.pc, self.stream, self.out = sid, pc, stream, out
        self.channel = None
        self.tasks: list[asyncio.Task] = []
        self.closed = False
        self.close_reason = None


class _Closed:
    """What a closed session keeps of its stream: the figures, not the Session."""

    def __init__(self, stream):
        self.failed = stream.failed
        self.last_activity = stream.last_activity
        self.interrupts = stream.interrupts
        self._stats = stream.stats()

    def stats(self):
        return self._stats


class LiveServer:
    """Holds the sessions, avatars and admission state of one ``chatanyone serve``."""

    def __init__(self, options: ServeOptions | None = None):
        self.opt = options or ServeOptions()
        if isinstance(self.opt.capacity, bool) or not isinstance(self.opt.capacity, int) or self.opt.capacity < 0:
            raise ValueError(f"capacity must be an int >= 0, got {self.opt.capacity!r}")
        self.sessions: dict[str, _Live] = {}
        self._reserved = 0
        self.avatars: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._builtin = None
        self._builtin_lock = asyncio.Lock()
        self._prepare_lock = asyncio.Lock()
        self.closing = False
        self.refused_busy = 0
        self._reaper: asyncio.Task | None = None
        self.pool = None                 # WorkerPool, started with the server
        self._files = None               # private folder of the avatar files workers load
        self._avatar_files: dict[str, str] = {}
        self._page = (resources.files(__package__) / "page.html").read_text(encoding="utf-8")

    # ------------------------------------------------------------------ app
    def app(self):

        app = web.Application(middlewares=[_origin_guard], client_max_size=MAX_BODY)
        app["live"] = self
        app.router.add_get("/", self.h_page)
        app.router.add_get("/api/info", self.h_info)
        app.router.add_post("/api/avatar", self.h_avatar)
        app.router.add_post("/api/offer", self.h_offer)
        app.router.add_post("/api/session/{sid}/speech", self.h_speech)
        app.router.add_post("/api/session/{sid}/interrupt", self.h_interrupt)
        app.router.add_delete("/api/session/{sid}", self.h_delete)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def worker_threads(self) -> int:
        """Native threads of each session worker: as given, else half the usable cores shared by
        the sessions, at least 1 (ONNX Runtime runs one thread per network in every case). One
        fast-preset frame fits one core's time (~17 ms of a 40 ms frame), and a second thread cost
        more CPU per frame than it saved (measured on the loaded 2-core VM: 22-27 ms in-process,
        ~22 ms + 2 ms in a 1-thread worker, ~28 ms + 2 ms with 2 threads), so on small machines a
        worker gets one; the other half of the cores is left for encoding and the event loop."""
        if self.opt.worker_threads:
            return int(self.opt.worker_threads)
        from .capacity import usable_cores
        return max(1, usable_cores() // (2 * max(1, self.opt.capacity)))

    async def _on_startup(self, app):
        loop = asyncio.get_running_loop()
        self._reaper = loop.create_task(self._reap())
        workers = self.opt.workers and self.opt.session_factory is None
        if workers:
            self._files = tempfile.mkdtemp(prefix="chatanyone-serve-")   # mode 0700, server-made
        if self.opt.prepare_builtin:   # prepared once, before the first client waits for it
            av = await self._avatar("builtin")
            warm = await loop.run_in_executor(None, self._avatar_file, av, "builtin") if workers else None
        else:
            warm = None
        if workers:
            from .worker import WorkerPool
            spare = min(self.opt.spare_workers, self.opt.capacity)
            self.pool = await loop.run_in_executor(
                None, lambda: WorkerPool(threads=self.worker_threads(), spare=spare, warm_avatar=warm))

    async def _on_shutdown(self, app):
        await self.shutdown()

    async def shutdown(self) -> None:
        """Graceful: refuse new sessions, tell each client, close every session."""
        self.closing = True
        if self._reaper:
            self._reaper.cancel()
        await asyncio.gather(*(self.close_session(s, "shutdown") for s in list(self.sessions.values())),
                             return_exceptions=True)
        if self.pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.pool.close)
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)
            self._files = None

    # ------------------------------------------------------------------ handlers
    async def h_page(self, request):
        return web.Response(text=self._page, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                     "style-src 'unsafe-inline'; media-src 'self' blob:; img-src 'self' blob: data:",
                                     "X-Frame-Options": "DENY"})

    async def h_info(self, request):
        return web.json_response({"capacity": self.opt.capacity, "active": len(self.sessions),
                                  "preset": self.opt.preset, "fps": self.opt.fps,
                                  "refused_busy": self.refused_busy,
                                  "idle_timeout_s": self.opt.idle_timeout_s})

    async def h_avatar(self, request):
        ctype = request.content_type
        if ctype not in ("image/png", "image/jpeg"):
            return _error(415, f"Content-Type must be image/png or image/jpeg, got {ctype!r}")
        if request.content_length is not None and request.content_length > uploads.MAX_IMAGE_BYTES:
            return _error(413, f"the photo is larger than {uploads.MAX_IMAGE_BYTES // 1_000_000} MB")
        data = await _read_limited(request, uploads.MAX_IMAGE_BYTES)
        if data is None:
            return _error(413, f"the photo is larger than {uploads.MAX_IMAGE_BYTES // 1_000_000} MB")
        try:
            kind = uploads.sniff_image(data)
            if ("image/" + kind) != ctype:
                raise uploads.UploadError(f"Content-Type {ctype} does not match the content ({kind})", 415)
            rgb = uploads.decode_image(data)
        except uploads.UploadError as exc:
            return _error(exc.status, str(exc))
        from ..avatar import Avatar, AvatarError
        loop = asyncio.get_running_loop()
        try:
            async with self._prepare_lock:   # one preparation at a time: live sessions keep the CPU
                av = await loop.run_in_executor(None, lambda: Avatar.prepare(rgb, name="upload"))
        except AvatarError as exc:
            return _error(422, str(exc))
        token = secrets.token_urlsafe(12)
        self.avatars[token] = av
        while len(self.avatars) > MAX_AVATARS:
            old, _ = self.avatars.popitem(last=False)
            path = self._avatar_files.pop(old, None)
            if path is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        return web.json_response({"avatar": token, "width": int(rgb.shape[1]), "height": int(rgb.shape[0])})

    async def h_offer(self, request):
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        raw = await _read_limited(request, MAX_SDP)
        if raw is None:
            return _error(413, "offer too large")
        try:
            body = json.loads(raw)
            sdp, typ, which = body["sdp"], body["type"], body.get("avatar", "builtin")
            if not isinstance(sdp, str) or typ != "offer" or not isinstance(which, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _error(400, "expected JSON {sdp: str, type: 'offer', avatar: 'builtin' or an id}")
        if self.closing:
            return _error(503, "the server is shutting down", busy=True)
        if len(self.sessions) + self._reserved >= self.opt.capacity:
            self.refused_busy += 1
            return _error(503, f"busy: all {self.opt.capacity} live sessions of this server are in use; "
                          "try again later", busy=True)
        self._reserved += 1          # held until the session is in self.sessions (or failed)
        slot = {"held": True}
        try:
            avatar = await self._avatar(which)
            if avatar is None:
                return _error(404, "unknown avatar id (upload the photo again)")
            live = await self._start(avatar, sdp, typ, slot, which)
        except Exception as exc:  # noqa: BLE001 - one failing start must not take the server down
            log.exception("live: could not start a session")
            return _error(500, f"could not start the session: {exc}")
        finally:
            if slot["held"]:
                self._reserved -= 1
        desc = live.pc.localDescription
        return web.json_response({"sdp": desc.sdp, "type": desc.type, "session": live.sid,
                                  "mouth": _mouth_box(avatar)})

    async def h_speech(self, request):
        live = self.sessions.get(request.match_info["sid"])
        if live is None:
            return _error(404, "no such session")
        ctype = request.content_type
        if not ctype.startswith("audio/") and ctype != "application/octet-stream":
            return _error(415, f"Content-Type must be audio/*, got {ctype!r}")
        data = await _read_limited(request, uploads.MAX_AUDIO_BYTES)
        if data is None:
            return _error(413, f"the audio file is larger than {uploads.MAX_AUDIO_BYTES // 1_000_000} MB")
        loop = asyncio.get_running_loop()
        try:
            pcm = await loop.run_in_executor(None, uploads.decode_audio, data)
        except uploads.UploadError as exc:
            return _error(exc.status, str(exc))
        seconds = live.stream.play(pcm)
        return web.json_response({"seconds": round(seconds, 3)})

    async def h_interrupt(self, request):
        live = self.sessions.get(request.match_info["sid"])
        if live is None:
            return _error(404, "no such session")
        self.interrupt(live, "button")
        return web.json_response({"ok": True})

    async def h_delete(self, request):
        live = self.sessions.get(request.match_info["sid"])
        if live is None:
            return _error(404, "no such session")
        await self.close_session(live, "client")
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ sessions
    async def _avatar(self, which: str):
        if which == "builtin":
            async with self._builtin_lock:
                if self._builtin is None:
                    loop = asyncio.get_running_loop()
                    self._builtin = await loop.run_in_executor(None, builtin_avatar)
            return self._builtin
        av = self.avatars.get(which)
        if av is not None:
            self.avatars.move_to_end(which)
        return av

    def _avatar_file(self, avatar, which: str) -> str:
        """The avatar as a file a worker loads (``Avatar.save``: arrays, no pickle), written once
        per avatar into the server's private folder under a server-made name. Blocks (~0.1 s)."""
        path = self._avatar_files.get(which)
        if path is None or not os.path.exists(path):
            name = "builtin" if which == "builtin" else secrets.token_hex(8)
            path = os.path.join(self._files, name + ".npz")
            avatar.save(path)
            self._avatar_files[which] = path
        return path

    def _make_session(self, avatar, which: str = "builtin"):
        """A real-time Session for ``avatar``: in a worker process (``opt.workers``) or here.
        Blocks until it is built."""
        if self.opt.session_factory is not None:
            return self.opt.session_factory(avatar)
        from .. import Session, SessionConfig
        cfg = SessionConfig(preset=self.opt.preset, fps=self.opt.fps, realtime=True, max_ahead_frames=8,
                            intra_op_threads=self.opt.intra_op_threads)
        if self.pool is None:
            return Session(avatar, cfg)
        from .worker import ProcessSession
        path = self._avatar_file(avatar, which)
        # spares only for free slots: this session and those running or starting hold theirs
        free = self.opt.capacity - len(self.sessions) - self._reserved
        return ProcessSession(self.pool.take(refill=free), path, cfg)

    async def _start(self, avatar, sdp: str, typ: str, slot: dict, which: str = "builtin") -> _Live:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        loop = asyncio.get_running_loop()
        session = await loop.run_in_executor(None, self._make_session, avatar, which)
        sid = secrets.token_urlsafe(12)
        out = AvatarOutput(loop, session.fps)
        live_box: list[_Live] = []

        def on_event(ev):
            loop.call_soon_threadsafe(self._on_stream_event, live_box[0], ev)

        # every interrupt (button, or speech barging in on the microphone, which feed_mic detects
        # on this loop) also silences the audio already queued for the sender and drops the
        # video frames still waiting for the encoder
        stream = LiveStream(session, out.deliver, on_event, on_interrupt=out.interrupt)
        pc = RTCPeerConnection()
        live = _Live(sid, pc, stream, out)
        live_box.append(live)
        self.sessions[sid] = live     # counted here from now on: the reservation ends
        if slot["held"]:
            slot["held"] = False
            self._reserved -= 1

        @pc.on("datachannel")
        def on_dc(channel):
            live.channel = channel

            @channel.on("message")
            def on_msg(msg):
                self._on_message(live, msg)

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio":
                live.tasks.append(loop.create_task(self._read_mic(live, track)))

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                await self.close_session(live, "disconnected")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=typ))
            pc.addTrack(out.video)
            pc.addTrack(out.audio)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.close_session(live, "bad offer")
            raise
        live.tasks.append(loop.create_task(self._send_stats(live)))
        log.info("live: session %s started (%d/%d)", sid, len(self.sessions), self.opt.capacity)
        return live

    async def _read_mic(self, live: _Live, track) -> None:
        from aiortc.mediastreams import MediaStreamError
        try:
            while not live.closed:
                frame = await track.recv()
                pcm, rate = audio_frame_to_mono(frame)
                try:
                    live.stream.feed_mic(pcm, rate)
                except RuntimeError:
                    break  # session closed
        except MediaStreamError:
            pass

    def _on_message(self, live: _Live, msg) -> None:
        if not isinstance(msg, str) or len(msg) > 4096:
            return
        try:
            m = json.loads(msg)
        except ValueError:
            return
        if not isinstance(m, dict):
            return
        if m.get("type") == "interrupt":
            self.interrupt(live, "button")
        elif m.get("type") == "ping":
            self._send(live, {"type": "pong", "t": m.get("t")})

    def interrupt(self, live: _Live, reason: str) -> None:
        live.stream.interrupt(reason=reason)     # its on_interrupt clears the queued audio

    def _on_stream_event(self, live: _Live, ev: dict) -> None:
        if live.closed:
            return
        if ev.get("type") == "failed":
            asyncio.get_running_loop().create_task(self.close_session(live, "failed"))
            return
        if ev.get("type") == "interrupted" and ev.get("first_index") is not None:
            # when the first frame after the interrupt had left: encoded and its packets sent
            t = live.out.sent_at(ev["first_index"])
            ev["sent_ms"] = None if t is None else round(1000 * (t - ev["received_at"]), 1)
        ev = {k: v for k, v in ev.items() if k != "received_at"}
        self._send(live, ev)

    def _send(self, live: _Live, obj: dict) -> None:
        ch = live.channel
        if ch is not None and ch.readyState == "open":
            try:
                ch.send(json.dumps(obj))
            except Exception:  # noqa: BLE001
                pass

    async def _send_stats(self, live: _Live) -> None:
        while not live.closed:
            await asyncio.sleep(1.0)
            st = live.stream.stats()
            st["session"] = live.sid
            st["video_sent"] = live.out.video_sent
            st["audio_sent"] = live.out.audio_sent
            self._send(live, st)

    async def close_session(self, live: _Live, reason: str) -> None:
        """Close one session and free it; the others are not touched. Idempotent."""
        if live.closed:
            return
        live.closed = True
        live.close_reason = reason
        self._send(live, {"type": "closed", "reason": reason})
        self.sessions.pop(live.sid, None)
        live.out.end()
        for t in live.tasks:
            if t is not asyncio.current_task():
                t.cancel()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, live.stream.close)
        try:
            await live.pc.close()
        except Exception:  # noqa: BLE001
            pass
        live.stream = _Closed(live.stream)   # drop the Session's memory now, not at the next GC
        await loop.run_in_executor(None, release_memory)
        if self.pool is not None and not self.closing:   # a slot is free again: keep a spare for it
            free = self.opt.capacity - len(self.sessions) - self._reserved
            await loop.run_in_executor(None, self.pool.fill, free)
        log.info("live: session %s closed (%s)", live.sid, reason)

    async def _reap(self) -> None:
        """Close idle, failed and disconnected sessions (every 0.5 s)."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for live in list(self.sessions.values()):
                try:
                    if live.stream.failed is not None:
                        await self.close_session(live, "failed")
                    elif now - live.stream.last_activity > self.opt.idle_timeout_s:
                        await self.close_session(live, "idle")
                except Exception:  # noqa: BLE001 - the reaper must outlive any one session
                    log.exception("live: closing session %s failed", live.sid)


def builtin_avatar():
    """The built-in avatar (the package's default portrait), prepared once per process."""
    from ..avatar import Avatar
    from ..assets import default_avatar_image
    return Avatar.prepare(default_avatar_image(), name="builtin")


def _mouth_box(avatar) -> list[float] | None:
    """The mouth's box ``[x0, y0, x1, y1]`` as fractions of the frame (0..1), from the avatar's
    face-mesh lip points (normalized coordinates of its crop ``box``, -1..1), mapped through the
    photo to the animated ``region`` the frames show (or the crop itself for avatars without one);
    for the page's mouth meter and tests. None if unknown."""
    try:
        lips = (np.asarray(avatar.face, np.float64)[[61, 291, 0, 17, 13, 14], :2] + 1.0) / 2.0
        region = getattr(avatar, "region", None)
        if region is not None:
            bx, by, bw, bh = np.asarray(avatar.box, np.float64)
            rx0, ry0, rx1, ry1 = np.asarray(region, np.float64)
            lips = np.stack([(bx + lips[:, 0] * bw - rx0) / (rx1 - rx0),
                             (by + lips[:, 1] * bh - ry0) / (ry1 - ry0)], axis=1)
        x0, y0 = lips.min(0)
        x1, y1 = lips.max(0)
        pad_x, pad_y = 0.3 * (x1 - x0), 0.6 * (y1 - y0) + 0.01
        box = np.clip([x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y], 0.0, 1.0)
        return [round(float(v), 4) for v in box]
    except Exception:  # noqa: BLE001
        return None


def _error(status: int, message: str, busy: bool = False):
    body = {"error": "busy" if busy else "error", "message": message}
    resp = web.json_response(body, status=status)
    if status == 413:
        resp.force_close()   # the unread rest of an oversize body is not waited for
    return resp


async def _read_limited(request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes (nothing more is read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    buf = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > limit:
            return None
    return bytes(buf)


@web.middleware
async def _origin_guard(request, handler):
    """Refuse cross-origin state-changing requests (no CORS: the page is same-origin)."""
    if request.method not in ("GET", "HEAD"):
        origin = request.headers.get("Origin")
        site = request.headers.get("Sec-Fetch-Site")
        own = f"{request.scheme}://{request.host}"
        if (origin is not None and origin != own) or site in ("cross-site", "same-site"):
            return _error(403, "cross-origin requests are refused")
    return await handler(request)


async def run_server(options: ServeOptions, host: str = "127.0.0.1", port: int = 8000, *,
                     ready=None, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or the task is cancelled), then shut down gracefully.

    ``ready(url)`` is called once the socket listens. Blocks (awaits) for the server's lifetime.
    """
    server = LiveServer(options)
    runner = web.AppRunner(server.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port_bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port
    url = f"http://{host if ':' not in host else '[' + host + ']'}:{port_bound}/"
    log.info("chatanyone serve: %s (capacity %d live sessions)", url, options.capacity)
    if ready is not None:
        ready(url, server)
    try:
        if stop is None:
            await asyncio.Event().wait()
        else:
            await stop.wait()
    finally:
        await runner.cleanup()
