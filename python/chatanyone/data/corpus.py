"""Build the training corpus: one folder of plain numpy files per clip (layout in docs/design.md).

Two stages per clip, so the expression basis can be fitted on the training clips in between:

1. :func:`prepare_clip` (slow: decoding and landmark detection): ``landmarks.npz`` (raw and smoothed
   tracks), ``crops.npy``, ``crops_head.npy``, ``audio.npy``, ``mel.npy``, ``meta.json``.
2. :func:`write_motion` (fast): ``motion.npz`` from the smoothed landmarks and the PCA basis.

:func:`build` runs both over many videos, resumable (finished clips are skipped) and robust (a clip
that fails is logged with its reason and the others go on). Every file is written under a temporary
name and renamed when complete, so an interrupted run leaves no half-written file behind.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from ..audio.features import log_mel
from ..vision import framing
from ..vision.detect import Detector, N_FACE, N_HAND, N_POSE, plausible_hands
from ..vision.framing import to_crop_space
from . import smoothing
from .video import VideoError, iter_frames, probe, read_clip_audio, video_timing

log = logging.getLogger("chatanyone")

FPS = 25.0
DETECT_MAX_SIDE = 960   # frames are downsized to this before detection (landmarks are normalized)
CROP_MAX_SIDE = 1600    # and to this before cropping
MIN_FACE_FRACTION = 0.5  # a clip with a face in fewer frames than this fails
MIN_SECONDS = 1.0        # a clip shorter than this fails
SILENCE_RMS = 1e-4       # audio quieter than this (RMS) counts as silent
STAGE1_FILES = ("meta.json", "landmarks.npz", "crops.npy", "crops_head.npy", "audio.npy", "mel.npy")


class ClipError(Exception):
    """A clip cannot go into the corpus; the message says why."""


def clip_id(path: str | os.PathLike) -> str:
    """Folder name of a clip: its file name without extension, made filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr, allow_pickle=False)
    os.replace(tmp, path)


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _save_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def load_meta(clip_dir: str | os.PathLike) -> dict:
    return json.loads((Path(clip_dir) / "meta.json").read_text())


def stage1_done(clip_dir: Path) -> bool:
    if not all((clip_dir / f).exists() for f in STAGE1_FILES):
        return False
    try:
        return bool(load_meta(clip_dir).get("stage1"))
    except (OSError, ValueError):
        return False


def smooth_landmarks(raw: dict, fps: float = FPS, canonical: np.ndarray | None = None) -> dict:
    """Smoothed tracks from the raw ones (crop coordinates; see :mod:`.smoothing`).

    ``raw`` holds ``face [T,478,3], face_ok [T], pose [T,33,4], pose_ok [T], hands [T,2,21,3],
    hands_ok [T,2]``. Face gaps up to 5 frames and hand gaps up to 3 frames are interpolated (and
    marked ok); pose visibility is smoothed like a coordinate. Hands without a supporting arm in the
    pose are dropped first (:func:`chatanyone.vision.detect.plausible_hands`). The face is smoothed by
    :func:`.smoothing.smooth_face` with ``canonical`` (default: the packaged basis's).
    """
    if canonical is None:
        try:
            from ..spec.head import load_basis
            canonical = load_basis().canonical
        except FileNotFoundError:
            log.warning("no face basis yet: smoothing the face mesh point by point")
    face, face_ok = smoothing.smooth_face(raw["face"], raw["face_ok"], fps, canonical, max_gap=5)
    pose_ok_in = raw["pose_ok"]
    pose_xyz, pose_ok = smoothing.smooth_track(raw["pose"][..., :3], pose_ok_in, fps, max_gap=5)
    pose_v, _ = smoothing.smooth_track(raw["pose"][..., 3:], pose_ok_in, fps, max_gap=5, speed_axes=None)
    pose = np.concatenate([pose_xyz, pose_v], -1)
    hands = np.full(raw["hands"].shape, np.nan, np.float32)
    hands_ok = np.zeros(raw["hands_ok"].shape, bool)
    seen = plausible_hands(raw["face"], raw["face_ok"], raw["pose"], raw["hands"], raw["hands_ok"])
    for s in range(2):
        hands[:, s], hands_ok[:, s] = smoothing.smooth_track(raw["hands"][:, s], seen[:, s], fps, max_gap=3)
    return dict(face=face, face_ok=face_ok, pose=pose, pose_ok=pose_ok, hands=hands, hands_ok=hands_ok)


