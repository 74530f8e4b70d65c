"""Frame sizes of the renderer presets, the one home of these numbers (the session's config, the
framing of avatars and corpus crops, and the renderer's networks read them from here)."""
from __future__ import annotations

PRESET_SIZES: dict[str, tuple[int, int]] = {
    # name: (width, height) of the rendered frame, always 2:3
    "fast": (256, 384),     # real time on 2 CPU cores
    "quality": (512, 768),  # the paper's resolution: the fast networks plus a full-size detail stage
}
