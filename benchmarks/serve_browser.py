"""Frame rate in a real browser: headless Chromium (Debian's ``chromium``, fake microphone = a
speech WAV) plays a ``chatanyone serve`` session; the browser's own counters give the figures.

    python benchmarks/serve_browser.py --seconds 20 --modes workers in-process

For each mode (``workers``: the session in its own worker process, the default; ``in-process``:
``serve --in-process``, the earlier design, as the same-run baseline; ``workers-nobridge``: workers
with the interrupt's bridge frames off, the baseline for the interrupt figures): a ``chatanyone serve
--max-sessions 1`` subprocess on 127.0.0.1, one page, the built-in avatar driven by the
microphone. After a 3 s warm-up, over ``--seconds``:

- presented fps: frames presented per wall second (``requestVideoFrameCallback``);
- per media s: presented frames per second of stream time (RTP timestamps; 25 = none skipped);
- arrived per media s: frames that reached the video element (``totalVideoFrames``) per second
  of stream time (25 = none lost on the way);
- quality fps: ``getVideoPlaybackQuality().totalVideoFrames`` per wall second, and its dropped;
- the server's real-time ratio (frames released / 25 per second);
- interrupts (``--interrupts N``, ``--barge-ins M``): the page's button pressed N times while the
  avatar speaks, then M times an audio file spoken and the microphone's speech barging in; per
  interrupt, from the server's receipt of it (the button's message, or the microphone chunk that
  confirmed the speech): the first frame released after it (silent audio; ``released``), the same
  frame encoded and its packets sent (``sent``: "leaves the server"), and the bridge frames that
  held the image while the Session rendered its cut; for speech also the detection time, from the
  start of the first loud 20 ms chunk to the receipt (at least the two chunks' 40 ms).

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


_NO_BRIDGE = ("import sys; import chatanyone.serve.live as L; L.BRIDGE_WAIT_S = 1e9; "
              "from chatanyone.cli import main; sys.exit(main(sys.argv[1:]))")


def measure_interrupts(driver, n_button: int, n_speech: int, say: str | None) -> list[dict]:
    """Press the interrupt button ``n_button`` times while the avatar speaks (loud audio received),
    then ``n_speech`` times speak ``say`` (an audio file) and wait for the microphone's speech to
    barge in. Returns the server's ``interrupted`` events, each with the load average beside it."""
    live = lambda: driver.execute_script("return window.__live")  # noqa: E731
    out = []

    def wait_event(n_ev, reason, timeout):
        if not wait_for(lambda: any(e.get("type") == "interrupted" and e.get("reason") == reason
                                    for e in live()["events"][n_ev:]), timeout):
            return None
        ev = [e for e in live()["events"][n_ev:] if e.get("type") == "interrupted" and e.get("reason") == reason][0]
        return dict(ev, load=round(os.getloadavg()[0], 1))

    for _ in range(n_button):
        if not wait_for(lambda: driver.execute_script("return window.__live.samples.slice(-1)[0]?.level || 0") > 0.05,
                        15, 0.02):
            continue
        n_ev = len(live()["events"])
        driver.find_element("id", "interrupt").click()
        ev = wait_event(n_ev, "button", 10)
        if ev:
            out.append(ev)
        time.sleep(1.0)
    for _ in range(n_speech):
        # while the microphone is quiet, speak a file; the microphone's next speech barges in
        wait_for(lambda: driver.execute_script("return window.__live.samples.slice(-1)[0]?.level || 0") < 0.002,
                 15, 0.05)
        n_ev = len(live()["events"])
        driver.execute_script("document.getElementById('speechFile').value = '';")   # same file again: a change
        driver.find_element("id", "speechFile").send_keys(say)
        ev = wait_event(n_ev, "speech", 20)
        if ev:
            out.append(ev)
        time.sleep(1.0)
    return out


def one_run(mode: str, seconds: float, wav: str, n_button: int = 0, n_speech: int = 0, say: str | None = None) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # "workers-nobridge": the same server with the interrupt's bridge frames off (the Session's
    # first frame after its cut is waited for, as before they existed): the same-run baseline
    head = ([sys.executable, "-c", _NO_BRIDGE] if mode == "workers-nobridge" else [sys.executable, "-m", "chatanyone"])
    proc = subprocess.Popen(head + ["serve", "--port", str(port), "--max-sessions", "1"]
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
        ints = measure_interrupts(driver, n_button, n_speech, say)
        res = {"mode": mode, "load": [round(load0, 1), round(os.getloadavg()[0], 1)], "interrupts": ints,
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
    p.add_argument("--modes", nargs="+", choices=["workers", "in-process", "workers-nobridge"], default=["workers", "in-process"])
    p.add_argument("--repeat", type=int, default=1, help="rounds of all modes (interleaved)")
    p.add_argument("--interrupts", type=int, default=3, help="button interrupts per run (0..20)")
    p.add_argument("--barge-ins", type=int, default=2, help="speech barge-ins per run (0..20)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if chromium_paths()[0] is None:
        p.error("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    if not 5 <= a.seconds <= 120 or not 1 <= a.repeat <= 5:
        p.error("--seconds in 5..120, --repeat in 1..5")
    if not 0 <= a.interrupts <= 20 or not 0 <= a.barge_ins <= 20:
        p.error("--interrupts and --barge-ins in 0..20")
    with tempfile.TemporaryDirectory() as tmp:
        wav = str(write_wav(os.path.join(tmp, "mic.wav"), speech_with_pauses(3.0, 3.0, 0.5)))
        say = str(write_wav(os.path.join(tmp, "say.wav"), speech_with_pauses(6.0, 0.0, 0.0)))
        out = []
        print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
        print("| mode | presented fps (wall) | presented per media s | arrived per media s | quality fps (dropped) "
              "| server real-time | first frame | load start/end |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for _ in range(a.repeat):
            for mode in a.modes:
                r = one_run(mode, a.seconds, wav, a.interrupts, a.barge_ins, say)
                out.append(r)
                print(f"| {mode} | {r['presented_fps']:.1f} | {r['per_media_s']:.1f} | {r['arrived_per_media_s']:.1f} "
                      f"| {r['quality_fps']:.1f} "
                      f"({r['quality_dropped']}) | {r['server_realtime']} | {r['first_frame_ms']} ms "
                      f"| {r['load'][0]} / {r['load'][1]} |", flush=True)
        rows = [(r["mode"], e) for r in out for e in r["interrupts"]]
        if rows:
            print("\n| mode | interrupt | detected | released | sent | bridged | load |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            for mode, e in rows:
                print(f"| {mode} | {e['reason']} | {e.get('detect_ms', '')} | {e['audio_stopped_ms']} ms "
                      f"| {e.get('sent_ms')} ms | {e['bridged']} | {e['load']} |")
            for mode in a.modes:
                for reason in ("button", "speech"):
                    sent = sorted(e["sent_ms"] for m, e in rows if m == mode and e["reason"] == reason
                                  and e.get("sent_ms") is not None)
                    if sent:
                        print(f"{mode} {reason}: sent after {sent[len(sent) // 2]:.0f} ms median "
                              f"({sent[0]:.0f}-{sent[-1]:.0f}, n={len(sent)})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
