"""Load benchmark for ``chatanyone serve``: N concurrent WebRTC sessions on a loopback server, then
one more; the real-time ratio of each session and the server's memory per session.

    python benchmarks/serve_load.py --sessions 1 2 3 --seconds 20 --modes workers in-process

For each N and mode (``workers``: each session in its own worker process, the default of
``serve``; ``in-process``: ``serve --in-process``, every session in the server's process, the
earlier design, as the same-run baseline): a ``chatanyone serve --max-sessions N`` subprocess on
127.0.0.1, N aiortc clients
speaking the built-in clip at real-time pace (``chatanyone.serve.client``), and an (N+1)th client
that must be answered "busy". Per session: the real-time ratio = media time received / wall time since its
first frame (the server paces at real time: 1.0 holds real time, less falls behind), and first-frame latency;
beside it the server's own figures from its last stats message (its release rate over the last
~2.5 s / 25, frames released and frames its WebRTC sender took), which a CPU-starved client
process cannot lower. Memory: the
proportional set size (PSS: shared library pages split between the processes that map them) of
the server and its worker processes, peak with N sessions running minus at idle (one spare worker
included), divided by N. The machine's load average (``uptime``, 1 min) is printed beside every
row: the figures are only comparable within one run. Bounded: every client runs ``--seconds`` and
the server is stopped (SIGTERM, then SIGKILL) at the end. Loopback only. Prints a Markdown table
(and writes JSON with ``--json``); ``--measure`` also prints the capacity ``serve`` would admit.
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
import tempfile
import time


def pss_mb(pid: int) -> float:
    """PSS of ``pid`` and all its descendants (MB)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) / 1024.0
                        break
        except OSError:
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def one_level(n: int, seconds: float, preset: str, mode: str = "workers") -> dict:
    import aiohttp
    from chatanyone.assets import demo_speech
    from chatanyone.serve.client import run_client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # the server's (and its workers') output goes to a file: an unread pipe fills up and then
    # blocks whichever process logs next (it did: sessions stalled to 0.1x real time)
    log_file = tempfile.NamedTemporaryFile("w+b", prefix="serve_load_", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "chatanyone", "serve", "--port", str(port),
                             "--max-sessions", str(n), "--preset", preset]
                            + (["--in-process"] if mode == "in-process" else []),
                            stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
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
        await asyncio.sleep(3.0)            # the spare worker's imports
        idle_rss = pss_mb(proc.pid)
        pcm, rate = demo_speech()
        peak = {"rss": idle_rss}
        load0 = os.getloadavg()[0]

        async def sample_rss():
            while True:
                peak["rss"] = max(peak["rss"], pss_mb(proc.pid))
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
        os.unlink(log_file.name)
    rows = []
    for r in results:
        if r.status != "ok" or r.video_frames < 2 or r.first_frame_s is None:
            rows.append({"status": r.status, "rt": 0.0, "first_frame_s": r.first_frame_s})
            continue
        # media seconds received per wall second since the first frame (the server paces at
        # real time, so 1.0 is the most; below it the session falls behind)
        rt = (r.video_frames / 25.0) / max(1e-9, r.wall_s - r.first_frame_s)
        # the server's own view (its last stats message): frames released per second / 25, and
        # frames its WebRTC sender took; a client process starved of CPU receives fewer than these
        st = [e for e in r.events if e.get("type") == "stats"]
        srv = st[-1] if st else {}
        rows.append({"status": r.status, "rt": round(float(rt), 3), "frames": r.video_frames,
                     "first_frame_s": round(r.first_frame_s, 2),
                     "server_rt": srv.get("realtime_ratio"), "server_released": srv.get("frames"),
                     "server_sent": srv.get("video_sent")})
    return {"sessions": n, "mode": mode, "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
            "extra_client": extra.status, "per_session": rows,
            "rss_idle_mb": round(idle_rss, 1), "rss_peak_mb": round(peak["rss"], 1),
            "mb_per_session": round((peak["rss"] - idle_rss) / n, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--preset", default="fast")
    p.add_argument("--modes", nargs="+", choices=["workers", "in-process"], default=["workers"])
    p.add_argument("--measure", action="store_true", help="print the capacity serve would admit first")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if any(not 1 <= n <= 16 for n in a.sessions) or not 3 <= a.seconds <= 300:
        p.error("--sessions in 1..16, --seconds in 3..300")
    out = []
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    if a.measure:
        from chatanyone.serve.capacity import measure_capacity
        from chatanyone.serve.server import builtin_avatar
        for workers in (True, False):
            cap, fig = measure_capacity(builtin_avatar(), preset=a.preset, workers=workers)
            print(f"measured ({'workers' if workers else 'in-process'}): {1000 * fig['s_per_frame']:.1f} ms/frame, "
                  f"{1000 * fig['cpu_per_frame']:.1f} ms CPU/frame + VP8 {1000 * fig['encode_cpu_per_frame']:.1f} ms -> capacity {cap} (load {os.getloadavg()[0]:.1f})")
    print("| N | mode | real-time ratio per session | server: released fps / 25 (released/sent) | first frame (s) "
          "| N+1th client | PSS idle -> peak | MB/session | load (1 min) start/end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in a.sessions:
        for mode in a.modes:     # modes interleaved per N: same-run, near-same-load comparisons
            r = asyncio.run(one_level(n, a.seconds, a.preset, mode))
            out.append(r)
            rts = ", ".join(f"{x['rt']:.2f}" for x in r["per_session"])
            srts = ", ".join(f"{x.get('server_rt')} ({x.get('server_released')}/{x.get('server_sent')})"
                             for x in r["per_session"])
            ffs = ", ".join(f"{x.get('first_frame_s', float('nan'))}" for x in r["per_session"])
            print(f"| {n} | {mode} | {rts} | {srts} | {ffs} | {r['extra_client']} | {r['rss_idle_mb']:.0f} -> {r['rss_peak_mb']:.0f} MB "
                  f"| {r['mb_per_session']:.0f} | {r['load'][0]} / {r['load'][1]} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
