"""`chatanyone serve [--host 127.0.0.1] [--port 8000]`: the avatar live in a browser (WebRTC)."""
from __future__ import annotations

import asyncio
import logging
import signal

from . import CliError
from ..spec.presets import PRESET_LONG_SIDE

log = logging.getLogger("chatanyone")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a web page with the avatar live over WebRTC",
                       description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "another host must be asked for explicitly)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-sessions", type=int, default=None,
                   help="live sessions admitted at once (default: measured on this machine at start)")
    p.add_argument("--idle-timeout", type=float, default=300.0,
                   help="close a session after this many seconds without speech or action (default 300)")
    p.add_argument("--preset", choices=list(PRESET_LONG_SIDE), default="fast")
    p.add_argument("--in-process", action="store_true",
                   help="run every session in the server's own process instead of one worker process "
                        "each (for comparison: sessions then share one interpreter and do not scale "
                        "across cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        from ..serve import ServeOptions, run_server
        from ..serve.capacity import measure_capacity
        from ..serve.server import builtin_avatar
    except ImportError as exc:
        raise CliError(f"serve needs the [serve] extra: pip install 'chatanyone[serve]' ({exc})") from None
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be in 0..65535, got {args.port}")
    if args.idle_timeout <= 0:
        raise CliError(f"--idle-timeout must be > 0, got {args.idle_timeout}")
    cap = args.max_sessions
    if cap is None:
        print("measuring this machine's capacity (a few seconds)...")
        cap, fig = measure_capacity(builtin_avatar(), preset=args.preset, workers=not args.in_process)
        print(f"one session renders a frame in {1000 * fig['s_per_frame']:.1f} ms "
              f"({1000 * fig['cpu_per_frame']:.1f} ms CPU + {1000 * fig['encode_cpu_per_frame']:.1f} ms VP8, "
              f"{fig['realtime_one']:.2f}x real time alone) "
              f"on {fig['cores']} cores: admitting {cap} live session(s)")
    elif cap < 1:
        raise CliError(f"--max-sessions must be >= 1, got {cap}")
    opt = ServeOptions(capacity=cap, preset=args.preset, idle_timeout_s=args.idle_timeout,
                       workers=not args.in_process)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await run_server(opt, args.host, args.port, stop=stop,
                         ready=lambda url, _srv: print(f"chatanyone serve: open {url}  (Ctrl-C stops)", flush=True))

    try:
        asyncio.run(main())
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    print("chatanyone serve: stopped")
    return 0
