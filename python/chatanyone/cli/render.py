"""`chatanyone render PORTRAIT AUDIO -o out.mp4`: one photo and one speech file to a talking video."""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from . import CliError
from ..spec.presets import PRESET_LONG_SIDE

log = logging.getLogger("chatanyone")


def add_session_options(p) -> None:
    """Options shared by `render` and `demo` (they map onto SessionConfig fields)."""
    p.add_argument("--preset", default="fast", choices=list(PRESET_LONG_SIDE),
                   help="fast: real time on CPU, frames 512 px on the long side; quality: 1024 px "
                        "(default: fast)")
    p.add_argument("--size", type=int, default=None, dest="output_size",
                   help="long side of the frames in pixels (default: the preset's); the photo's "
                        "aspect ratio is kept")
    p.add_argument("--fps", type=float, default=25.0, help="output frame rate (default: 25)")
    p.add_argument("--style", default=None, help="style reference: a motion .npz or a video")
    p.add_argument("--intensity", type=float, default=1.0, help="expression intensity 0..2 (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps of the motion sampler")


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="render a talking video from a portrait and a speech file",
                       description=__doc__)
    p.add_argument("portrait", help="portrait photo (jpg/png/...) or a prepared avatar (.npz)")
    p.add_argument("audio", help="speech: wav, flac, mp3 or any file FFmpeg reads (judged by content)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, H.264 + AAC)")
    add_session_options(p)
    p.set_defaults(func=run)


def config_from_args(args):
    from ..config import SessionConfig

    kw = dict(fps=args.fps, preset=args.preset, style=style_motion_file(args.style), intensity=args.intensity,
              seed=args.seed, output_size=getattr(args, "output_size", None))
    if args.steps is not None:
        kw["ddim_steps"] = args.steps
    try:
        return SessionConfig(**kw)
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None


def style_motion_file(style: str | None) -> str | None:
    """``--style``: a motion ``.npz`` or corpus clip folder is used as it is; a video's motion is
    extracted first (the offline data pipeline, about 0.1 s per frame) into a temporary ``.npz``."""
    if style is None or not os.path.isfile(style) or style.lower().endswith(".npz"):
        return style
    import tempfile

    from ..data.corpus import video_motion

    out = os.path.join(tempfile.mkdtemp(prefix="chatanyone-style-"), "style.npz")
    try:
        video_motion(style, out)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    return out


def load_avatar(path: str, preset: str):
    from ..avatar import Avatar

    if not os.path.isfile(path):
        raise CliError(f"portrait not found: {path!r}")
    if path.lower().endswith(".npz"):
        return Avatar.load(path)
    return Avatar.prepare(path)


def check_output(output: str) -> None:
    """Refuse an output path that cannot be written, before any work is done: a wrong extension, a
    folder, a missing or read-only folder, a read-only file."""
    if output and os.path.isdir(output):
        raise CliError(f"output {output!r} is a folder: give a file name such as {os.path.join(output, 'out.mp4')!r}")
    if not output or not output.lower().endswith((".mp4", ".m4v", ".mov")):
        raise CliError(f"output must be an .mp4 file, got {output!r}")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise CliError(f"output folder does not exist: {parent!r}")
    if os.path.exists(output) and not os.access(output, os.W_OK):
        raise CliError(f"output {output!r} exists and is not writable")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"output folder is not writable: {parent!r}")


def render_to_file(avatar, pcm: np.ndarray, rate: int, output: str, config, *, progress=True) -> dict:
    """Run a Session over ``pcm`` and write an MP4 with the audio muxed. Returns timing figures."""
    from tqdm import tqdm

    from ..media import VideoWriter
    from ..session import Session

    check_output(output)
    duration = len(pcm) / rate
    n_expected = int(np.ceil(duration * config.fps - 1e-9))
    t0 = time.perf_counter()
    first = None
    with Session(avatar, config) as s, VideoWriter(output, *s.frame_size, config.fps) as out:
        chunk = max(1, rate // 10)
        for i in range(0, len(pcm), chunk):  # fed like a stream, 100 ms at a time
            s.feed_audio(pcm[i:i + chunk], rate)
        s.flush()
        n = 0
        with tqdm(total=n_expected, unit="frame", disable=not progress, desc="render") as bar:
            while (f := s.next_frame()) is not None:
                if first is None:
                    first = time.perf_counter() - t0
                out.write(f.image, f.audio)
                n += 1
                bar.update(1)
    wall = time.perf_counter() - t0
    log.info("wrote %s: %d frames (%.2f s of speech) in %.1f s, %.1f fps", output, n, duration, wall,
             n / max(wall, 1e-9))
    return {"frames": n, "seconds": duration, "wall_s": wall, "fps": n / max(wall, 1e-9),
            "first_frame_s": first}


def run(args) -> int:
    from ..media import read_audio

    config = config_from_args(args)
    check_output(args.output)
    if not os.path.isfile(args.audio):
        raise CliError(f"audio file not found: {args.audio!r}")
    try:
        pcm, rate = read_audio(args.audio)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    avatar = load_avatar(args.portrait, config.preset)
    render_to_file(avatar, pcm, rate, args.output, config)
    return 0
