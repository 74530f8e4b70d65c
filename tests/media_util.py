"""Synthetic video files for tests: H.264 frames with an optional mono AAC tone, written with PyAV."""
from __future__ import annotations

from fractions import Fraction

import numpy as np


def write_clip(path, frames, *, fps=25, audio=True, tone_hz=440.0):
    """Write ``frames`` (uint8 ``[H, W, 3]`` RGB, all one size) as an H.264 clip at ``fps``, with a
    16 kHz mono AAC sine of ``tone_hz`` as long as the video when ``audio``."""
    import av

    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        as_ = c.add_stream("aac", rate=16000) if audio else None
        if as_ is not None:
            as_.layout = "mono"
        for img in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if as_ is not None:
            s = int(16000 * len(frames) / fps)
            x = (0.3 * np.sin(2 * np.pi * tone_hz * np.arange(s) / 16000)).astype(np.float32)
            for k in range(0, s, 1024):
                fr = av.AudioFrame.from_ndarray(x[None, k:k + 1024], format="flt", layout="mono")
                fr.sample_rate, fr.pts = 16000, k
                for p in as_.encode(fr):
                    c.mux(p)
            for p in as_.encode():
                c.mux(p)


def write_audio_only(path):
    """An MP4 holding one short silent mono AAC stream and no video."""
    import av

    with av.open(str(path), "w", format="mp4") as c:
        st = c.add_stream("aac", rate=16000)
        st.layout = "mono"
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        fr.sample_rate, fr.pts = 16000, 0
        for p in list(st.encode(fr)) + list(st.encode()):
            c.mux(p)


def rendered_face_mesh(avatar, pcm, rate, config):
    """Drive ``avatar`` through a :class:`chatanyone.Session` with ``config`` by ``pcm`` (fed at
    once, then flushed) and track face mesh on every rendered frame's real pixels. Returns the
    canonical faces ``[n, 468+, 3]`` (:func:`chatanyone.eval.mouth.canonical_faces`); frames where
    face mesh found no face are NaN. Blocks for the whole render."""
    from chatanyone import Session
    from chatanyone.eval import mouth as M
    from chatanyone.eval.frames import valid_region
    pts = []
    with M.FaceMeshTrack() as fm, Session(avatar, config) as s:
        s.feed_audio(pcm, rate)
        s.flush()
        region = None
        while (f := s.next_frame()) is not None:
            img = np.asarray(f.image)
            region = region or valid_region(avatar, img.shape[:2])
            p = fm(img, region)
            pts.append(np.full((478, 3), np.nan) if p is None else p)
    canon, _ = M.canonical_faces(np.array(pts))
    return canon
