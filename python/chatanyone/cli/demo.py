"""`chatanyone demo [-o out.mp4]`: the built-in avatar (a public-domain photo shipped in an installed
package) speaking the built-in speech clip."""
from __future__ import annotations

from .render import add_session_options, check_output, config_from_args, render_to_file


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="render the built-in avatar speaking the built-in clip",
                       description=__doc__)
    p.add_argument("-o", "--output", default="chatanyone_demo.mp4",
                   help="output video (default: chatanyone_demo.mp4)")
    add_session_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..assets import demo_speech
    from ..avatar import Avatar
    from ..assets import default_avatar_image

    config = config_from_args(args)
    check_output(args.output)
    avatar = Avatar.prepare(default_avatar_image())
    pcm, rate = demo_speech()
    stats = render_to_file(avatar, pcm, rate, args.output, config)
    print(f"wrote {args.output}: {stats['frames']} frames, {stats['seconds']:.2f} s, "
          f"{stats['fps']:.1f} fps")
    return 0
