"""Session configuration: a frozen, validated dataclass. User-facing options only; architecture
hyperparameters live beside the models (``motion/``, ``render/``)."""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np

from .spec.presets import PRESET_LONG_SIDE
OUTPUT_SIZE_RANGE = (64, 4096)


@dataclass(frozen=True)
class SessionConfig:
    """Options of one :class:`~chatanyone.Session`.

    Every field is checked in ``__post_init__``; a bad value raises ``ValueError``/``TypeError``
    naming the field.
    """

    # Output frame rate (frames per second). Motion is generated at 25 fps and resampled in time.
    fps: float = 25.0
    # Renderer preset: "fast" (real time on CPU) or "quality" (a larger frame).
    preset: str = "fast"
    # Long side of the frames in pixels (the other side follows the photo's aspect ratio, both
    # rounded to even numbers). None: the preset's default (fast 512, quality 1024).
    output_size: int | None = None
    # Style reference: None, or a motion clip whose speaking style to imitate: a motion.npz (from
    # `prepare-data`, or chatanyone.data.corpus.video_motion(video) for a video) or a corpus clip folder.
    style: str | os.PathLike | None = None
    # Expression intensity: 0 = neutral face, 1 = as generated, up to 2 = exaggerated.
    intensity: float = 1.0
    # Random seed: the same seed, avatar and audio give the same frames.
    seed: int = 0
    # DDIM steps of the motion sampler; None: the shipped model's default (4). Fewer is faster;
    # see the quality-against-steps table in README.
    ddim_steps: int | None = None
    # Real-time mode: when the caller asks for a frame whose audio has not arrived by the frame's
    # due time, silence is inserted (idle motion) instead of waiting. False: wait for audio (offline).
    realtime: bool = False
    # ONNX Runtime execution providers to use, in order of preference; those not available on this
    # machine are skipped. None: CUDA when available, then CPU.
    providers: tuple[str, ...] | None = None
    # Where Frame.image lives: "host" (a numpy uint8 array), or an onnxruntime.OrtValue that any
    # DLPack consumer takes without a copy (torch.from_dlpack, cupy.from_dlpack, np.from_dlpack):
    # "cpu", "cuda" or "cuda:N" (GPU memory; needs onnxruntime-gpu with its CUDA provider).
    frame_device: str = "host"
    # Most frames computed ahead of the consumer (bounds memory and latency).
    max_ahead_frames: int = 50
    # Internal threads of ONNX Runtime per session (0 = its default); at most the CPUs this process
    # may use (more only makes the threads wait for each other).
    intra_op_threads: int = 0
    # The learned mouth refiner (chatanyone/render/refine.py; each preset has its own weights: fast
    # a 64 px mouth crop, quality a 128 px one, chosen by render/presets.py): True redraws the lips'
    # inside over the geometry renderer's (no pasted-on painted band, no black slivers, but a soft
    # interior: +0.8 dB in the mouth on the dev clips at fast, none on the held-out ones, and face
    # mesh reads its openings as smaller; see README "Mouth refiner"). Off by default; about 5 ms
    # per frame at fast.
    refine_mouth: bool = False
    # The learned region refiner (chatanyone/render/region_refine.py): a small network at a quarter
    # of the animated region's size that corrects what the geometry renderer's meshes cannot carry
    # (a moved head's edge against the background, hair, hands). See README "Region refiner".
    # None: on in video-driven reenactment (chatanyone reenact, eval render), where it was trained
    # and measured, off in a speech-driven Session (there it made face mesh read the mouth less
    # still in pauses; not validated); True / False: on / off everywhere.
    refine_region: bool | None = None

    def region_refiner_on(self, video_driven: bool) -> bool:
        """Whether the region refiner runs: :attr:`refine_region`, or where it is None, in
        video-driven reenactment only."""
        return bool(video_driven) if self.refine_region is None else self.refine_region

    def __post_init__(self):
        from .inputs import cpu_count

        def setf(name, v):
            object.__setattr__(self, name, v)

        def real(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise TypeError(f"SessionConfig.{name} must be a number, got {type(v).__name__}")
            v = float(v)
            if not (lo <= v <= hi):  # NaN fails here too
                raise ValueError(f"SessionConfig.{name} must be in [{lo}, {hi}], got {v}")
            setf(name, v)

        def integer(name, lo, hi, *, optional=False):
            v = getattr(self, name)
            if optional and v is None:
                return
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                want = "None or an int" if optional else "an int"
                raise TypeError(f"SessionConfig.{name} must be {want}, got {type(v).__name__}")
            v = int(v)
            if not (lo <= v <= hi):
                raise ValueError(f"SessionConfig.{name} must be in [{lo}, {hi}], got {v}")
            setf(name, v)

        real("fps", 1, 120)
        real("intensity", 0.0, 2.0)
        if not isinstance(self.preset, str):
            raise TypeError(f"SessionConfig.preset must be a str, one of {sorted(PRESET_LONG_SIDE)}, "
                            f"got {type(self.preset).__name__}")
        if self.preset not in PRESET_LONG_SIDE:
            raise ValueError(f"SessionConfig.preset must be one of {sorted(PRESET_LONG_SIDE)}, got {self.preset!r}")
        integer("ddim_steps", 1, 100, optional=True)
        integer("seed", 0, 2**63 - 1)
        integer("max_ahead_frames", 1, 10_000)
        # more ONNX Runtime threads than CPUs only makes every thread wait for the others
        integer("intra_op_threads", 0, cpu_count())
        integer("output_size", *OUTPUT_SIZE_RANGE, optional=True)
        if self.style is not None and not isinstance(self.style, (str, os.PathLike)):
            raise TypeError(f"SessionConfig.style must be None or a path, got {type(self.style).__name__}")
        if self.style is not None and not os.path.exists(self.style):
            raise ValueError(f"SessionConfig.style: no such file {os.fspath(self.style)!r}")
        if self.style is not None and os.path.isdir(self.style) and not os.path.isfile(
                os.path.join(self.style, "motion.npz")):
            raise ValueError(f"SessionConfig.style: {os.fspath(self.style)!r} is a folder without a motion.npz")
        if not isinstance(self.realtime, (bool, np.bool_)):
            raise TypeError(f"SessionConfig.realtime must be a bool, got {type(self.realtime).__name__}")
        setf("realtime", bool(self.realtime))
        if not isinstance(self.refine_mouth, (bool, np.bool_)):
            raise TypeError(f"SessionConfig.refine_mouth must be a bool, got {type(self.refine_mouth).__name__}")
        setf("refine_mouth", bool(self.refine_mouth))
        if self.refine_region is not None:
            if not isinstance(self.refine_region, (bool, np.bool_)):
                raise TypeError("SessionConfig.refine_region must be None or a bool, got "
                                f"{type(self.refine_region).__name__}")
            setf("refine_region", bool(self.refine_region))
        parse_frame_device(self.frame_device)
        if self.providers is not None:
            p = self.providers
            if isinstance(p, (str, bytes)) or not isinstance(p, (tuple, list)):
                raise TypeError("SessionConfig.providers must be None or a tuple of provider names "
                                f"(e.g. ('CPUExecutionProvider',)), got {p!r}")
            if not all(isinstance(x, str) and x for x in p):
                raise TypeError(f"SessionConfig.providers must hold provider names (str), got {p!r}")
            setf("providers", tuple(p))

    @property
    def long_side(self) -> int:
        """Long side of the frames in pixels: ``output_size`` or the preset's default. The frame's
        width and height depend on the photo too (``Session.frame_size``)."""
        return self.output_size if self.output_size is not None else PRESET_LONG_SIDE[self.preset]


def parse_frame_device(spec) -> tuple[str, int] | None:
    """``SessionConfig.frame_device`` -> None for "host", else ``(kind, device id)`` with kind "cpu"
    or "cuda". ``ValueError``/``TypeError`` naming the field otherwise."""
    if not isinstance(spec, str):
        raise TypeError(f"SessionConfig.frame_device must be a str, got {type(spec).__name__}")
    if spec == "host":
        return None
    if spec == "cpu":
        return "cpu", 0
    kind, _, idx = spec.partition(":")
    if kind == "cuda" and (idx == "" or (idx.isdigit() and len(idx) < 4)):
        return "cuda", int(idx or 0)
    raise ValueError(f"SessionConfig.frame_device must be 'host', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
