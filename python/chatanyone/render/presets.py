"""Renderer presets: frozen, commented dataclasses. Architecture hyperparameters live here, beside
the model that reads them (``chatanyone.train.render``) and the runtime (``chatanyone.render``).
Frame sizes come from the contract (``chatanyone.spec.presets``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..spec.presets import PRESET_SIZES


@dataclass(frozen=True)
class RenderPreset:
    name: str                 # "fast" or "quality"; also the weight file prefix render_<name>_*.onnx
    height: int = 384         # output crop height (px); 2:3 framing, docs/design.md
    width: int = 256          # output crop width (px)
    enc_half: int = 16        # appearance features at 1/2 resolution (channels)
    enc_quarter: int = 32     # appearance features at 1/4 resolution (channels)
    dec_quarter: int = 32     # decoder width at 1/4 resolution
    dec_half: int = 16        # decoder width at 1/2 resolution
    dec_blocks: int = 1       # residual blocks at 1/4 resolution in the decoder
    motion_base: int = 32     # dense-motion hourglass width at 1/8 resolution (x2 per level down)
    refine_hidden: int = 128  # face refine / body offset MLP width
    sigma: float = 0.06       # Gaussian heatmap sigma in normalized crop units (grid_sample coords)
    refine_scale: float = 0.02  # max |offset| the refine net may add to a control point (normalized)
    # Local affine sparse motion (keypoints.group_affines): each control group's grid is rotated and
    # scaled with its keypoints, not only shifted. Set by the weights (render_<name>.json "affine").
    affine: bool = False
    # A preset with a ``core`` runs that preset's four networks on the crop downsized 2x and adds a
    # full-resolution detail stage (the source photo warped at full size by the core's flow, blended
    # and corrected by a small network). The other network fields then do not apply.
    core: str | None = None
    detail_channels: int = 16  # width of the detail network (presets with a core)
    # The learned mouth refiner of this preset (render/refine.py; used with SessionConfig.refine_mouth):
    # its file under weights/ and the side of its square mouth crop in pixels. The crop keeps the
    # same pixels per mouth width at the preset's default frame size (fast 512: 64, quality 1024: 128).
    mouth_refiner: str = "mouth_refine.onnx"
    mouth_crop: int = 64

    def __post_init__(self):
        if self.height * 2 != self.width * 3:
            raise ValueError(f"preset {self.name!r}: height:width must be 3:2, got {self.height}x{self.width}")
        if self.height % 32 or self.width % 32:
            raise ValueError(f"preset {self.name!r}: height and width must be multiples of 32")
        if not 0 < self.sigma < 1:
            raise ValueError(f"preset {self.name!r}: sigma must be in (0, 1), got {self.sigma}")
        if self.mouth_crop < 16 or self.mouth_crop % 8:
            raise ValueError(f"preset {self.name!r}: mouth_crop must be a multiple of 8, >= 16, got {self.mouth_crop}")

    @property
    def core_preset(self) -> "RenderPreset | None":
        """The preset whose networks run at half this preset's resolution (None: this one's own)."""
        if self.core is None:
            return None
        core = get_preset(self.core)
        if (core.height * 2, core.width * 2) != (self.height, self.width) or core.core is not None:
            raise ValueError(f"preset {self.name!r}: core {self.core!r} must be a plain preset of half its size")
        return core

    @property
    def quarter(self) -> tuple[int, int]:
        """(H/4, W/4): where features are warped and the dense motion is output."""
        return self.height // 4, self.width // 4

    @property
    def half(self) -> tuple[int, int]:
        """(H/2, W/2): second feature scale and the hand image's size."""
        return self.height // 2, self.width // 2


PRESETS = {
    # real time on 2 CPU cores (~0.5 GMAC per frame); the one trained and shipped
    "fast": RenderPreset("fast", height=PRESET_SIZES["fast"][1], width=PRESET_SIZES["fast"][0]),
    # 512x768: the fast networks at 256x384 plus a full-resolution detail stage (~1 GMAC more);
    # the paper's resolution, for GPUs, and ~2x the fast preset's time on CPU
    "quality": RenderPreset("quality", height=PRESET_SIZES["quality"][1], width=PRESET_SIZES["quality"][0],
                            core="fast", mouth_refiner="mouth_refine_quality.onnx", mouth_crop=128),
}


def get_preset(name: str) -> RenderPreset:
    """The preset called ``name`` ("fast" or "quality"); ``ValueError`` otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}") from None
