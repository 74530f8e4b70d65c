"""Frame rate in a real browser: headless Chromium (Debian's ``chromium``, fake microphone = a
speech WAV) plays a ``chatanyone serve`` session; the browser's own counters give the figures.

    python benchmarks/serve_browser.py --seconds 20 --modes workers in-process

For each mode (``workers``: the session in its own worker process, the default; ``in-process``:
``serve --in-process``, the earlier design, as the same-run baseline): a ``chatanyone serve
--max-sessions 1`` subprocess on 127.0.0.1, one page, the built-in avatar driven by the
microphone. After a 3 s warm-up, over ``--seconds``:

- presented fps: frames presented per wall second (``requestVideoFrameCallback``);
- per media s: presented frames per second of stream time (RTP timestamps; 25 = none skipped);
- arrived per media s: frames that reached the video element (``totalVideoFrames``) per second
  of stream time (25 = none lost on the way);
- quality fps: ``getVideoPlaybackQuality().totalVideoFrames`` per wall second, and its dropped;
- the server's real-time ratio (frames released / 25 per second).

The machine's load average (1 min) is printed beside every row. Needs selenium and Debian's
``chromium`` + ``chromium-driver``; loopback only; bounded (every wait has a deadline).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from serve_util import (SNAPSHOT, browser_fps, chromium_driver, chromium_paths, media_seconds,  # noqa: E402
                        speech_with_pauses, wait_for, write_wav)
from serve_load import free_port  # noqa: E402


def one_run(mode: str, seconds: float, wav: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([sys.executable, "-m", "chatanyone", "serve", "--port", str(port), "--max-sessions", "1"]
                            + (["--in-process"] if mode == "in-process" else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        def up():
            try:
                with urllib.request.urlopen(url + "api/info", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        if not wait_for(up, 120, 0.5):
            raise RuntimeError("server did not start")
        time.sleep(3.0)
        driver = chromium_driver(wav)
        driver.get(url)
        load0 = os.getloadavg()[0]
        driver.find_element("id", "start").click()
        live = lambda: driver.execute_script("return window.__live")  # noqa: E731
        if not wait_for(lambda: live()["frames"] > 0, 120):
            raise RuntimeError("no frame arrived")
        time.sleep(3.0)
        a = driver.execute_script(SNAPSHOT)
        time.sleep(seconds)
        b = driver.execute_script(SNAPSHOT)
        ra, rb = a["rvfc"], b["rvfc"]
        qa, qb = a["quality"], b["quality"]
        wall = (rb["t1"] - ra["t1"]) / 1000.0
        media = media_seconds(rb, ra["r1"], ra["m1"]) - (ra.get("rtpWraps", 0) * 2 ** 32 / 90000.0
                                                        if ra.get("r1") is not None else 0.0)
        res = {"mode": mode, "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
               "presented_fps": round((rb["n"] - ra["n"]) / wall, 2),
               "per_media_s": round((rb["n"] - ra["n"]) / max(1e-9, media), 2),
               "arrived_per_media_s": round((qb["total"] - qa["total"]) / max(1e-9, media), 2),
               "quality_fps": round((qb["total"] - qa["total"]) / max(1e-9, (qb["at"] - qa["at"]) / 1000.0), 2),
               "quality_dropped": qb["dropped"] - qa["dropped"],
               "server_realtime": (b.get("stats") or {}).get("realtime_ratio"),
               "first_frame_ms": round(b["firstFrameMs"] or 0.0),
               "whole_run": {k: round(v, 2) for k, v in browser_fps(b).items()}}
        return res
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--modes", nargs="+", choices=["workers", "in-process"], default=["workers", "in-process"])
    p.add_argument("--repeat", type=int, default=1, help="rounds of all modes (interleaved)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if chromium_paths()[0] is None:
        p.error("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    if not 5 <= a.seconds <= 120 or not 1 <= a.repeat <= 5:
        p.error("--seconds in 5..120, --repeat in 1..5")
    with tempfile.TemporaryDirectory() as tmp:
        wav = str(write_wav(os.path.join(tmp, "mic.wav"), speech_with_pauses(3.0, 3.0, 0.5)))
        out = []
        print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
        print("| mode | presented fps (wall) | presented per media s | arrived per media s | quality fps (dropped) "
              "| server real-time | first frame | load start/end |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for _ in range(a.repeat):
            for mode in a.modes:
                r = one_run(mode, a.seconds, wav)
                out.append(r)
                print(f"| {mode} | {r['presented_fps']:.1f} | {r['per_media_s']:.1f} | {r['arrived_per_media_s']:.1f} "
                      f"| {r['quality_fps']:.1f} "
                      f"({r['quality_dropped']}) | {r['server_realtime']} | {r['first_frame_ms']} ms "
                      f"| {r['load'][0]} / {r['load'][1]} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
