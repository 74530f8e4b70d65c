"""Parity of the shipped landmark detector (LiteRT, ``chatanyone.vision.landmarks``) with
mediapipe 0.10.21's legacy solutions, in one run, on ../shared/data: every portrait in static mode
and the first N frames of a few clips in tracking mode; plus time per photo for both.

    pip install 'mediapipe==0.10.21'      # the reference (pins protobuf<5: not beside [livekit])
    python benchmarks/landmark_parity.py [--frames 100] [--clips a.mp4 b.mp4 ...]

Figures: face mean / max point distance in % of face height (mediapipe points 10-152), pose on
points mediapipe sees (visibility > 0.5) in % of face height, hands in % of hand size (wrist to
middle-finger MCP, ``hand_size``), and found / not found agreement for each part (hands: both
slots equal). Tracking mode feeds each frame's result into the next region, so tiny differences
can grow; a hand that one side tracks and the other re-detects elsewhere shows as a large error.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CLIPS = ["latentsync_demo2_upperbody.mp4", "tango_hbr_speaker12_BVHw8aCPATM_65-70.mp4",
         "sadtalker_hdtf_aoc.mp4", "show_oliver_halfbody.mp4"]


def hand_size(h: np.ndarray, W: int, H: int) -> float:
    """Wrist (0) to middle-finger MCP (9) in pixels: the hand's size unit."""
    return float(np.hypot((h[9, 0] - h[0, 0]) * W, (h[9, 1] - h[0, 1]) * H))


class Stats:
    def __init__(self):
        self.face, self.face_max, self.pose, self.hand = [], [], [], []
        self.agree = {"face": [0, 0], "pose": [0, 0], "hands": [0, 0]}

    def add(self, ours, ref, W: int, H: int) -> None:
        """Compare two :class:`~chatanyone.vision.detect.FrameLandmarks` of one frame."""
        self.agree["face"][0] += int(ours.face_ok == ref.face_ok)
        self.agree["face"][1] += 1
        self.agree["pose"][0] += int(ours.pose_ok == ref.pose_ok)
        self.agree["pose"][1] += 1
        self.agree["hands"][0] += int(np.array_equal(ours.hands_ok, ref.hands_ok))
        self.agree["hands"][1] += 1
        fh = None
        if ours.face_ok and ref.face_ok:
            b = ref.face
            fh = np.hypot((b[152, 0] - b[10, 0]) * W, (b[152, 1] - b[10, 1]) * H)
            e = np.hypot((ours.face[:, 0] - b[:, 0]) * W, (ours.face[:, 1] - b[:, 1]) * H) / fh * 100
            self.face.append(e.mean())
            self.face_max.append(e.max())
        if ours.pose_ok and ref.pose_ok and fh:
            vis = ref.pose[:, 3] > 0.5
            if vis.any():
                e = np.hypot((ours.pose[vis, 0] - ref.pose[vis, 0]) * W,
                             (ours.pose[vis, 1] - ref.pose[vis, 1]) * H) / fh * 100
                self.pose.extend(e.tolist())
        for s in range(2):
            if ours.hands_ok[s] and ref.hands_ok[s]:
                hs = hand_size(ref.hands[s], W, H)
                e = np.hypot((ours.hands[s, :, 0] - ref.hands[s, :, 0]) * W,
                             (ours.hands[s, :, 1] - ref.hands[s, :, 1]) * H) / max(hs, 1e-6) * 100
                self.hand.extend(e.tolist())

    def report(self, label: str) -> dict:
        def q(v):
            return (float(np.mean(v)), float(np.max(v))) if v else (float("nan"), float("nan"))
        def p(v, k):
            return float(np.percentile(v, k)) if v else float("nan")
        out = {"face_mean_pct": q(self.face)[0],
               "face_max_pct": float(np.max(self.face_max)) if self.face_max else float("nan"),
               "pose_mean_pct": q(self.pose)[0], "pose_p50_pct": p(self.pose, 50),
               "pose_p95_pct": p(self.pose, 95), "pose_max_pct": q(self.pose)[1],
               "hand_mean_pct": q(self.hand)[0], "hand_p50_pct": p(self.hand, 50),
               "hand_p95_pct": p(self.hand, 95), "hand_max_pct": q(self.hand)[1],
               **{f"agree_{k}": f"{a}/{n}" for k, (a, n) in self.agree.items()}}
        print(f"{label}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in out.items()))
        return out


def read_frames(path: Path, n: int) -> list[np.ndarray]:
    import av
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    return out


def read_photo(path: Path) -> np.ndarray | None:
    import cv2
    bgr = cv2.imread(str(path))
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run(frames: int, clips: list[str]) -> None:
    from chatanyone.vision.detect import Detector, MediapipeDetector
    photos = [p for p in sorted((DATA / "portraits").iterdir()) if read_photo(p) is not None]
    st = Stats()
    t_ours = t_ref = 0.0
    with Detector(video=False) as ours, MediapipeDetector(video=False) as ref:
        for p in photos:
            rgb = read_photo(p)
            t0 = time.perf_counter()
            a = ours(rgb)
            t1 = time.perf_counter()
            b = ref(rgb)
            t2 = time.perf_counter()
            t_ours += t1 - t0
            t_ref += t2 - t1
            st.add(a, b, rgb.shape[1], rgb.shape[0])
    st.report(f"photos ({len(photos)}, static mode)")
    print(f"time per photo (face + pose + hands, 1 thread, first call included): "
          f"litert {1000 * t_ours / len(photos):.1f} ms, mediapipe {1000 * t_ref / len(photos):.1f} ms")
    total = Stats()
    for clip in clips:
        rgbs = read_frames(DATA / "videos" / clip, frames)
        st = Stats()
        with Detector(video=True) as ours, MediapipeDetector(video=True) as ref:
            for rgb in rgbs:
                a, b = ours(rgb), ref(rgb)
                st.add(a, b, rgb.shape[1], rgb.shape[0])
                total.add(a, b, rgb.shape[1], rgb.shape[0])
        st.report(f"{clip} ({len(rgbs)} frames, video mode)")
    total.report("all clips, video mode")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--clips", nargs="*", default=CLIPS)
    a = ap.parse_args()
    run(a.frames, a.clips)