def detect_clip(path: str, fps: float = FPS, progress: bool = False, *, n: int | None = None,
                max_side: int = DETECT_MAX_SIDE) -> tuple[dict, int, float]:
    """Run the detector over every output frame (the first ``n``; None: all), on frames downsized
    to ``max_side``. Returns ``(raw tracks image-normalized, T, seconds)``; ``T`` is less than
    ``n`` where decoding ended early. Blocks for the whole pass (tens of ms a frame)."""
    if n is None:
        _, _, n = video_timing(path, fps)
    face = np.full((n, N_FACE, 3), np.nan, np.float32)
    pose = np.full((n, N_POSE, 4), np.nan, np.float32)
    hands = np.full((n, 2, N_HAND, 3), np.nan, np.float32)
    face_ok = np.zeros(n, bool)
    pose_ok = np.zeros(n, bool)
    hands_ok = np.zeros((n, 2), bool)
    hands_score = np.zeros((n, 2), np.float32)
    n_faces = np.zeros(n, np.int8)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n, desc=Path(path).name[:32], unit="f", leave=False)
    last_src, last_res = None, None
    count = 0
    with Detector(video=True) as det:
        for t, img in iter_frames(path, fps, max_side=max_side):
            if t >= n:
                break
            # a repeated source frame (lower source rate) gives the same landmarks
            r = last_res if img is last_src else det(img)
            last_src, last_res = img, r
            face[t], face_ok[t] = r.face, r.face_ok
            pose[t], pose_ok[t] = r.pose, r.pose_ok
            hands[t], hands_ok[t], hands_score[t] = r.hands, r.hands_ok, r.hands_score
            n_faces[t] = r.n_faces
            count = t + 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if count < n:  # decoding ended early: keep what we have
        face, pose, hands = face[:count], pose[:count], hands[:count]
        face_ok, pose_ok, hands_ok, hands_score, n_faces = (face_ok[:count], pose_ok[:count], hands_ok[:count],
                                                             hands_score[:count], n_faces[:count])
        n = count
    raw = dict(face=face, face_ok=face_ok, pose=pose, pose_ok=pose_ok, hands=hands, hands_ok=hands_ok,
               hands_score=hands_score, n_faces=n_faces)
    return raw, n, time.perf_counter() - t0


