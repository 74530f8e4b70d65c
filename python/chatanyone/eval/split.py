"""The speaker-held-out split of ``../shared/data`` (see its README), in one place.

- ``HELDOUT``: clips of speakers that no model is trained on and no setting is tuned on. Every
  evaluation figure that the README or a closing note reports as a result comes from these.
- ``DEV``: clips of other speakers, kept out of training, on which settings may be chosen. Figures
  on them are development figures and are labelled so.
- Everything else in ``videos/`` may be trained on.

Speakers are held out, not clips: a clip of the same person as a held-out clip is held out too
(``videoretalking_face3`` shows the speaker of ``sadtalker_hdtf_aoc``). Portraits derived from a
held-out clip (``latentsync_demo2_frame0.png``) are held out with it.
"""
from __future__ import annotations

from pathlib import Path

# clip stem -> (speaker, framing)
HELDOUT: dict[str, tuple[str, str]] = {
    "sadtalker_hdtf_aoc": ("aoc", "head"),
    "videoretalking_face4": ("aoc", "head"),
    "videoretalking_face3": ("aoc", "head"),
    "pcavs_vox2_00473": ("patrick_stewart", "head"),
    "sadtalker_hdtf_WDA_EdMarkey0_000": ("ed_markey", "head"),
    "spectre_mead_W015_neutral_030": ("mead_w015", "head"),
    "latentsync_demo2_upperbody": ("latentsync_demo2_man", "upper_body"),
    "tango_hbr_speaker12_BVHw8aCPATM_65-70": ("hbr_speaker12", "upper_body"),
    "show_oliver_halfbody": ("john_oliver", "upper_body"),
    "visualvoice_restaurant_interview": ("restaurant_man", "upper_body"),
}

DEV: dict[str, tuple[str, str]] = {
    "videoretalking_face5": ("older_woman_glasses", "head"),
    "deepavsr_lrs2_00016": ("lrs2_00016", "head"),
    "spectre_mead_W036_happy_007": ("mead_w036", "head"),
    "tango_hbr_1wrQ6Msp7wM_39.69-45.68": ("hbr_woman_seated", "upper_body"),
    "icpr2020dfdc_dfdc_lynaeydofd": ("dfdc_actor", "upper_body"),
}

# audio files that carry a held-out speaker's voice (never drive a training-side choice with them)
HELDOUT_AUDIO = ()
HELDOUT_PORTRAITS = ("latentsync_demo2_frame0",)


_MEDIA_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".wav", ".flac", ".mp3", ".png", ".jpg", ".jpeg", ".npz")


def role(path_or_stem) -> str:
    """``"heldout"``, ``"dev"`` or ``"train"`` for a clip path, corpus folder or stem. Only a media
    suffix is stripped: clip ids may contain dots (``tango_hbr_1wrQ6Msp7wM_39.69-45.68``)."""
    p = Path(str(path_or_stem))
    stem = p.stem if p.suffix.lower() in _MEDIA_SUFFIXES else p.name
    if stem in HELDOUT or stem in HELDOUT_PORTRAITS:
        return "heldout"
    if stem in DEV:
        return "dev"
    return "train"


def training_clips(video_dir) -> list[Path]:
    """The videos of ``video_dir`` that training may use (neither held out nor dev)."""
    return sorted(p for p in Path(video_dir).iterdir()
                  if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm") and role(p) == "train")
