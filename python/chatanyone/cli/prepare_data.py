"""``chatanyone prepare-data VIDEO... --out DIR``: turn talking videos into a training corpus."""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import time
from pathlib import Path

from . import CliError

log = logging.getLogger("chatanyone")

VIDEO_EXT = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare-data", help="decode videos into a corpus of landmarks, motion, crops and audio",
        description="Decode VIDEO files (or folders of them) at a fixed fps and 16 kHz mono; detect face, "
                    "body and hand landmarks; write one folder of numpy files per clip under --out "
                    "(layout: docs/design.md). Resumable: finished clips are skipped. A clip that fails is "
                    "skipped with its reason (also in OUT/failures.json).")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or folders holding them")
    p.add_argument("--out", required=True, metavar="DIR", help="corpus folder (created)")
    p.add_argument("--fps", type=float, default=25.0, help="output frame rate (default 25)")
    p.add_argument("--require-audio", action="store_true",
                   help="fail clips without audio or with a silent track")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME",
                   help="a file name to leave out (e.g. an evaluation clip); repeat for several")
    p.add_argument("--fit-basis", metavar="NPZ",
                   help="fit the canonical face and expression basis on these clips and write it to NPZ "
                        "before computing motion (training set only)")
    p.add_argument("--basis", metavar="NPZ", help="expression basis to use (default: the packaged one)")
    p.add_argument("--n-exp", type=int, default=32, help="expression coefficients with --fit-basis")
    p.add_argument("--no-motion", action="store_true", help="landmarks, crops and audio only")
    p.add_argument("--quality-crops", type=int, default=None, metavar="N",
                   help="also write 512x768 crops (crops_hq.npy, the quality preset's targets) of N evenly "
                        "spread frames per clip; 0: every frame")
    p.add_argument("--redo", action="store_true", help="recompute finished clips")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _collect(items: list[str], exclude: set[str]) -> list[str]:
    out = []
    for it in items:
        if os.path.isdir(it):
            files = sorted(f for f in glob.glob(os.path.join(it, "*")) if f.lower().endswith(VIDEO_EXT))
            if not files:
                raise CliError(f"no video files in folder {it}")
            out += files
        elif os.path.exists(it):
            out.append(it)
        else:
            raise CliError(f"no such file: {it}")
    return [f for f in out if os.path.basename(f) not in exclude]


def run(args: argparse.Namespace) -> int:
    from ..data import corpus, motion_features as motion
    from ..spec.head import FaceBasis
    if not args.fps > 0:
        raise CliError(f"--fps must be positive, got {args.fps}")
    videos = _collect(args.videos, set(args.exclude))
    if not videos:
        raise CliError("nothing to do: every video was excluded")
    basis = None
    if args.basis:
        if not os.path.exists(args.basis):
            raise CliError(f"no such basis file: {args.basis}")
        basis = FaceBasis.load(args.basis)
    t0 = time.perf_counter()
    two_pass = bool(args.fit_basis)
    rep = corpus.build(videos, args.out, fps=args.fps, require_audio=args.require_audio,
                       motion=not (args.no_motion or two_pass), basis=basis,
                       progress=not args.no_progress, redo=args.redo)
    if two_pass and not args.no_motion:
        if not rep.done:
            raise CliError("no clip prepared: cannot fit a basis")
        dirs = [Path(args.out) / m["clip_id"] for m in rep.done]

        def fit():
            tracks = []
            for d in dirs:
                lm = corpus.load_landmarks(d)
                tracks.append((lm["face"], lm["face_ok"]))
            return motion.fit_basis(tracks, n_exp=args.n_exp)

        # the face smoothing uses the canonical face: fit, smooth again with it, fit the final basis
        basis = fit()
        for d in dirs:
            corpus.resmooth(d, args.fps, canonical=basis.canonical)
        basis = fit()
        basis.save(args.fit_basis)
        log.info("basis: %d components explain %.1f%% of the expression variance -> %s",
                 basis.n_exp, 100 * float(basis.explained.sum()), args.fit_basis)
        for m in rep.done:
            corpus.write_motion(Path(args.out) / m["clip_id"], basis)
    if args.quality_crops is not None:
        if args.quality_crops < 0:
            raise CliError(f"--quality-crops must be >= 0, got {args.quality_crops}")
        for cid in [m["clip_id"] for m in rep.done] + list(rep.skipped):
            corpus.write_quality_crops(Path(args.out) / cid, args.quality_crops or None)
    wall = time.perf_counter() - t0
    frames = sum(m["n_frames"] for m in rep.done)
    print(f"{'clip':48s} {'frames':>6s} {'sec':>6s} {'face%':>6s} {'audio':>6s} {'ms/f':>6s}")
    for m in rep.done:
        audio = "silent" if m.get("audio_silent") else ("yes" if m.get("has_audio") else "none")
        print(f"{m['clip_id'][:48]:48s} {m['n_frames']:6d} {m['seconds']:6.2f} {100 * m['face_fraction']:6.1f} "
              f"{audio:>6s} {1000 * m['timings']['total_s'] / max(m['n_frames'], 1):6.1f}")
    for cid, reason in rep.failed:
        print(f"{cid[:48]:48s} FAILED: {reason}")
    print(f"{len(rep.done)} clips ({len(rep.skipped)} already done), {frames} frames, {frames / args.fps:.1f} s; "
          f"{len(rep.failed)} failed; {wall:.0f} s this run")
    summary = Path(args.out) / "summary.json"
    summary.write_text(json.dumps(dict(clips=[m["clip_id"] for m in rep.done], frames=frames,
                                       failed=dict(rep.failed)), indent=1))
    return 0 if rep.done else 1