def prepare_clip(path: str | os.PathLike, out_dir: str | os.PathLike, *, fps: float = FPS,
                 require_audio: bool = False, progress: bool = False) -> dict:
    """Stage 1 for one video: landmarks, crops and audio into ``out_dir`` (created).

    Returns the clip's meta dict. Raises :class:`ClipError` (with the reason) when the clip cannot be
    used: unreadable, too short, no face in most frames, or (``require_audio``) no audio.
    """
    path = str(path)
    out = Path(out_dir)
    t_start = time.perf_counter()
    try:
        info = probe(path)
    except (VideoError, FileNotFoundError) as exc:
        raise ClipError(f"unreadable: {exc}") from exc
    if require_audio and not info.has_audio:
        raise ClipError("no audio track (audio required)")
    if require_audio:  # cheap to check before the slow detection
        a, _ = read_clip_audio(path, video_timing(path, fps)[2], fps)
        if a.size == 0 or float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) < SILENCE_RMS:
            raise ClipError("audio track is silent (audio required)")
    try:
        raw_img, n, t_detect = detect_clip(path, fps, progress)
    except VideoError as exc:
        raise ClipError(f"unreadable: {exc}") from exc
    if n / fps < MIN_SECONDS:
        raise ClipError(f"too short: {n / fps:.2f} s < {MIN_SECONDS} s")
    frac = float(raw_img["face_ok"].mean())
    if frac < MIN_FACE_FRACTION:
        raise ClipError(f"no face in {100 * (1 - frac):.0f}% of frames")
    wh = (info.width, info.height)
    face_px = raw_img["face"][..., :2] * np.array(wh, np.float32)
    box = framing.upper_body_box(face_px, face_ok=raw_img["face_ok"])
    hbox = framing.head_box(face_px, face_ok=raw_img["face_ok"])
    # image-normalized -> crop coordinates
    raw = dict(raw_img)
    raw["face"] = to_crop_space(raw_img["face"], wh, box)
    raw["pose"] = to_crop_space(raw_img["pose"], wh, box)
    raw["hands"] = to_crop_space(raw_img["hands"], wh, box)
    sm = smooth_landmarks(raw, fps)
    out.mkdir(parents=True, exist_ok=True)
    # crops: a second decoding pass (the box needed every frame's landmarks first)
    t1 = time.perf_counter()
    write_crops(path, out, n, fps, box, hbox, wh)
    t_crop = time.perf_counter() - t1
    audio, has_audio = read_clip_audio(path, n, fps)
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0
    silent = rms < SILENCE_RMS
    if require_audio and (not has_audio or silent):
        raise ClipError("audio track is silent (audio required)" if has_audio else "no audio track")
    _save_npy(out / "audio.npy", audio)
    _save_npy(out / "mel.npy", log_mel(audio))
    _save_npz(out / "landmarks.npz",
              face=sm["face"], face_ok=sm["face_ok"], pose=sm["pose"], pose_ok=sm["pose_ok"],
              hands=sm["hands"], hands_ok=sm["hands_ok"],
              raw_face=raw["face"], raw_face_ok=raw["face_ok"], raw_pose=raw["pose"],
              raw_pose_ok=raw["pose_ok"], raw_hands=raw["hands"], raw_hands_ok=raw["hands_ok"],
              hands_score=raw["hands_score"], n_faces=raw["n_faces"])
    meta = dict(
        clip_id=clip_id(path), source=os.path.abspath(path), fps=fps, n_frames=int(n),
        seconds=n / fps, original_size=[info.width, info.height], codec=info.codec,
        rotation=info.rotation, source_fps=info.nominal_fps,
        crop_box=[box.x0, box.y0, box.w, box.h], head_box=[hbox.x0, hbox.y0, hbox.w, hbox.h],
        crop_size=list(framing.FAST_SIZE), head_size=framing.HEAD_SIZE,
        crop_valid=list(framing.valid_rect(box, wh, framing.FAST_SIZE)),
        head_valid=list(framing.valid_rect(hbox, wh, (framing.HEAD_SIZE, framing.HEAD_SIZE))),
        has_audio=bool(has_audio), audio_silent=bool(silent), audio_rms=rms,
        audio_rate=info.audio_rate, audio_channels=info.audio_channels,
        face_fraction=frac, pose_fraction=float(raw["pose_ok"].mean()),
        hands_fraction=[float(x) for x in raw["hands_ok"].mean(0)],
        multi_face_fraction=float((raw["n_faces"] > 1).mean()),
        timings=dict(detect_s=t_detect, crop_s=t_crop, total_s=time.perf_counter() - t_start,
                     detect_ms_per_frame=1000 * t_detect / max(n, 1)),
        stage1=True, stage2=False,
    )
    _save_json(out / "meta.json", meta)
    return meta


def write_crops(path: str, out: Path, n: int, fps: float, box: framing.Box, hbox: framing.Box,
                image_wh: tuple[int, int]) -> None:
    """Decode ``path`` again and write ``crops.npy [T, 384, 256, 3]`` and ``crops_head.npy
    [T, 256, 256, 3]`` (uint8, memory-mappable) for the fixed boxes (in source pixels)."""
    fw, fh = framing.FAST_SIZE
    hs = framing.HEAD_SIZE
    crops = np.lib.format.open_memmap(out / "crops.tmp.npy", mode="w+", dtype=np.uint8, shape=(n, fh, fw, 3))
    heads = np.lib.format.open_memmap(out / "crops_head.tmp.npy", mode="w+", dtype=np.uint8, shape=(n, hs, hs, 3))
    last_src = None
    c = hc = None
    t = -1
    for t, img in iter_frames(path, fps, max_side=CROP_MAX_SIDE):
        if t >= n:
            break
        if img is not last_src:  # a repeated source frame gives the same crops
            s = img.shape[1] / image_wh[0]
            b = framing.Box(box.x0 * s, box.y0 * s, box.w * s, box.h * s)
            hb = framing.Box(hbox.x0 * s, hbox.y0 * s, hbox.w * s, hbox.h * s)
            c = framing.crop(img, b, (fw, fh))
            hc = framing.crop(img, hb, (hs, hs))
            last_src = img
        crops[t] = c
        heads[t] = hc
    if c is not None and t + 1 < n:  # decoding ended early: repeat the last crop
        crops[t + 1:] = c
        heads[t + 1:] = hc
    crops.flush()
    heads.flush()
    del crops, heads
    os.replace(out / "crops.tmp.npy", out / "crops.npy")
    os.replace(out / "crops_head.tmp.npy", out / "crops_head.npy")


