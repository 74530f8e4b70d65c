"""Load benchmark for ``chatanyone serve``: N concurrent WebRTC sessions on a loopback server, then
one more; the real-time ratio of each session and the server's memory per session.

    python benchmarks/serve_load.py --sessions 1 2 3 --seconds 20

For each N: a ``chatanyone serve --max-sessions N`` subprocess on 127.0.0.1, N aiortc clients
speaking the built-in clip at real-time pace (``chatanyone.serve.client``), and an (N+1)th client
that must be answered "busy". Per session: the real-time ratio = media time received / wall time since its
first frame (the server paces at real time: 1.0 holds real time, less falls behind), and first-frame latency. Memory: the
server's resident set (VmRSS) with N sessions running minus at idle, divided by N. Bounded: every
client runs ``--seconds`` and the server is stopped (SIGTERM, then SIGKILL) at the end.
Loopback only. Prints a Markdown table (and writes JSON with ``--json``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def one_level(n: int, seconds: float, preset: str) -> dict:
    import aiohttp
    from chatanyone.assets import demo_speech
    from chatanyone.serve.client import run_client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([sys.executable, "-m", "chatanyone", "serve", "--port", str(port),
                             "--max-sessions", str(n), "--preset", preset],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(url + "api/info") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not start")
                await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        idle_rss = rss_mb(proc.pid)
        pcm, rate = demo_speech()
        peak = {"rss": idle_rss}

        async def sample_rss():
            while True:
                peak["rss"] = max(peak["rss"], rss_mb(proc.pid))
                await asyncio.sleep(0.5)

        sampler = asyncio.ensure_future(sample_rss())
        tasks = [asyncio.ensure_future(run_client(url, pcm, seconds)) for _ in range(n)]
        await asyncio.sleep(min(10.0, seconds / 2))
        extra = await run_client(url, pcm, 1.0)
        results = await asyncio.gather(*tasks)
        sampler.cancel()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = []
    for r in results:
        if r.status != "ok" or r.video_frames < 2 or r.first_frame_s is None:
            rows.append({"status": r.status, "rt": 0.0, "first_frame_s": r.first_frame_s})
            continue
        # media seconds received per wall second since the first frame (the server paces at
        # real time, so 1.0 is the most; below it the session falls behind)
        rt = (r.video_frames / 25.0) / max(1e-9, r.wall_s - r.first_frame_s)
        rows.append({"status": r.status, "rt": round(float(rt), 3), "frames": r.video_frames,
                     "first_frame_s": round(r.first_frame_s, 2)})
    return {"sessions": n, "extra_client": extra.status, "per_session": rows,
            "rss_idle_mb": round(idle_rss, 1), "rss_peak_mb": round(peak["rss"], 1),
            "mb_per_session": round((peak["rss"] - idle_rss) / n, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--preset", default="fast")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if any(not 1 <= n <= 16 for n in a.sessions) or not 3 <= a.seconds <= 300:
        p.error("--sessions in 1..16, --seconds in 3..300")
    out = []
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    print("| N | real-time ratio per session | first frame (s) | N+1th client | server RSS idle -> peak | MB/session |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in a.sessions:
        r = asyncio.run(one_level(n, a.seconds, a.preset))
        out.append(r)
        rts = ", ".join(f"{x['rt']:.2f}" for x in r["per_session"])
        ffs = ", ".join(f"{x.get('first_frame_s', float('nan'))}" for x in r["per_session"])
        print(f"| {n} | {rts} | {ffs} | {r['extra_client']} | {r['rss_idle_mb']:.0f} -> {r['rss_peak_mb']:.0f} MB "
              f"| {r['mb_per_session']:.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
