"""``chatanyone eval budget``: the error budget's parts measure what they claim. Regions are
assigned in their order of precedence, the brightness and global-affine ceilings undo a known
brightness change and shift, the optical-flow ceiling re-aligns a shifted image (synthetic images),
and a real clip's budget adds up (skipped without ../shared/data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatanyone.eval import budget as B
from chatanyone.render import mesh as M


def _face(cx=100.0, cy=80.0, r=40.0):
    """A face mesh whose oval is a circle and whose lips and eyes are small polygons inside it."""
    f = np.full((478, 3), np.nan)
    f[:, :2] = [cx, cy]
    oval = M.FACE_OVAL
    a = np.linspace(-np.pi / 2, 1.5 * np.pi, len(oval), endpoint=False)
    f[oval, 0], f[oval, 1] = cx + r * np.cos(a), cy + r * np.sin(a)
    f[10, :2], f[152, :2] = [cx, cy - r], [cx, cy + r]
    for ids, y in ((M.LIP_UPPER_OUTER, cy + 20), (M.LIP_LOWER_OUTER, cy + 28)):
        f[ids, 0] = np.linspace(cx - 12, cx + 12, len(ids))
        f[ids, 1] = y
    for up, lo, x in ((M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER, cx - 15), (M.LEFT_EYE_UPPER, M.LEFT_EYE_LOWER, cx + 15)):
        f[up, 0] = f[lo, 0] = np.linspace(x - 6, x + 6, len(up))
        f[up, 1], f[lo, 1] = cy - 12, cy - 8
    return f


def test_region_labels_precedence():
    h, w = 220, 200
    person = np.zeros((h, w), bool)
    person[30:, 40:160] = True                  # a head and a body, cut by the frame's bottom
    lab = B.region_labels((h, w), _face(), None, [], None, None, [], person, person)
    name = lambda y, x: B.REGIONS[lab[y, x]] if lab[y, x] >= 0 else None
    assert name(104, 100) == "mouth"
    assert name(70, 85) == "eyes"
    assert name(60, 100) == "face"
    assert name(40, 41) == name(31, 80) == "edge"   # at the person's outline
    assert name(140, 100) == "neck"             # below the chin, near the face's middle
    assert name(200, 100) == "torso"
    assert name(5, 5) is None                   # background
    assert name(60, 50) == "head"              # beside the face, above the chin: hair, ears


def test_gain_and_affine_ceilings_undo_known_changes():
    rng = np.random.default_rng(0)
    import cv2
    base = cv2.GaussianBlur(rng.uniform(0, 255, (120, 160, 3)).astype(np.uint8), (0, 0), 3)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    mask = np.ones((120, 160), bool)
    darker = np.clip(0.8 * base.astype(np.float32) + 10, 0, 255).astype(np.uint8)
    fixed = B._gain(darker, base, mask)
    assert np.abs(fixed - base.astype(np.float32)).mean() < 1.0 < np.abs(darker.astype(np.float32) - base).mean()
    shifted = np.roll(base, (2, 3), axis=(0, 1))
    inner = np.zeros_like(mask)
    inner[10:-10, 10:-10] = True
    back = B._affine(shifted, base, inner)
    err = lambda a: np.abs(a[10:-10, 10:-10].astype(np.float32) - base[10:-10, 10:-10]).mean()
    assert err(back) < 0.3 * err(shifted)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    assert err(B._flow_warp(shifted, base, dis)) < 0.5 * err(shifted)


VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
REAL = VIDEOS / "pcavs_vox2_00473.mp4"   # 224x224 head clip


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data not present")
def test_budget_of_a_real_clip_adds_up():
    """On a few frames of a real clip: each method's regional shares sum to one, and the
    optical-flow oracle (the source warped onto each real frame) beats the source repeated."""
    res = B.budget_clip(str(REAL), max_seconds=0.4, pixel_every=3)
    assert res["frames"] >= 2
    for m in ("model", "source", "model_flow", "oracle_flow"):
        share = sum(res["regions"][r][f"{m}_share"] for r in B.REGIONS)
        assert share == pytest.approx(1.0, abs=1e-6)
    assert res["regions"]["face"]["pixels"] > 0
    assert res["ceilings"]["oracle_flow"] > res["person"]["source"]
    assert np.isfinite(res["person"]["model"])
