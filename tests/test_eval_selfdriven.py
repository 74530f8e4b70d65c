"""``chatanyone eval render VIDEO``: self-driven reenactment on raw videos. The measurement cannot
fool itself (the real frames handed back as "rendered" score perfectly; the source repeated does
not), hands are matched in hand sizes, and one short real run through the render path gives a
complete report. Real-clip tests skip without ../shared/data."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from chatanyone.eval import selfdriven
from chatanyone.eval.frames import photo_to_frame

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
REAL = VIDEOS / "pcavs_vox2_00473.mp4"   # 224x224 head clip with speech
need_data = pytest.mark.skipif(not REAL.exists(), reason="../shared/data not present")


def test_hand_match_in_hand_sizes():
    rng = np.random.default_rng(0)
    real = rng.uniform(100, 200, (21, 2))
    size = np.hypot(*np.ptp(real, axis=0))
    near = real + [0.1 * size, 0]                       # every point off by 0.1 hand sizes
    far = real + [3 * size, 0]                          # a hand elsewhere
    assert selfdriven._hand_match([real], [far, near]) == [(True, pytest.approx(0.1))]
    assert selfdriven._hand_match([real], [far]) == [(False, None)]
    assert selfdriven._hand_match([real], []) == [(False, None)]


def test_blink_agreement():
    from chatanyone.eval import mouth as M
    real = np.full(100, 0.3)
    real[[20, 21, 22]] = [0.15, 0.08, 0.15]            # two real blinks
    real[[60, 61]] = 0.1
    real[40] = np.nan                                  # a frame without a face breaks nothing
    assert M.blinks(real) == [(20, 23), (60, 62)]
    rend = np.full(100, 0.28)
    rend[[21, 22, 23]] = [0.2, 0.1, 0.2]               # the first one a frame late, closing to 0.36
    rend[80] = 0.1                                     # and one the real eyes did not make
    a = M.blink_agreement(rend, real)
    assert a["blinks_real"] == 2 and a["blinks_rend"] == 2
    assert a["blink_f1"] == pytest.approx(0.5)         # recall 1/2, precision 1/2
    assert a["blink_depth"] == pytest.approx(np.mean([0.1 / 0.28, 1.0]))
    assert a["real_depth"] == pytest.approx(np.mean([0.08 / 0.3, 0.1 / 0.3]))
    still = M.blink_agreement(np.full(100, 0.28), real)
    assert still["blink_f1"] == 0.0 and still["blink_depth"] == pytest.approx(1.0)
    assert M.blink_agreement(np.full(100, 0.28), np.full(100, 0.3))["blink_f1"] is None


def test_photo_to_frame_through_crop_and_resize():
    av_ = SimpleNamespace(crop=np.zeros((384, 256, 3), np.uint8), crop_hq=np.zeros((768, 512, 3), np.uint8),
                          box=np.array([-50.0, -60.0, 200.0, 300.0]), image_size=(400, 300))
    pts = np.array([[-50.0, -60.0], [150.0, 240.0], [100.0, 90.0]])
    np.testing.assert_allclose(photo_to_frame(av_, pts, (384, 256)), [[0, 0], [256, 384], [192, 192]])
    np.testing.assert_allclose(photo_to_frame(av_, pts, (150, 200)), pts / 2)


def _replay(mode):
    """A reenact stand-in whose frames are the real video's (or its source frame repeated)."""
    def fake(avatar, video, output, *, config=None, max_seconds=None, cache=None, on_frame=None, **kw):
        from chatanyone.eval.prepare import prepare
        pv = prepare(video, max_seconds=max_seconds, cache=cache)
        first = None
        for t, img in pv.frames():
            first = img if first is None else first
            on_frame(t, img if mode == "real" else first)
        return SimpleNamespace(size=(pv.width, pv.height), wall_s=0.0)
    return fake


@need_data
def test_real_frames_score_perfectly(tmp_path, monkeypatch):
    import chatanyone.reenact
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path))
    monkeypatch.setattr(chatanyone.reenact, "reenact", _replay("real"))
    res = selfdriven.evaluate_clip(REAL, max_seconds=0.8, person=False)
    m, s = res["model"], res["source"]
    assert res["frames"] == 20 and res["role"] == "heldout" and res["frame_size"] == "224x224"
    assert m["psnr"] > 100 and m["ssim"] == pytest.approx(1.0)
    assert s["psnr"] < 40 and s["ssim"] < m["ssim"]
    assert m["mouth_r"] > 0.97 and m["mouth_amp"] == pytest.approx(1.0, abs=0.05)
    assert m["head_err"] < 0.5 and m["blink_r"] > 0.9 and m["face"] == 1.0
    assert s["mouth_amp"] == 0.0 and s["head_err"] > m["head_err"]


@need_data
def test_cli_eval_render_on_a_raw_video(tmp_path, monkeypatch, capsys):
    from chatanyone.cli import main
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path))
    rc = main(["eval", "render", str(REAL), "--max-seconds", "0.8", "--json", "--no-fid", "--no-csim",
               "--frames", str(tmp_path / "png")])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    clip = res["clips"][0]
    assert clip["frames"] == 20 and set(res["mean"]) == {"model", "source"}
    for m in ("model", "source"):
        assert 10 < clip[m]["psnr"] < 60 and 0 < clip[m]["ssim"] <= 1
        assert clip[m]["psnr_person"] is not None
    assert clip["model"]["face"] > 0.5                 # face mesh finds the rendered face
    assert len(clip["pngs"]) >= 2 and all(Path(p).is_file() for p in clip["pngs"])
    assert "pcavs_vox2_00473" in selfdriven.format_table(res)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        selfdriven.methods_for(("neural", "gan"))
    assert selfdriven.methods_for(("previous", "neural")) == ("model", "neural", "previous", "source")


