"""The region refiner: a small learned network that corrects the geometry renderer's whole region.

The geometry renderer (:mod:`chatanyone.render.geometry`) moves the photo's pixels by explicit
meshes; what they cannot say (hair that sways on its own, the soft edge where a moved head meets
the background plate, the shading of a turned hand, cloth that folds) is left as the warp made it.
This network sees the renderer's region image and where each pixel came from, and adds a smooth
correction. It runs at a quarter of the region's size (:data:`SCALE`); its change is scaled back up and
faded to nothing at the region's border (:func:`border_window`), so paste-back stays seamless and
every pixel outside the region stays the photo's.

Input (:func:`features`, ``[1, 6, h, w]`` float32, ``h, w`` the region at 1/:data:`SCALE` of its size, padded to a
multiple of :data:`MULTIPLE`):

- channels 0-2: the renderer's region image in [0, 1];
- channels 3-4: the warp's displacement (the sampling grid less the identity, normalized region
  units times :data:`FLOW_GAIN`, clipped to [-1, 1]): how far, and which way, each pixel moved;
- channel 5: the person layer's coverage (1 where the warped person lies, 0 on the still plate; 1
  everywhere for a renderer without layers).

Output: ``delta [1, 3, h, w]`` in [0, 1] image units. The network is trained by
:mod:`chatanyone.train.region_refine` (PyTorch, offline: L1 on self-driven pairs of the training
split, plus a patch discriminator trained from scratch with feature matching) and shipped as
``weights/region_refine.onnx``; here it runs through ONNX Runtime (no PyTorch at run time).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ._kernels import identity_grid as _identity      # cached, read-only

log = logging.getLogger("chatanyone")

SCALE = 4            # the network runs at 1/SCALE of the region's size
MULTIPLE = 8         # its input's sides are padded to a multiple of this (three 2x downsamplings)
N_IN = 6             # input channels (see the module docstring)
FLOW_GAIN = 8.0      # the displacement channels: normalized region units times this, clipped to [-1, 1]
BORDER = 0.06        # the change fades to 0 over this share of the region's shorter side at its border
MODEL_NAME = "region_refine.onnx"


def border_window(h: int, w: int, border: float = BORDER) -> np.ndarray:
    """``[h, w, 1]`` float32: 1 inside, ramping to 0 at the region's outermost pixels over
    ``border`` of its shorter side (the mouth refiner's :func:`~chatanyone.render.refine.window`
    on a rectangle)."""
    from .refine import window
    return window(h, max(2.0, border * min(h, w)), width=w)[..., None]


def identity_grid(h: int, w: int) -> np.ndarray:
    """``[h, w, 2]`` float32: the sampling grid that leaves an ``h x w`` image as it is
    (``align_corners=False``; a writable copy of :func:`chatanyone.render._kernels.identity_grid`)."""
    return _identity(h, w).copy()


def net_size(h: int, w: int, scale: float | None = None) -> tuple[int, int]:
    """The network's (unpadded) size for an ``h x w`` region read down by ``scale`` (default
    :data:`SCALE`)."""
    s = float(SCALE if scale is None else scale)
    return max(MULTIPLE, int(round(h / s))), max(MULTIPLE, int(round(w / s)))


def scale_for(long_side: int) -> float:
    """The read-down factor for frames of ``long_side`` pixels: :data:`SCALE` at the fast preset's
    512, in proportion elsewhere, so the network sees a person at the size it was trained on (the
    quality preset's 1024: 8)."""
    from ..spec.presets import PRESET_LONG_SIDE
    return max(1.0, SCALE * float(long_side) / PRESET_LONG_SIDE["fast"])


def features(img: np.ndarray, grid: np.ndarray, alpha: np.ndarray | None, scale: float | None = None) -> np.ndarray:
    """``[h2, w2, 6]`` float32 at the network's size (unpadded, :func:`net_size`) from the region
    image ``img [h, w, 3]`` (0-255), the warp's grid ``[h, w, 2]`` (normalized,
    ``align_corners=False``) and the person layer's coverage ``alpha [h, w]`` in [0, 1] (None: all
    person)."""
    import cv2
    h, w = img.shape[:2]
    if grid.shape[:2] != (h, w) or (alpha is not None and alpha.shape[:2] != (h, w)):
        raise ValueError(f"img {img.shape}, grid {grid.shape} and alpha "
                         f"{None if alpha is None else alpha.shape} must share their height and width")
    h2, w2 = net_size(h, w, scale)
    small = cv2.resize(np.asarray(img, np.float32), (w2, h2), interpolation=cv2.INTER_AREA)
    # the grid averaged over each small pixel less the small image's own identity (exact for a
    # whole-number factor: the mean of a block's pixel centres is the small pixel's centre)
    disp = cv2.resize(np.asarray(grid, np.float32), (w2, h2), interpolation=cv2.INTER_AREA)
    disp -= _identity(h2, w2)
    disp *= FLOW_GAIN
    a = np.ones((h2, w2), np.float32) if alpha is None else \
        cv2.resize(np.asarray(alpha, np.float32), (w2, h2), interpolation=cv2.INTER_AREA)
    x = np.empty((h2, w2, N_IN), np.float32)
    x[..., :3] = small * (1.0 / 255.0)
    x[..., 3:5] = np.clip(disp, -1.0, 1.0)
    x[..., 5] = a
    return x


def pad_to(x: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """``x [h, w, c]`` padded at the bottom and right (edge pixels repeated) to sides that are
    multiples of ``multiple``."""
    import cv2
    h, w = x.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x
    return cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REPLICATE)


def default_path() -> Path:
    from ..runners.base import weights_path
    return weights_path(MODEL_NAME)


def available() -> bool:
    """Whether the shipped region refiner is installed."""
    return default_path().is_file()


class RegionRefiner:
    """Runs the region refiner on the renderer's region image, in place (see the module docstring).

    Args:
        path: the ONNX file (default: ``weights/region_refine.onnx``).
        scale: the region is read down by this much for the network (:func:`scale_for` the
            frames' long side; default :data:`SCALE`).
        threads: ONNX Runtime intra-op threads (1: the refiner runs on the renderer's thread).

    Raises FileNotFoundError for a missing file and ValueError naming the file for a graph that is
    not a region refiner. Thread safety: one frame at a time per instance.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, scale: float | None = None, threads: int = 1,
                 providers=("CPUExecutionProvider",)):
        from ..runners.base import OnnxRunner
        path = Path(path) if path is not None else default_path()
        if not path.is_file():
            raise FileNotFoundError(f"region refiner not found: {os.fspath(path)!r}")
        try:
            runner = OnnxRunner(path, providers=list(providers), threads=threads)
        except Exception as exc:    # ONNX Runtime's own errors (a truncated or foreign file)
            raise ValueError(f"{path}: not a region refiner ONNX graph ({exc})") from exc
        ins, outs = runner.session.get_inputs(), runner.session.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4 or ins[0].shape[1] != N_IN or len(outs) != 1 \
                or len(outs[0].shape) != 4 or outs[0].shape[1] != 3:
            raise ValueError(f"{path}: a region refiner takes one input [1, {N_IN}, H, W] and gives one output "
                             f"[1, 3, H, W]; this graph takes {[i.shape for i in ins]} and gives "
                             f"{[o.shape for o in outs]}")
        self._runner = runner
        self._name = runner.input_names[0]
        self._win: dict[tuple[int, int], np.ndarray] = {}
        self.scale = float(SCALE if scale is None else scale)
        if not np.isfinite(self.scale) or self.scale < 1.0:
            raise ValueError(f"scale must be a number >= 1, got {scale!r}")

    def delta(self, img: np.ndarray, grid: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        """The network's change ``[h2, w2, 3]`` float32 (0-255 units) at its own size, unpadded,
        already faded to 0 at its border."""
        x = features(img, grid, alpha, self.scale)
        h2, w2 = x.shape[:2]
        xp = pad_to(x)
        d = self._runner.run({self._name: np.ascontiguousarray(xp.transpose(2, 0, 1)[None])})[0][0]
        win = self._win.get((h2, w2))
        if win is None:
            win = self._win[(h2, w2)] = border_window(h2, w2) * np.float32(255.0)
        return np.ascontiguousarray(d[:, :h2, :w2].transpose(1, 2, 0)) * win

    def __call__(self, img: np.ndarray, grid: np.ndarray, alpha: np.ndarray | None = None) -> None:
        """Refine ``img [h, w, 3]`` float32 (0-255, changed in place) given the warp's ``grid [h, w,
        2]`` and the person's coverage ``alpha [h, w]`` (None: no layers). The region's outermost
        pixels do not change. Blocks for one network run (several ms at the fast preset)."""
        import cv2
        h, w = img.shape[:2]
        k = self.scale
        if k == int(k) and h >= k * MULTIPLE and w >= k * MULTIPLE:
            # a whole-number factor: the network sees the largest part of the region that is a whole
            # number of its pixels (OpenCV's fast area path); the last few rows and columns, where
            # the change has faded to 0, stay as they are
            k = int(k)
            hh, ww = h // k * k, w // k * k
            img, grid = img[:hh, :ww], grid[:hh, :ww]
            alpha = None if alpha is None else alpha[:hh, :ww]
            h, w = hh, ww
        img += cv2.resize(self.delta(img, grid, alpha), (w, h), interpolation=cv2.INTER_LINEAR)
