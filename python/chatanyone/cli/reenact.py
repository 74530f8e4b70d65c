"""`chatanyone reenact PHOTO DRIVING_VIDEO -o out.mp4`: a photo driven by a real video's face, head,
body and hand motion, with the driving video's audio."""
from __future__ import annotations

import os

from . import CliError
from ..spec.presets import PRESET_LONG_SIDE


def add_parser(sub) -> None:
    p = sub.add_parser("reenact", help="drive a photo with the motion of a real video",
                       description=__doc__)
    p.add_argument("photo", help="portrait photo (jpg/png/...) or a prepared avatar (.npz)")
    p.add_argument("driving", help="driving video showing one person's face (any format FFmpeg reads)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, H.264 + AAC)")
    p.add_argument("--preset", default="fast", choices=list(PRESET_LONG_SIDE), help="renderer preset (default: fast)")
    p.add_argument("--reference", default="first", choices=["first", "median"],
                   help="motion relative to the driving video's first face frame (default) or its median")
    p.add_argument("--no-register", action="store_true",
                   help="move the photo's body and hair by the pose and head only, not by their motion "
                        "registered on the driving frames")
    p.add_argument("--max-seconds", type=float, default=None, help="use only the first seconds of the video")
    p.add_argument("--no-cache", action="store_true", help="do not cache the driving video's landmarks")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import SessionConfig
    from ..reenact import reenact
    from .render import check_output, load_avatar

    check_output(args.output)
    if not os.path.isfile(args.driving):
        raise CliError(f"driving video not found: {args.driving!r}")
    try:
        config = SessionConfig(preset=args.preset)
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None
    avatar = load_avatar(args.photo, config.preset)
    res = reenact(avatar, args.driving, args.output, config=config, reference=args.reference,
                  register=not getattr(args, "no_register", False), max_seconds=args.max_seconds, cache=False if args.no_cache else None, progress=True)
    print(f"wrote {args.output}: {res.frames} frames, {res.seconds:.2f} s, {res.size[0]}x{res.size[1]}, "
          f"{'with' if res.has_audio else 'without'} audio")
    return 0
