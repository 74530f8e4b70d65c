"""`chatanyone serve` without a browser: upload checks, cross-origin refusal, admission ("busy"),
isolation, idle timeout, graceful shutdown, and a WebRTC client (aiortc) receiving paired media.
Servers bind 127.0.0.1 on an ephemeral port; every wait is bounded."""
from __future__ import annotations

import asyncio
import json
import struct
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from chatanyone.serve import ServeOptions  # noqa: E402
from chatanyone.serve import uploads  # noqa: E402
from serve_util import ServerThread, TimelineSession, speech_with_pauses  # noqa: E402


def png_bytes(w, h, body=True):
    """A PNG of w x h (valid header; a real small image when ``body``)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if body:
        raw = b"".join(b"\x00" + bytes(3 * w) for _ in range(h))
        out += chunk(b"IDAT", zlib.compress(raw))
    return out + chunk(b"IEND", b"")


def request(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def fake_factory(record):
    def make(avatar):
        s = TimelineSession(25.0, 10 ** 6)
        record.append(s)
        return s
    return make


@pytest.fixture
def fake_server():
    made = []
    srv = ServerThread(ServeOptions(capacity=2, idle_timeout_s=60, prepare_builtin=False,
                                    session_factory=fake_factory(made)))
    srv.made = made
    srv.server._builtin = object()      # the fake sessions need no avatar
    yield srv
    srv.stop()


# ---------------------------------------------------------------------- uploads (unit)
def test_png_bomb_refused_before_decoding(monkeypatch):
    import cv2

    def boom(*a, **k):
        raise AssertionError("decoded a bomb")
    monkeypatch.setattr(cv2, "imdecode", boom)
    bomb = png_bytes(20000, 20000, body=False)
    with pytest.raises(uploads.UploadError) as e:
        uploads.decode_image(bomb)
    assert e.value.status == 413 and "20000x20000" in str(e.value)


def test_image_checks_by_content():
    assert uploads.image_size(png_bytes(64, 48)) == (64, 48)
    import cv2
    ok, jpg = cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8))
    assert uploads.image_size(jpg.tobytes()) == (50, 30)
    assert uploads.decode_image(jpg.tobytes()).shape == (30, 50, 3)
    for bad in (b"GIF89a....", b"<html>", b"\x89PNG\r\n\x1a\n" + b"\x00" * 4):
        with pytest.raises(uploads.UploadError):
            uploads.decode_image(bad)
    with pytest.raises(uploads.UploadError) as e:      # truncated image data: a clear error
        uploads.decode_image(png_bytes(64, 48)[:60])
    assert e.value.status == 400
    with pytest.raises(TypeError):
        uploads.decode_image("not bytes")


def test_audio_checks_by_content(tmp_path):
    from serve_util import write_wav
    wav = write_wav(tmp_path / "a.wav", speech_with_pauses(0.5, 0.2, 0.1)).read_bytes()
    pcm = uploads.decode_audio(wav)
    assert pcm.dtype == np.float32 and abs(pcm.size - 0.8 * 16000) < 400
    with pytest.raises(uploads.UploadError) as e:
        uploads.decode_audio(png_bytes(8, 8))
    assert e.value.status == 415
    with pytest.raises(uploads.UploadError):
        uploads.decode_audio(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")


# ---------------------------------------------------------------------- HTTP
def test_page_and_info(fake_server):
    st, h, body = request(fake_server.url)
    assert st == 200 and b"requestVideoFrameCallback" in body and "text/html" in h["Content-Type"]
    st, _, body = request(fake_server.url + "api/info")
    info = json.loads(body)
    assert st == 200 and info["capacity"] == 2 and info["active"] == 0


def test_cli_binds_localhost_by_default():
    from chatanyone.cli import build_parser
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000


@pytest.mark.parametrize("case", ["oversize", "not_an_image", "wrong_type", "bomb"])
def test_photo_upload_refusals(fake_server, case):
    url = fake_server.url + "api/avatar"
    if case == "oversize":
        data, ctype, want = png_bytes(8, 8) + b"\x00" * (uploads.MAX_IMAGE_BYTES + 10), "image/png", 413
    elif case == "not_an_image":
        data, ctype, want = b"#!/bin/sh\necho hi\n" * 10, "image/png", 415
    elif case == "wrong_type":
        data, ctype, want = png_bytes(8, 8), "text/plain", 415
    else:
        data, ctype, want = png_bytes(20000, 20000, body=False), "image/png", 413
    st, _, body = request(url, "POST", data, {"Content-Type": ctype})
    assert st == want, body
    assert json.loads(body)["message"]


def test_no_path_from_a_request_reaches_the_filesystem(fake_server):
    for path in ("../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "page.html", "static/../server.py"):
        st, _, body = request(fake_server.url + path)
        assert st == 404 and b"root:" not in body


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"},
                                     {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}])
def test_cross_origin_refused(fake_server, headers):
    body = json.dumps({"sdp": "v=0", "type": "offer"}).encode()
    st, h, resp = request(fake_server.url + "api/offer", "POST", body,
                          {"Content-Type": "application/json", **headers})
    assert st == 403 and "Access-Control-Allow-Origin" not in h
    st, _, _ = request(fake_server.url + "api/avatar", "POST", png_bytes(8, 8),
                       {"Content-Type": "image/png", **headers})
    assert st == 403


def test_bad_offer_is_a_clear_error(fake_server):
    st, _, body = request(fake_server.url + "api/offer", "POST", b"{not json",
                          {"Content-Type": "application/json"})
    assert st == 400 and b"sdp" in body
    st, _, _ = request(fake_server.url + "api/offer", "POST", b"x", {"Content-Type": "text/plain"})
    assert st == 415


# ---------------------------------------------------------------------- sessions (WebRTC client)
def clients(url, n, seconds, **kw):
    from chatanyone.serve.client import run_client
    pcm = speech_with_pauses(1.0, 1.0, 0.3)

    async def main():
        return await asyncio.gather(*(run_client(url, pcm, seconds, **kw) for _ in range(n)))
    return asyncio.run(main())


def test_admission_busy_isolation_and_shutdown(fake_server):
    """Two sessions fill the server, a third gets "busy"; one session failing leaves the other
    streaming; shutdown closes the rest gracefully."""
    from chatanyone.serve.client import run_client

    url = fake_server.url
    pcm = speech_with_pauses(1.0, 1.0, 0.3)

    async def main():
        a = asyncio.ensure_future(run_client(url, pcm, 5.0))
        b = asyncio.ensure_future(run_client(url, pcm, 5.0))
        for _ in range(1200):                           # bounded: 60 s
            if len(fake_server.server.sessions) == 2:
                break
            await asyncio.sleep(0.05)
        if len(fake_server.server.sessions) != 2:
            done = [t.result().status for t in (a, b) if t.done()]
            raise AssertionError(f"sessions admitted: {len(fake_server.server.sessions)}; clients done: {done}")
        c = await run_client(url, pcm, 1.0)
        await asyncio.sleep(1.0)
        fake_server.made[0].n = fake_server.made[0].k  # the first session's frames stop ...

        def fail(timeout=None):
            raise RuntimeError("chatanyone session failed: injected")
        fake_server.made[0].next_frame = fail           # ... and it fails
        return await a, await b, c

    ra, rb, rc = asyncio.run(main())
    assert rc.status == "busy"
    assert ra.status == "ok" and rb.status == "ok"
    failed = [r for r in (ra, rb) if any(e.get("type") == "closed" and e.get("reason") == "failed"
                                         for e in r.events)]
    assert len(failed) == 1
    other = rb if failed[0] is ra else ra
    # the other went on streaming to the end: ~4 s of media at 25 fps. aiortc's sender may drop a
    # late frame when the machine is loaded (seen: 22.97 frames per media second in a CI run), so
    # the check is that it kept streaming near its rate, not an exact count
    assert 0.8 * 25.0 <= other.media_fps <= 1.05 * 25.0, other.media_fps
    assert other.video_frames > failed[0].video_frames + 10
    assert other.audio_samples > 48000 and other.audio_peak > 0.1
    info = json.loads(request(url + "api/info")[2])
    assert info["refused_busy"] == 1
    assert all(s.closed for s in fake_server.made)   # every session was closed (memory freed)


def test_idle_session_times_out():
    made = []
    srv = ServerThread(ServeOptions(capacity=1, idle_timeout_s=1.0, prepare_builtin=False,
                                    session_factory=fake_factory(made)))
    srv.server._builtin = object()
    try:
        r = clients(srv.url, 1, 3.5, )[0]
        # the client spoke (speech_with_pauses) at first; a quiet second later the server closed it
        assert any(e.get("type") == "closed" and e.get("reason") == "idle" for e in r.events), r.events
        assert not srv.server.sessions and made[0].closed
    finally:
        srv.stop()


def test_graceful_shutdown_tells_the_client():
    made = []
    srv = ServerThread(ServeOptions(capacity=1, prepare_builtin=False, session_factory=fake_factory(made)))
    srv.server._builtin = object()
    from chatanyone.serve.client import run_client

    async def main():
        task = asyncio.ensure_future(run_client(srv.url, speech_with_pauses(0.5, 0.5), 3.0))
        for _ in range(200):
            if srv.server.sessions:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(None, srv.stop)
        return await task

    r = asyncio.run(main())
    assert any(e.get("type") == "closed" and e.get("reason") == "shutdown" for e in r.events), r.events
    assert made[0].closed
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(srv.url, timeout=5)


def test_load_client_refuses_other_hosts():
    from chatanyone.serve.client import check_loopback
    assert check_loopback("http://127.0.0.1:8000/")
    with pytest.raises(ValueError):
        check_loopback("http://example.com:8000/")