def recrop(clip_dir: str | os.PathLike) -> None:
    """Rewrite the crops of a finished clip from its source video (after a change in :mod:`.framing`)."""
    d = Path(clip_dir)
    m = load_meta(d)
    box, hbox = framing.Box.from_array(m["crop_box"]), framing.Box.from_array(m["head_box"])
    wh = tuple(m["original_size"])
    write_crops(m["source"], d, m["n_frames"], m["fps"], box, hbox, wh)
    m["crop_valid"] = list(framing.valid_rect(box, wh, framing.FAST_SIZE))
    m["head_valid"] = list(framing.valid_rect(hbox, wh, (framing.HEAD_SIZE, framing.HEAD_SIZE)))
    _save_json(d / "meta.json", m)


def write_quality_crops(clip_dir: str | os.PathLike, max_frames: int | None = None) -> Path:
    """Write ``crops_hq.npy [n, 768, 512, 3]`` uint8 and ``crops_hq_idx.npy [n]`` (the frame indices,
    evenly spread, all frames when ``max_frames`` is None) for a finished clip, from its source video
    and its fixed crop box: the quality preset's targets. The fast crops are untouched.
    Returns the path of ``crops_hq.npy``. Blocks while decoding."""
    d = Path(clip_dir)
    m = load_meta(d)
    n = int(m["n_frames"])
    idx = np.arange(n) if max_frames is None or max_frames >= n else \
        np.unique(np.linspace(0, n - 1, max_frames).round().astype(int))
    want = {int(t): i for i, t in enumerate(idx)}
    box = framing.Box.from_array(m["crop_box"])
    wh = tuple(m["original_size"])
    qw, qh = framing.QUALITY_SIZE
    crops = np.lib.format.open_memmap(d / "crops_hq.tmp.npy", mode="w+", dtype=np.uint8, shape=(len(idx), qh, qw, 3))
    done = np.zeros(len(idx), bool)
    last = None
    for t, img in iter_frames(m["source"], m["fps"], max_side=CROP_MAX_SIDE):
        if t > idx[-1]:
            break
        if t not in want:
            continue
        s = img.shape[1] / wh[0]
        last = framing.crop(img, framing.Box(box.x0 * s, box.y0 * s, box.w * s, box.h * s), (qw, qh))
        crops[want[t]] = last
        done[want[t]] = True
    if last is None:
        raise ValueError(f"{d.name}: no frame decoded from {m['source']}")
    crops[~done] = last   # decoding ended early: repeat the last crop, as write_crops does
    crops.flush()
    del crops
    np.save(d / "crops_hq_idx.npy", idx.astype(np.int32))
    os.replace(d / "crops_hq.tmp.npy", d / "crops_hq.npy")
    return d / "crops_hq.npy"


