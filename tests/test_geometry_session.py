"""Absolute expression through the whole Session: a photo taken with its mouth wide open, driven
by speech with pauses, closes its mouth in the pauses (face mesh measured on the output frames)."""
import os

import numpy as np
import pytest

import chatanyone as ca
from chatanyone.assets import demo_speech

PHOTO = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "portraits",
                     "liveportrait_d9_face.jpg")


def _gaps(frames):
    """Inner-lip gap over mouth width per frame (mediapipe face mesh), NaN where no face."""
    from chatanyone.vision.detect import Detector
    out = []
    with Detector(video=False, max_faces=1, pose=False, hands=False) as det:
        for img in frames:
            r = det(img)
            if not r.face_ok:
                out.append(np.nan)
                continue
            f = r.face[:, :2] * [img.shape[1], img.shape[0]]
            out.append(np.linalg.norm(f[14] - f[13]) / np.linalg.norm(f[308] - f[78]))
    return np.array(out)


@pytest.mark.time_limit(300)   # ~10 s on a quiet 2-core machine: 5 s of speech and 16 face meshes
@pytest.mark.skipif(not os.path.exists(PHOTO), reason="../shared/data/portraits not available")
def test_open_mouth_photo_closes_its_mouth_in_pauses():
    avatar = ca.Avatar.prepare(PHOTO)
    pcm, rate = demo_speech()
    sil = np.zeros(int(1.4 * rate), np.float32)
    parts = [pcm[int(0.2 * rate): int(1.4 * rate)], sil, pcm[int(1.5 * rate): int(2.5 * rate)], sil]
    audio = np.concatenate(parts)
    bounds = np.cumsum([0] + [len(p) / rate for p in parts])      # segment starts, seconds
    with ca.Session(avatar, ca.SessionConfig(output_size=320, seed=0)) as s:
        s.feed_audio(audio, rate)
        s.flush()
        frames = [f.image for f in s.frames()]
    assert len(frames) == int(np.ceil(len(audio) / rate * 25))
    t = (np.arange(len(frames)) + 0.5) / 25
    # the middle of each pause (the motion model looks ahead and eases in and out)
    pause = ((t > bounds[1] + 0.5) & (t < bounds[2] - 0.2)) | ((t > bounds[3] + 0.5) & (t < bounds[4] - 0.2))
    speech = ((t > bounds[0] + 0.1) & (t < bounds[1])) | ((t > bounds[2] + 0.1) & (t < bounds[3]))
    idx_p = np.flatnonzero(pause)[::2]
    idx_s = np.flatnonzero(speech)[::2]
    g = _gaps([frames[i] for i in np.concatenate([idx_p, idx_s])])
    g_p, g_s = g[: len(idx_p)], g[len(idx_p):]
    photo_gap = _gaps([avatar.photo])[0]
    assert photo_gap > 0.5                      # the photo: mouth wide open ("oh")
    assert np.isfinite(g_p).mean() > 0.9        # a face is found in the rendered frames
    assert np.nanmedian(g_p) < 0.12, g_p        # closed in the pauses
    assert np.nanmax(g_s) > np.nanmedian(g_p) + 0.05, (g_s, g_p)   # and it opens to speak
