"""``chatanyone eval lipsync``: the measurement cannot fool itself (the real frames given as the
"rendered" ones score r = 1 and amplitude 1; the source frame repeated scores amplitude 0), and one
short real run through the public Session gives a complete report. Skips without ../shared/data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chatanyone.eval import lipsync

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
REAL = VIDEOS / "pcavs_vox2_00473.mp4"   # 224x224 head clip with speech
pytestmark = pytest.mark.skipif(not REAL.exists(), reason="../shared/data not present")


def _replay(mode):
    """A render_clip stand-in that hands out the real video's frames (or its first frame)."""
    def fake(avatar, audio, config, *, keep=None, on_frame=None):
        from chatanyone.eval.prepare import prepare
        pv = prepare(REAL, max_seconds=len(audio) / 16000)
        kept, first = {}, None
        for t, img in pv.frames():
            first = img if first is None else first
            out = img if mode == "real" else first
            on_frame(t, out)
            if keep and t in keep:
                kept[t] = out
        return pv.n, kept
    return fake


def test_real_frames_score_perfectly_and_a_still_frame_scores_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path))
    monkeypatch.setattr(lipsync, "render_clip", _replay("real"))
    res = lipsync.evaluate_clip(REAL, max_seconds=1.2, frames_dir=tmp_path / "png")
    m = res["model"]
    assert res["frames"] == 30 and res["role"] == "heldout"
    assert m["r"] > 0.97 and m["amp"] == pytest.approx(1.0, abs=0.05) and m["lmd"] < 0.3
    assert m["lag"] == 0 and m["face"] > 0.9
    assert m["peak"] == pytest.approx(1.0, abs=0.1)     # the real frames' wide openings are as wide
    assert res["no_motion"]["lmd"] > m["lmd"] and res["no_motion"]["amp"] == 0.0
    assert res["loudness_matched"]["r"] == pytest.approx(res["loudness"]["r"])
    assert len(res["closeups"]) >= 2 and all(Path(p).is_file() for p in res["closeups"])
    monkeypatch.setattr(lipsync, "render_clip", _replay("still"))
    still = lipsync.evaluate_clip(REAL, max_seconds=1.2)
    assert still["model"]["r"] is None or abs(still["model"]["r"]) < 0.5
    assert still["model"]["amp"] < 0.2
    assert abs(still["model"]["peak"]) < 0.2


def test_cli_lipsync_through_the_session_json(tmp_path, monkeypatch, capsys):
    from chatanyone.cli import main
    monkeypatch.setenv("CHATANYONE_CACHE", str(tmp_path))
    rc = main(["eval", "lipsync", str(REAL), "--max-seconds", "0.8", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    clip = res["clips"][0]
    assert clip["frames"] == 20 and clip["speech_frames"] > 0
    assert clip["model"]["face"] > 0.5                  # face mesh finds the rendered face
    assert clip["model"]["lmd"] > 0 and clip["no_motion"]["lmd"] > 0
    for k in ("r", "amp", "lmd"):
        assert k in res["mean"]["model"]
    assert set(res["mean"]) == set(lipsync.METHODS)
    table = lipsync.format_table(res)
    assert "pcavs_vox2_00473" in table and "mean" in table