@need_data
def test_old_renderers_in_the_same_run(tmp_path, monkeypatch):
    """The neural renderer and the similarity-hands geometry renderer are driven by the same motion
    frames as the model in one run: each gets its own figures and its time per frame."""
    import chatanyone.reenact
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path))
    monkeypatch.setattr(chatanyone.reenact, "reenact", _replay("real"))
    res = selfdriven.evaluate_clip(REAL, max_seconds=0.4, person=False, variants=("neural", "previous"))
    assert res["methods"] == ["model", "neural", "previous", "source"]
    m, n, g, s = (res[k] for k in res["methods"])
    assert m["psnr"] > 100                                   # the replayed real frames
    for v in (n, g):
        assert 10 < v["psnr"] < 60 and v["psnr"] != s["psnr"] and v["ms"] > 0
        assert v["face"] > 0.5 and v["mouth_r"] is not None
    assert s["ms"] is None


def test_region_labels_and_budget(basis):
    """``--regions``: each person pixel lands in the real frame's region it lies in, and the
    regions' pooled errors add up to the person's error."""
    from chatanyone.eval import regions as R
    from chatanyone.render import mesh as M
    h, w = 300, 300
    face = basis.canonical[:, :2] * 100 + np.array([150.0, 80.0])        # face 100 px tall, chin at y 151
    real = np.zeros((h, w), bool)
    real[40:, 90:210] = True                       # the real person: head and body
    src = real.copy()
    src[200:, 210:240] = True                      # the source's person reaches further right
    hand = np.array([[60.0, 220.0], [80.0, 220.0], [80.0, 250.0], [60.0, 250.0]] * 5 + [[70.0, 235.0]])
    hand[:, 0] += 40                               # a hand on the body's left edge (x 100-120)
    lab = R.labels((h, w), real, src, face, None, [hand])
    at = lambda x, y: R.REGIONS[lab[int(round(y)), int(round(x))]] if lab[int(round(y)), int(round(x))] >= 0 else None
    mouth = face[M.LIP_UPPER_OUTER + M.LIP_LOWER_OUTER].mean(0)
    eye = face[M.RIGHT_EYE_UPPER + M.RIGHT_EYE_LOWER].mean(0)
    cheek = 0.5 * (face[M.FACE_OVAL].mean(0) + face[234])
    assert at(*mouth) == "mouth" and at(*eye) == "eyes" and at(*cheek) == "face"
    assert at(150, 45) == "outline"                # above the face, the real person: hair
    assert at(150, 250) == "torso" and at(110, 235) == "arms"
    assert at(225, 250) == "uncovered" and at(20, 20) is None and at(150, 20) is None
    assert set(np.unique(lab)) == {-1} | set(range(len(R.REGIONS)))     # every region, and outside
    # no face: the real person is all torso
    lab0 = R.labels((h, w), real, src, None)
    assert set(np.unique(lab0)) == {-1, R.REGIONS.index("torso"), R.REGIONS.index("uncovered")}
    # the budget: pooled over frames, each region's share and error add up
    rng = np.random.default_rng(0)
    b = R.Budget()
    tot_e, tot_n = 0.0, 0
    for k in range(3):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        c = a.copy()
        c[lab == R.REGIONS.index("mouth")] //= 2   # error in the mouth only
        b.add(lab, c, a)
        sel = lab >= 0
        tot_e += float(((c.astype(float) - a) ** 2).mean(-1)[sel].sum())
        tot_n += int(sel.sum())
    s = b.summary()
    assert s["mouth"]["error_share"] == pytest.approx(1.0) and s["face"]["mse"] == 0.0
    assert sum(v["share"] for v in s.values()) == pytest.approx(1.0)
    assert sum(v["share"] * v["mse"] for v in s.values() if v["mse"] is not None) == pytest.approx(tot_e / tot_n)
    with pytest.raises(ValueError, match="person masks"):
        R.labels((h, w), real[:10], src, face)


@need_data
def test_regions_on_a_raw_video(tmp_path, monkeypatch):
    """The real frames handed back as rendered have no error in any region; the source repeated's
    errors split over the face's regions and add up to its person error."""
    import chatanyone.reenact
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path))
    monkeypatch.setattr(chatanyone.reenact, "reenact", _replay("real"))
    res = selfdriven.evaluate_clip(REAL, max_seconds=0.8, regions=True)
    m, s = res["model"]["regions"], res["source"]["regions"]
    assert all(v["mse"] in (None, 0.0) for v in m.values())
    assert s["face"]["share"] > 0.1 and s["mouth"]["share"] > 0 and s["eyes"]["share"] > 0
    assert s["mouth"]["mse"] > s["face"]["mse"] > 0              # the talking mouth changes most
    assert sum(v["error_share"] for v in s.values()) == pytest.approx(1.0)
    from chatanyone.eval.regions import format_budget
    assert "mouth" in format_budget({"clips": [res], "methods": res["methods"]})
    with pytest.raises(ValueError, match="person"):
        selfdriven.evaluate_clip(REAL, max_seconds=0.8, regions=True, person=False)


def test_cli_regions_needs_the_person(capsys):
    from chatanyone.cli import main
    assert main(["eval", "render", "clip.mp4", "--regions", "--no-person"]) == 2
    assert "--regions" in capsys.readouterr().err
