"""``chatanyone inspect CLIP_OR_IMAGE -o OUT``: draw the landmarks over frames (PNG or MP4)."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from . import CliError

log = logging.getLogger("chatanyone")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect", help="draw a clip's or a photo's landmarks (PNG contact sheet or MP4)",
        description="CLIP_OR_IMAGE is a corpus clip folder (from prepare-data), a video file or a photo. "
                    "A .png OUT gets a contact sheet of frames with landmarks and a plot of the tracks "
                    "(mouth opening raw vs smoothed, head angles, eye openness); a .mp4 OUT gets every "
                    "frame with landmarks. Green: face mesh; cyan: irises; red rings: the renderer's "
                    "keypoints; blue: body; yellow/magenta: left/right hand.")
    p.add_argument("input", metavar="CLIP_OR_IMAGE")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output .png or .mp4")
    p.add_argument("--frames", type=int, default=8, help="frames on the contact sheet (default 8)")
    p.add_argument("--raw", action="store_true", help="draw the raw (unsmoothed) tracks of a clip")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="a video file is analysed up to this many seconds (default 20)")
    p.set_defaults(func=run)


def _clip_from_video(path: str, max_seconds: float) -> dict:
    """Detect on a video file directly (no corpus): returns a clip-like dict."""
    from ..data import corpus
    from ..data.video import iter_frames, probe
    from ..vision import framing
    from ..vision.detect import Detector
    info = probe(path)
    n_max = int(max_seconds * corpus.FPS)
    imgs, res = [], []
    with Detector(video=True) as det:
        for t, img in iter_frames(path, corpus.FPS, max_side=corpus.DETECT_MAX_SIDE):
            if t >= n_max:
                break
            imgs.append(img)
            res.append(det(img))
    if not imgs:
        raise CliError(f"{path}: no frames")
    ok = np.array([r.face_ok for r in res])
    if not ok.any():
        raise CliError(f"{path}: no face found in any frame")
    h, w = imgs[0].shape[:2]
    face = np.stack([r.face for r in res])
    box = framing.upper_body_box(face[..., :2] * [w, h], face_ok=ok)
    crops = np.stack([framing.crop(im, box, framing.FAST_SIZE) for im in imgs])
    raw = dict(face=framing.to_crop_space(face, (w, h), box), face_ok=ok,
               pose=framing.to_crop_space(np.stack([r.pose for r in res]), (w, h), box),
               pose_ok=np.array([r.pose_ok for r in res]),
               hands=framing.to_crop_space(np.stack([r.hands for r in res]), (w, h), box),
               hands_ok=np.stack([r.hands_ok for r in res]))
    sm = corpus.smooth_landmarks(raw)
    lm = dict(sm)
    lm.update({"raw_" + k: v for k, v in raw.items()})
    log.info("%s: %d frames, %dx%d, face in %.0f%%", path, len(imgs), info.width, info.height, 100 * ok.mean())
    return dict(crops=crops, lm=lm, name=Path(path).name)


def _clip_from_dir(d: Path) -> dict:
    from ..data import corpus
    if not (d / "landmarks.npz").exists() or not (d / "crops.npy").exists():
        raise CliError(f"{d} is not a corpus clip folder (no landmarks.npz / crops.npy)")
    lm = corpus.load_landmarks(d)
    crops = np.load(d / "crops.npy", mmap_mode="r")
    mot = None
    if (d / "motion.npz").exists():
        with np.load(d / "motion.npz", allow_pickle=False) as z:
            mot = {k: z[k] for k in z.files}
    return dict(crops=crops, lm=lm, motion=mot, name=d.name)


def _mouth(face):
    from ..spec import keypoint_layout as L
    return np.linalg.norm(face[:, L.MOUTH_UPPER_INNER, :2] - face[:, L.MOUTH_LOWER_INNER, :2], axis=-1)


def _render_clip(clip: dict, out: str, n_frames: int, raw: bool) -> None:
    from ..data import draw
    from ..spec import keypoint_layout as L
    lm = clip["lm"]
    pre = "raw_" if raw else ""
    face, face_ok = lm[pre + "face"], lm[pre + "face_ok"]
    pose, hands, hands_ok = lm[pre + "pose"], lm[pre + "hands"], lm[pre + "hands_ok"]
    crops = clip["crops"]
    T = len(crops)

    def frame(t, scale):
        kp, vis = L.renderer_keypoints(face[t], pose[t] if lm[pre + "pose_ok"][t] else None, hands[t],
                                       face_ok=bool(face_ok[t]), hands_ok=hands_ok[t])
        return draw.draw_frame(np.asarray(crops[t]), face[t] if face_ok[t] else None,
                               pose[t] if lm[pre + "pose_ok"][t] else None, hands[t], hands_ok[t],
                               kp=kp, vis=vis, text=f"{clip['name'][:26]} t={t}", scale=scale)

    if out.lower().endswith(".mp4"):
        import av
        with av.open(out, "w") as c:
            s = c.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = crops.shape[2] * 2, crops.shape[1] * 2, "yuv420p"
            for t in range(T):
                for pkt in s.encode(av.VideoFrame.from_ndarray(frame(t, 2), format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        log.info("wrote %s (%d frames)", out, T)
        return
    idx = np.unique(np.linspace(0, T - 1, min(n_frames, T)).round().astype(int))
    tiles = [frame(t, 1) for t in idx]
    cols = min(4, len(tiles))
    sheet = draw.grid(tiles, cols)
    series = {"mouth raw": _mouth(lm["raw_face"]), "mouth smooth": _mouth(lm["face"])}
    mot = clip.get("motion")
    if mot is not None:
        series["yaw"] = mot["head"][:, 0]
        series["pitch"] = mot["head"][:, 1]
        series["eye L"] = mot["eye"][:, 0]
        series["gaze x"] = mot["eye"][:, 2]
    plot = draw.trace_plot(series, sheet.shape[1], 110, 25.0, marks=list(idx))
    import cv2
    img = np.concatenate([sheet, plot], 0)
    if not cv2.imwrite(out, img[:, :, ::-1]):
        raise CliError(f"cannot write {out}")
    log.info("wrote %s", out)


def _render_image(path: str, out: str) -> None:
    from ..avatar import Avatar
    from ..data import draw
    av = Avatar.prepare(path)
    tile = draw.draw_frame(av.crop_hq, av.face, av.pose, av.hands, av.hands_ok, kp=av.kp, vis=av.vis,
                           text=f"{av.name[:40]} yaw {np.degrees(av.source.head[0]):+.0f} "
                                f"pitch {np.degrees(av.source.head[1]):+.0f} roll {np.degrees(av.source.head[2]):+.0f}")
    import cv2
    if out.lower().endswith(".mp4"):
        raise CliError("a photo gives a .png, not a .mp4")
    if not cv2.imwrite(out, tile[:, :, ::-1]):
        raise CliError(f"cannot write {out}")
    log.info("wrote %s", out)


def run(args: argparse.Namespace) -> int:
    from ..avatar import AvatarError
    from ..data.video import VideoError
    src, out = args.input, args.out
    if not out.lower().endswith((".png", ".mp4")):
        raise CliError(f"-o must end in .png or .mp4, got {out}")
    if not os.path.exists(src):
        raise CliError(f"no such file or folder: {src}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        if os.path.isdir(src):
            _render_clip(_clip_from_dir(Path(src)), out, args.frames, args.raw)
        elif src.lower().endswith(IMAGE_EXT):
            _render_image(src, out)
        else:
            _render_clip(_clip_from_video(src, args.max_seconds), out, args.frames, args.raw)
    except (AvatarError, VideoError) as exc:
        raise CliError(str(exc)) from exc
    return 0
