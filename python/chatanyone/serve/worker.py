"""A live Session in its own worker process, so that sessions use the machine's cores side by side
(sessions of one process share one interpreter lock and one set of pools: measured, two of them
ran at 0.5x real time each on two cores).

:class:`ProcessSession` follows the Session contract that :class:`~chatanyone.serve.live.LiveStream`
uses (``fps``, ``frame_size``, ``feed_audio``, ``flush``, ``interrupt``, ``next_frame``, ``close``)
and runs the real :class:`~chatanyone.Session` in a child process: a fresh interpreter
(``python -m chatanyone.serve.worker``, spawned, not forked: no copy of the server's threads or
sockets; and unlike ``multiprocessing``'s spawn it never re-imports the caller's ``__main__``, so
a script that starts the server needs no ``if __name__ == "__main__"`` guard). :class:`WorkerPool` keeps a spare child started ahead (its imports done), so that a
new session does not wait for Python and ONNX Runtime to load.

Wire format (no pickle: fixed binary headers and raw array bytes over two one-way pipes; the frame
pipe widened to hold a whole frame):

- parent -> child: ``S`` + JSON ``{"avatar": path, "config": {...}, "factory": null}`` (start;
  the tests name a ``module:function`` factory of a simulated session there), ``F`` + rate u32 +
  float32 samples (feed), ``L`` (flush), ``I`` + epoch u32 (interrupt), ``Q`` (quit);
- child -> parent: ``U`` (imports done), ``R`` + JSON ``{"fps", "frame_size", "pid"}`` (session
  ready), ``V`` + header + RGB bytes + float32 audio (a frame), ``E`` + epoch (end of an utterance),
  ``X`` + UTF-8 message (the session failed).

Isolation: a child that crashes, hangs or is killed fails its own session only (the parent sees
end-of-file or no frame for ``STALL_S``); closing a session ends its process, which frees all of
its memory. Commands go through a bounded queue and a sender thread, so a stuck child never blocks
the server's event loop.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

log = logging.getLogger("chatanyone")

STALL_S = 10.0              # a started child that sends nothing this long has failed
START_TIMEOUT_S = 120.0     # the child's imports plus the Session's models, on a loaded machine
CMD_QUEUE = 400             # commands queued for a child (8 s of 20 ms microphone chunks)
_FRAME_HDR = struct.Struct("<qdIIIII")   # index, timestamp, epoch, height, width, channels, audio n


def _send_json(conn, tag: bytes, obj: dict) -> None:
    conn.send_bytes(tag + json.dumps(obj).encode("utf-8"))


# ---------------------------------------------------------------------------------- child side
def _warm(warm_avatar: str | None) -> None:
    """Load what every session loads (native kernels, ONNX Runtime, the motion models, the
    renderer's first-use set-up) while the child is a spare: measured, a Session then starts in
    0.2 s instead of 1.3 s. Built and dropped; failures are left to the real start to report."""
    try:
        from .. import SessionConfig
        from ..pipeline import Pipeline
        if warm_avatar:
            from ..avatar import Avatar
            Pipeline(Avatar.load(warm_avatar), SessionConfig())
        else:
            from ..motion import MotionGenerator
            MotionGenerator()
    except Exception as exc:  # noqa: BLE001
        log.debug("worker warm-up failed: %s", exc)


def _child_main(cmd_conn, out_conn, threads: int, warm_avatar: str | None = None) -> None:
    """The worker process: import and warm up, wait for a start command, run one Session until
    told to quit (or the parent goes away: end-of-file on the command pipe)."""
    os.environ["CHATANYONE_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from .. import Session, SessionConfig
        from ..avatar import Avatar
        from .. import ops
        import onnxruntime  # noqa: F401 - loaded while the child is a spare, not when a client waits
        from ..pipeline import Pipeline  # noqa: F401
        try:
            ops.set_num_threads(threads)
        except Exception:  # noqa: BLE001 - no native pool on this build: nothing to size
            pass
        _warm(warm_avatar)
        out_conn.send_bytes(b"U")
        msg = cmd_conn.recv_bytes()
        if msg[:1] != b"S":
            return
        start = json.loads(msg[1:].decode("utf-8"))
        cfg = SessionConfig(**start["config"])
        if start.get("factory"):    # tests: "module:function(config)" makes a Session-like object
            import importlib
            mod, fn = start["factory"].split(":")
            session = getattr(importlib.import_module(mod), fn)(cfg)
        else:
            session = Session(Avatar.load(start["avatar"]), cfg)
    except EOFError:
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails this session
        try:
            out_conn.send_bytes(b"X" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        except OSError:
            pass
        return
    state = {"epoch": 0}
    stop = threading.Event()

    def pump():
        try:
            while not stop.is_set():
                try:
                    f = session.next_frame(timeout=0.25)
                except TimeoutError:
                    continue
                ep = state["epoch"]
                if f is None:
                    out_conn.send_bytes(b"E" + struct.pack("<I", ep))
                    continue
                img = np.ascontiguousarray(f.image, dtype=np.uint8)
                aud = np.ascontiguousarray(f.audio, dtype=np.float32)
                h, w = img.shape[:2]
                c = img.shape[2] if img.ndim == 3 else 1
                out_conn.send_bytes(b"V" + _FRAME_HDR.pack(int(f.index), float(f.timestamp), ep, h, w, c, aud.size)
                                    + img.tobytes() + aud.tobytes())
        except (OSError, EOFError):
            stop.set()          # the parent went away
        except BaseException as exc:  # noqa: BLE001
            if not stop.is_set():
                try:
                    out_conn.send_bytes(b"X" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
                except OSError:
                    pass
            stop.set()

    _send_json(out_conn, b"R", {"fps": session.fps, "frame_size": list(getattr(session, "frame_size", None) or ()),
                                "pid": os.getpid()})
    t = threading.Thread(target=pump, name="chatanyone-worker-pump", daemon=True)
    t.start()
    try:
        while not stop.is_set():
            if not cmd_conn.poll(0.25):
                continue
            msg = cmd_conn.recv_bytes()
            tag = msg[:1]
            if tag == b"F":
                (rate,) = struct.unpack_from("<I", msg, 1)
                session.feed_audio(np.frombuffer(msg, np.float32, offset=5), rate)
            elif tag == b"L":
                session.flush()
            elif tag == b"I":
                (ep,) = struct.unpack_from("<I", msg, 1)
                session.interrupt()
                state["epoch"] = ep     # frames handed out from here on come after the cut
            elif tag == b"Q":
                break
    except (EOFError, OSError):
        pass
    except BaseException as exc:  # noqa: BLE001
        try:
            out_conn.send_bytes(b"X" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        except OSError:
            pass
    finally:
        stop.set()
        session.close()
        t.join(2.0)


# ---------------------------------------------------------------------------------- parent side
def _widen_pipe(fd: int) -> None:
    """Let the frame pipe hold a whole frame (Linux ``F_SETPIPE_SZ``, up to ``pipe-max-size``,
    1 MB by default; a fast-preset frame is ~0.7 MB): the child writes a frame in one go instead of
    64 KB pieces, each a wake-up of both processes, which a loaded machine makes slow. Best-effort."""
    try:
        import fcntl
        with open("/proc/sys/fs/pipe-max-size") as f:
            size = min(int(f.read()), 4 << 20)
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ValueError, ImportError):
        pass


class _Proc:
    """The bits of a child process the parent uses (``is_alive``, ``exitcode``, ``join``, ``kill``)."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self):
        return self.popen.poll()

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()


class Worker:
    """One spawned child with its pipes; imports running or done, no session yet."""

    def __init__(self, threads: int, warm_avatar: str | None = None):
        self.threads = int(threads)
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            popen = subprocess.Popen([sys.executable, "-m", "chatanyone.serve.worker", str(cmd_r), str(out_w),
                                      str(self.threads)] + ([warm_avatar] if warm_avatar else []),
                                     pass_fds=(cmd_r, out_w), stdin=subprocess.DEVNULL, close_fds=True)
        except BaseException:
            for fd in (cmd_r, cmd_w, out_r, out_w):
                os.close(fd)
            raise
        _widen_pipe(out_r)
        os.close(cmd_r)
        os.close(out_w)
        self.cmd = Connection(cmd_w, readable=False)
        self.rx = Connection(out_r, writable=False)
        self.proc = _Proc(popen)
        self.up = False

    def wait_up(self, timeout: float) -> None:
        """Block until the child's imports are done. RuntimeError if it died or took too long."""
        if self.up:
            return
        if not self.rx.poll(timeout):
            raise RuntimeError(f"session worker did not start within {timeout:.0f} s")
        try:
            msg = self.rx.recv_bytes()
        except (EOFError, OSError):
            raise RuntimeError(f"session worker exited at start (code {self.proc.exitcode})") from None
        if msg[:1] == b"X":
            raise RuntimeError("session worker failed at start: " + msg[1:].decode("utf-8", "replace"))
        if msg[:1] != b"U":
            raise RuntimeError(f"session worker sent {msg[:1]!r} at start")
        self.up = True

    def kill(self) -> None:
        for c in (self.cmd, self.rx):
            try:
                c.close()
            except OSError:
                pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


class WorkerPool:
    """Spawns session workers, keeping up to ``spare`` of them started ahead (imports and warm-up
    done) so a new session does not wait for Python and the models to load. ``threads``: native
    threads of each worker; ``warm_avatar``: an avatar file the spares warm up on (optional).
    Thread-safe; :meth:`take` blocks while a worker starts (run it off the event loop)."""

    def __init__(self, threads: int = 1, spare: int = 1, warm_avatar: str | None = None):
        if threads < 1 or spare < 0:
            raise ValueError(f"threads must be >= 1 and spare >= 0, got {threads}, {spare}")
        self.threads = int(threads)
        self.spare = int(spare)
        self.warm_avatar = warm_avatar
        self._lock = threading.Lock()
        self._ready: list[Worker] = []
        self._closed = False
        self.fill()

    def fill(self, limit: int | None = None) -> None:
        """Start spares up to ``min(spare, limit)`` (non-blocking: they load in the background).
        The server passes the free session slots as ``limit``: a full server keeps no spare."""
        want = self.spare if limit is None else max(0, min(self.spare, int(limit)))
        with self._lock:
            while not self._closed and len(self._ready) < want:
                self._ready.append(Worker(self.threads, self.warm_avatar))

    def take(self, refill: int | None = None) -> Worker:
        """A worker for a new session: a spare if one is alive, else a fresh one; then spares are
        started again up to ``refill`` (see :meth:`fill`). Blocks until the worker is up (seconds
        for a fresh one)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            w = None
            while self._ready:
                c = self._ready.pop(0)
                if c.proc.is_alive():
                    w = c
                    break
                c.kill()
            if w is None:
                w = Worker(self.threads, self.warm_avatar)
        self.fill(refill)
        w.wait_up(START_TIMEOUT_S)
        return w

    def close(self) -> None:
        """Stop the spares. Sessions own their workers and end them themselves."""
        with self._lock:
            self._closed = True
            spares, self._ready = self._ready, []
        for w in spares:
            w.kill()


def config_json(config) -> dict:
    """A SessionConfig as plain JSON values (for the start command)."""
    d = dataclasses.asdict(config)
    for k, v in list(d.items()):
        if isinstance(v, tuple):
            d[k] = list(v)
        elif isinstance(v, os.PathLike):
            d[k] = os.fspath(v)
    return d


class ProcessSession:
    """A :class:`~chatanyone.Session` running in a worker process, with the same contract for the
    calls the live stream makes.

    Args:
        worker: a :class:`Worker` from :meth:`WorkerPool.take` (this object owns it from now on).
        avatar_path: an avatar file written by ``Avatar.save`` (a server-made path).
        config: the :class:`~chatanyone.SessionConfig` of the session.

    Construction blocks until the child has built its Session (about a second; up to
    ``START_TIMEOUT_S``) and raises RuntimeError if it failed. ``feed_audio``, ``flush`` and
    ``interrupt`` never block (commands are queued; a full queue drops the feed and logs);
    ``next_frame`` blocks up to ``timeout``. After :meth:`interrupt` returns, frames the child had
    rendered before the cut still arrive (the timeline stays whole) but with their audio silenced.
    """

    def __init__(self, worker: Worker, avatar_path: str, config, *, _factory: str | None = None):
        self._w = worker
        self.config = config
        self._fps = float(config.fps)
        self._closed = False
        self._epoch = 0                 # interrupts sent
        self._cmdq: queue.Queue = queue.Queue(maxsize=CMD_QUEUE)
        self._dropped = 0
        self._last_rx = time.monotonic()
        try:
            worker.cmd.send_bytes(b"S" + json.dumps({"avatar": str(avatar_path), "config": config_json(config),
                                                     "factory": _factory}).encode("utf-8"))
            if not worker.rx.poll(START_TIMEOUT_S):
                raise RuntimeError(f"the session worker did not start within {START_TIMEOUT_S:.0f} s")
            msg = worker.rx.recv_bytes()
            if msg[:1] == b"X":
                raise RuntimeError("the session worker failed: " + msg[1:].decode("utf-8", "replace"))
            if msg[:1] != b"R":
                raise RuntimeError(f"the session worker sent {msg[:1]!r} at start")
        except (EOFError, OSError):
            worker.kill()
            raise RuntimeError(f"the session worker exited at start (code {worker.proc.exitcode})") from None
        except BaseException:
            worker.kill()
            raise
        info = json.loads(msg[1:].decode("utf-8"))
        self.pid = int(info["pid"])
        fs = info.get("frame_size") or None
        self._frame_size = (int(fs[0]), int(fs[1])) if fs else None
        self._last_rx = time.monotonic()
        self._sender = threading.Thread(target=self._send_loop, name="chatanyone-worker-send", daemon=True)
        self._sender.start()

    # ---------------------------------------------------------------- commands (non-blocking)
    def _put(self, msg: bytes, droppable: bool) -> None:
        if self._closed:
            raise RuntimeError("the session is closed")
        if not self._w.proc.is_alive():
            raise RuntimeError(f"the session worker exited (code {self._w.proc.exitcode})")
        try:
            self._cmdq.put_nowait(msg)
        except queue.Full:
            if droppable:
                self._dropped += 1
                if self._dropped in (1, 100, 1000):
                    log.warning("session worker %d is not reading: %d audio chunks dropped", self.pid, self._dropped)
                return
            raise RuntimeError("the session worker is not reading its commands") from None

    def _send_loop(self) -> None:
        while True:
            msg = self._cmdq.get()
            if msg is None:
                return
            try:
                self._w.cmd.send_bytes(msg)
            except (OSError, ValueError):
                return      # the child is gone: next_frame reports it

    def feed_audio(self, pcm, sample_rate: int) -> None:
        """Queue float mono samples at ``sample_rate`` for the child's Session. Non-blocking."""
        x = np.ascontiguousarray(np.asarray(pcm, np.float32).reshape(-1))
        self._put(b"F" + struct.pack("<I", int(sample_rate)) + x.tobytes(), droppable=True)

    def flush(self) -> None:
        """End the utterance (the child's ``Session.flush``). Non-blocking."""
        self._put(b"L", droppable=False)

    def interrupt(self) -> None:
        """Barge-in (the child's ``Session.interrupt``). Non-blocking; frames rendered before the
        cut that are still on their way come out silent."""
        self._epoch += 1
        self._put(b"I" + struct.pack("<I", self._epoch), droppable=False)

    # ---------------------------------------------------------------- frames
    def next_frame(self, timeout: float | None = None):
        """The next :class:`~chatanyone.Frame`, None at the end of an utterance; TimeoutError if
        none within ``timeout`` s; RuntimeError if the worker failed, exited or stalled."""
        from ..session import Frame

        if self._closed:
            raise RuntimeError("the session is closed")
        rx = self._w.rx
        try:
            ready = rx.poll(timeout)
        except (OSError, ValueError):
            raise RuntimeError("the session is closed") from None
        if not ready:
            if time.monotonic() - self._last_rx > STALL_S:
                raise RuntimeError(f"the session worker sent no frame for {STALL_S:.0f} s")
            raise TimeoutError("no frame yet")
        try:
            msg = rx.recv_bytes()
        except (EOFError, OSError, ValueError):
            if self._closed:
                raise RuntimeError("the session is closed") from None
            self._w.proc.join(1.0)
            raise RuntimeError(f"the session worker exited (code {self._w.proc.exitcode})") from None
        self._last_rx = time.monotonic()
        tag = msg[:1]
        if tag == b"V":
            idx, ts, ep, h, w, c, na = _FRAME_HDR.unpack_from(msg, 1)
            o = 1 + _FRAME_HDR.size
            n = h * w * c
            img = np.frombuffer(msg, np.uint8, count=n, offset=o).reshape((h, w, c) if c > 1 else (h, w))
            audio = np.frombuffer(msg, np.float32, count=na, offset=o + n)
            if ep < self._epoch:
                audio = np.zeros_like(audio)   # rendered before the interrupt: its speech is dropped
            return Frame(image=img, index=int(idx), timestamp=float(ts), audio=audio)
        if tag == b"E":
            return None
        if tag == b"X":
            raise RuntimeError("the session worker failed: " + msg[1:].decode("utf-8", "replace"))
        raise RuntimeError(f"the session worker sent an unknown message {tag!r}")

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """End the worker process (asks it to quit, kills it after 3 s). Idempotent; blocks up to
        a few seconds."""
        if self._closed:
            return
        self._closed = True
        try:
            self._cmdq.put_nowait(b"Q")
        except queue.Full:
            pass
        try:
            self._cmdq.put_nowait(None)
        except queue.Full:
            pass
        self._w.proc.join(3.0)
        self._w.kill()

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return self._frame_size

    @property
    def alive(self) -> bool:
        return not self._closed and self._w.proc.is_alive()


if __name__ == "__main__":   # the child: python -m chatanyone.serve.worker CMD_FD OUT_FD THREADS [WARM_AVATAR]
    _child_main(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False),
                int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
