"""prepare-data end to end: failing clips are skipped with a reason, the rest go on; resumable;
with ../shared/data, one real clip through detection, motion features and inspect."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from chatanyone.cli import main  # noqa: E402
from chatanyone.data import corpus  # noqa: E402
from chatanyone.spec import keypoint_layout as L  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
REAL = SHARED / "tango_hbr_speaker8_jjRWaMCWs44_30.16-33.32.mp4"  # 3.2 s, upper body, both hands


def blank_video(path, seconds=2.0, size=(96, 64)):
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv444p"
        for i in range(int(seconds * 25)):
            fr = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 90, np.uint8), format="rgb24")
            fr.pts, fr.time_base = i, Fraction(1, 25)
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_failing_clips_are_skipped_with_reasons(tmp_path):
    blank = tmp_path / "blank.mkv"
    blank_video(blank)
    short = tmp_path / "short.mkv"
    blank_video(short, seconds=0.4)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 1000)
    rep = corpus.build([blank, short, junk], tmp_path / "out", progress=False)
    reasons = dict(rep.failed)
    assert not rep.done and len(rep.failed) == 3
    assert "no face" in reasons["blank"]
    assert "too short" in reasons["short"]
    assert "unreadable" in reasons["junk"]
    assert set(json.loads((tmp_path / "out" / "failures.json").read_text())) == {"blank", "short", "junk"}
    with pytest.raises(corpus.ClipError, match="no audio"):
        corpus.prepare_clip(blank, tmp_path / "x", require_audio=True)


def test_cli_errors(tmp_path, capsys):
    assert main(["prepare-data", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2
    assert "not a corpus clip" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path), "-o", str(tmp_path / "x.gif")]) == 2


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data not present")
def test_real_clip_end_to_end(tmp_path):
    out = tmp_path / "corpus"
    basis_file = tmp_path / "basis.npz"
    assert main(["prepare-data", str(REAL), "--out", str(out), "--fit-basis", str(basis_file),
                 "--no-progress"]) == 0
    from chatanyone.spec.head import FaceBasis
    assert FaceBasis.load(basis_file).n_exp == 32
    d = out / corpus.clip_id(REAL)
    meta = json.loads((d / "meta.json").read_text())
    T = meta["n_frames"]
    assert T == 79 and meta["fps"] == 25 and meta["has_audio"] and not meta["audio_silent"]
    assert meta["face_fraction"] > 0.95
    box = meta["crop_box"]
    assert box[2] / box[3] == pytest.approx(2 / 3)
    # files and shapes (docs/design.md)
    assert np.load(d / "audio.npy").shape == (T * 640,)
    assert np.load(d / "mel.npy").shape == (4 * T, 80)
    crops = np.load(d / "crops.npy", mmap_mode="r")
    assert crops.shape == (T, 384, 256, 3) and crops.dtype == np.uint8
    assert np.load(d / "crops_head.npy", mmap_mode="r").shape == (T, 256, 256, 3)
    with np.load(d / "landmarks.npz", allow_pickle=False) as z:
        assert z["face"].shape == (T, 478, 3) and z["raw_face"].shape == (T, 478, 3)
        assert z["pose"].shape == (T, 33, 4) and z["hands"].shape == (T, 2, 21, 3)
        assert z["hands_ok"].shape == (T, 2) and z["face_ok"].all()
        assert z["canon_face"].shape == (T, 478, 3) and z["head_abs"].shape == (T, 6)
        face = z["face"]
        # the face sits in the upper part of the crop, inside it
        assert -0.8 < np.median(face[:, 1, 0]) < 0.8 and -0.9 < np.median(face[:, 1, 1]) < -0.2
        assert z["hands_ok"].mean() > 0.5  # this speaker gestures with both hands
    with np.load(d / "motion.npz", allow_pickle=False) as z:
        m = {k: z[k] for k in z.files}
    E = m["exp"].shape[1]
    assert m["head"].shape == (T, 6) and m["eye"].shape == (T, 4) and E >= 16
    assert m["body"].shape == (T, 8, 2) and m["hands"].shape == (T, 2, 21, 2) and m["hands_ok"].shape == (T, 2)
    assert m["ref_face"].shape == (478, 3) and m["ref_head"].shape == (6,) and m["ref_body"].shape == (8, 2)
    assert np.abs(np.median(m["head"], 0)).max() < 1e-5        # relative to the clip median
    assert np.abs(np.degrees(m["head"][:, :3])).max() < 30
    assert 0.5 < np.median(m["eye"][:, :2]) < 1.5
    # resumable: a second run skips it
    rep2 = corpus.build([REAL], out, progress=False)
    assert rep2.skipped == [corpus.clip_id(REAL)]
    # quality-preset crops of a finished clip: the same box at twice the size
    assert main(["prepare-data", str(REAL), "--out", str(out), "--quality-crops", "10", "--no-progress"]) == 0
    hq = np.load(d / "crops_hq.npy", mmap_mode="r")
    idx = np.load(d / "crops_hq_idx.npy")
    assert hq.shape == (10, 768, 512, 3) and hq.dtype == np.uint8
    assert idx[0] == 0 and idx[-1] == T - 1 and np.all(np.diff(idx) > 0)
    small = np.asarray(hq, np.float32).reshape(10, 384, 2, 256, 2, 3).mean((2, 4))
    assert np.abs(small - crops[idx].astype(np.float32)).mean() < 4
    # inspect draws it
    png = tmp_path / "look.png"
    assert main(["inspect", str(d), "-o", str(png)]) == 0 and png.stat().st_size > 10000
    mp4 = tmp_path / "look.mp4"
    assert main(["inspect", str(d), "-o", str(mp4)]) == 0
    with av.open(str(mp4)) as c:
        assert c.streams.video[0].frames == T
    # the renderer's keypoints of a corpus frame
    with np.load(d / "landmarks.npz") as z:
        kp, vis = L.renderer_keypoints(z["face"][0], z["pose"][0], z["hands"][0], hands_ok=z["hands_ok"][0])
    assert kp.shape == (L.N_KP, 2) and vis[L.FACE_SLICE].all()