def load_landmarks(clip_dir: str | os.PathLike) -> dict:
    with np.load(Path(clip_dir) / "landmarks.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def resmooth(clip_dir: str | os.PathLike, fps: float = FPS, canonical: np.ndarray | None = None) -> None:
    """Recompute the smoothed tracks of a finished clip from its raw ones (after retuning)."""
    d = Path(clip_dir)
    lm = load_landmarks(d)
    raw = {k[4:]: v for k, v in lm.items() if k.startswith("raw_")}
    sm = smooth_landmarks(raw, fps, canonical)
    lm.update(sm)
    _save_npz(d / "landmarks.npz", **lm)


def write_motion(clip_dir: str | os.PathLike, basis=None) -> dict:
    """Stage 2 for one clip: ``motion.npz`` from the smoothed landmarks (see :mod:`.motion`)."""
    from . import motion_features as motion
    d = Path(clip_dir)
    lm = load_landmarks(d)
    meta = load_meta(d)
    basis = basis or motion.load_basis()
    fit: list = []
    feats = motion.clip_motion(lm, basis=basis, fit=fit)
    _save_npz(d / "motion.npz", **feats)
    # the face in canonical space and the absolute head pose, beside the other geometry
    lm["canon_face"], lm["head_abs"] = fit[0].canon, fit[0].head
    _save_npz(d / "landmarks.npz", **lm)
    meta["stage2"] = True
    meta["basis"] = basis.fingerprint
    meta["motion_frames_ok"] = float(feats["face_ok"].mean())
    meta["cuts"] = [int(t) for t in np.flatnonzero(feats["cut"])]
    _save_json(d / "meta.json", meta)
    return meta


def _basis_fp(basis) -> str | None:
    from . import motion_features as motion
    try:
        return (basis or motion.load_basis()).fingerprint
    except FileNotFoundError:
        return None


@dataclasses.dataclass
class BuildReport:
    """What :func:`build` did."""
    done: list[dict]       # meta of every clip that is in the corpus (new or resumed)
    skipped: list[str]     # clip ids already finished before this run
    failed: list[tuple[str, str]]  # (clip id, reason)


def build(videos: list[str | os.PathLike], out_dir: str | os.PathLike, *, fps: float = FPS,
          require_audio: bool = False, motion: bool = True, basis=None, progress: bool = True,
          redo: bool = False) -> BuildReport:
    """Stage 1 (and, with ``motion``, stage 2) for every video into ``out_dir/<clip_id>/``.

    Finished clips are skipped unless ``redo``. A failing clip is logged and recorded in
    ``out_dir/failures.json``; the others go on. Blocks until all are done.
    ``basis``: the :class:`~chatanyone.spec.head.FaceBasis` for stage 2 (default: the packaged one).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fail_path = out / "failures.json"
    failures = json.loads(fail_path.read_text()) if fail_path.exists() else {}
    rep = BuildReport([], [], [])
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(videos), desc="clips", unit="clip")
    for v in videos:
        cid = clip_id(v)
        d = out / cid
        try:
            if stage1_done(d) and not redo:
                rep.skipped.append(cid)
                meta = load_meta(d)
            else:
                log.info("preparing %s", v)
                meta = prepare_clip(v, d, fps=fps, require_audio=require_audio, progress=progress)
            if motion and (redo or not meta.get("stage2") or not (d / "motion.npz").exists()
                           or meta.get("basis") != _basis_fp(basis)):
                if meta.get("stage2") and meta.get("basis") != _basis_fp(basis):
                    from ..spec.head import load_basis  # a new basis: its canonical face smooths too
                    resmooth(d, fps, canonical=(basis or load_basis()).canonical)
                meta = write_motion(d, basis)
            rep.done.append(meta)
            failures.pop(cid, None)
        except ClipError as exc:
            log.warning("skipping %s: %s", v, exc)
            rep.failed.append((cid, str(exc)))
            failures[cid] = dict(source=str(v), reason=str(exc))
        except (OSError, ValueError, RuntimeError) as exc:  # unexpected, but the rest must go on
            log.exception("skipping %s after an error", v)
            rep.failed.append((cid, f"{type(exc).__name__}: {exc}"))
            failures[cid] = dict(source=str(v), reason=f"{type(exc).__name__}: {exc}")
        _save_json(fail_path, failures)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rep


def video_motion(video: str | os.PathLike, out_npz: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The motion of one video (``prepare-data``'s two stages in a temporary folder), e.g. to use
    it as a style reference (``SessionConfig.style`` takes the ``.npz``). About 0.1 s per frame.

    Returns the ``motion.npz`` arrays; with ``out_npz`` they are also written there.
    Raises ValueError naming the video when it cannot be used (no face, too short, unreadable).
    """
    import tempfile

    log.info("extracting the motion of %s (about 0.1 s per frame)", video)
    with tempfile.TemporaryDirectory(prefix="chatanyone-motion-") as d:
        try:
            prepare_clip(video, d)
            write_motion(d)
        except (ClipError, VideoError) as exc:
            raise ValueError(f"style: cannot use {video} as a motion reference: {exc}") from None
        with np.load(Path(d) / "motion.npz") as z:
            out = {k: z[k] for k in z.files}
    if out_npz is not None:
        np.savez(out_npz, **out)
    return out
