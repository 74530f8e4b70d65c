"""``clear_buffer`` in the LiveKit integration, timed: a real-time Session on an avatar file behind
``ChatAnyoneVideoGenerator``, its frames going into the real ``rtc.AVSynchronizer`` (with the real
``rtc.AudioSource`` / ``rtc.VideoSource``, as ``AvatarRunner`` makes them: 100 ms queues; no room,
no server), speech pushed as 20 ms ``rtc.AudioFrame``s at real-time pace, then ``clear_buffer``
while it speaks.

    python benchmarks/livekit_interrupt.py --avatar me.avatar.npz --repeat 5

Per interrupt: the first video frame yielded after ``clear_buffer`` (ms), the first one the
synchronizer hands to the ``VideoSource`` (ms: "leaves" for the room), and the speech audio still
queued in the ``AudioSource`` just after it (ms; AvatarRunner's queue holds up to 100 ms). Both
ways in one run: ``bridges`` (this integration: bridge frames, and the synchronizer emptied) and
``baseline`` (no bridges, synchronizer not emptied: the Session's first frame after its cut is
waited for, the queued audio plays out). The load average is printed beside every row. Needs the
[livekit] extra (and the avatar file, written by ``Avatar.save``).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import numpy as np


async def one(avatar: str, mode: str, repeat: int, preset: str) -> list[dict]:
    from livekit import rtc

    import chatanyone.integrations.livekit as lk

    sess = await asyncio.get_running_loop().run_in_executor(None, lambda: lk.make_session(avatar, preset=preset))
    gen = lk.ChatAnyoneVideoGenerator(sess)
    w, h = sess.frame_size
    audio = rtc.AudioSource(lk.AUDIO_RATE, 1, queue_size_ms=100)
    video = rtc.VideoSource(w, h)
    sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=sess.fps, video_queue_size_ms=100)
    if mode == "bridges":
        gen.attach(sync)
    else:
        lk_wait = lk.BRIDGE_WAIT_S
        lk.BRIDGE_WAIT_S = 1e9
    captured: list[float] = []
    cap = video.capture_frame

    def capture_frame(frame, *a, **k):
        captured.append(time.monotonic())
        return cap(frame, *a, **k)

    video.capture_frame = capture_frame
    from chatanyone.assets import demo_speech
    pcm, rate = demo_speech()
    x = np.clip(np.round(np.asarray(pcm, np.float32) / max(1e-6, float(np.abs(pcm).max())) * 0.5 * 32767),
                -32768, 32767).astype(np.int16)
    n20 = rate // 50
    stop = asyncio.Event()

    async def speak():      # the agent's TTS: 20 ms frames at real-time pace, looped
        t0, i = time.monotonic(), 0
        while not stop.is_set():
            a = (i * n20) % (x.size - n20)
            await gen.push_audio(rtc.AudioFrame(x[a:a + n20].tobytes(), rate, 1, n20))
            i += 1
            await asyncio.sleep(max(0.0, t0 + i * 0.02 - time.monotonic()))

    async def forward():    # what AvatarRunner._forward_video does
        async for it in gen:
            if isinstance(it, (rtc.VideoFrame, rtc.AudioFrame)):
                await sync.push(it)

    tasks = [asyncio.ensure_future(speak()), asyncio.ensure_future(forward())]
    out = []
    try:
        await asyncio.sleep(3.0)
        for _ in range(repeat):
            await asyncio.sleep(1.3 + 0.17 * len(out))     # into the speech (the push loop restarts nothing)
            n_cap = len(captured)
            t = time.monotonic()
            gen.clear_buffer()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            queued = audio.queued_duration
            await asyncio.sleep(1.0)
            rec = gen.interrupts[-1]
            first_cap = next((c for c in captured[n_cap:] if c >= t), None)
            out.append({"mode": mode, "yielded_ms": None if rec["first_at"] is None else round(1000 * (rec["first_at"] - t), 1),
                        "captured_ms": None if first_cap is None else round(1000 * (first_cap - t), 1),
                        "audio_queued_ms": round(1000 * queued, 1), "bridged": rec["bridged"],
                        "load": round(os.getloadavg()[0], 1)})
            print(f"| {mode} | {out[-1]['yielded_ms']} ms | {out[-1]['captured_ms']} ms | {out[-1]['audio_queued_ms']} ms "
                  f"| {out[-1]['bridged']} | {out[-1]['load']} |", flush=True)
    finally:
        stop.set()
        for tk in tasks:
            tk.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gen.aclose()
        await sync.aclose()
        await audio.aclose()
        await video.aclose()
        if mode != "bridges":
            lk.BRIDGE_WAIT_S = lk_wait
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--avatar", required=True, help="an avatar file written by Avatar.save")
    p.add_argument("--repeat", type=int, default=5, help="interrupts per mode (1..20)")
    p.add_argument("--rounds", type=int, default=1, help="rounds of both modes, alternating (1..5)")
    p.add_argument("--preset", default="fast")
    a = p.parse_args(argv)
    if not 1 <= a.repeat <= 20 or not 1 <= a.rounds <= 5:
        p.error("--repeat in 1..20, --rounds in 1..5")
    if not os.path.exists(a.avatar):
        p.error(f"no such avatar file: {a.avatar}")
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    print("| mode | first frame yielded | first frame to the VideoSource | audio queued after | bridged | load |")
    print("| --- | --- | --- | --- | --- | --- |")
    res = []
    for _ in range(a.rounds):
        for mode in ("bridges", "baseline"):
            res += asyncio.run(one(a.avatar, mode, a.repeat, a.preset))
    for mode in ("bridges", "baseline"):
        v = sorted(r["captured_ms"] for r in res if r["mode"] == mode and r["captured_ms"] is not None)
        if v:
            print(f"{mode}: to the VideoSource after {statistics.median(v):.0f} ms median ({v[0]:.0f}-{v[-1]:.0f}, n={len(v)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
