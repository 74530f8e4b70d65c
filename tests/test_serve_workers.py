"""Sessions in their own worker processes (chatanyone.serve.worker): a real Session behind the live
stream through a worker, interrupts across the process boundary, a worker that dies failing only
its own session, and closing ending the process. Every wait is bounded; servers bind 127.0.0.1."""
from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from chatanyone.serve.live import LiveStream, level_db  # noqa: E402
from chatanyone.serve.worker import ProcessSession, WorkerPool  # noqa: E402
from serve_util import ServerThread, speech_with_pauses  # noqa: E402


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    from chatanyone.serve.server import builtin_avatar
    path = str(tmp_path_factory.mktemp("workers") / "builtin.npz")
    builtin_avatar().save(path)
    return path


def _cfg():
    from chatanyone import SessionConfig
    return SessionConfig(realtime=True, max_ahead_frames=8, intra_op_threads=1)


def _gone(pid, timeout=10.0):
    """True once ``pid`` no longer runs (bounded wait)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.time_limit(120)
def test_worker_session_streams_pairs_and_interrupts(avatar_file):
    """A Session in a worker process behind LiveStream: frames in order with their own audio, the
    speech reaches the client, an interrupt sent across the process boundary lets no speech frame
    out after it, and close() ends the process."""
    pool = WorkerPool(threads=1, spare=0)
    try:
        sess = ProcessSession(pool.take(), avatar_file, _cfg())
    finally:
        pool.close()
    pid = sess.pid
    assert pid != os.getpid() and sess.frame_size is not None
    got, events = [], []
    enough = threading.Event()

    def deliver(k, img, a48):
        got.append((k, img.shape, a48))
        if len(got) >= 50:
            enough.set()

    stream = LiveStream(sess, deliver, events.append, cushion_s=0.0)
    pcm = speech_with_pauses(seconds_speech=3.0, seconds_silence=0.0, lead=0.2)
    try:
        for i in range(0, pcm.size, 320):        # 20 ms microphone chunks, as fast as they come
            stream.feed_mic(pcm[i:i + 320], 16000)
        assert enough.wait(60), len(got)
        stream.interrupt()
        for _ in range(50):
            stream.feed_mic(np.zeros(320, np.float32), 16000)
        end = time.monotonic() + 30
        while not any(e["type"] == "interrupted" for e in events) and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        stream.close()
    ks = [g[0] for g in got]
    assert ks == list(range(ks[0], ks[0] + len(ks)))       # no frame lost or repeated
    w, h = sess.frame_size
    assert all(g[1] == (h, w, 3) for g in got)
    assert all(g[2].size == 1920 for g in got)              # each frame's own 40 ms, at 48 kHz
    assert max(level_db(g[2].astype(np.float32) / 32767) for g in got) > -30   # the speech came out
    ev = [e for e in events if e["type"] == "interrupted"]
    assert ev and ev[0]["voiced_frames_after"] == 0, ev
    assert _gone(pid), "the worker process outlived its session"


def test_worker_start_failure_is_a_clear_error(tmp_path):
    bad = tmp_path / "not_an_avatar.npz"
    bad.write_bytes(b"garbage")
    pool = WorkerPool(threads=1, spare=0)
    try:
        w = pool.take()
    finally:
        pool.close()
    with pytest.raises(RuntimeError, match="worker failed.*avatar"):
        ProcessSession(w, str(bad), _cfg())
    assert _gone(w.proc.pid)


def test_pool_keeps_a_spare_and_close_ends_it():
    pool = WorkerPool(threads=1, spare=1)
    spare = pool._ready[0]
    w = pool.take()                 # the spare, its imports done; a new spare is started
    assert w is spare and w.up
    assert len(pool._ready) == 1 and pool._ready[0] is not w
    nxt = pool._ready[0]
    pool.close()
    w.kill()
    assert _gone(w.proc.pid) and _gone(nxt.proc.pid)
    with pytest.raises(RuntimeError, match="closed"):
        pool.take()
    with pytest.raises(ValueError):
        WorkerPool(threads=0)


@pytest.mark.time_limit(150)
def test_a_killed_worker_fails_only_its_session():
    """Two real sessions, each in its own worker; one worker is killed (SIGKILL): its client is told
    "failed", the other keeps streaming at its rate to the end, and no worker outlives the server."""
    from chatanyone.assets import demo_speech
    from chatanyone.serve import ServeOptions
    from chatanyone.serve.client import run_client

    srv = ServerThread(ServeOptions(capacity=2, idle_timeout_s=60))
    pcm, _ = demo_speech()
    pids = []
    try:
        async def main():
            a = asyncio.ensure_future(run_client(srv.url, pcm, 7.0))
            b = asyncio.ensure_future(run_client(srv.url, pcm, 7.0))
            for _ in range(1200):                       # bounded: 60 s
                if len(srv.server.sessions) == 2 and all(s.stream.frames_out > 10 for s in srv.server.sessions.values()):
                    break
                await asyncio.sleep(0.05)
            lives = list(srv.server.sessions.values())
            assert len(lives) == 2, "two sessions did not start"
            pids.extend(s.stream.session.pid for s in lives)
            assert len(set(pids)) == 2 and os.getpid() not in pids
            await asyncio.sleep(1.0)
            os.kill(pids[0], signal.SIGKILL)
            victim = lives[0].sid
            return await a, await b, victim

        ra, rb, victim = asyncio.run(main())
        spare = [w.proc.pid for w in srv.server.pool._ready]
    finally:
        srv.stop()
    failed = [r for r in (ra, rb) if any(e.get("type") == "closed" and e.get("reason") == "failed" for e in r.events)]
    assert len(failed) == 1 and failed[0].session == victim
    other = rb if failed[0] is ra else ra
    assert other.status == "ok"
    assert not any(e.get("type") == "closed" for e in other.events if e.get("reason") != "client")
    # frames per second of media time (aiortc may drop a late frame on a loaded machine)
    assert other.media_fps >= 20.0, other.media_fps
    assert other.video_frames > failed[0].video_frames + 10
    assert all(_gone(p) for p in pids + spare), "a worker outlived the server"
